"""The Python API: ``softmax_cli.check(logits, targets=None, *, dtype, class_axis, ignore_index)``.

Expected values are derived by hand from the contract's semantics (CONTRACT.md, "Semantics,
per sample row x"), never copied from the tool's own output.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from conftest import COMPUTE_DTYPE_NAMES

from softmax_cli import Report, check
from softmax_cli.report import Findings, Flag, ImplRows, InputInfo, Measures

# --- the seed example -------------------------------------------------------------------
# Row 1 is [1000, 0, -1000] in float32, target 2. Naive: exp(1000) = inf, so s = inf and
# p = [inf/inf, 0, 0] = [nan, 0, 0]; p[2] = 0 makes the loss -log(0) = inf, and the backward
# pass meets inf * 0. Stable: m = 1000, e = [1, exp(-1000), exp(-2000)] = [1, 0, 0] in
# float32, s = 1, lse = 1000 + log(1) = 1000, loss = 1000 - (-1000) = 2000 exactly; p[2] = 0
# is an underflow, which is a note, not a break.


def test_seed_example_flags_only_the_sample_spanning_plus_minus_1000(seed_logits, seed_targets):
    report = check(seed_logits, seed_targets)
    assert [s.index for s in report.samples()] == [1]


def test_seed_example_naive_path_overflows_underflows_and_makes_nan(seed_logits, seed_targets):
    naive = check(seed_logits, seed_targets).sample(1).naive
    assert (naive.overflow, naive.underflow, naive.nan_prob, naive.nan_grad) == (
        True,
        True,
        True,
        True,
    )
    assert naive.loss == math.inf


def test_seed_example_stable_path_only_underflows_and_loss_is_exactly_2000(
    seed_logits, seed_targets
):
    stable = check(seed_logits, seed_targets).sample(1).stable
    assert (stable.overflow, stable.underflow, stable.nan_prob, stable.nan_grad) == (
        False,
        True,
        False,
        False,
    )
    assert stable.loss == 2000.0
    assert not stable.breaks


def test_seed_example_logsumexp_and_max_logit_are_1000(seed_logits, seed_targets):
    sample = check(seed_logits, seed_targets).sample(1)
    assert (sample.max_logit, sample.logsumexp) == (1000.0, 1000.0)


@pytest.mark.parametrize("index", [0, 2])
def test_seed_example_ordinary_samples_are_clean(seed_logits, seed_targets, index):
    sample = check(seed_logits, seed_targets).sample(index)
    assert not sample.flagged
    assert not sample.naive.breaks and not sample.stable.breaks


def test_seed_example_summary_counts_match_the_contract_example(seed_logits, seed_targets):
    summary = check(seed_logits, seed_targets).summary
    assert (summary.samples, summary.flagged) == (3, 1)
    assert (summary.input.nonfinite, summary.input.fully_masked) == (0, 0)
    naive, stable = summary.naive, summary.stable
    assert (naive.overflow, naive.underflow, naive.nan_prob, naive.nan_grad) == (1, 1, 1, 1)
    assert (naive.inf_loss, naive.nan_loss, naive.breaks) == (1, 0, 1)
    assert (stable.overflow, stable.underflow, stable.nan_prob, stable.nan_grad) == (0, 1, 0, 0)
    assert (stable.inf_loss, stable.nan_loss, stable.breaks) == (0, 0, 0)


@pytest.mark.parametrize(
    ("fail_on", "passed"),
    [
        ("input,stable", True),
        ("naive", False),
        ("any", False),
        ("none", True),
        ("input", True),
    ],
)
def test_seed_example_passes_unless_naive_breaks_are_failures(
    seed_logits, seed_targets, fail_on, passed
):
    assert check(seed_logits, seed_targets, fail_on=fail_on).passed is passed


def test_default_fail_on_fails_a_row_with_nan_input():
    report = check(np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]]), np.array([0, 1]))
    assert report.passed is False
    assert report.summary.input.nonfinite == 1


def test_a_minus_inf_entry_alone_is_a_mask_not_a_finding():
    # exp(-inf) = 0 in both paths: the row is [1, 0, e] / (1 + e) with target 2, all finite.
    report = check(np.array([[0.0, -np.inf, 1.0]]), np.array([2]))
    assert report.passed
    assert report.summary.flagged == 0
    assert report.sample(0).stable.loss == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-15)


def test_fully_masked_row_is_an_input_flag_and_breaks_both_paths():
    # All -inf: naive s = 0 and p = 0/0; stable m = -inf and x - m = -inf - -inf = nan.
    report = check(np.full((1, 4), -np.inf), np.array([1]))
    sample = report.sample(0)
    assert sample.input.fully_masked and not sample.input.nonfinite
    assert sample.naive.underflow and sample.naive.nan_prob and sample.naive.nan_grad
    assert sample.stable.nan_prob and sample.stable.nan_grad and math.isnan(sample.stable.loss)
    assert sample.logsumexp == -math.inf


def test_target_on_a_masked_class_has_infinite_stable_loss_but_no_nan_gradient():
    # p[t] = 0 exactly, so loss = inf; grad = p - onehot(t) = [p0, -1] has no nan.
    sample = check(np.array([[0.0, -np.inf]]), np.array([1])).sample(0)
    assert sample.stable.loss == math.inf
    assert sample.stable.nan_grad is False
    assert sample.stable.underflow and sample.stable.breaks


# --- worst-first ordering -----------------------------------------------------------------


def _report_with_flags(
    flags: list[tuple[Flag, Flag]], stable_loss: list[float] | None = None
) -> Report:
    """A report whose samples have these (naive, stable) flags, all with a target."""
    n = len(flags)
    loss = np.ones(n) if stable_loss is None else np.array(stable_loss)
    naive, stable = (np.array([f[k] for f in flags], dtype=np.uint8) for k in (0, 1))
    return Report(
        input=InputInfo("<logits>", "<targets>", (n, 3), "float32", -1),
        compute_dtype="float32",
        fail_on=(),
        findings=Findings(
            input=np.zeros(n, dtype=np.uint8),
            has_target=np.ones(n, dtype=bool),
            impls={"naive": ImplRows(naive, np.ones(n)), "stable": ImplRows(stable, loss)},
        ),
        measures=Measures.empty(n),
        targets=np.zeros(n, dtype=np.int64),
    )


CLEAN = (Flag(0), Flag(0))


def test_samples_are_listed_worst_first_then_by_index():
    note = (Flag(0), Flag.UNDERFLOW)
    naive_only = (Flag.OVERFLOW, Flag(0))
    stable_only = (Flag(0), Flag.NAN_GRAD)
    both = (Flag.NAN_PROB, Flag.NAN_PROB)
    flags = [note, CLEAN, naive_only, stable_only, both, note, naive_only, both, stable_only]
    report = _report_with_flags(flags)
    assert [s.index for s in report.samples()] == [4, 7, 3, 8, 2, 6, 0, 5]


def test_samples_with_include_clean_lists_clean_samples_last():
    report = _report_with_flags([CLEAN, (Flag.OVERFLOW, Flag(0)), CLEAN])
    assert [s.index for s in report.samples(include_clean=True)] == [1, 0, 2]


def test_a_non_finite_loss_alone_makes_a_stable_break():
    report = _report_with_flags([CLEAN, CLEAN], stable_loss=[1.0, math.inf])
    assert [s.index for s in report.samples()] == [1]
    assert report.summary.stable.breaks == 1 and report.summary.stable.inf_loss == 1


def test_real_rows_list_both_path_breaks_before_naive_only_breaks():
    logits = np.array(
        [
            [0.0, 1.0, 2.0],  # clean
            [1000.0, 0.0, 0.0],  # naive overflows (float32), stable is clean
            [0.0, np.nan, 0.0],  # nan input: both break
        ],
        dtype=np.float32,
    )
    report = check(logits, np.array([0, 1, 2]))
    assert [s.index for s in report.samples()] == [2, 1]


# --- dtype resolution ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_dtype", "compute"),
    [
        (np.float16, "float16"),
        (np.float32, "float32"),
        (np.float64, "float64"),
        (ml_dtypes.bfloat16, "bfloat16"),
        (np.int8, "float32"),
        (np.int32, "float32"),
        (np.int64, "float32"),
        (np.uint8, "float32"),
    ],
)
def test_auto_dtype_keeps_float_precision_and_computes_integers_in_float32(input_dtype, compute):
    report = check(np.zeros((2, 3), dtype=input_dtype))
    assert report.compute_dtype == compute


@pytest.mark.parametrize("dtype", COMPUTE_DTYPE_NAMES)
def test_explicit_dtype_overrides_the_input_dtype(dtype):
    report = check(np.zeros((2, 3), dtype=np.float64), dtype=dtype)
    assert report.compute_dtype == dtype
    assert report.input.dtype == "float64"


@pytest.mark.parametrize(
    ("dtype", "overflows"),
    # exp(100) = 2.7e43 exceeds the float32 and bfloat16 maximum (3.4e38) and float16's
    # (65504); only float64 holds it.
    [("float64", False), ("float32", True), ("float16", True), ("bfloat16", True)],
)
def test_naive_overflow_depends_on_the_compute_dtype(dtype, overflows):
    report = check(np.array([[100.0, 0.0]]), np.array([0]), dtype=dtype)
    assert report.sample(0).naive.overflow is overflows


def test_float16_naive_overflows_above_11_09_but_not_at_11():
    # exp(11) = 59874 < 65504 (float16 max); exp(11.1) = 66171 rounds to inf in float16.
    report = check(np.array([[11.0, 0.0], [11.1, 0.0]], dtype=np.float16), np.array([0, 0]))
    assert [report.sample(i).naive.overflow for i in (0, 1)] == [False, True]


# --- targets: ignored, absent ---------------------------------------------------------------


def test_ignored_target_has_no_loss_and_no_nan_grad_verdict():
    report = check(np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([-100, 1]))
    ignored = report.sample(0)
    assert ignored.target == -100
    for path in (ignored.naive, ignored.stable):
        assert path.loss is None and path.nan_grad is None


def test_ignore_index_may_be_a_valid_class_index():
    # With ignore_index=1 a target of 1 means "no target", as in PyTorch.
    report = check(np.array([[0.0, 1.0], [0.0, 1.0]]), np.array([1, 0]), ignore_index=1)
    assert report.sample(0).stable.loss is None
    assert report.sample(1).stable.loss == pytest.approx(math.log1p(math.e), rel=1e-15)


def test_ignored_target_on_an_overflowing_row_reports_forward_flags_only():
    # Without a loss there is no backward pass: overflow and nan_prob remain, nan_grad is None.
    sample = check(np.array([[1000.0, 0.0]], dtype=np.float32), np.array([-100])).sample(0)
    assert sample.naive.overflow and sample.naive.nan_prob
    assert sample.naive.nan_grad is None and sample.naive.loss is None


def test_without_targets_every_loss_and_nan_grad_is_none():
    report = check(np.array([[0.0, 1.0], [1000.0, 0.0]], dtype=np.float32))
    assert report.input.targets is None
    for sample in report.samples(include_clean=True):
        assert sample.target is None
        for path in (sample.naive, sample.stable):
            assert path.loss is None and path.nan_grad is None


def test_without_targets_underflow_means_the_sum_is_zero():
    # float32: exp(-200) = 0 for every entry, so the naive s = 0; stable s = 1.
    sample = check(np.array([[-200.0, -201.0]], dtype=np.float32)).sample(0)
    assert sample.naive.underflow and sample.naive.nan_prob
    assert not sample.stable.underflow


def test_an_all_ignored_target_array_reports_no_losses():
    report = check(np.zeros((3, 2)), np.full(3, -100))
    assert report.summary.naive.inf_loss == 0
    assert all(s.stable.loss is None for s in report.samples(include_clean=True))


# --- N-D logits and positions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_axis", "shape", "where", "position"),
    [
        (-1, (2, 4, 3), (1, 2, slice(None)), (1, 2)),
        (2, (2, 4, 3), (1, 2, slice(None)), (1, 2)),
        (1, (2, 3, 4), (1, slice(None), 2), (1, 2)),
        (0, (3, 2, 4), (slice(None), 1, 2), (1, 2)),
        (-3, (3, 2, 4), (slice(None), 1, 2), (1, 2)),
    ],
)
def test_nd_logits_flag_the_sample_at_its_position_in_c_order(class_axis, shape, where, position):
    logits = np.zeros(shape, dtype=np.float32)
    logits[where] = [1000.0, 0.0, 0.0]  # the sample axes are (2, 4) in every case
    report = check(logits, class_axis=class_axis)
    flagged = list(report.samples())
    assert [(s.index, s.position) for s in flagged] == [(position[0] * 4 + position[1], position)]


def test_nd_targets_are_read_in_the_c_order_of_the_sample_axes():
    # Classes on axis 0; sample (i, j) has logits [0, 0, 0] except class 2 at sample (1, 0),
    # which gets logit log(4): its loss for target 2 is log(6) - log(4) = log(1.5).
    logits = np.zeros((3, 2, 2))
    logits[2, 1, 0] = math.log(4.0)
    targets = np.array([[0, 1], [2, 0]])
    report = check(logits, targets, class_axis=0)
    losses = [report.sample(i).stable.loss for i in range(4)]
    assert losses[2] == pytest.approx(math.log(1.5), rel=1e-14)
    assert losses[0] == losses[1] == losses[3] == pytest.approx(math.log(3.0), rel=1e-14)


def test_a_single_1d_row_is_one_sample_at_the_empty_position():
    report = check(np.array([0.0, math.log(3.0)]), np.array(1))
    sample = report.sample(0)
    assert (report.summary.samples, sample.position) == (1, ())
    assert sample.stable.loss == pytest.approx(math.log(4.0 / 3.0), rel=1e-14)


def test_regression_strided_1d_logits_crashed_gathering_by_an_empty_sample_shape():
    # Bug: a non-contiguous 1-D array (one sample) took the gather path, which called
    # np.unravel_index(indices, ()) and raised ValueError.
    row = np.array([0.0, 9.0, math.log(3.0), 9.0])[::2]
    sample = check(row, np.array(1)).sample(0)
    assert sample.stable.loss == pytest.approx(math.log(4.0 / 3.0), rel=1e-14)


def test_strided_2d_logits_give_the_same_report_as_a_contiguous_copy():
    logits = np.array([[0.0, 1.0], [9.0, 9.0], [1000.0, 0.0], [9.0, 9.0]], dtype=np.float32)
    strided, contiguous = (
        check(logits[::2], np.array([0, 1])),
        check(np.ascontiguousarray(logits[::2]), np.array([0, 1])),
    )
    for name in ("naive", "stable"):
        ours, theirs = strided.findings.impls[name], contiguous.findings.impls[name]
        np.testing.assert_array_equal(ours.flags, theirs.flags)
        np.testing.assert_array_equal(ours.loss, theirs.loss)
