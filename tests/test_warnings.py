"""No NumPy warning ever reaches standard error: every one an input can trigger is scoped.

Signalling NaNs (which a hardware cast quiets with an "invalid" flag), values beyond the
compute dtype, huge float targets and integer logits are checked in-process with warnings as
errors, and through the CLI under ``python -W error::RuntimeWarning``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from softmax_cli import InputError, check

DTYPES = ("auto", "float64", "float32", "float16", "bfloat16")


def _signalling(bits: int, unsigned, dtype) -> np.ndarray:
    row = np.zeros((2, 3), dtype=dtype)
    raw = row.view(unsigned)
    raw[0, 1] = bits  # a signalling NaN: quiet bit clear, payload 1
    return row


SIGNALLING_NANS = {
    "float64": _signalling(0x7FF0000000000001, np.uint64, np.float64),
    "float32": _signalling(0x7F800001, np.uint32, np.float32),
    "float16": _signalling(0x7C01, np.uint16, np.float16),
    "bfloat16": _signalling(0x7F81, np.uint16, ml_dtypes.bfloat16),
}
UNRULY = {
    **{f"snan-{k}": v for k, v in SIGNALLING_NANS.items()},
    "beyond-float16": np.array([[1e300, -1e300, 0.0], [7e4, 1.0, 2.0]]),
    "int64-extremes": np.array([[2**63 - 1, -(2**63), 0], [1, 2, 3]], dtype=np.int64),
    "uint64-max": np.array([[2**64 - 1, 0, 1], [1, 2, 3]], dtype=np.uint64),
    "nan-inf": np.array([[np.nan, np.inf, -np.inf], [-np.inf, -np.inf, -np.inf]]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", UNRULY)
def test_checking_unruly_logits_warns_nothing(name, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = check(UNRULY[name], np.array([1, 0]), dtype=dtype)
    assert report.summary.samples == 2


@pytest.mark.parametrize(
    "targets",
    [
        np.array([1e300, 0.0]),
        np.array([-1e300, 0.0]),
        np.array([np.nan, 0.0]),
        np.array([np.inf, 0.0]),
        np.array([2**64 - 1, 0], dtype=np.uint64),
        np.array([1.5, 0.0], dtype=np.float16),
        SIGNALLING_NANS["float32"][0, :2],
    ],
    ids=["1e300", "-1e300", "nan", "inf", "uint64-max", "fraction", "snan"],
)
def test_huge_or_broken_float_targets_are_an_input_error_not_a_warning(targets):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError):
            check(np.zeros((2, 3)), targets)


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", ["snan-float64", "snan-float32", "snan-bfloat16", "uint64-max"])
def test_the_cli_under_warnings_as_errors_exits_0_or_1_without_a_warning(tmp_path, name, dtype):
    logits = UNRULY[name]
    if logits.dtype == ml_dtypes.bfloat16:  # .npy has no bfloat16: save it as safetensors
        from safetensors.numpy import save_file

        path = tmp_path / "logits.safetensors"
        save_file({"logits": logits}, str(path))
    else:
        path = tmp_path / "logits.npy"
        np.save(path, logits)
    targets = tmp_path / "targets.npy"
    np.save(targets, np.array([1, 0]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "softmax_cli", "--no-config",
         str(path), "--targets", str(targets), "--dtype", dtype],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr


def test_the_cli_refuses_a_huge_float_target_under_warnings_as_errors(tmp_path):
    np.save(tmp_path / "logits.npy", np.zeros((2, 3), dtype=np.float32))
    np.save(tmp_path / "targets.npy", np.array([1e300, 0.0]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "softmax_cli", "--no-config",
         "logits.npy", "--targets", "targets.npy"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "targets.npy" in result.stderr and "Warning" not in result.stderr


def test_an_npy_header_with_an_invalid_escape_is_refused_without_a_warning(tmp_path):
    """NumPy reads the header with ast.literal_eval, which warns of an invalid escape (a
    SyntaxWarning, shown by default from Python 3.12) before the header is refused: with
    every warning shown, none is."""
    header = b"{'descr': '<f4\\X', 'fortran_order': False, 'shape': (2, 3), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    (tmp_path / "escape.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(24)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-W", "always", "-m", "softmax_cli", "--no-config", "escape.npy"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "escape.npy" in result.stderr and "corrupt .npy header" in result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
