"""Properties of the kernels and of check() over random rows with NaN, +inf and -inf entries,
in every compute dtype: what the contract promises whatever the input holds.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmax_cli import check, kernels
from softmax_cli.classify import reference_findings
from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.report import BREAKING, BUILTIN, Flag, InputFlag

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = list(COMPUTE_DTYPES)


def _values(storage: np.dtype) -> st.SearchStrategy[float]:
    """Finite values of the dtype, from tiny to its largest, and the three non-finite ones."""
    largest = float(ml_dtypes.finfo(storage).max)
    return st.one_of(
        st.floats(-largest, largest, allow_nan=False, allow_infinity=False),
        st.floats(-30, 30),
        st.sampled_from([0.0, -0.0, largest, -largest, math.nan, math.inf, -math.inf]),
    )


@st.composite
def chunks(draw, finite_only: bool = False):
    """(compute dtype, rows in its work dtype, targets with -1 for none)."""
    dtype = COMPUTE_DTYPES[draw(st.sampled_from(DTYPES))]
    rows, classes = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    values = _values(dtype.storage)
    if finite_only:
        values = values.filter(math.isfinite)
    raw = draw(st.lists(values, min_size=rows * classes, max_size=rows * classes))
    with np.errstate(over="ignore"):  # values rounded to the dtype may not be finite in it
        x = dtype.to_work(np.array(raw, dtype=np.float64).reshape(rows, classes))
    if finite_only:
        x = np.nan_to_num(x, posinf=0.0, neginf=0.0)  # a value that rounded to inf
    targets = np.array(draw(st.lists(st.integers(-1, classes - 1), min_size=rows, max_size=rows)))
    return dtype, x, targets


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
        values = draw(st.lists(_values(np.dtype(np.float64)), min_size=size, max_size=size))
        with np.errstate(over="ignore"):
            array = np.array(values).astype(dtype)
    array = array.reshape(shape)
    class_axis = draw(st.integers(-len(shape), len(shape) - 1))
    return array, class_axis


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(), st.sampled_from(["auto", *DTYPES]), st.data())
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


@pytest.mark.parametrize("name", DTYPES)
def test_a_row_of_the_largest_finite_values_is_handled_by_the_stable_path(name):
    dtype = COMPUTE_DTYPES[name]
    largest = float(ml_dtypes.finfo(dtype.storage).max)
    x = dtype.to_work(np.array([[largest, -largest, largest]]))
    stable = kernels.stable(x, np.array([1]), dtype)
    assert not np.isnan(stable.probs).any()
    assert not np.isnan(stable.loss).any()
