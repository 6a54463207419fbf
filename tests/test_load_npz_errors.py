"""A bad ``.npz`` archive or member is refused: exit 2, one short message naming the file
(and the member), an existing ``--output`` report untouched; hostile archives (zip bombs,
lying sizes) are refused before anything is decompressed or allocated.
"""

from __future__ import annotations

import io
import shutil
import struct
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import BAD, assert_error_message, assert_untouched, invoke, run_process

from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, load_inputs, npz

# (file in tests/data/bad, extra options, what the message must say)
NPZ_CASES = [
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
]


@pytest.mark.parametrize(("name", "options", "fragment"), NPZ_CASES)
def test_a_bad_npz_file_is_refused_naming_the_file(name, options, fragment, old_report):
    result = invoke(BAD / name, *options, "--format", "json", "-o", old_report)
    assert_error_message(result, str(BAD / name), fragment)
    assert_untouched(old_report)


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
    done = run_process([sys.executable, "-c", script, str(path)])
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
