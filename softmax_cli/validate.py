"""Array validation: what every input must satisfy, however it was read.

Real numeric logits with a class axis that exists, at least one sample and one class; and
integer targets, one per sample, each a class index or the ignore index.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from softmax_cli.errors import InputError, OptionError

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
        raise OptionError(
            "class_axis",
            f"{{option}} {class_axis} is out of range for an array of shape {logits.shape}",
            source=name,
            hint=f"use an axis from {-logits.ndim} to {logits.ndim - 1}",
        )
    if logits.shape[class_axis] == 0:
        raise InputError(name, f"logits have zero classes (shape {logits.shape})")
    if logits.size == 0:
        raise InputError(name, f"logits have zero samples (shape {logits.shape})")


class ClassAxisMismatch(OptionError, InputError):
    """Targets that fit the logits' samples with another class axis than the one given.

    An InputError about the file (what ``check()`` callers catch for bad arrays), worded as
    an OptionError so the library says ``class_axis`` and the CLI ``--class-axis``.
    """

    def __init__(self, source: str, problem: str, hint: str | None = None) -> None:
        # Neither base's __init__: each would hand the other its own arguments via super().
        self.option, self.source, self.problem, self.hint = "class_axis", source, problem, hint
        Exception.__init__(self, self.worded(self.option))

    def __str__(self) -> str:
        return self.worded(self.option)


def check_targets(
    targets: np.ndarray,
    name: str,
    samples: int,
    classes: int,
    ignore_index: int,
    *,
    logits_shape: tuple[int, ...] | None = None,
    class_axis: int | None = None,
) -> np.ndarray:
    """Targets as a flat int64 array, one per sample, each a class index or ``ignore_index``.

    Every check runs on the values as given, before the cast to int64, so a float 1e300 or
    a uint64 that would wrap around to the ignore index is reported, not silently mangled.
    Given ``logits_shape`` and ``class_axis``, N-D targets that would fit the logits with
    the class axis at 1 (PyTorch's and ONNX's layout) say so.
    """
    mapped = isinstance(targets, np.memmap)
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
        _suggest_class_axis(targets, name, logits_shape, class_axis)
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
    if mapped and flat.dtype == np.int64 and not flat.flags.writeable:
        return flat  # a read-only mapped file: its pages are the file's, not a copy's
    return flat.astype(np.int64)


def _suggest_class_axis(
    targets: np.ndarray, name: str, logits_shape: tuple[int, ...] | None, class_axis: int | None
) -> None:
    """ClassAxisMismatch if N-D ``targets`` have the logits' sample shape for class axis 1."""
    if logits_shape is None or class_axis is None or targets.ndim < 2 or len(logits_shape) < 3:
        return
    if class_axis % len(logits_shape) == 1:
        return
    with_axis_1 = logits_shape[:1] + logits_shape[2:]
    if targets.shape != with_axis_1:
        return
    given = (
        logits_shape[: class_axis % len(logits_shape)]
        + logits_shape[class_axis % len(logits_shape) + 1 :]
    )
    raise ClassAxisMismatch(
        name,
        f"targets have shape {targets.shape}: the logits' sample shape with {{option}} 1, "
        f"not with {{option}} {class_axis} (sample shape {given})",
        "PyTorch and ONNX lay logits out as (N, C, d1, ...), the class axis at 1",
    )
