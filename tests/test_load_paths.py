"""What the path itself is: a missing file, a directory, an unreadable file, a FIFO or a file
of an unknown format is refused before anything is read, naming the path."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import BAD, LOGITS, assert_error_message, deny, invoke


def test_missing_file_is_refused():
    result = invoke(BAD / "does_not_exist.npy")
    assert_error_message(result, "does_not_exist.npy: no such file")


def test_missing_file_with_unknown_extension_says_it_is_missing():
    assert_error_message(invoke(BAD / "does_not_exist.h5"), "no such file")


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "dump.npy"
    folder.mkdir()
    assert_error_message(invoke(folder), "dump.npy: is a directory")


@pytest.mark.parametrize("name", ["dump.npy", "dump.npz", "dump.csv"])
def test_unreadable_file_is_refused(name, tmp_path, monkeypatch):
    path = tmp_path / name
    shutil.copy(LOGITS, path)
    # Root reads anything, so chmod alone proves nothing here: make the check see a 000 file.
    deny(monkeypatch, path)
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
