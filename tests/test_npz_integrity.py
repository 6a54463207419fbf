"""A corrupt .npz is never checked as if it were good (issue 14 point 1).

Stored members are memory-mapped, so zipfile never reads them and never checks their CRC:
softmax-check does, over the bytes it maps, and compares each member's local header with
the central directory. A damaged archive exits 2 before any report is written.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import softmax_cli
from softmax_cli.errors import InputError
from softmax_cli.load import ArrayKeys, integrity, load_inputs

REPO = Path(softmax_cli.__file__).parent.parent
OLD_REPORT = "an earlier report that must survive\n"


def run_cli(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "softmax_cli", *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def assert_refused(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


def member_data_offset(path: Path, name: str) -> int:
    """Where the stored member ``name`` begins in the archive, read from its local header."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    data = path.read_bytes()
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.json"
    path.write_text(OLD_REPORT)
    return path


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "dump.npz"
    logits = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(path, logits=logits, targets=np.array([0, 1, 2, 0]))
    return path


def test_a_good_stored_archive_passes_verification(dump, report):
    done = run_cli(dump, "--format", "json", "-o", report)
    assert done.returncode == 0, done.stderr
    assert report.read_text().startswith("{")


def test_a_flipped_bit_in_a_stored_members_data_exits_2(dump, report):
    flip_bit(dump, member_data_offset(dump, "logits.npy") + 128 + 20)  # inside the floats
    done = run_cli(dump, "--format", "json", "-o", report)
    assert_refused(done, str(dump), "array 'logits'", "CRC-32")
    assert report.read_text() == OLD_REPORT


def test_a_flipped_bit_in_a_stored_members_npy_header_names_the_crc(dump):
    flip_bit(dump, member_data_offset(dump, "targets.npy") + 20, bit=3)
    assert_refused(run_cli(dump), "array 'targets'", "CRC-32")


def test_a_local_header_with_another_name_exits_2(dump, report):
    data = bytearray(dump.read_bytes())
    at = data.index(b"logits.npy")  # the first occurrence is the local header's
    assert data[at - 30 : at - 26] == b"PK\x03\x04"
    data[at : at + 6] = b"LOGITZ"
    dump.write_bytes(bytes(data))
    done = run_cli(dump, "--format", "json", "-o", report)
    assert_refused(done, str(dump), "array 'logits'", "local ZIP header", "'LOGITZ.npy'")
    assert report.read_text() == OLD_REPORT


# Offsets in the first member's (logits.npy) local header as np.savez writes it: ZIP64,
# so both 32-bit sizes are 0xFFFFFFFF and the real ones are in the extra field at 30 + 10.
@pytest.mark.parametrize(
    ("field", "layout", "value", "fragment"),
    [
        (8, "<H", 8, "compression method 8"),
        (14, "<I", 0x12345678, "other sizes or CRC"),
        (18, "<I", 1, "other sizes or CRC"),
        (22, "<I", 1, "other sizes or CRC"),
        (44, "<Q", 1000, "other sizes or CRC"),
    ],
    ids=["method", "crc", "compressed-size", "size", "zip64-size"],
)
def test_a_local_header_with_other_sizes_or_method_exits_2(dump, field, layout, value, fragment):
    data = bytearray(dump.read_bytes())
    assert data[30:40] == b"logits.npy" and struct.unpack_from("<H", data, 40)[0] == 1
    struct.pack_into(layout, data, field, value)
    dump.write_bytes(bytes(data))
    assert_refused(run_cli(dump), "array 'logits'", fragment)


def test_a_large_member_is_verified_in_the_background_before_the_report(
    tmp_path, report, monkeypatch
):
    monkeypatch.setattr(integrity, "INLINE_BYTES", 1024)
    path = tmp_path / "big.npz"
    np.savez(path, logits=np.zeros((64, 100), dtype=np.float32))
    flip_bit(path, member_data_offset(path, "logits.npy") + 128 + 4000, bit=6)
    loaded = load_inputs(str(path), None, ArrayKeys())  # no error yet: the thread is running
    assert loaded.pending
    with pytest.raises(InputError, match=r"array 'logits': is corrupt: its data's CRC-32"):
        loaded.verify()


def test_the_cli_verifies_a_large_member_before_writing_the_report(tmp_path, report):
    path = tmp_path / "big.npz"
    rows = (integrity.INLINE_BYTES // (4 * 1000)) + 10  # past the inline limit: a thread
    np.savez(path, logits=np.zeros((rows, 1000), dtype=np.float32))
    flip_bit(path, member_data_offset(path, "logits.npy") + 128 + 4 * 1000 * (rows - 1), bit=6)
    done = run_cli(path, "--format", "json", "-o", report)
    assert_refused(done, str(path), "array 'logits'", "CRC-32")
    assert report.read_text() == OLD_REPORT


def test_a_corrupt_targets_archive_is_refused_too(tmp_path, dump):
    np.save(tmp_path / "logits.npy", np.zeros((4, 3)))
    flip_bit(dump, member_data_offset(dump, "targets.npy") + 128, bit=1)
    assert_refused(run_cli(tmp_path / "logits.npy", "--targets", dump), "array 'targets'")


def test_a_zip64_stored_member_is_mapped_and_verified(tmp_path):
    path = tmp_path / "zip64.npz"
    logits = np.arange(6, dtype=np.float64).reshape(2, 3)
    with (
        zipfile.ZipFile(path, "w") as archive,
        archive.open("logits.npy", "w", force_zip64=True) as member,
    ):
        np.save(member, logits)
    loaded = load_inputs(str(path), None, ArrayKeys())
    loaded.verify()
    assert isinstance(loaded.logits, np.memmap)
    np.testing.assert_array_equal(loaded.logits, logits)
