"""The one table of compute dtypes: what each rounds to, computes in and accumulates in.

float16 and bfloat16 have no fast native arithmetic on CPUs, and neither does PyTorch use
any: it widens each operand to float32, computes, and rounds the result back. We do the
same. Because float32 carries at least 2p + 2 bits for a p-bit format (24 >= 2 * 11 + 2),
one float32 operation followed by one rounding gives the correctly rounded half-precision
result of + - * /, so this is exact emulation, not an approximation. Sums accumulate in
float32 and are rounded once at the end, as ``torch.sum`` does for half-precision tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class ComputeDtype:
    """A precision D: every intermediate of the kernels is a value of ``storage``."""

    name: str
    storage: np.dtype
    work: np.dtype
    accumulate: np.dtype

    @property
    def is_emulated(self) -> bool:
        """True when arithmetic runs in a wider ``work`` dtype and is rounded to ``storage``."""
        return self.storage != self.work

    def round(self, values: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
        """Round ``values`` (of the work dtype) to the nearest value of D, in place.

        ``scratch``, an array of D shaped like ``values``, saves an allocation in hot loops.
        """
        if self.is_emulated:
            if scratch is None:
                values[...] = values.astype(self.storage)
            else:
                np.copyto(scratch, values, casting="unsafe")
                np.copyto(values, scratch)
        return values

    def to_work(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``values`` in the work dtype, holding only values of D (rounded once).

        Without ``out``: a fresh copy. With ``out`` (a work-dtype buffer shaped like
        ``values``): ``values`` itself when it needs no conversion, else ``out`` filled.
        A value beyond D's range becomes +-inf, as ``tensor.to(D)`` makes it; the row is
        then flagged ``nonfinite``, so the cast's overflow warning would only be noise; so is
        the "invalid" a signalling NaN raises when a cast quiets it (the row is ``nonfinite``).
        """
        values = np.asarray(values)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.is_emulated and values.dtype != self.storage:
                values = values.astype(self.storage)
            if out is None:
                return values.astype(self.work)  # astype copies
            if values.dtype == self.work and values.flags.c_contiguous:
                return values
            out[...] = values
        return out

    @cached_property
    def finfo(self) -> ml_dtypes.finfo:
        return ml_dtypes.finfo(self.storage)

    @cached_property
    def log_max(self) -> float:
        """``ln(max_finite(D))``: 709.78 float64, 88.72 float32 and bfloat16, 11.09 float16.

        The naive code works while a row's ``logsumexp`` stays within ``+-log_max``: above,
        its sum overflows; below, ``1/s`` (and with it the gradient) does.
        """
        return math.log(float(self.finfo.max))

    def narrows(self, source: np.dtype) -> bool:
        """Can a finite value of ``source`` be beyond D's range (and become +-inf in D)?"""
        source = np.dtype(source)
        if source.kind in "iu":
            return float(np.iinfo(source).max) > float(self.finfo.max)
        return float(ml_dtypes.finfo(source).max) > float(self.finfo.max)

    @cached_property
    def exp_overflow_threshold(self) -> float:
        """The largest x of D whose exp is finite in D (e.g. 88.72 for float32).

        Found by bisection over the representable values with the very ufunc the kernels
        use, so the figure is what this machine's ``np.exp`` does, not a textbook constant.
        """
        # exp(x) overflows near log(max); start the bracket at twice that.
        lo, hi = 0.0, 2 * math.log(float(ml_dtypes.finfo(self.storage).max))
        while True:
            mid = np.array([(lo + hi) / 2], dtype=self.storage).astype(self.work)
            if mid[0] in (lo, hi):
                break
            with np.errstate(over="ignore"):  # overflow is what we are looking for
                out = self.round(np.exp(mid))
            if np.isfinite(out[0]):
                lo = float(mid[0])
            else:
                hi = float(mid[0])
        return lo


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

COMPUTE_DTYPES: dict[str, ComputeDtype] = {
    "float64": ComputeDtype("float64", _F64, _F64, _F64),
    "float32": ComputeDtype("float32", _F32, _F32, _F32),
    "float16": ComputeDtype("float16", np.dtype(np.float16), _F32, _F32),
    "bfloat16": ComputeDtype("bfloat16", np.dtype(ml_dtypes.bfloat16), _F32, _F32),
}


def resolve_compute_dtype(
    requested: str, input_dtype: np.dtype, *, text: bool = False
) -> ComputeDtype:
    """Map ``dtype`` to a ComputeDtype; ``auto`` keeps a float input's own precision.

    Under ``auto``, integer input computes in float32, and so does text (CSV): its values
    are parsed exactly, as float64, but the digits a person or a script wrote down carry no
    precision to keep. float128 inputs, which no framework trains in, compute in float64.
    """
    if requested != "auto":
        return COMPUTE_DTYPES[str(requested)]
    input_dtype = np.dtype(input_dtype)
    if text:
        return COMPUTE_DTYPES["float32"]
    if input_dtype.name in COMPUTE_DTYPES:
        return COMPUTE_DTYPES[input_dtype.name]
    if input_dtype.kind == "f" and input_dtype.itemsize > 8:
        return COMPUTE_DTYPES["float64"]
    return COMPUTE_DTYPES["float32"]
