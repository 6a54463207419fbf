"""Paths -> arrays. Every way a file can be wrong ends here as an InputError naming it.

One module per format (``npy``, ``npz``, ``text``); this module picks the format from the
file name and checks what every format must satisfy: real numeric logits with at least one
sample and one class, and integer targets that fit them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

from softmax_cli.errors import InputError

STDIN = "-"
LOGITS_FORMATS = (".npy", ".npz", ".csv")
TARGETS_FORMATS = (".npy", ".npz", ".csv", ".txt")


@dataclass(frozen=True, eq=False)
class Loaded:
    """Arrays read from the inputs, with the names to show for them."""

    logits: np.ndarray
    targets: np.ndarray | None
    logits_name: str
    targets_name: str | None
    from_text: bool  # parsed from CSV: ``--dtype auto`` computes these in float32


@dataclass(frozen=True)
class ArrayKeys:
    """Which arrays to read from an archive, and which CSV column holds targets."""

    logits: str | None = None  # None: "logits", or the archive's lone array
    targets: str | None = None  # None: "targets" if present
    target_column: str | None = None  # None: "target" if the header has it


def load_inputs(logits_path: str, targets_path: str | None, keys: ArrayKeys) -> Loaded:
    """Read the logits (and targets: from ``targets_path``, or carried by the logits file)."""
    # Imported here so that each format's module loads only when that format is read.
    from softmax_cli.load import npy, npz, text

    suffix = _suffix(logits_path, LOGITS_FORMATS, "logits")
    if suffix == ".npy":
        logits, carried = npy.read_array(logits_path), None
    elif suffix == ".npz":
        logits, carried = npz.read_logits(logits_path, keys)
    else:
        logits, carried = text.read_logits(logits_path, keys.target_column)

    targets, targets_name = carried, (logits_path if carried is not None else None)
    if targets_path is not None:
        targets, targets_name = read_targets(targets_path, keys), targets_path
    return Loaded(logits, targets, _display(logits_path), targets_name, suffix == ".csv")


def read_targets(path: str, keys: ArrayKeys) -> np.ndarray:
    from softmax_cli.load import npy, npz, text

    suffix = _suffix(path, TARGETS_FORMATS, "targets")
    if suffix == ".npy":
        return npy.read_array(path)
    if suffix == ".npz":
        return npz.read_targets(path, keys)
    return text.read_targets(path)


def _suffix(path: str, allowed: tuple[str, ...], role: str) -> str:
    if path == STDIN:
        return ".csv"
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise InputError(
            path,
            f"unknown {role} format {suffix or '(no extension)'!r}",
            f"{role} are read from {', '.join(allowed)} files",
        )
    return suffix


def _display(path: str) -> str:
    return "<stdin>" if path == STDIN else path


_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def check_logits(logits: np.ndarray, name: str, class_axis: int) -> None:
    """Real numbers, a class axis that exists, at least one sample and one class."""
    dtype = logits.dtype
    if dtype == _BFLOAT16:
        pass
    elif dtype.kind == "b":
        raise InputError(name, "logits are booleans, not numbers")
    elif dtype.kind == "c":
        raise InputError(name, f"logits are complex ({dtype}); softmax needs real numbers")
    elif dtype.kind not in "iuf":
        raise InputError(name, f"logits have dtype {dtype}, not a numeric dtype")
    if logits.ndim == 0:
        raise InputError(name, "logits are a single number, not an array of classes")
    if not -logits.ndim <= class_axis < logits.ndim:
        raise InputError(
            name,
            f"--class-axis {class_axis} is out of range for an array of shape {logits.shape}",
            f"use an axis from {-logits.ndim} to {logits.ndim - 1}",
        )
    if logits.shape[class_axis] == 0:
        raise InputError(name, f"logits have zero classes (shape {logits.shape})")
    if logits.size == 0:
        raise InputError(name, f"logits have zero samples (shape {logits.shape})")


def check_targets(
    targets: np.ndarray, name: str, samples: int, classes: int, ignore_index: int
) -> np.ndarray:
    """Targets as a flat int64 array, one per sample, each a class index or ``ignore_index``."""
    targets = np.asarray(targets)
    if targets.dtype.kind == "f":
        if not np.isfinite(targets).all():
            bad = int(np.flatnonzero(~np.isfinite(targets.ravel()))[0])
            raise InputError(name, f"target {bad} is {targets.ravel()[bad]}, not a class index")
        if (targets != np.round(targets)).any():
            bad = int(np.flatnonzero((targets != np.round(targets)).ravel())[0])
            raise InputError(
                name, f"target {bad} is {targets.ravel()[bad]}, not an integer class index"
            )
    elif targets.dtype.kind not in "iu":
        raise InputError(name, f"targets have dtype {targets.dtype}, not integer class indices")
    if targets.size != samples:
        raise InputError(
            name,
            f"has {targets.size} targets (shape {targets.shape}) "
            f"but the logits have {samples} samples",
        )
    flat = targets.reshape(-1).astype(np.int64)
    wrong = ((flat < 0) | (flat >= classes)) & (flat != ignore_index)
    if wrong.any():
        bad = int(np.flatnonzero(wrong)[0])
        raise InputError(
            name,
            f"target {bad} is {flat[bad]}, outside the {classes} classes (0 to {classes - 1})",
            f"mark samples without a target with the ignore index ({ignore_index})",
        )
    return flat
