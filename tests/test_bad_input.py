"""Every bad input gets a clear answer, and nothing is ever lost (issue 4).

Each case is one way an input can be wrong: softmax-check exits 2 with a short message on
standard error naming the file and the problem, no traceback, nothing on standard output,
and an existing ``--output`` report untouched. The files live in tests/data/bad/ (made by
make_bad_files.py); cases that must be hostile or machine-specific are made by fixtures.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import softmax_cli
from softmax_cli import cli
from softmax_cli.errors import InputError, printable
from softmax_cli.load import ArrayKeys, load_inputs, npz, text

BAD = Path(__file__).parent / "data" / "bad"
LOGITS = BAD / "logits.npy"
REPO = Path(softmax_cli.__file__).parent.parent
OLD_REPORT = "an earlier report that must survive\n"


def invoke(*args: object, input: str | None = None):
    return CliRunner().invoke(cli.app, [str(a) for a in args], input=input)


def assert_refused(result, *fragments: str, max_lines: int = 4) -> None:
    """Exit 2, a short message on stderr with every fragment, no traceback, empty stdout."""
    detail = f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.exit_code == 2, detail
    assert result.exception is None or isinstance(result.exception, SystemExit), detail
    assert result.stdout == "", detail
    assert "Traceback" not in result.stderr, detail
    assert "internal error" not in result.stderr, detail
    assert 1 <= len(result.stderr.strip().splitlines()) <= max_lines, detail
    for fragment in fragments:
        assert fragment in result.stderr, detail


def assert_error_message(result, *fragments: str) -> None:
    """A refusal from softmax-check itself: the one-line prefix, then what is wrong."""
    assert_refused(result, *fragments)
    assert result.stderr.startswith("softmax-check: error: "), result.stderr


def assert_usage_error(result, *fragments: str) -> None:
    """A command line Click rejects: its usage line, a pointer to --help, and the error (Typer
    draws the error in a box, so a long one takes a few more lines)."""
    assert_refused(result, "Usage:", "-h", *fragments, max_lines=8)


# (file in tests/data/bad, extra options, what the message must say)
FILE_CASES = [
    ("empty.npy", [], "is empty (0 bytes)"),
    ("truncated.npy", [], "is truncated"),
    ("header_only.npy", [], "is truncated"),
    ("cut_in_magic.npy", [], "is not a .npy file"),
    ("wrong_magic.npy", [], "does not start with the .npy magic bytes"),
    ("csv_text.npy", [], "is not a .npy file"),
    ("zip_named.npy", [], "looks like a ZIP archive"),
    ("corrupt_header.npy", [], "corrupt .npy header"),
    ("version_9.npy", [], "version 9.0"),
    ("object.npy", [], "never unpickles"),
    ("strings.npy", [], "strings"),
    ("bytes.npy", [], "strings"),
    ("complex.npy", [], "complex"),
    ("bool.npy", [], "booleans"),
    ("structured.npy", [], "structured array"),
    ("bfloat16.npy", [], "bfloat16"),
    ("datetime.npy", [], "not a numeric dtype"),
    ("scalar.npy", [], "single number"),
    ("zero_samples.npy", [], "zero samples"),
    ("zero_classes.npy", [], "zero classes"),
    ("absurd_shape.npy", [], "corrupt .npy header"),
    ("huge_shape.npy", [], "corrupt .npy header"),
    ("negative_shape.npy", [], "negative shape"),
    ("zero_itemsize.npy", [], "hold no data"),
    ("empty.npz", [], "is empty (0 bytes)"),
    ("npy_named.npz", [], "looks like a .npy file"),
    ("csv_text.npz", [], "not a .npz archive"),
    ("truncated.npz", [], "not a readable .npz archive"),
    ("corrupt_member.npz", [], "array 'logits' cannot be read"),
    ("no_arrays.npz", [], "holds no arrays"),
    ("ambiguous.npz", [], "cannot tell which array holds the logits"),
    ("ambiguous.npz", [], "--logits-key"),
    ("ambiguous.npz", ["--logits-key", "c"], "has no array 'c'"),
    ("ambiguous.npz", ["--logits-key", "a", "--targets-key", "t"], "has no array 't'"),
    ("object_member.npz", [], "never unpickles"),
    ("not_npy_member.npz", [], "array 'logits': is not a .npy file"),
    ("truncated_member.npz", [], "array 'logits': is truncated"),
    ("absurd_member.npz", [], "corrupt .npy header"),
    ("empty.csv", [], "is empty"),
    ("blank_lines.csv", [], "is empty"),
    ("zero_classes.csv", [], "is empty"),
    ("header_only.csv", [], "has a header but no rows"),
    ("ragged.csv", [], "line 2 has 2 fields, expected 3"),
    ("non_numeric.csv", [], "line 2, column 2: 'five' is not a number"),
    ("empty_field.csv", [], "line 2, column 2: is empty"),
    ("binary.csv", [], "not valid UTF-8"),
    ("latin1.csv", [], "not valid UTF-8"),
    ("nul.csv", [], "binary file"),
    ("npy_named.csv", [], "looks like a .npy file"),
    ("non_numeric.csv", ["--target-column", "label"], "has no header, so no column 'label'"),
    ("header_only.csv", ["--target-column", "label"], "has no column 'label'"),
    ("targets_nan_column.csv", ["--target-column", "target"], "target 1 is nan"),
    ("targets_nan_column.csv", [], "column 1 ('a') holds only integers"),
    ("logits.npy", ["--class-axis", "2"], "--class-axis 2 is out of range"),
    ("logits.npy", ["--class-axis", "-3"], "use an axis from -2 to 1"),
]

# (targets file in tests/data/bad, what the message must say); the logits are logits.npy
TARGET_CASES = [
    ("targets_count.npy", "has 3 targets (shape (3,)) but the logits have 2 samples"),
    ("targets_range.npy", "target 1 is 3, outside the 3 classes (0 to 2)"),
    ("targets_negative.npy", "target 1 is -1, negative"),
    ("targets_fraction.npy", "target 1 is 1.5, not an integer class index"),
    ("targets_nan.npy", "target 1 is nan"),
    ("targets_bool.npy", "booleans"),
    ("targets_strings.npy", "not integer class indices"),
    ("targets_wrapping.npy", "target 1 is 18446744073709551516"),
    ("targets_words.txt", "line 3: 'cat' is not an integer class index"),
    ("targets_empty.txt", "holds no targets"),
    ("targets_fraction.csv", "target 1 is 0.5"),
    ("empty.npy", "is empty"),
    ("ambiguous.npz", "cannot tell which array holds the targets"),
    ("make_bad_files.py", "unknown targets format '.py'"),
]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """An existing report in an otherwise empty folder."""
    folder = tmp_path / "reports"
    folder.mkdir()
    path = folder / "report.json"
    path.write_text(OLD_REPORT)
    return path


def assert_untouched(report: Path) -> None:
    assert report.read_text() == OLD_REPORT
    assert sorted(p.name for p in report.parent.iterdir()) == [report.name]


@pytest.mark.parametrize(("name", "options", "fragment"), FILE_CASES)
def test_bad_logits_file_is_refused_naming_the_file(name, options, fragment, report):
    result = invoke(BAD / name, *options, "--format", "json", "-o", report)
    assert_error_message(result, str(BAD / name), fragment)
    assert_untouched(report)


@pytest.mark.parametrize(("name", "fragment"), TARGET_CASES)
def test_bad_targets_file_is_refused_naming_the_file(name, fragment, report):
    result = invoke(LOGITS, "--targets", BAD / name, "--format", "json", "-o", report)
    assert_error_message(result, str(BAD / name), fragment)
    assert_untouched(report)


def test_negative_target_equal_to_the_ignore_index_is_accepted():
    result = invoke(LOGITS, "--targets", BAD / "targets_negative.npy", "--ignore-index", "-1")
    assert result.exit_code == 0, result.stderr


def test_a_refused_target_names_the_ignore_index_in_its_hint():
    result = invoke(LOGITS, "--targets", BAD / "targets_range.npy", "--ignore-index", "-7")
    assert_error_message(result, "hint:", "ignore index (-7)")


def test_missing_file_is_refused():
    result = invoke(BAD / "does_not_exist.npy")
    assert_error_message(result, "does_not_exist.npy: no such file")


def test_missing_file_with_unknown_extension_says_it_is_missing():
    assert_error_message(invoke(BAD / "does_not_exist.h5"), "no such file")


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "dump.npy"
    folder.mkdir()
    assert_error_message(invoke(folder), "dump.npy: is a directory")


def deny(monkeypatch, denied: Path) -> None:
    """Make os.access say no for ``denied``, as it does for anyone but root on a 000 file."""
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(denied) else real_access(p, mode)
    )


@pytest.mark.parametrize("name", ["dump.npy", "dump.npz", "dump.csv"])
def test_unreadable_file_is_refused(name, tmp_path, monkeypatch):
    path = tmp_path / name
    shutil.copy(LOGITS, path)
    real_access = os.access
    # Root reads anything, so chmod alone proves nothing here: make the check see a 000 file.
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode)
    )
    assert_error_message(invoke(path), name, "permission denied")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a mode 000 file")
def test_unreadable_file_is_refused_for_real(tmp_path):
    path = tmp_path / "dump.npy"
    shutil.copy(LOGITS, path)
    path.chmod(0)
    assert_error_message(invoke(path), "permission denied")


@pytest.mark.parametrize("name", ["logits.h5", "logits", "logits.NPY.gz"])
def test_unknown_extension_is_refused(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(LOGITS.read_bytes())
    assert_error_message(
        invoke(path), name, "unknown logits format", ".npy, .npz, .safetensors, .pt, .pth, .csv"
    )


def test_a_fifo_named_npy_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "dump.npy"
    os.mkfifo(fifo)
    assert_error_message(invoke(fifo), "is not a regular file")


def test_a_device_named_csv_is_refused_without_reading_forever(tmp_path):
    link = tmp_path / "zeros.csv"
    link.symlink_to("/dev/zero")
    assert_error_message(invoke(link), "binary file")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--format", "xml"], "'xml' is not one of"),
        (["--max-rows", "-1"], "--max-rows"),
        (["--class-axis", "one"], "--class-axis"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_option_is_a_usage_error(options, fragment, report):
    result = invoke(LOGITS, *options, "-o", report)
    assert_usage_error(result, fragment)


def test_an_unknown_dtype_names_the_option_and_the_choices(report):
    result = invoke(LOGITS, "--dtype", "float8", "-o", report)
    assert_error_message(result, "--dtype: unknown dtype 'float8'", "bfloat16", "bf16")
    assert_untouched(report)


def test_unknown_fail_on_category_is_refused(report):
    result = invoke(LOGITS, "--fail-on", "everything", "-o", report)
    assert_error_message(result, "unknown category 'everything'")
    assert_untouched(report)


def test_missing_logits_argument_is_a_usage_error():
    assert_usage_error(invoke(), "LOGITS")


def test_ignore_index_beyond_int64_is_refused():
    result = invoke(LOGITS, "--targets", BAD / "targets_range.npy", "--ignore-index", str(2**70))
    assert_error_message(result, "--ignore-index", "64-bit")


def test_output_in_a_missing_directory_is_refused(tmp_path):
    result = invoke(LOGITS, "-o", tmp_path / "nowhere" / "report.json")
    assert_error_message(result, "does not exist")
    assert not (tmp_path / "nowhere").exists()


def test_output_that_is_a_directory_is_refused(tmp_path):
    assert_error_message(invoke(LOGITS, "-o", tmp_path), "is a directory")


def test_output_in_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode)
    )
    result = invoke(LOGITS, "-o", folder / "report.json")
    assert_error_message(result, "is not writable")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("option", ["logits", "targets"])
def test_output_that_is_an_input_is_refused_and_the_input_kept(option, tmp_path):
    logits, targets = tmp_path / "logits.npy", tmp_path / "targets.npy"
    np.save(logits, np.zeros((2, 3)))
    np.save(targets, np.array([0, 1]))
    before = (logits.read_bytes(), targets.read_bytes())
    victim = logits if option == "logits" else targets
    result = invoke(logits, "--targets", targets, "--format", "json", "-o", victim)
    assert_error_message(result, "is an input file")
    assert (logits.read_bytes(), targets.read_bytes()) == before


def test_standard_input_cannot_be_both_inputs():
    assert_error_message(invoke("-", "--targets", "-", input="1,2\n"), "standard input")


def test_bad_csv_on_standard_input_names_stdin():
    assert_error_message(invoke("-", input="1,2\n3\n"), "<stdin>: line 2 has 1 fields")


def test_binary_on_standard_input_is_refused():
    result = CliRunner().invoke(cli.app, ["-"], input=LOGITS.read_bytes())
    assert_error_message(result, "<stdin>", "binary file")


# --- hostile files ----------------------------------------------------------------------


class _Payload:
    """Unpickling this makes a directory: proof that a file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_pickle_in_the_input_is_never_run(suffix, tmp_path):
    marker = tmp_path / "pwned"
    evil = np.array([_Payload(marker), _Payload(marker)], dtype=object)
    path = tmp_path / f"evil{suffix}"
    if suffix == ".npy":
        np.save(path, evil, allow_pickle=True)
    else:
        np.savez(path, logits=evil)
    with pytest.raises(InputError, match="never unpickles"):
        load_inputs(str(path), None, ArrayKeys())
    assert_error_message(invoke(path), "never unpickles")
    assert not marker.exists()


def _lying_zip(path: Path, payload: bytes, claimed: int) -> None:
    """A deflated one-member .npz whose directory claims ``claimed`` uncompressed bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("logits.npy", payload)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 22, claimed)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, claimed)  # central directory: the same
    path.write_bytes(bytes(data))


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def test_a_zip_bomb_member_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    header = _npy_header(((3 << 30) // 8,))
    _lying_zip(path, header + bytes(4096), claimed=len(header) + (3 << 30))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="zip bomb"):
            load_inputs(str(path), None, ArrayKeys())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_a_zip_bomb_is_refused_by_the_cli_in_a_small_address_space(tmp_path):
    path = tmp_path / "bomb.npz"
    header = _npy_header(((3 << 30) // 8,))
    _lying_zip(path, header + bytes(4096), claimed=len(header) + (3 << 30))
    script = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30));"
        "from softmax_cli.cli import main; main()"
    )
    done = _run_process([sys.executable, "-c", script, str(path)])
    assert done.returncode == 2, done.stderr
    assert "zip bomb" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_compressed_member_larger_than_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(npz, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(1 << 20))  # 8 MiB of zeros: a few KiB compressed
        archive.writestr("logits.npy", buffer.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"would decompress to 8\.0 MiB") as caught:
            load_inputs(str(path), None, ArrayKeys())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "np.savez" in str(caught.value)
    assert peak < 1 << 20  # the 8 MiB array is never allocated


def test_an_npy_header_declaring_an_absurd_shape_allocates_nothing():
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"corrupt \.npy header"):
            load_inputs(str(BAD / "huge_shape.npy"), None, ArrayKeys())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_csv_with_one_enormous_line_is_refused_after_reading_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "MAX_LINE_CHARS", 1 << 20)
    path = tmp_path / "one_line.csv"
    path.write_text("1.0," * (1 << 20))  # 4 MiB, no newline
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="line 1 is longer than 1,048,576 characters"):
            load_inputs(str(path), None, ArrayKeys())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_an_endless_line_from_a_pipe_ends_in_an_error_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "MAX_LINE_CHARS", 1 << 20)
    fifo = tmp_path / "endless.csv"
    os.mkfifo(fifo)

    def write_forever() -> None:
        try:
            with open(fifo, "wb") as pipe:
                while True:
                    pipe.write(b"1" * 65536)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    with pytest.raises(InputError, match="longer than"):
        load_inputs(str(fifo), None, ArrayKeys())
    writer.join(timeout=10)
    assert not writer.is_alive()


def test_a_member_with_an_unsupported_compression_method_is_refused(tmp_path):
    path = tmp_path / "odd.npz"
    shutil.copy(BAD / "ambiguous.npz", path)
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 10, 99)  # method 99: AES, which zipfile lacks
    struct.pack_into("<H", data, 8, 99)
    path.write_bytes(bytes(data))
    assert_error_message(invoke(path, "--logits-key", "a"), "array 'a'", "compression method 99")


def test_an_encrypted_member_is_refused(tmp_path):
    path = tmp_path / "locked.npz"
    shutil.copy(BAD / "ambiguous.npz", path)
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, 1)  # general purpose flag: encrypted
    path.write_bytes(bytes(data))
    assert_error_message(invoke(path, "--logits-key", "a"), "encrypted")


def test_control_characters_in_a_file_name_are_not_sent_to_the_terminal(tmp_path):
    path = tmp_path / "\x1b[31mred\x07.npy"
    path.write_bytes(b"")
    result = invoke(path)
    assert_error_message(result, "\\x1b[31mred\\x07.npy")
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr


def test_printable_keeps_a_message_to_a_few_short_lines():
    shown = printable("a" * 10_000 + "\n" + "b\n" * 50)
    assert len(shown.splitlines()) <= 6
    assert max(len(line) for line in shown.splitlines()) <= 300


# --- nothing lost -----------------------------------------------------------------------


def _fingerprint(path: Path) -> tuple[str, int, int]:
    status = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), status.st_mtime_ns, status.st_mode


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, list[Path]]:
    """One dump per format (with findings, so every path of the check runs)."""
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, np.nan]], dtype=np.float32)
    targets = np.array([0, 2])
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "targets.npy", targets)
    np.savez(tmp_path / "stored.npz", logits=logits, targets=targets)
    np.savez_compressed(tmp_path / "compressed.npz", logits=logits, targets=targets)
    (tmp_path / "dump.csv").write_text("c0,c1,c2,target\n1,2,3,0\n1000,0,nan,2\n")
    (tmp_path / "targets.txt").write_text("0\n2\n")
    return {
        "npy": [tmp_path / "logits.npy", tmp_path / "targets.npy"],
        "stored npz": [tmp_path / "stored.npz"],
        "compressed npz": [tmp_path / "compressed.npz"],
        "csv": [tmp_path / "dump.csv"],
        "npy + txt": [tmp_path / "logits.npy", tmp_path / "targets.txt"],
    }


@pytest.mark.parametrize("kind", ["npy", "stored npz", "compressed npz", "csv", "npy + txt"])
def test_inputs_are_never_modified(kind, inputs, tmp_path):
    files = inputs[kind]
    before = [_fingerprint(p) for p in files]
    args = [files[0]] + (["--targets", files[1]] if len(files) > 1 else [])
    result = invoke(*args, "--format", "json", "-o", tmp_path / "out.json")
    assert result.exit_code == 1, result.stderr  # the NaN row is an input finding
    assert [_fingerprint(p) for p in files] == before


def test_loaded_arrays_are_read_only(inputs):
    for files in inputs.values():
        loaded = load_inputs(str(files[0]), None, ArrayKeys())
        if isinstance(loaded.logits, np.memmap):
            with pytest.raises(ValueError, match="read-only"):
                loaded.logits[0, 0] = 0


def test_a_stored_npz_member_is_memory_mapped_with_identical_values(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((7, 5)).astype(np.float32)
    targets = rng.integers(0, 5, size=7)
    path = tmp_path / "stored.npz"
    np.savez(path, logits=logits, targets=targets)
    loaded = load_inputs(str(path), None, ArrayKeys())
    assert isinstance(loaded.logits, np.memmap)
    assert loaded.logits.dtype == logits.dtype
    np.testing.assert_array_equal(loaded.logits, logits)
    assert isinstance(loaded.targets, np.memmap)
    np.testing.assert_array_equal(loaded.targets, targets)


@pytest.mark.parametrize(
    "array",
    [
        np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        np.arange(12, dtype=">f4").reshape(4, 3),
        np.arange(24, dtype=np.float16).reshape(2, 3, 4),
        np.zeros((0, 3), dtype=np.float32),
    ],
    ids=["fortran", "big-endian", "3d-float16", "empty"],
)
@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_npz_members_come_back_with_identical_values(array, save, tmp_path):
    path = tmp_path / "dump.npz"
    save(path, logits=array)
    loaded = load_inputs(str(path), None, ArrayKeys()).logits
    assert loaded.dtype == array.dtype
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_a_stored_member_in_a_large_archive_is_mapped_not_read(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, logits=np.ones((2048, 1024), dtype=np.float32))  # 8 MiB
    tracemalloc.start()
    try:
        logits = load_inputs(str(path), None, ArrayKeys()).logits
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert float(logits[-1, -1]) == 1.0


@pytest.mark.parametrize(
    ("method", "name"), [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "LZMA")]
)
def test_bz2_and_lzma_members_are_refused_as_numpy_never_writes_them(method, name, tmp_path):
    path = tmp_path / f"{name}.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.float32).reshape(2, 3))
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("logits.npy", buffer.getvalue())
    assert_error_message(
        invoke(path), str(path), "array 'logits'", f"uses {name} compression", "deflate"
    )


def test_a_compressed_member_is_read_only(tmp_path):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, logits=np.zeros((2, 3)), targets=np.array([0, 1]))
    loaded = load_inputs(str(path), None, ArrayKeys())
    for array in (loaded.logits, loaded.targets):
        assert not isinstance(array, np.memmap)
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1


def test_an_existing_report_survives_a_failed_write(report, monkeypatch):
    def fail(*args):
        raise OSError(28, "No space left on device", str(report))

    monkeypatch.setattr(os, "replace", fail)
    result = invoke(LOGITS, "--format", "json", "-o", report)
    assert_error_message(result, "No space left on device")
    assert_untouched(report)


def test_an_existing_report_survives_ctrl_c_while_it_is_written(report, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    result = invoke(LOGITS, "--format", "json", "-o", report)
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert_untouched(report)


def test_a_successful_run_replaces_the_report_atomically(report):
    result = invoke(LOGITS, "--format", "json", "-o", report)
    assert result.exit_code == 0, result.stderr
    assert report.read_text().startswith("{")
    assert sorted(p.name for p in report.parent.iterdir()) == [report.name]


# --- internal errors --------------------------------------------------------------------


def test_an_internal_error_is_one_line_without_a_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "check_loaded", broken)
    result = invoke(LOGITS)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "softmax-check: error: internal error: ZeroDivisionError: a bug (please report this bug)"
    ]


def test_an_internal_error_shows_its_traceback_when_debugging(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "check_loaded", broken)
    monkeypatch.setenv("SOFTMAX_CHECK_DEBUG", "1")
    result = invoke(LOGITS)
    assert isinstance(result.exception, ZeroDivisionError)


# --- the real process -------------------------------------------------------------------


def _run_process(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, **kwargs)


@pytest.mark.parametrize(
    "args",
    [
        [str(BAD / "object.npy")],
        [str(BAD / "corrupt_member.npz")],
        [str(BAD / "binary.csv")],
        [str(LOGITS), "--targets", str(BAD / "targets_nan.npy")],
        [str(LOGITS), "--dtype", "float8"],
        [str(BAD / "does_not_exist.npy")],
    ],
)
def test_the_process_exits_2_without_a_traceback(args):
    done = _run_process([sys.executable, "-m", "softmax_cli", *args])
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "error" in done.stderr.lower()


def _unread_bytes(fd: int) -> int:
    buffer = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buffer)[0]


def test_ctrl_c_while_reading_exits_130_and_keeps_the_report(report):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "softmax_cli", "-", "--format", "json", "-o", str(report)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        process.stdin.write(b"1,2,3\n4,5,6\n")
        process.stdin.flush()
        deadline = time.monotonic() + 30
        # Wait until the CSV reader has taken the rows: it is now blocked on the open pipe.
        while _unread_bytes(process.stdin.fileno()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.decode().strip() == "softmax-check: interrupted"
    assert stdout == b""
    assert_untouched(report)


def test_inputs_are_opened_read_only(monkeypatch, inputs):
    modes: list[str] = []
    real_open = open

    def spy(file, mode="r", *args, **kwargs):
        modes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    real_memmap = np.memmap

    def memmap_spy(*args, **kwargs):
        modes.append("memmap:" + kwargs.get("mode", "r+"))
        return real_memmap(*args, **kwargs)

    monkeypatch.setattr(np, "memmap", memmap_spy)
    for files in inputs.values():
        load_inputs(str(files[0]), str(files[1]) if len(files) > 1 else None, ArrayKeys())
    assert modes
    assert all(mode in ("r", "rb", "memmap:r") for mode in modes), modes


def test_pickle_module_is_never_used_to_load(monkeypatch, inputs):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle.load called")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    for files in inputs.values():
        load_inputs(str(files[0]), None, ArrayKeys())


# --- a file in another format than its name says (issue 10 point 5) ---------------------


def _safetensors_bytes(_: Path | None = None) -> bytes:
    """A safetensors file whose header is 0x80 + 256k bytes long: its first byte is 0x80,
    as a pickle's is, so only the '{' after the length tells them apart."""
    import json

    header = {"logits": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    text = json.dumps(header).encode()
    text += b" " * (0x180 - len(text))
    return struct.pack("<Q", len(text)) + text + bytes(24)


def _torch_bytes(tmp_path: Path) -> bytes:
    torch = pytest.importorskip("torch")
    torch.save({"logits": torch.zeros(2, 3)}, tmp_path / "saved.pt")
    return (tmp_path / "saved.pt").read_bytes()


def _npz_bytes(tmp_path: Path) -> bytes:
    np.savez(tmp_path / "saved.npz", logits=np.zeros((2, 3)))
    return (tmp_path / "saved.npz").read_bytes()


def _compressed(module: str):
    return lambda _: __import__(module).compress(b"x" * 99)


def _npy_bytes(_: Path) -> bytes:
    return LOGITS.read_bytes()


# (file name, its bytes, what the message must say: the problem, then the hint)
WRONG_NAME_CASES = [
    ("x.npy", _safetensors_bytes, "is not a .npy file", "safetensors file; name it .safetensors"),
    ("x.npz", _safetensors_bytes, "is not a .npz archive", "name it .safetensors"),
    ("x.pt", _safetensors_bytes, "is not a PyTorch file", "name it .safetensors"),
    ("x.npy", _torch_bytes, "is not a .npy file", "PyTorch file (torch.save); name it .pt"),
    ("x.npz", _torch_bytes, "is not a .npz archive", "PyTorch file (torch.save); name it .pt"),
    ("x.safetensors", _torch_bytes, "is not a .safetensors file", "name it .pt"),
    ("x.safetensors", _npz_bytes, "is not a .safetensors file", "ZIP archive", "name it .npz"),
    ("x.npy", _npz_bytes, "is not a .npy file", "name it .npz"),
    ("x.safetensors", _npy_bytes, "is not a .safetensors file", "name it .npy"),
    ("x.pt", _npy_bytes, "is not a PyTorch file", "name it .npy"),
    ("x.npy", lambda _: pickle.dumps([1.0, 2.0]), "is not a .npy file", "Python pickle"),
    ("x.npy", _compressed("gzip"), "is not a .npy file", "gzip-compressed", "(gunzip)"),
    ("x.npz", _compressed("bz2"), "is not a .npz archive", "bzip2-compressed", "(bunzip2)"),
    ("x.pt", _compressed("lzma"), "is not a PyTorch file", "xz-compressed", "(unxz)"),
]


@pytest.mark.parametrize(
    ("name", "make", "problem", "hints"), [(*c[:3], c[3:]) for c in WRONG_NAME_CASES]
)
def test_a_file_in_another_format_is_told_what_it_is(tmp_path, name, make, problem, hints):
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    result = invoke(path)
    assert_error_message(result, f"{path}: {problem}")
    hint = result.stderr.split("hint: ", 1)[1]
    for fragment in hints:
        assert fragment in hint, result.stderr


def test_a_safetensors_file_named_npy_is_not_called_a_pickle(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(_safetensors_bytes())
    assert path.read_bytes()[0] == 0x80
    assert "pickle" not in invoke(path).stderr
