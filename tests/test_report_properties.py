"""Properties of ``check()``: on any numeric array it returns a report and never raises, and
its flags, sample results and summary tell the same story (Hypothesis searches for a
counterexample over awkward values in every compute dtype)."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from conftest import COMPUTE_DTYPE_NAMES, values_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmax_cli import check
from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.report import BUILTIN, Flag

NUMERIC_DTYPES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.longdouble,
    ml_dtypes.bfloat16,
]


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(NUMERIC_DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    size = math.prod(shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = draw(
            st.lists(st.integers(int(info.min), int(info.max)), min_size=size, max_size=size)
        )
        array = np.array(values, dtype=dtype)
    else:
        values = draw(st.lists(values_of(np.dtype(np.float64)), min_size=size, max_size=size))
        with np.errstate(over="ignore"):
            array = np.array(values).astype(dtype)
    array = array.reshape(shape)
    class_axis = draw(st.integers(-len(shape), len(shape) - 1))
    return array, class_axis


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(), st.sampled_from(["auto", *COMPUTE_DTYPE_NAMES]), st.data())
def test_check_never_raises_on_any_numeric_array(case, compute, data):
    logits, class_axis = case
    classes = logits.shape[class_axis]
    samples = logits.size // classes
    targets = None
    if data.draw(st.booleans()):
        choices = st.one_of(st.integers(0, classes - 1), st.just(-100))
        targets = np.array(data.draw(st.lists(choices, min_size=samples, max_size=samples)))
    report = check(logits, targets, dtype=compute, class_axis=class_axis)
    summary = report.summary
    assert summary.samples == samples
    assert 0 <= summary.flagged <= samples
    # The input flags count the rows with NaN or +inf in the file, and apart from them the
    # rows with a finite value that is +-inf in the compute dtype, whatever the axis.
    rows = np.moveaxis(logits, class_axis, -1).reshape(samples, classes)
    with np.errstate(over="ignore"):
        x = COMPUTE_DTYPES[report.compute_dtype].to_work(rows)
    with np.errstate(invalid="ignore"):
        cast_overflow = (np.isinf(x) & np.isfinite(rows)).any(axis=1)
    assert summary.input.nonfinite == int((np.isnan(rows) | np.isposinf(rows)).any(axis=1).sum())
    assert summary.input.out_of_range == int(cast_overflow.sum())
    assert isinstance(report.passed, bool)


# --- flags, SampleResults and Summary tell the same story -------------------------------

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


@pytest.mark.parametrize("compute_name", COMPUTE_DTYPE_NAMES)
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


@pytest.mark.parametrize("compute_name", COMPUTE_DTYPE_NAMES)
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


@pytest.mark.parametrize("compute_name", COMPUTE_DTYPE_NAMES)
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


@pytest.mark.parametrize("compute_name", COMPUTE_DTYPE_NAMES)
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


def test_json_floats_are_numpys_shortest_float32_decimals() -> None:
    # The listing's vectorised shortest decimal against NumPy's own repr, on random bit
    # patterns (every binade, NaN and inf among them), logit-like values and the extremes.
    from softmax_cli.report import _shortest

    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            rng.integers(0, 1 << 32, 1_000_000, dtype=np.uint32).view(np.float32),
            (rng.standard_normal(200_000) * 10).astype(np.float32),
            np.float32([0.1, 0.5, 1e-45, 3.4028235e38, 1.1754944e-38, 16777217, 0.0, -0.0]),
            np.float32([np.inf, -np.inf, np.nan]),
        ]
    )
    with np.errstate(invalid="ignore"):  # signalling NaNs among the bit patterns
        expected = values.astype(str).astype(np.float64)
    got = np.array(_shortest(values))
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint64), expected[~nan].view(np.uint64))
