"""Properties of the kernels and of the row classification, in every compute dtype:
Hypothesis searches for a counterexample over rows of finite values (with and without -inf
masks), over exactly shifted rows, and over rows with NaN, +inf and -inf entries.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from conftest import COMPUTE_DTYPE_NAMES, compute_dtype_names, eps, finite_rows, values_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmax_cli import kernels
from softmax_cli.classify import reference_findings
from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.report import BREAKING, BUILTIN, Flag, InputFlag

# For the finite and shifted rows.
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)
# For the chunks with non-finite entries.
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def chunks(draw, finite_only: bool = False):
    """(compute dtype, rows in its work dtype, targets with -1 for none)."""
    dtype = COMPUTE_DTYPES[draw(st.sampled_from(COMPUTE_DTYPE_NAMES))]
    rows, classes = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    values = values_of(dtype.storage)
    if finite_only:
        values = values.filter(math.isfinite)
    raw = draw(st.lists(values, min_size=rows * classes, max_size=rows * classes))
    with np.errstate(over="ignore"):  # values rounded to the dtype may not be finite in it
        x = dtype.to_work(np.array(raw, dtype=np.float64).reshape(rows, classes))
    if finite_only:
        x = np.nan_to_num(x, posinf=0.0, neginf=0.0)  # a value that rounded to inf
    targets = np.array(draw(st.lists(st.integers(-1, classes - 1), min_size=rows, max_size=rows)))
    return dtype, x, targets


# --- rows of finite values ------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=st.data(), name=compute_dtype_names, masks=st.booleans())
def test_stable_path_never_makes_nan_on_rows_without_nan_or_plus_inf(data, name, masks):
    dtype = COMPUTE_DTYPES[name]
    x, targets = data.draw(finite_rows(dtype, masks=masks))
    stable = kernels.stable(x, targets, dtype)
    assert not np.isnan(stable.probs).any()
    assert not np.isnan(stable.grad).any()
    assert not np.isnan(stable.loss).any()


@PROPERTY
@given(chunks(finite_only=True))
def test_the_stable_path_never_makes_nan_on_finite_rows(chunk):
    dtype, x, targets = chunk
    stable = kernels.stable(x, targets, dtype)
    assert not np.isnan(stable.probs).any()
    assert not np.isnan(stable.grad).any()
    assert not np.isnan(stable.loss).any()
    assert ((stable.probs >= 0) & (stable.probs <= 1)).all()
    # The largest entry contributes exp(0) = 1, so the shifted sum can never underflow.
    assert (stable.sum >= 1).all()


@PROPERTY
@given(chunks(finite_only=True))
def test_the_stable_path_never_breaks_on_finite_rows(chunk):
    dtype, x, targets = chunk
    findings = reference_findings(x, targets, dtype)
    assert not (findings.impls["stable"].flags & int(BREAKING)).any()
    assert not findings.input.any()


@PROPERTY_SETTINGS
@given(data=st.data(), name=compute_dtype_names, masks=st.booleans())
def test_stable_probabilities_sum_to_one(data, name, masks):
    dtype = COMPUTE_DTYPES[name]
    x, _ = data.draw(finite_rows(dtype, masks=masks))
    probs = kernels.stable(x, None, dtype).probs.astype(np.float64)
    # p[i] = e[i] / s with s the rounded sum of the e[i]: the rounding of s and of each
    # division, each half an ulp, plus the accumulation of s in its accumulate dtype.
    classes = x.shape[1]
    accumulate_eps = float(np.finfo(dtype.accumulate).eps)
    tolerance = 2 * eps(dtype) + classes * accumulate_eps
    assert (np.abs(probs.sum(axis=1) - 1.0) <= tolerance).all()


@PROPERTY_SETTINGS
@given(data=st.data(), name=compute_dtype_names)
def test_naive_equals_stable_on_well_scaled_rows(data, name):
    # |x| <= 2 and at most 16 classes: exp neither overflows nor leaves the normal range in
    # any dtype (p >= exp(-4) / 16 > float16's smallest normal).
    dtype = COMPUTE_DTYPES[name]
    rows, classes = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 16))
    elements = st.floats(-2, 2, allow_nan=False)
    x = dtype.to_work(data.draw(hnp.arrays(np.float64, (rows, classes), elements=elements))
                      .astype(dtype.storage))  # fmt: skip
    targets = data.draw(hnp.arrays(np.int64, rows, elements=st.integers(0, classes - 1)))
    naive, stable = kernels.naive(x, targets, dtype), kernels.stable(x, targets, dtype)
    # exp(x) and exp(x - m) differ by the rounding of x - m (|x - m| <= 4) and of each exp.
    tolerance = 8 * eps(dtype)
    np.testing.assert_allclose(naive.probs, stable.probs, rtol=tolerance, atol=0)
    np.testing.assert_allclose(naive.loss, stable.loss, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(naive.grad, stable.grad, rtol=0, atol=2 * tolerance)


@PROPERTY
@given(chunks(finite_only=True))
def test_naive_overflow_is_flagged_exactly_past_the_threshold(chunk):
    dtype, x, targets = chunk
    flags = reference_findings(x, targets, dtype).impls["naive"].flags
    overflow = (flags & Flag.OVERFLOW) != 0
    row_max = x.max(axis=1)
    threshold = dtype.exp_overflow_threshold
    assert overflow[row_max > threshold].all()
    # Far enough below the threshold even the sum of all the exponentials is finite.
    safe = row_max < threshold - math.log(x.shape[1]) - 1
    assert not overflow[safe].any()


@pytest.mark.parametrize("name", COMPUTE_DTYPE_NAMES)
def test_a_row_of_the_largest_finite_values_is_handled_by_the_stable_path(name):
    dtype = COMPUTE_DTYPES[name]
    largest = float(ml_dtypes.finfo(dtype.storage).max)
    x = dtype.to_work(np.array([[largest, -largest, largest]]))
    stable = kernels.stable(x, np.array([1]), dtype)
    assert not np.isnan(stable.probs).any()
    assert not np.isnan(stable.loss).any()


# --- exact shifts ---------------------------------------------------------------------


@st.composite
def quarter_rows_and_shift(draw):
    """Rows of multiples of 1/4 in [-15, 15] and a shift, a multiple of 1/4 in [-48, 48]:
    every shifted value is a multiple of 1/4 below 64 in size, which 8 significant bits
    (bfloat16's, the fewest) hold exactly, so the shift itself is exact in every dtype."""
    rows, classes = draw(st.integers(1, 4)), draw(st.integers(1, 16))
    quarters = draw(hnp.arrays(np.int64, (rows, classes), elements=st.integers(-60, 60)))
    shift = draw(st.integers(-192, 192)) / 4
    targets = draw(hnp.arrays(np.int64, rows, elements=st.integers(0, classes - 1)))
    return quarters / 4, shift, targets


@PROPERTY_SETTINGS
@given(case=quarter_rows_and_shift(), name=compute_dtype_names)
def test_stable_probabilities_and_loss_are_invariant_under_an_exact_shift(case, name):
    x, shift, targets = case
    dtype = COMPUTE_DTYPES[name]
    original = kernels.stable(dtype.to_work(x), targets, dtype)
    shifted = kernels.stable(dtype.to_work(x + shift), targets, dtype)
    tolerance = 2 * eps(dtype)
    np.testing.assert_allclose(shifted.probs, original.probs, rtol=tolerance, atol=0)
    np.testing.assert_allclose(shifted.loss, original.loss, rtol=tolerance, atol=tolerance)


@PROPERTY_SETTINGS
@given(case=quarter_rows_and_shift(), name=compute_dtype_names)
def test_logsumexp_shifts_with_the_logits(case, name):
    x, shift, _ = case
    dtype = COMPUTE_DTYPES[name]

    def lse(values):
        stable = kernels.stable(dtype.to_work(values), None, dtype)
        return kernels.logsumexp(stable.max, stable.sum, dtype).astype(np.float64)

    # Each side is m + log(s) rounded to D, half an ulp of its own size off (plus the
    # error of log(s)): compare within two ulps of the larger of the two.
    unshifted = lse(x)
    expected = unshifted + shift
    tolerance = 2 * eps(dtype) * np.maximum(1.0, np.maximum(np.abs(expected), np.abs(unshifted)))
    assert (np.abs(lse(x + shift) - expected) <= tolerance).all()


# --- rows with NaN, +inf and -inf -----------------------------------------------------


@PROPERTY
@given(chunks())
def test_input_flags_match_the_rows(chunk):
    dtype, x, targets = chunk
    flags = reference_findings(x, targets, dtype).input
    nonfinite = np.array([any(math.isnan(v) or v == math.inf for v in row) for row in x])
    masked = np.array([all(v == -math.inf for v in row) for row in x])
    assert (((flags & InputFlag.NONFINITE) != 0) == nonfinite).all()
    assert (((flags & InputFlag.FULLY_MASKED) != 0) == masked).all()


@PROPERTY
@given(chunks())
def test_overflow_is_never_flagged_on_a_row_with_nan_or_inf(chunk):
    dtype, x, targets = chunk
    findings = reference_findings(x, targets, dtype)
    nonfinite = (findings.input & InputFlag.NONFINITE) != 0
    for implementation in BUILTIN:
        flags = findings.impls[implementation.name].flags
        assert not (flags[nonfinite] & Flag.OVERFLOW).any()


@PROPERTY
@given(chunks())
def test_a_nan_in_a_row_makes_nan_probabilities_on_both_paths(chunk):
    dtype, x, targets = chunk
    findings = reference_findings(x, targets, dtype)
    has_nan = np.isnan(x).any(axis=1)
    for implementation in BUILTIN:
        flags = findings.impls[implementation.name].flags
        assert ((flags[has_nan] & Flag.NAN_PROB) != 0).all()


@PROPERTY
@given(chunks())
def test_masked_entries_alone_are_harmless_to_the_stable_path(chunk):
    dtype, x, targets = chunk
    # Rows with at least one finite entry and otherwise only -inf masks: no NaN, mask p = 0.
    usable = np.isfinite(x).any(axis=1) & ~(np.isnan(x) | np.isposinf(x)).any(axis=1)
    stable = kernels.stable(x, targets, dtype)
    assert not np.isnan(stable.probs[usable]).any()
    assert (stable.probs[usable][np.isneginf(x[usable])] == 0).all()
    assert not np.isnan(stable.grad[usable]).any()
