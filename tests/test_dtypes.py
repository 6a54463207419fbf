"""float16 and bfloat16 rounding give exactly what NumPy's, ml_dtypes' and PyTorch's casts give.

``ComputeDtype.round`` and ``to_work`` compute on the float32 bits instead of casting; the
reference here is the cast itself, ``values.astype(D).astype(float32)`` (ml_dtypes for
bfloat16).
Equal means equal bits: same values, same signs of zero; NaN must stay NaN (its payload is
free). The inputs are every value of D, every rounding boundary between two of them and the
float32 values either side of it, the extremes, and 10 M random float32 bit patterns.
Set SOFTMAX_CHECK_EXHAUSTIVE=1 to check all 2**32 float32 bit patterns (minutes).
"""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import pytest

from softmax_cli.dtypes import BFLOAT16_NORMAL_MAX, COMPUTE_DTYPES

FLOAT16 = COMPUTE_DTYPES["float16"]
BFLOAT16 = COMPUTE_DTYPES["bfloat16"]


def cast(values: np.ndarray, storage: type = np.float16) -> np.ndarray:
    """The reference: NumPy's (ml_dtypes') float32 -> D -> float32 round trip."""
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(storage).astype(np.float32)


def assert_same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal float32 bits wherever the reference is not NaN, and NaN exactly where it is."""
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    got_bits, expected_bits = got.view(np.uint32)[~nan], expected.view(np.uint32)[~nan]
    wrong = np.flatnonzero(got_bits != expected_bits)
    assert wrong.size == 0, (
        f"{wrong.size} values differ, e.g. bits {expected_bits[wrong[:5]]} "
        f"rounded to {got_bits[wrong[:5]]}"
    )


def rounded(values: np.ndarray) -> np.ndarray:
    """FLOAT16.round on a copy (it rounds in place)."""
    return FLOAT16.round(values.copy())


@pytest.fixture(scope="module")
def every_float16() -> np.ndarray:
    """All 65,536 float16 bit patterns, NaNs and infinities included."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)


@pytest.fixture(scope="module")
def boundaries(every_float16: np.ndarray) -> np.ndarray:
    """Every float16 value, every midpoint between neighbours (the ties) and the float32
    values one ulp either side of each, plus the extremes of float32."""
    values = every_float16.astype(np.float32)
    finite = np.sort(values[np.isfinite(values)].astype(np.float64))
    # A midpoint has 12 significant bits at most: exact in float32. The midpoint beyond
    # 65504 is 65520, where float16 starts to round to inf.
    midpoints = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)
    midpoints = np.concatenate([midpoints, [65520.0, -65520.0]]).astype(np.float32)
    bits = np.concatenate([values, midpoints]).view(np.uint32)
    around = np.concatenate([bits, bits - 1, bits + 1]).view(np.float32)
    f32 = np.finfo(np.float32)
    extremes = np.array(
        [0.0, -0.0, f32.max, -f32.max, f32.tiny, -f32.tiny, f32.smallest_subnormal,
         -f32.smallest_subnormal, 1e-30, -1e-30, 1e30, -1e30, np.inf, -np.inf, np.nan],
        dtype=np.float32,
    )  # fmt: skip
    nans = np.array([0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0xFFFFFFFF, 0xFF800001], np.uint32)
    return np.concatenate([around, extremes, nans.view(np.float32)])


def test_round_matches_the_cast_on_every_boundary(boundaries: np.ndarray) -> None:
    assert_same_bits(rounded(boundaries), cast(boundaries))


def test_round_matches_torch_on_every_boundary(boundaries: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    expected = torch.from_numpy(boundaries).to(torch.float16).to(torch.float32).numpy()
    assert_same_bits(rounded(boundaries), expected)


def test_round_matches_the_cast_on_random_bit_patterns() -> None:
    bits = np.random.default_rng(16).integers(0, 1 << 32, size=10_000_000, dtype=np.uint32)
    values = bits.view(np.float32)
    assert_same_bits(rounded(values), cast(values))


def test_round_matches_the_cast_on_softmax_exponentials(rng: np.random.Generator) -> None:
    """exp(x - max) of wide rows: mostly float16 subnormals, the case the cast is slow on."""
    x = rng.normal(0, 3, size=(8, 40_000)).astype(np.float32)
    values = np.exp(x - x.max(axis=1, keepdims=True))
    assert_same_bits(rounded(values), cast(values))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (65519.996, 65504.0),  # just below the boundary: the largest float16
        (65520.0, np.inf),  # the tie beyond 65504 rounds to even, which is inf
        (-65520.0, -np.inf),
        (2.0**-25, 0.0),  # half the smallest subnormal: a tie, to even (zero)
        (-(2.0**-25), -0.0),  # ... keeping the sign
        (1.5 * 2.0**-24, 2.0**-23),  # a tie between subnormals 1 and 2: to even, 2
        (2.0**-14 - 2.0**-26, 2.0**-14),  # rounds up into the normal range
        (1.0 + 2.0**-11, 1.0),  # a tie at 1: to even, down
        (1.0 + 3 * 2.0**-11, 1.0 + 2.0**-9),  # a tie at 1 + 2**-10: to even, up
    ],
)
def test_round_follows_ieee_round_to_nearest_even(value: float, expected: float) -> None:
    # 100 copies: arrays of a few elements are rounded by the cast itself.
    got = rounded(np.full(100, value, dtype=np.float32))
    want = np.full(100, expected, dtype=np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_round_works_in_place_on_views_of_any_layout(rng: np.random.Generator) -> None:
    """A strided view and a C array larger than one internal block round alike, in place."""
    values = rng.normal(0, 1000, size=(300, 700)).astype(np.float32)
    expected = cast(values)
    view = values.T.copy().T  # Fortran order: rounded in one go, not block by block
    assert FLOAT16.round(view) is view
    assert_same_bits(view, expected)
    column = values.copy()[:, 3]  # a non-contiguous column
    FLOAT16.round(column)
    assert_same_bits(column, expected[:, 3])
    assert FLOAT16.round(values) is values
    assert_same_bits(values, expected)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 0), (65,), (65537,)])
def test_round_handles_every_size(shape: tuple[int, ...]) -> None:
    values = np.full(shape, 1.0 + 2.0**-12 + 2.0**-20, dtype=np.float32)
    assert_same_bits(rounded(values), cast(values))


def test_to_work_widens_every_float16_exactly(every_float16: np.ndarray) -> None:
    expected = every_float16.astype(np.float32)
    assert_same_bits(FLOAT16.to_work(every_float16), expected)
    grid = every_float16.reshape(256, 256)
    out = np.empty((256, 256), dtype=np.float32)
    # A transposed (strided) input into a buffer, as the fast path's pieces go.
    got = FLOAT16.to_work(grid.T, out=out)
    assert got is out
    assert_same_bits(got, expected.reshape(256, 256).T)


def test_to_work_rounds_float32_input_once(boundaries: np.ndarray) -> None:
    assert_same_bits(FLOAT16.to_work(boundaries), cast(boundaries))
    out = np.empty_like(boundaries)
    assert_same_bits(FLOAT16.to_work(boundaries, out=out), cast(boundaries))


def test_to_work_rounds_float64_input_once_not_twice() -> None:
    """float64 -> float16 directly: via float32 the value below would round twice, to 1."""
    value = 1.0 + 2.0**-11 + 2.0**-40  # just above a tie: float16 rounds up
    got = FLOAT16.to_work(np.array([value]))
    assert got[0] == np.float32(np.float16(value)) == 1.0 + 2.0**-10


@pytest.mark.skipif(
    os.environ.get("SOFTMAX_CHECK_EXHAUSTIVE") != "1", reason="all 2**32 floats: minutes"
)
def test_round_matches_the_cast_on_every_float32() -> None:
    step = 1 << 24
    for start in range(0, 1 << 32, step):
        values = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32)
        assert_same_bits(rounded(values.view(np.float32)), cast(values.view(np.float32)))


def in_range(values: np.ndarray) -> np.ndarray:
    """FLOAT16.round(in_range=True) on a copy, with the zeros it may sign differently as +0,
    and everything float16 rounds to inf left out (the caller promises to read neither)."""
    kept = values[~(np.abs(values) >= 65520)]  # NaN stays
    got = FLOAT16.round(kept.copy(), in_range=True)
    return kept, np.where(got == 0, np.float32(0), got)


def test_in_range_round_matches_the_cast_on_every_boundary(boundaries: np.ndarray) -> None:
    kept, got = in_range(boundaries)
    expected = cast(kept)
    assert_same_bits(got, np.where(expected == 0, np.float32(0), expected))


def test_in_range_round_matches_the_cast_on_random_bit_patterns() -> None:
    values = np.random.default_rng(7).integers(0, 1 << 32, 10_000_000, dtype=np.uint32)
    kept, got = in_range(values.view(np.float32))
    expected = cast(kept)
    assert_same_bits(got, np.where(expected == 0, np.float32(0), expected))


def test_in_range_round_is_what_it_says_beyond_the_range() -> None:
    # The two liberties it takes, and no other: +0 for a negative tiny, finite at 65520.
    got = FLOAT16.round(np.array([-1e-9, 65520.0, np.inf, -np.inf] * 32, np.float32), in_range=True)
    assert got[0] == 0 and not np.signbit(got[0])
    assert got[1] == 65536.0
    assert got[2] == np.inf and got[3] == -np.inf


def every_value_and_boundary(storage: type) -> np.ndarray:
    """As ``boundaries``, for any 16-bit D."""
    values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(storage)
    values = values.astype(np.float32)
    finite = np.sort(values[np.isfinite(values)].astype(np.float64))
    midpoints = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)
    bits = np.concatenate([values, midpoints]).view(np.uint32)
    return np.concatenate([bits, bits - 1, bits + 1]).view(np.float32)


@pytest.fixture(scope="module")
def bfloat16_boundaries() -> np.ndarray:
    values = every_value_and_boundary(ml_dtypes.bfloat16)
    f32 = np.finfo(np.float32)
    top = np.array([f32.max, -f32.max, 0.0, -0.0, np.inf, -np.inf], dtype=np.float32)
    return np.concatenate([values[~np.isnan(values)], top])


def test_bfloat16_round_matches_ml_dtypes_on_every_boundary(
    bfloat16_boundaries: np.ndarray,
) -> None:
    got = BFLOAT16.round(bfloat16_boundaries.copy())
    assert_same_bits(got, cast(bfloat16_boundaries, ml_dtypes.bfloat16))


def test_bfloat16_round_matches_torch_on_every_boundary(bfloat16_boundaries: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.from_numpy(bfloat16_boundaries)
    expected = tensor.to(torch.bfloat16).to(torch.float32).numpy()
    assert_same_bits(BFLOAT16.round(bfloat16_boundaries.copy()), expected)


def test_bfloat16_round_matches_ml_dtypes_on_random_bit_patterns() -> None:
    """With and without NaNs among them (a NaN sends the array through the cast)."""
    bits = np.random.default_rng(17).integers(0, 1 << 32, size=10_000_000, dtype=np.uint32)
    values = bits.view(np.float32)
    with np.errstate(invalid="ignore"):  # the cast's warning for signalling NaNs
        got = BFLOAT16.round(values.copy())
    assert_same_bits(got, cast(values, ml_dtypes.bfloat16))
    finite = values[~np.isnan(values)]
    assert_same_bits(BFLOAT16.round(finite.copy()), cast(finite, ml_dtypes.bfloat16))


def test_bfloat16_normal_round_matches_ml_dtypes_where_it_applies(
    bfloat16_boundaries: np.ndarray,
) -> None:
    """round(normal=True), Veltkamp's three passes: every bfloat16 boundary and 10 M random
    bit patterns among the values it takes (0 and normal floats below 2**111)."""
    bits = np.random.default_rng(23).integers(0, 1 << 32, size=10_000_000, dtype=np.uint32)
    values = np.concatenate([bfloat16_boundaries, bits.view(np.float32)])
    magnitude = np.abs(values)
    normal = (magnitude >= np.finfo(np.float32).tiny) & (magnitude < BFLOAT16_NORMAL_MAX)
    values = values[normal | (magnitude == 0)]
    assert values.size > 5_000_000
    got = BFLOAT16.round(values.copy(), normal=True)
    assert_same_bits(got, cast(values, ml_dtypes.bfloat16))
    # With the caller's scratch instead of its own blocks: one call over the whole array.
    spare = np.full_like(values, np.nan)
    assert_same_bits(BFLOAT16.round(values.copy(), normal=True, spare=spare), got)


def test_bfloat16_normal_round_is_not_the_cast_outside_its_range() -> None:
    # What the precondition keeps out: a subnormal, and a value whose split overflows.
    values = np.array([3e-45, 2.0**120] * 40, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        got = BFLOAT16.round(values.copy(), normal=True)
    assert not np.array_equal(got, cast(values, ml_dtypes.bfloat16))


@pytest.mark.parametrize("name", ["float64", "float32", "bfloat16", "float16"])
def test_to_work_of_every_bfloat16_is_the_cast_in_each_dtype(name: str) -> None:
    # The bfloat16 widening shortcut must hold only where D keeps bfloat16's values.
    dtype = COMPUTE_DTYPES[name]
    values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(ml_dtypes.bfloat16)
    values = values.reshape(256, 256)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = values.astype(dtype.storage).astype(dtype.work)
    got = dtype.to_work(values, out=np.empty(values.shape, dtype=dtype.work))
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint8), expected[~nan].view(np.uint8))
