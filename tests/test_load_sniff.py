"""A file in another format than its name says is told what it is and what to name it: the
first bytes are read, never trusted to the extension (issue 10 point 5)."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import LOGITS, assert_error_message, invoke


def _safetensors_bytes(_: Path | None = None) -> bytes:
    """A safetensors file whose header is 0x80 + 256k bytes long: its first byte is 0x80,
    as a pickle's is, so only the '{' after the length tells them apart."""
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
