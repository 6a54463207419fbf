"""Paths -> arrays. Every way a file can be wrong ends here as an InputError naming it.

One module per format (``npy``, ``npz``, ``text``); this module picks the format from the
file name and checks what every format must satisfy: real numeric logits with at least one
sample and one class, and integer targets that fit them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import ml_dtypes
import numpy as np

from softmax_cli.errors import InputError, UsageError

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
    target_column: str | None = None  # the CSV column that held the targets, as written


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

    if logits_path == STDIN and targets_path == STDIN:
        raise UsageError("logits and --targets cannot both be read from standard input ('-')")
    suffix = _suffix(logits_path, LOGITS_FORMATS, "logits")
    column = None
    if suffix == ".npy":
        logits, carried = npy.read_array(logits_path), None
    elif suffix == ".npz":
        logits, carried = npz.read_logits(logits_path, keys)
    else:
        logits, carried, column = text.read_logits(logits_path, keys.target_column)

    targets, targets_name = carried, (logits_path if carried is not None else None)
    if targets_path is not None:
        targets, targets_name, column = read_targets(targets_path, keys), targets_path, None
    return Loaded(logits, targets, _display(logits_path), targets_name, suffix == ".csv", column)


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
    # A missing or unreadable file is the more useful thing to hear about than its name.
    inspect_path(path, binary=False)
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


def inspect_path(path: str, *, binary: bool) -> os.stat_result:
    """The file's status, or an InputError saying why it cannot be read.

    ``binary`` formats are seeked and memory-mapped, so they must be regular files; text may
    also come from a pipe or a device. Nothing here opens the file, so a FIFO never blocks.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except PermissionError:
        raise InputError(path, "permission denied (cannot look up the file)") from None
    except (OSError, ValueError) as exc:  # ELOOP, ENAMETOOLONG, an embedded NUL byte, ...
        raise InputError(path, f"cannot be opened: {os_reason(exc)}") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputError(path, "is a directory, not a file")
    if binary and not stat.S_ISREG(status.st_mode):
        raise InputError(path, "is not a regular file (a pipe or a device cannot be memory-mapped)")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied (the file is not readable)")
    return status


def open_binary(path: str, kind: str) -> BinaryIO:
    """``path`` opened read-only for reading bytes, after :func:`inspect_path`."""
    status = inspect_path(path, binary=True)
    if status.st_size == 0:
        raise InputError(path, f"is empty (0 bytes), not a {kind} file")
    try:
        return open(path, "rb")  # the caller closes it
    except OSError as exc:
        raise InputError(path, f"cannot be opened: {os_reason(exc)}") from None


def os_reason(exc: BaseException) -> str:
    """The operating system's reason without the file name we already print."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def looks_like(head: bytes) -> str | None:
    """What a file that is not in the format its name says seems to be, from its first bytes."""
    if head.startswith(NPY_MAGIC):
        return "it looks like a .npy file (NumPy binary)"
    if head.startswith((ZIP_MAGIC, b"PK\x05\x06")):
        return "it looks like a ZIP archive, as an .npz file is"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] <= 5:
        return "it looks like a Python pickle, which softmax-check never loads"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")):
        return "it looks like a compressed file (gzip, bzip2 or xz): decompress it first"
    if len(head) >= 8 and int.from_bytes(head[:8], "little") < (1 << 24) and head[8:9] == b"{":
        return "it looks like a .safetensors file"
    return None


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
    elif dtype.kind in "US":
        raise InputError(
            name,
            f"logits are strings ({dtype}), not numbers",
            "convert them to floats before saving (e.g. array.astype(np.float32))",
        )
    elif dtype.kind not in "iuf":
        hint = None
        if dtype.kind == "V" and dtype.itemsize == 2 and dtype.names is None:
            hint = "np.save stores bfloat16 as 2-byte void; save logits.astype(np.float32)"
        raise InputError(name, f"logits have dtype {dtype}, not a numeric dtype", hint)
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


_INT64 = np.iinfo(np.int64)


def check_targets(
    targets: np.ndarray, name: str, samples: int, classes: int, ignore_index: int
) -> np.ndarray:
    """Targets as a flat int64 array, one per sample, each a class index or ``ignore_index``.

    Every check runs on the values as given, before the cast to int64, so a float 1e300 or
    a uint64 that would wrap around to the ignore index is reported, not silently mangled.
    """
    if not _INT64.min <= ignore_index <= _INT64.max:
        raise UsageError(f"--ignore-index {ignore_index} does not fit in a 64-bit integer")
    targets = np.asarray(targets)
    if targets.dtype.kind == "f" and targets.size:
        # Values are checked in the targets' own dtype; only the first offender is named.
        finite = np.isfinite(targets).reshape(-1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise InputError(name, f"target {bad} is {targets.reshape(-1)[bad]}, not a class index")
        fractional = (targets != np.round(targets)).reshape(-1)
        if fractional.any():
            bad = int(np.flatnonzero(fractional)[0])
            raise InputError(
                name, f"target {bad} is {targets.reshape(-1)[bad]}, not an integer class index"
            )
    elif targets.dtype.kind == "b":
        raise InputError(name, "targets are booleans, not integer class indices")
    elif targets.dtype.kind not in "iuf":
        raise InputError(name, f"targets have dtype {targets.dtype}, not integer class indices")
    if targets.size != samples:
        raise InputError(
            name,
            f"has {targets.size} targets (shape {targets.shape}) "
            f"but the logits have {samples} samples",
            "give one class index per sample, in the logits' sample order",
        )
    flat = targets.reshape(-1)
    wrong = ((flat < 0) | (flat >= classes)) & (flat != ignore_index)
    if wrong.any():
        bad = int(np.flatnonzero(wrong)[0])
        value = flat[bad]
        shown = int(value) if flat.dtype.kind in "iu" else f"{float(value):g}"
        what = "negative" if value < 0 else f"outside the {classes} classes (0 to {classes - 1})"
        raise InputError(
            name,
            f"target {bad} is {shown}, {what}",
            f"mark samples without a target with the ignore index ({ignore_index}), "
            "or pass the one your data uses with --ignore-index",
        )
    return flat.astype(np.int64)
