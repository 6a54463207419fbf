"""The kernels against exact values: mpmath at 50 digits, and cases derived by hand.

The inputs are values of D; mpmath evaluates the exact log-sum-exp, softmax and
cross-entropy of those very values, so the only error measured is the kernels' own.
"""

from __future__ import annotations

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
from conftest import COMPUTE_DTYPE_NAMES, eps

from softmax_cli import kernels
from softmax_cli.classify import reference_findings
from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.report import BUILTIN_FLAGS, Flag

mpmath.mp.dps = 50


def _exact(row: np.ndarray, target: int) -> tuple[mpmath.mpf, list[mpmath.mpf], mpmath.mpf]:
    """Exact (logsumexp, softmax, cross-entropy) of a row of finite numbers."""
    values = [mpmath.mpf(float(v)) for v in row]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in values))
    probs = [mpmath.exp(v - lse) for v in values]
    return lse, probs, lse - values[target]


def _moderate_rows(name: str, n: int = 40, classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Rows of D with spread up to 20 and shifts far from 0 (up to 600 in float64, beyond
    the naive path's range, so only the stable kernel is compared on those)."""
    rng = np.random.default_rng([3, COMPUTE_DTYPE_NAMES.index(name)])
    limit = {"float64": 600.0, "float32": 80.0, "float16": 8.0, "bfloat16": 80.0}[name]
    spread = rng.uniform(0.01, min(20.0, limit), size=(n, 1))
    x = rng.uniform(-1, 1, size=(n, classes)) * spread + rng.uniform(-limit, limit, size=(n, 1))
    dtype = COMPUTE_DTYPES[name]
    return dtype.to_work(x.astype(dtype.storage)), rng.integers(0, classes, size=n)


# Tolerances, in eps(D). The stable loss log(s) - (x[t] - m) adds two non-negative terms, so
# its error is relative: x[t] - m is rounded once, s is a sum of exps each rounded once (in
# float32 for half types, then rounded to D), log is rounded once. Probabilities are
# exp(x - m) / s: x - m is rounded to D first, which costs up to eps * |x - m| / 2 relative.
LOSS_ULPS = 4
PROB_ULPS = 4


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_stable_loss_matches_mpmath_cross_entropy(name):
    x, targets = _moderate_rows(name)
    loss = kernels.stable(x, targets, COMPUTE_DTYPES[name]).loss
    for row, t, got in zip(x, targets, loss, strict=True):
        expected = _exact(row, int(t))[2]
        # A loss near 0 is log(s) with s near 1: an absolute error of an ulp of 1.
        tolerance = LOSS_ULPS * eps(name) * max(1.0, float(expected))
        assert abs(float(got) - float(expected)) <= tolerance, (row, t)


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_logsumexp_matches_mpmath(name):
    x, _ = _moderate_rows(name)
    dtype = COMPUTE_DTYPES[name]
    stable = kernels.stable(x, None, dtype)
    lse = kernels.logsumexp(stable.max, stable.sum, dtype)
    for row, got in zip(x, lse, strict=True):
        expected = _exact(row, 0)[0]
        # m + log(s): each term rounded once, the sum once; |m| dominates when it is large.
        tolerance = 2 * eps(name) * (abs(float(row.max())) + 1.0)
        assert abs(float(got) - float(expected)) <= tolerance, row


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_stable_probabilities_match_mpmath_softmax(name):
    x, _ = _moderate_rows(name)
    probs = kernels.stable(x, None, COMPUTE_DTYPES[name]).probs
    for row, got in zip(x, probs, strict=True):
        expected = np.array([float(p) for p in _exact(row, 0)[1]])
        spread = np.abs(row - row.max()).astype(np.float64)
        tolerance = PROB_ULPS * eps(name) * (1.0 + spread) * expected
        np.testing.assert_array_less(np.abs(got - expected), tolerance + 1e-300)


@pytest.mark.parametrize("name", ["float64", "float32"])
def test_naive_loss_matches_mpmath_where_exp_stays_in_range(name):
    # Rows within +-20 of 0: exp neither overflows nor becomes subnormal.
    rng = np.random.default_rng([4, COMPUTE_DTYPE_NAMES.index(name)])
    dtype = COMPUTE_DTYPES[name]
    x = dtype.to_work(rng.uniform(-20, 20, size=(40, 6)).astype(dtype.storage))
    targets = rng.integers(0, 6, size=40)
    loss = kernels.naive(x, targets, dtype).loss
    for row, t, got in zip(x, targets, loss, strict=True):
        expected = _exact(row, int(t))[2]
        # -log(e[t] / s): e[t], s, the division and log each rounded once; exp(x) of a
        # value near 20 is off by eps relative, which is eps absolute in the loss.
        tolerance = 6 * eps(name) * max(1.0, float(expected))
        assert abs(float(got) - float(expected)) <= tolerance, (row, t)


@pytest.mark.parametrize("name", ["float64", "float32"])
def test_naive_and_stable_gradients_match_exact_softmax_minus_onehot(name):
    rng = np.random.default_rng([5, COMPUTE_DTYPE_NAMES.index(name)])
    dtype = COMPUTE_DTYPES[name]
    x = dtype.to_work(rng.uniform(-10, 10, size=(30, 5)).astype(dtype.storage))
    targets = rng.integers(0, 5, size=30)
    naive, stable = kernels.naive(x, targets, dtype), kernels.stable(x, targets, dtype)
    for i, (row, t) in enumerate(zip(x, targets, strict=True)):
        expected = np.array([float(p) for p in _exact(row, int(t))[1]])
        expected[t] -= 1.0
        # The naive backward pass computes p - onehot through 1/p[t] and 1/s, cancelling
        # terms as large as 1/p[t]: its error grows with that, unlike the stable path's.
        p_t = float(expected[t] + 1.0)
        np.testing.assert_allclose(stable.grad[i], expected, rtol=0, atol=2 * eps(name))
        np.testing.assert_allclose(naive.grad[i], expected, rtol=0, atol=8 * eps(name) / p_t)


# --- the seed example (issue 1) ---------------------------------------------------------


@pytest.fixture
def seed_naive_and_stable(seed_logits, seed_targets):
    dtype = COMPUTE_DTYPES["float32"]
    x = dtype.to_work(seed_logits)
    return kernels.naive(x, seed_targets, dtype), kernels.stable(x, seed_targets, dtype)


def test_seed_row_1_naive_exp_overflows_and_probabilities_are_nan_0_0(seed_naive_and_stable):
    # exp(1000) = inf in float32, so s = inf; p = [inf/inf, 1/inf, 0/inf] = [nan, 0, 0].
    naive, _ = seed_naive_and_stable
    assert np.isposinf(naive.exp[1, 0]) and np.isposinf(naive.sum[1])
    assert np.isnan(naive.probs[1, 0]) and naive.probs[1, 1] == 0 and naive.probs[1, 2] == 0


def test_seed_row_1_naive_loss_is_inf_and_gradient_nan(seed_naive_and_stable):
    # loss = -log(p[2]) = -log(0) = inf; the backward pass divides -1 by p[2] = 0.
    naive, _ = seed_naive_and_stable
    assert naive.loss[1] == np.inf
    assert np.isnan(naive.grad[1]).any()


def test_seed_row_1_stable_loss_is_exactly_2000_and_logsumexp_1000(seed_naive_and_stable):
    # m = 1000; exp(-1000) and exp(-2000) are 0 in float32, so s = 1 exactly and
    # log(s) - (x[2] - m) = 0 - (-2000) = 2000, an exact float32 value.
    _, stable = seed_naive_and_stable
    dtype = COMPUTE_DTYPES["float32"]
    assert stable.sum[1] == 1.0
    assert stable.loss[1] == 2000.0
    assert kernels.logsumexp(stable.max, stable.sum, dtype)[1] == 1000.0


def test_seed_row_1_stable_gradient_is_onehot_difference_without_nan(seed_naive_and_stable):
    # p = [1, 0, 0] exactly, so p - onehot(2) = [1, 0, -1].
    _, stable = seed_naive_and_stable
    np.testing.assert_array_equal(stable.grad[1], [1.0, 0.0, -1.0])


@pytest.mark.parametrize("index", [0, 2])
def test_seed_ordinary_rows_match_mpmath_on_both_paths(seed_naive_and_stable, seed_logits,
                                                       seed_targets, index):  # fmt: skip
    expected = float(_exact(seed_logits[index], int(seed_targets[index]))[2])
    for path in seed_naive_and_stable:
        # An absolute error of a few ulps of 1: the loss is log(s) - (x[t] - m), s near 1.
        assert path.loss[index] == pytest.approx(expected, abs=4 * eps("float32"))


def test_seed_flags_are_exactly_those_of_the_contract_example(seed_logits, seed_targets):
    dtype = COMPUTE_DTYPES["float32"]
    findings = reference_findings(dtype.to_work(seed_logits), seed_targets, dtype)
    assert findings.has_target.tolist() == [True, True, True]
    assert findings.input.tolist() == [0, 0, 0]
    assert [Flag(int(f)) for f in findings.impls["naive"].flags] == [
        Flag(0),
        BUILTIN_FLAGS,
        Flag(0),
    ]
    assert [Flag(int(f)) for f in findings.impls["stable"].flags] == [
        Flag(0),
        Flag.UNDERFLOW,
        Flag(0),
    ]


# --- the exp overflow thresholds ----------------------------------------------------------


def _next_up(value: float, storage: np.dtype) -> float:
    """The next larger value of a positive float format (bit pattern + 1)."""
    bits = np.array([value], dtype=storage).view(f"u{np.dtype(storage).itemsize}")
    return float((bits + 1).view(storage)[0])


def _exp_is_finite_in(x: float, storage: np.dtype) -> bool:
    """Does exp(x), correctly rounded to the format, stay finite? Values at or beyond
    max + ulp(max) / 2 round to inf (round to nearest)."""
    info = ml_dtypes.finfo(storage)
    max_value = mpmath.mpf(float(info.max))
    half_ulp = mpmath.mpf(2) ** (int(info.maxexp) - int(info.nmant) - 2)
    return mpmath.exp(mpmath.mpf(x)) < max_value + half_ulp


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_exp_overflow_threshold_is_the_last_value_whose_exp_is_finite(name):
    dtype = COMPUTE_DTYPES[name]
    threshold = dtype.exp_overflow_threshold
    assert _exp_is_finite_in(threshold, dtype.storage)
    assert not _exp_is_finite_in(_next_up(threshold, dtype.storage), dtype.storage)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("float16", 11.0859375),  # exp = 65247 <= 65504; the next, 11.09375: 65759 > 65520
        ("bfloat16", 88.5),  # the next bfloat16 value, 89.0, is above log(3.39e38) = 88.72
        ("float32", float(np.float32(88.72283172607422))),  # log(FLT_MAX) = 88.7228391...
        ("float64", 709.782712893384),  # log(DBL_MAX) = 709.78271289338399...
    ],
)
def test_exp_overflow_threshold_known_values(name, expected):
    assert COMPUTE_DTYPES[name].exp_overflow_threshold == expected


# --- hand-derived cases -------------------------------------------------------------------


def test_naive_gradient_is_nan_when_all_float32_logits_are_minus_100_though_loss_is_finite():
    # exp(-100) = 3.72e-44 is subnormal in float32: 27 * 2**-149 after rounding. Then
    # s = 81 * 2**-149 (exact), p = 1/3 and loss = -log(fl(1/3)), finite. Backward:
    # g_p = [-3, 0, 0], g_p / s = [-3 / 1.1e-43 = -inf, 0, 0], p / s = 3e42 = inf, so the
    # gradient reaching s sums -g_p * (p / s) = [inf, -0 * inf, -0 * inf] = [inf, nan, nan]:
    # nan, which reaches every class.
    dtype = COMPUTE_DTYPES["float32"]
    x = np.full((1, 3), -100.0, dtype=np.float32)
    naive = kernels.naive(x, np.array([0]), dtype)
    assert naive.exp[0, 0] == np.float32(27 * 2.0**-149)
    assert naive.sum[0] == np.float32(81 * 2.0**-149)
    assert naive.loss[0] == pytest.approx(math.log(3.0), rel=2 * eps("float32"))
    assert np.isnan(naive.grad).all()


def test_naive_nan_gradient_on_minus_100_rows_is_flagged_as_nan_grad_only():
    dtype = COMPUTE_DTYPES["float32"]
    x = np.full((1, 3), -100.0, dtype=np.float32)
    findings = reference_findings(x, np.array([0]), dtype)
    assert Flag(int(findings.impls["naive"].flags[0])) == Flag.NAN_GRAD
    assert findings.impls["stable"].flags[0] == 0 and findings.has_target[0]


def test_naive_gradient_of_one_class_at_minus_100_is_nan_from_inf_minus_inf():
    # One class: p = e / e = 1, g_p / s = -1 / e = -inf, the gradient reaching s is
    # -(-1) * (1 / e) = inf, and -inf + inf = nan.
    dtype = COMPUTE_DTYPES["float32"]
    naive = kernels.naive(np.array([[-100.0]], dtype=np.float32), np.array([0]), dtype)
    assert naive.probs[0, 0] == 1.0 and naive.loss[0] == 0.0
    assert np.isnan(naive.grad[0, 0])


def test_target_on_a_masked_class_gives_naive_nan_gradient_and_stable_minus_one():
    # p[t] = 0: naive g_p[t] = -1 / 0 = -inf and -g_p[t] * (p[t] / s) = inf * 0 = nan.
    # Stable: p - onehot = [1, -1].
    dtype = COMPUTE_DTYPES["float64"]
    x, t = np.array([[0.0, -np.inf]]), np.array([1])
    naive, stable = kernels.naive(x, t, dtype), kernels.stable(x, t, dtype)
    assert naive.loss[0] == np.inf and np.isnan(naive.grad).any()
    assert stable.loss[0] == np.inf
    np.testing.assert_array_equal(stable.grad[0], [1.0, -1.0])


def test_float16_stable_sum_is_rounded_to_float16_for_the_log_not_for_the_division():
    # 2049 equal logits: e = 1 each, the float32 sum is 2049, which float16 rounds to 2048
    # (ties to even; spacing 2 above 2048). As in torch's fused kernels, softmax divides by
    # the float32 sum (p = 1/2049, not 1/2048) and log_softmax takes the log of the sum
    # rounded to float16 (the loss is log(2048), rounded).
    dtype = COMPUTE_DTYPES["float16"]
    x = np.zeros((1, 2049), dtype=np.float32)
    stable = kernels.stable(x, np.array([0]), dtype)
    assert stable.sum[0] == 2048.0
    assert (stable.probs[0] == np.float32(np.float16(1 / 2049))).all()
    assert np.float16(1 / 2049) != np.float16(1 / 2048)
    assert stable.loss[0] == np.float32(np.float16(math.log(2048.0)))


def test_fully_masked_row_logsumexp_is_minus_inf_and_stable_path_nan():
    dtype = COMPUTE_DTYPES["float64"]
    x = np.full((1, 3), -np.inf)
    stable = kernels.stable(x, np.array([0]), dtype)
    assert kernels.logsumexp(stable.max, stable.sum, dtype)[0] == -np.inf
    assert np.isnan(stable.probs).all() and np.isnan(stable.loss[0])


@pytest.mark.parametrize(
    ("row", "expected"),
    [([0.0, np.inf, 1.0], np.inf), ([0.0, np.nan, 1.0], "nan"), ([np.inf, np.nan], "nan")],
)
def test_logsumexp_of_rows_with_inf_or_nan_follows_the_ieee_limits(row, expected):
    dtype = COMPUTE_DTYPES["float64"]
    stable = kernels.stable(np.array([row]), None, dtype)
    got = kernels.logsumexp(stable.max, stable.sum, dtype)[0]
    assert np.isnan(got) if expected == "nan" else got == expected
