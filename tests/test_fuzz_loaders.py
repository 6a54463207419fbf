"""Fuzzing the loaders: random bytes and mutated valid files end in a clean result or in the
project's own error (a SoftmaxCheckError), never in any other exception.

A loaded array is also checked, since "the file loads" is only half of "the input is
usable": ``check()`` must accept it or refuse it with the same kind of error.
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmax_cli import check
from softmax_cli.errors import SoftmaxCheckError
from softmax_cli.load import ArrayKeys, load_inputs, read_targets

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_names = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _file(folder: Path, data: bytes, suffix: str) -> Path:
    path = folder / f"case{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


def load_and_check(path: Path, *, as_targets: bool = False) -> None:
    """Load ``path`` and check what it holds; only the project's errors may escape."""
    try:
        if as_targets:
            targets = read_targets(str(path), ArrayKeys())
            check(np.zeros((len(np.ravel(targets)) or 1, 3)), targets)
            return
        loaded = load_inputs(str(path), None, ArrayKeys())
        for class_axis in (-1, 0):
            check(loaded.logits, loaded.targets, class_axis=class_axis)
        loaded.verify()
    except SoftmaxCheckError:
        pass
    finally:
        path.unlink()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(method: int, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, array in arrays.items():
            archive.writestr(f"{name}.npy", _npy(array))
    return buffer.getvalue()


LOGITS = np.array([[1.0, -2.0, 3.5], [1000.0, 0.0, -np.inf]], dtype=np.float32)
TARGETS = np.array([2, -100])
SEEDS = {
    ".npy": [
        _npy(LOGITS),
        _npy(LOGITS.astype(np.float16)),
        _npy(np.asfortranarray(LOGITS.astype(">f8"))),
        _npy(np.arange(6, dtype=np.int16).reshape(2, 3)),
    ],
    ".npz": [
        _npz(zipfile.ZIP_STORED, logits=LOGITS, targets=TARGETS),
        _npz(zipfile.ZIP_DEFLATED, logits=LOGITS, targets=TARGETS),
    ],
    ".csv": [
        b"c0,c1,c2,target\n1,-2,3.5,2\n1000,0,-inf,-100\n",
        b"1,2,3\n4,5,6\n",
        b'\xef\xbb\xbf"x0","x1"\n"1","2"\n"3","4"\n',
    ],
    ".txt": [b"target\n0\n2\n", b"1\n-100\n"],
}


CSV_ALPHABET = "0123456789.,-+eEinfaNn \t\r\n\"'#;"


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed file with a few bytes flipped, inserted, deleted, or cut off."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0, 0x20, 0x2C, 0x39, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_never_raise_anything_but_input_errors(folder, suffix, data):
    load_and_check(_file(folder, data, suffix))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
@FUZZ
@given(data=st.data())
def test_random_bytes_after_a_valid_start_never_raise_anything_but_input_errors(
    folder, suffix, data
):
    seed = data.draw(st.sampled_from(SEEDS[suffix]))
    cut = data.draw(st.integers(0, len(seed)))
    tail = data.draw(st.binary(max_size=256))
    load_and_check(_file(folder, seed[:cut] + tail, suffix))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
@FUZZ
@given(data=st.data())
def test_mutated_valid_files_never_raise_anything_but_input_errors(folder, suffix, data):
    load_and_check(_file(folder, data.draw(mutated(SEEDS[suffix])), suffix))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".txt", ".csv"])
@FUZZ
@given(data=st.data())
def test_mutated_targets_never_raise_anything_but_input_errors(folder, suffix, data):
    seeds = SEEDS[suffix] if suffix != ".npy" else [_npy(TARGETS), _npy(TARGETS.astype(float))]
    if suffix == ".csv":
        seeds = SEEDS[".txt"]
    load_and_check(_file(folder, data.draw(mutated(seeds)), suffix), as_targets=True)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list(CSV_ALPHABET)), max_size=200))
def test_random_csv_like_text_never_raises_anything_but_input_errors(folder, text):
    load_and_check(_file(folder, text.encode(), ".csv"))


def test_the_seeds_themselves_load(folder):
    """The mutation tests start from valid files (or they would prove little)."""
    for suffix in (".npy", ".npz", ".csv"):
        for seed in SEEDS[suffix]:
            path = _file(folder, seed, suffix)
            loaded = load_inputs(str(path), None, ArrayKeys())
            assert check(loaded.logits, loaded.targets).summary.samples == 2
    for seed in SEEDS[".txt"]:
        assert len(read_targets(str(_file(folder, seed, ".txt")), ArrayKeys())) == 2


# --- stored .npz members: memory-mapped, so their integrity is softmax-check's to verify --

STORED_NPZ = _npz(zipfile.ZIP_STORED, logits=LOGITS, targets=TARGETS)
ORIGINALS = (LOGITS, TARGETS)


def _member_spans(blob: bytes) -> list[tuple[int, int]]:
    """Byte ranges of each stored member's data in ``blob``."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        for info in archive.infolist():
            name_length, extra_length = struct.unpack_from("<HH", blob, info.header_offset + 26)
            start = info.header_offset + 30 + name_length + extra_length
            spans.append((start, start + info.file_size))
    return spans


def _is_an_original(array: np.ndarray) -> bool:
    return any(
        array.dtype == original.dtype
        and array.shape == original.shape
        and np.array_equal(array, original)
        for original in ORIGINALS
    )


@FUZZ
@given(data=st.data())
def test_a_mutated_stored_npz_is_refused_or_loads_unchanged_members(folder, data):
    path = _file(folder, data.draw(mutated([STORED_NPZ])), ".npz")
    try:
        loaded = load_inputs(str(path), None, ArrayKeys())
        loaded.verify()
    except SoftmaxCheckError:
        return
    else:
        for array in (loaded.logits, loaded.targets):
            assert array is None or _is_an_original(np.asarray(array))
    finally:
        path.unlink()


@FUZZ
@given(data=st.data())
def test_one_flipped_bit_in_a_stored_member_is_always_refused(folder, data):
    spans = _member_spans(STORED_NPZ)
    start, end = data.draw(st.sampled_from(spans))
    at = data.draw(st.integers(start, end - 1))
    blob = bytearray(STORED_NPZ)
    blob[at] ^= 1 << data.draw(st.integers(0, 7))
    path = _file(folder, bytes(blob), ".npz")
    try:
        with pytest.raises(SoftmaxCheckError):
            load_inputs(str(path), None, ArrayKeys()).verify()
    finally:
        path.unlink()
