"""Properties that hold for every input: hypothesis searches for a counterexample."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmax_cli import check, kernels
from softmax_cli.dtypes import COMPUTE_DTYPES, ComputeDtype
from softmax_cli.report import BUILTIN, Flag

DTYPES = ("float64", "float32", "float16", "bfloat16")
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


def _eps(dtype: ComputeDtype) -> float:
    return float(ml_dtypes.finfo(dtype.storage).eps)


@st.composite
def finite_rows(draw, dtype: ComputeDtype, max_classes: int = 32, masks: bool = False):
    """(rows of finite values of D in the work dtype, a target per row); with ``masks``
    some entries are -inf, but never a whole row."""
    rows = draw(st.integers(1, 6))
    classes = draw(st.integers(1, max_classes))
    biggest = float(ml_dtypes.finfo(dtype.storage).max)
    elements = st.floats(-biggest, biggest, allow_nan=False, allow_infinity=False)
    x = draw(hnp.arrays(np.float64, (rows, classes), elements=elements))
    x = dtype.to_work(x.astype(dtype.storage))  # in range, so rounding stays finite
    if masks:
        mask = draw(hnp.arrays(np.bool_, (rows, classes)))
        mask[:, 0] &= ~mask.all(axis=1)  # keep at least one entry per row
        x[mask] = -np.inf
    targets = draw(hnp.arrays(np.int64, rows, elements=st.integers(0, classes - 1)))
    return x, targets


dtype_names = st.sampled_from(DTYPES)


@PROPERTY_SETTINGS
@given(data=st.data(), name=dtype_names, masks=st.booleans())
def test_stable_path_never_makes_nan_on_rows_without_nan_or_plus_inf(data, name, masks):
    dtype = COMPUTE_DTYPES[name]
    x, targets = data.draw(finite_rows(dtype, masks=masks))
    stable = kernels.stable(x, targets, dtype)
    assert not np.isnan(stable.probs).any()
    assert not np.isnan(stable.grad).any()
    assert not np.isnan(stable.loss).any()


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
@given(case=quarter_rows_and_shift(), name=dtype_names)
def test_stable_probabilities_and_loss_are_invariant_under_an_exact_shift(case, name):
    x, shift, targets = case
    dtype = COMPUTE_DTYPES[name]
    original = kernels.stable(dtype.to_work(x), targets, dtype)
    shifted = kernels.stable(dtype.to_work(x + shift), targets, dtype)
    tolerance = 2 * _eps(dtype)
    np.testing.assert_allclose(shifted.probs, original.probs, rtol=tolerance, atol=0)
    np.testing.assert_allclose(shifted.loss, original.loss, rtol=tolerance, atol=tolerance)


@PROPERTY_SETTINGS
@given(case=quarter_rows_and_shift(), name=dtype_names)
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
    tolerance = 2 * _eps(dtype) * np.maximum(1.0, np.maximum(np.abs(expected), np.abs(unshifted)))
    assert (np.abs(lse(x + shift) - expected) <= tolerance).all()


@PROPERTY_SETTINGS
@given(data=st.data(), name=dtype_names, masks=st.booleans())
def test_stable_probabilities_sum_to_one(data, name, masks):
    dtype = COMPUTE_DTYPES[name]
    x, _ = data.draw(finite_rows(dtype, masks=masks))
    probs = kernels.stable(x, None, dtype).probs.astype(np.float64)
    # p[i] = e[i] / s with s the rounded sum of the e[i]: the rounding of s and of each
    # division, each half an ulp, plus the accumulation of s in its accumulate dtype.
    classes = x.shape[1]
    accumulate_eps = float(np.finfo(dtype.accumulate).eps)
    tolerance = 2 * _eps(dtype) + classes * accumulate_eps
    assert (np.abs(probs.sum(axis=1) - 1.0) <= tolerance).all()


@PROPERTY_SETTINGS
@given(data=st.data(), name=dtype_names)
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
    tolerance = 8 * _eps(dtype)
    np.testing.assert_allclose(naive.probs, stable.probs, rtol=tolerance, atol=0)
    np.testing.assert_allclose(naive.loss, stable.loss, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(naive.grad, stable.grad, rtol=0, atol=2 * tolerance)


# --- check(): flags, SampleResults and Summary tell the same story -------------------------

PALETTE = [0.0, 1.0, -1.0, 5.0, -30.0, 12.0, 90.0, -110.0, 720.0, -750.0, 1e5,
           -np.inf, np.inf, np.nan]  # fmt: skip


@st.composite
def awkward_inputs(draw):
    """Logits drawn from a palette of ordinary and extreme values, targets with some
    ignored (-100), or no targets at all."""
    rows, classes = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    x = draw(hnp.arrays(np.float64, (rows, classes), elements=st.sampled_from(PALETTE)))
    targets = None
    if draw(st.booleans()):
        targets = draw(hnp.arrays(np.int64, rows, elements=st.integers(-1, classes - 1)))
        targets[targets < 0] = -100
    return x, targets


def _count(samples, predicate) -> int:
    return sum(1 for s in samples if predicate(s))


@pytest.mark.parametrize("compute_name", DTYPES)
@settings(max_examples=40, deadline=None)
@given(inputs=awkward_inputs())
def test_summary_counts_equal_the_samples_with_each_flag(compute_name, inputs):
    x, targets = inputs
    report = check(x, targets, dtype=compute_name)
    samples = list(report.samples(include_clean=True))
    summary = report.summary
    assert summary.samples == len(samples) == len(x)
    assert summary.flagged == _count(samples, lambda s: s.flagged)
    assert summary.input.nonfinite == _count(samples, lambda s: s.input.nonfinite)
    assert summary.input.fully_masked == _count(samples, lambda s: s.input.fully_masked)
    for path in ("naive", "stable"):
        counts = getattr(summary, path)
        flags = [getattr(s, path) for s in samples]
        for key in ("overflow", "underflow", "nan_prob"):
            assert getattr(counts, key) == sum(getattr(f, key) for f in flags), (path, key)
        assert counts.nan_grad == sum(bool(f.nan_grad) for f in flags)
        assert counts.inf_loss == sum(f.loss is not None and np.isinf(f.loss) for f in flags)
        assert counts.nan_loss == sum(f.loss is not None and np.isnan(f.loss) for f in flags)
        assert counts.breaks == sum(f.breaks for f in flags)


@pytest.mark.parametrize("compute_name", DTYPES)
@settings(max_examples=40, deadline=None)
@given(inputs=awkward_inputs())
def test_listed_samples_are_exactly_the_flagged_ones_worst_first(compute_name, inputs):
    x, targets = inputs
    report = check(x, targets, dtype=compute_name)
    listed = list(report.samples())
    everything = [report.sample(i) for i in range(len(x))]
    assert sorted(s.index for s in listed) == [s.index for s in everything if s.flagged]

    def severity(s):
        naive, stable = s.naive.breaks, s.stable.breaks
        return 0 if naive and stable else 1 if stable else 2 if naive else 3

    keys = [(severity(s), s.index) for s in listed]
    assert keys == sorted(keys)


@pytest.mark.parametrize("compute_name", DTYPES)
@settings(max_examples=40, deadline=None)
@given(inputs=awkward_inputs())
def test_sample_results_agree_with_the_row_table_bits(compute_name, inputs):
    x, targets = inputs
    report = check(x, targets, dtype=compute_name)
    for i in range(len(x)):
        sample = report.sample(i)
        has_target = targets is not None and targets[i] != -100
        assert bool(report.findings.has_target[i]) == has_target
        assert (sample.naive.loss is None) == (sample.naive.nan_grad is None) == (not has_target)
        for implementation in BUILTIN:
            flags = sample.results[implementation.name]
            for flag in (Flag.OVERFLOW, Flag.UNDERFLOW, Flag.NAN_PROB):
                assert getattr(flags, flag.key) == report.flag(implementation.name, flag)[i]
            assert flags.breaks == report.breaks[implementation.name][i]
        assert sample.flagged == report.flagged[i]


@pytest.mark.parametrize("compute_name", DTYPES)
@settings(max_examples=40, deadline=None)
@given(inputs=awkward_inputs())
def test_input_flags_follow_the_contract_definition(compute_name, inputs):
    x, targets = inputs
    report = check(x, targets, dtype=compute_name)
    # nonfinite is the file's own NaN or +inf; a finite value rounded to +-inf in D (1e5 in
    # float16) is out_of_range; fully_masked is read in D, where that -1e5 is a mask.
    in_d = COMPUTE_DTYPES[compute_name].to_work(x).astype(np.float64)
    for i in range(len(x)):
        sample = report.sample(i)
        assert sample.input.nonfinite == bool(np.isnan(x[i]).any() | np.isposinf(x[i]).any())
        assert sample.input.out_of_range == bool((np.isinf(in_d[i]) & np.isfinite(x[i])).any())
        assert sample.input.fully_masked == bool(np.isneginf(in_d[i]).all())
