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
import threading
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

    def round(
        self,
        values: np.ndarray,
        scratch: np.ndarray | None = None,
        *,
        finite: bool = False,
        in_range: bool = False,
        normal: bool = False,
        spare: np.ndarray | None = None,
    ) -> np.ndarray:
        """Round ``values`` (of the work dtype) to the nearest value of D, in place.

        ``scratch``, an array of D shaped like ``values``, saves an allocation where the
        cast is used. Arrays of float32 are rounded on their bits instead, by
        :func:`_round_to_float16` and :func:`_round_to_bfloat16`: bit for bit the casts'
        results, several times faster (float16: some 50 times on exp(x - max) rows).
        ``finite=True`` says the caller knows ``values`` holds no NaN, which saves the
        bfloat16 route its NaN check (a pass over the values). ``in_range=True`` says the
        caller reads no result whose magnitude is beyond D's largest finite value (so it
        does not care whether that is inf) and does not read the sign of a zero result;
        float16 then takes :func:`_round_to_float16_in_range`, five passes instead of eight.
        ``normal=True`` says every value is 0 or a normal float32 of magnitude below
        ``2**111`` (no NaN, no inf, no subnormal): bfloat16 then takes
        :func:`_round_to_bfloat16_normal`, three passes instead of five. ``spare``, a
        C-contiguous float32 array shaped like ``values`` whose contents the caller no
        longer needs, is its scratch: one buffer less in the cache than its own.
        """
        if not self.is_emulated:
            return values
        if values.dtype == _F32 and values.size > _SMALL:
            if self.storage == _F16:
                if in_range:
                    return _round_to_float16_in_range(values)
                return _round_to_float16(values)
            if self.storage == _BF16 and normal:
                return _round_to_bfloat16_normal(values, spare)
            # max is NaN if any value is
            if self.storage == _BF16 and (finite or not np.isnan(values.max())):
                return _round_to_bfloat16(values)
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
        then flagged ``out_of_range``, so the cast's overflow warning would only be noise; so
        is the "invalid" a signalling NaN raises when a cast quiets it (the row is
        ``nonfinite``).
        """
        values = np.asarray(values)
        if self.storage == _F16 and values.dtype in (_F16, _F32):
            # float16 -> float32 is exact and float32 -> float16 -> float32 is one rounding,
            # so both take the bit-level routes instead of NumPy's slow float16 casts.
            if out is None or not out.flags.c_contiguous:
                out = np.empty(values.shape, dtype=_F32)
            if values.dtype == _F16:
                return _float16_to_float32(values, out)
            np.copyto(out, values)
            return _round_to_float16(out)
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


# float16 and bfloat16 on the float32 bits. NumPy's float32 -> float16 cast is a scalar
# loop that raises the underflow flag on every float16-subnormal result, the common case
# for exp(x - max) (some 100 ns an element on softmax rows); float16 -> float32 is a scalar
# loop too, and ml_dtypes' bfloat16 round trip costs three times the bit version. These
# vectorised equivalents give bit for bit the casts' values (NaN stays NaN, its payload may
# differ; nothing reads payloads), which tests/test_dtypes.py checks on every value of D,
# every rounding boundary and 10 M random float32 bit patterns.

_F16 = np.dtype(np.float16)
_BF16 = np.dtype(ml_dtypes.bfloat16)
_SMALL = 64  # up to this many elements (per-row scalars), the cast is cheaper than 8 passes
_BLOCK = 1 << 18  # elements per pass: a whole 1 MiB piece of float32, in as few NumPy calls
_EXPONENT = np.uint32(0x7F800000)
_MIN_EXPONENT = np.uint32(113 << 23)  # 2**-14, float16's smallest normal binade
_MAX_EXPONENT = np.uint32(142 << 23)  # 2**15, float16's largest binade
_SCALE_UP = np.uint32(264 << 23)  # minus the clipped 2**e: the bits of 2**(10 - e)
_SCALE_DOWN = np.uint32(102 << 23)  # plus the clipped 2**e: the bits of 2**(102 + e)
_UNSCALE = np.float32(2.0**-112)
_FROM_HALF = np.float32(2.0**112)


class _Buffers(threading.local):
    """Per-thread bit buffers of ``_BLOCK`` elements, reused by every rounding."""

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self, "size", 0) < size:
            self.size = size
            self.arrays = (np.empty(size, np.uint32), np.empty(size, np.uint32))
        return self.arrays


_buffers = _Buffers()


def _round_to_float16(values: np.ndarray) -> np.ndarray:
    """Round float32 ``values`` in place to the nearest float16 value, as the cast does.

    With ``e`` the binade of ``x`` (``2**e <= |x| < 2**(e+1)``) clipped to [-14, 15], the
    float16 values near ``x`` are the multiples of ``q = 2**(e - 10)``: the spacing of that
    binade, and below ``2**-14`` of the subnormals (``2**-24``). So the result is
    ``rint(x / q) * q``, as three exact float32 steps:

    - ``x * 2**(10 - e)`` is exact: a power-of-two scaling whose result is at most ``2**11``
      (or ``|x| / 32`` when ``|x| >= 2**16``), never subnormal unless 0 is the answer;
    - ``np.rint`` rounds to the nearest integer, ties to even: an even multiple of ``q`` has
      an even last float16 significand bit (``2**(e+1) = 2**11 q`` included), so this is
      round-to-nearest-even, and rint keeps the sign of a result that rounds to zero;
    - ``* 2**(102 + e)`` gives ``r * 2**112`` for the rounded ``r``, exact while
      ``|r| <= 65504``; ``|r| >= 2**16`` (``x`` in [65520, 65536), which float16 rounds
      to inf, or ``|x| >= 2**16``) overflows to inf, exactly the float16 overflow rule.
      Then ``* 2**-112`` is exact (every nonzero ``r`` is at least ``2**-24``).

    The clipped ``2**e`` is the exponent field of ``x`` (0 for zeros and float32
    subnormals, all ones for inf and NaN, which the clip maps to ``2**15``; inf and NaN go
    through the multiplications unchanged). Every step is elementwise, so a block at a time.
    """
    # Overflow is float16's, by design (see above); signalling NaNs raise invalid.
    with np.errstate(over="ignore", invalid="ignore"):
        for x, scale_up, scale_down in _blocks(values):
            np.bitwise_and(x.view(np.uint32), _EXPONENT, out=scale_up)
            np.clip(scale_up, _MIN_EXPONENT, _MAX_EXPONENT, out=scale_up)
            np.add(scale_up, _SCALE_DOWN, out=scale_down)
            np.subtract(_SCALE_UP, scale_up, out=scale_up)
            np.multiply(x, scale_up.view(np.float32), out=x)
            np.rint(x, out=x)
            np.multiply(x, scale_down.view(np.float32), out=x)
            np.multiply(x, _UNSCALE, out=x)
    return values


_MAGIC = np.uint32((13 << 23) | 0x400000)  # added to the clipped 2**e: the bits of 1.5 * 2**(e+13)


def _round_to_float16_in_range(values: np.ndarray) -> np.ndarray:
    """As :func:`_round_to_float16` where the caller reads neither zero signs nor results
    beyond float16's range; in five passes instead of eight.

    With ``2**e`` the clipped binade of ``x`` as there, ``c = 1.5 * 2**(e + 13)`` has an ulp
    of ``q = 2**(e - 10)``, float16's spacing at ``x``, and ``|x| < 2**(e + 1)`` keeps
    ``x + c`` inside c's binade, so the float32 addition rounds ``x`` to a multiple of ``q``,
    to nearest, ties to even (``c / q = 1.5 * 2**23`` is even, so the sum's last bit is the
    multiple's); ``(x + c) - c`` is then exact. NaN and inf pass through unchanged. What it
    does not do: a result that rounds to 0 is +0 even for a negative ``x`` (the cast gives
    -0), and where float16 overflows (``|x| >= 65520``) the result is finite (at least
    65536) rather than inf. The fast path rounds with it only the naive code's
    exponentials of rows whose rounded ``exp(max)`` is finite: nonnegative and bounded by
    that, so neither difference can reach it.
    """
    with np.errstate(invalid="ignore"):  # signalling NaNs
        for x, magic, _ in _blocks(values):
            np.bitwise_and(x.view(np.uint32), _EXPONENT, out=magic)
            np.clip(magic, _MIN_EXPONENT, _MAX_EXPONENT, out=magic)
            np.add(magic, _MAGIC, out=magic)
            c = magic.view(np.float32)
            np.add(x, c, out=x)
            np.subtract(x, c, out=x)
    return values


def _blocks(values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``values`` in blocks of at most ``_BLOCK`` elements, each with two uint32 buffers."""
    if not values.flags.c_contiguous:
        return [(values, *(np.empty(values.shape, np.uint32) for _ in range(2)))]
    flat = values.reshape(-1)
    first, second = _buffers.get(_BLOCK)
    blocks = []
    for start in range(0, flat.size, _BLOCK):
        x = flat[start : start + _BLOCK]
        blocks.append((x, first[: x.size], second[: x.size]))
    return blocks


# Veltkamp's splitting constant for 8 of float32's 24 significant bits: 2**(24 - 8) + 1.
_SPLIT = np.float32(2**16 + 1)
# Below this magnitude x * _SPLIT cannot overflow (2**111 * 65537 < float32's largest).
BFLOAT16_NORMAL_MAX = 2.0**111


def _round_to_bfloat16_normal(values: np.ndarray, spare: np.ndarray | None = None) -> np.ndarray:
    """Round float32 ``values`` in place to the nearest bfloat16, as ml_dtypes does, where
    each is 0 or a normal float32 of magnitude in ``[2**-126, 2**111)``.

    Veltkamp's splitting: with ``p = x * (2**16 + 1)``, ``p - (p - x)`` is ``x`` rounded to
    its 8 leading significant bits, to nearest (Dekker 1971). That it also breaks ties to
    even, as the cast does, was checked on every normal float32 of that range (all 2**32
    bit patterns, offline; tests/test_dtypes.py keeps every bfloat16 boundary and 10 M
    random values). It fails on subnormals, whose bfloat16 spacing is fixed, and where
    ``p`` overflows: hence the precondition. Zeros keep their sign.
    """
    if spare is not None and values.flags.c_contiguous and spare.shape == values.shape:
        blocks = [(values, spare)]
    else:
        blocks = [(x, scratch.view(np.float32)) for x, scratch, _ in _blocks(values)]
    for x, p in blocks:
        np.multiply(x, _SPLIT, out=p)
        np.subtract(p, x, out=x)
        np.subtract(p, x, out=x)
    return values


def _round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """Round float32 ``values`` (no NaN) in place to the nearest bfloat16, as ml_dtypes does.

    bfloat16 is float32 without the low 16 bits, and for non-NaN values the bits, read as
    an integer, grow with the magnitude, float32 subnormals included. So rounding to nearest,
    ties to even, is integer rounding: add ``0x7FFF`` plus the lowest kept bit, then clear
    the low 16. A carry into the exponent is the step up to the next binade, up to inf
    exactly from the midpoint above bfloat16's largest value; inf stays inf; the sign bit is
    never reached (``0x7F800000 + 0x8000`` is below it), so zeros keep their sign. A NaN's
    bits could carry into inf or the sign, hence the caller's NaN check.
    """
    for x, bits_t, _ in _blocks(values):
        bits = x.view(np.uint32)
        np.right_shift(bits, np.uint32(16), out=bits_t)
        np.bitwise_and(bits_t, np.uint32(1), out=bits_t)
        np.add(bits_t, np.uint32(0x7FFF), out=bits_t)
        np.add(bits, bits_t, out=bits)
        np.bitwise_and(bits, np.uint32(0xFFFF0000), out=bits)
    return values


def _float16_to_float32(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """float16 ``values`` widened exactly into the float32 ``out`` (C-contiguous), as the cast.

    Sign-extending the 16 bits to 32 and shifting left by 13 puts the sign in bits 28 to 31
    and float16's exponent and significand at float32's (bits 23 to 27 and 13 to 22); masking
    bits 28 to 30 leaves a float32 of the same sign and bits whose value is ``2**-112``
    times the float16's, normal or subnormal alike, so ``* 2**112`` (exact) gives it. Only
    float16's inf and NaN (exponent all ones) come out wrong, as finite values of magnitude
    ``2**16`` or more; those few are converted by NumPy.
    """
    bits = out.view(np.uint32)
    np.copyto(out.view(np.int32), values.view(np.int16))
    np.left_shift(bits, np.uint32(13), out=bits)
    np.bitwise_and(bits, np.uint32(0x8FFFFFFF), out=bits)
    np.multiply(out, _FROM_HALF, out=out)
    # An inf or NaN is 0x7C00 to 0x7FFF (positive) or 0xFC00 to 0xFFFF (negative): two
    # reductions over the 16 bits, much cheaper than a pass over the output.
    half = values.view(np.uint16)
    if half.size and (half.view(np.int16).max() >= 0x7C00 or half.max() >= 0xFC00):
        special = (half & 0x7C00) == 0x7C00
        out[special] = values[special]
    return out
