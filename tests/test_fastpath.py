"""The fast classifier returns exactly what the reference kernels' classifier returns.

Flags must be equal and losses, maxima and log-sum-exps equal bit for bit (NaN where the
reference has NaN), on random rows and on the rows where the shortcuts of the fast path
could go wrong: around each dtype's exp overflow threshold, sums that underflow, masks,
NaN and infinities, targets on masked classes, and every dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmax_cli import check, classify
from softmax_cli.classify import classify_block, reference_findings
from softmax_cli.dtypes import COMPUTE_DTYPES, ComputeDtype


def assert_same(x: np.ndarray, targets: np.ndarray | None, dtype: ComputeDtype, piece=None):
    """classify_block(x) finds what the reference kernels find: flags equal, losses equal bit
    for bit (same NaNs, same signs of zero)."""
    with np.errstate(over="ignore"):  # large logits are +-inf in half precision
        x = x.astype(dtype.storage)
    expected = reference_findings(dtype.to_work(x), targets, dtype)
    got, _ = classify_block(x, targets, dtype, piece)
    assert_findings_equal(got, expected)


def bits(values: np.ndarray) -> np.ndarray:
    """The float64 bit patterns (the table stores float64): equal values, NaNs, zero signs."""
    return np.asarray(values, dtype=np.float64).view(np.uint64)


def neighbours(value: float, dtype: ComputeDtype) -> list[float]:
    """``value`` (not 0) in D and its neighbours one ulp either side, stepped on the bits."""
    v = np.array([value], dtype=dtype.storage)
    as_int = v.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[v.itemsize])
    # Magnitude order is bit order; for a negative value the bigger magnitude is below.
    smaller, bigger = (as_int - 1).view(dtype.storage), (as_int + 1).view(dtype.storage)
    below, above = (smaller, bigger) if value > 0 else (bigger, smaller)
    return [float(below[0]), float(v[0]), float(above[0])]


def edge_rows(dtype: ComputeDtype, classes: int = 6) -> np.ndarray:
    """Rows at every boundary the fast path reasons about."""
    big = dtype.exp_overflow_threshold
    tiny = float(np.finfo(np.float64).tiny) if dtype.name == "float64" else 1e-30
    rows = []
    for top in [*neighbours(big, dtype), *neighbours(-big, dtype), 0.0, 1.0, -1.0]:
        rows.append(np.full(classes, top))  # every class equal
        row = np.linspace(top - 30, top, classes)
        rows.append(row)  # a spread below the threshold
        rows.append(row[::-1])
        rows.append(np.where(np.arange(classes) % 2 == 0, top, -np.inf))  # masks
    for low in (-80, -100, -104, -110, -700, -745, -750, -1000, -1e4, -1e30):
        rows.append(np.full(classes, float(low)))  # naive sum subnormal or zero
        rows.append(np.linspace(float(low), float(low) + 20, classes))
    rows += [
        np.full(classes, -np.inf),  # fully masked
        np.r_[np.nan, np.zeros(classes - 1)],
        np.r_[np.inf, np.zeros(classes - 1)],
        np.r_[np.inf, -np.inf, np.zeros(classes - 2)],
        np.r_[np.nan, np.inf, -np.inf, np.zeros(classes - 3)],
        np.r_[1e30, np.zeros(classes - 1)],
        np.r_[-1e30, np.zeros(classes - 1)],
        np.r_[1e30, -1e30, np.zeros(classes - 2)],
        np.r_[tiny, -tiny, np.zeros(classes - 2)],
        np.r_[big, big - 200, np.zeros(classes - 2)],
        np.r_[20.0, -200.0, np.zeros(classes - 2)],  # p[t] underflows, the stable loss not
    ]
    with np.errstate(over="ignore"):  # 1e30 does not fit in half precision: it is +-inf
        return np.array(rows).astype(dtype.storage)


@pytest.fixture
def dtype(compute_dtype: ComputeDtype) -> ComputeDtype:
    """Each compute dtype in turn (conftest's ``compute_dtype``)."""
    return compute_dtype


def test_edge_rows_with_a_target_on_every_class_match_the_reference(dtype):
    x = edge_rows(dtype)
    for target in range(x.shape[1]):
        assert_same(x, np.full(len(x), target), dtype)


def test_edge_rows_with_ignored_targets_match_the_reference(dtype):
    x = edge_rows(dtype)
    assert_same(x, np.where(np.arange(len(x)) % 3 == 0, -1, 1), dtype)


def test_edge_rows_without_targets_match_the_reference(dtype):
    assert_same(edge_rows(dtype), None, dtype)


def test_edge_rows_in_pieces_of_one_and_three_rows_match_the_reference(dtype):
    x = edge_rows(dtype)
    targets = np.arange(len(x)) % x.shape[1]
    for piece in (1, 3):
        assert_same(x, targets, dtype, piece)


def test_one_class_rows_match_the_reference(dtype):
    x = np.array([[0.0], [1000.0], [-1000.0], [-np.inf], [np.nan], [np.inf]])
    assert_same(x, np.array([0, 0, 0, 0, -1, 0]), dtype)


def test_a_target_on_a_masked_class_matches_the_reference(dtype):
    x = np.array([[0.0, -np.inf, 1.0], [500.0, -np.inf, 1.0], [-500.0, -np.inf, -499.0]])
    assert_same(x, np.array([1, 1, 1]), dtype)


def test_random_rows_at_many_scales_match_the_reference(dtype):
    rng = np.random.default_rng(3)
    scale = rng.choice([0.1, 1, 10, 30, 100, 1e3, 1e5], size=(400, 1))
    shift = rng.choice([0, -1e3, -100, -80, 50, 80, 88, 700], size=(400, 1))
    x = rng.standard_normal((400, 37)) * scale + shift
    assert_same(x, rng.integers(-1, 37, size=400), dtype, piece=16)


def test_wide_rows_match_the_reference(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 70_000)) * 3
    x[1] += 100  # naive overflow
    x[2] -= 200  # naive sum underflows in float32
    x[3, 5] = 200
    assert_same(x, np.array([0, 1, 2, 5, 69_999]), dtype)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(list(COMPUTE_DTYPES.values())))
def test_any_rows_hypothesis_draws_match_the_reference(data, dtype):
    classes = data.draw(st.integers(1, 9), label="classes")
    rows = data.draw(st.integers(1, 6), label="rows")
    elements = st.one_of(
        st.floats(-120, 120, width=32),
        st.sampled_from([-np.inf, np.inf, np.nan, 88.72, -103.9, 709.78, -745.1, 11.09]),
        st.floats(allow_nan=True, allow_infinity=True, width=64),
    )
    x = data.draw(hnp.arrays(np.float64, (rows, classes), elements=elements), label="x")
    targets = data.draw(
        hnp.arrays(np.int64, rows, elements=st.integers(-1, classes - 1)), label="targets"
    )
    with np.errstate(over="ignore"):
        assert_same(x, targets, dtype)


@pytest.fixture
def mixed_dump() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 50)).astype(np.float32) * 4
    x[::17] *= 40
    x[3::23] -= 900
    x[7, 3] = np.nan
    x[8] = -np.inf
    targets = rng.integers(0, 50, size=300)
    targets[::11] = -100
    return x, targets


def assert_findings_equal(a, b):
    np.testing.assert_array_equal(a.input, b.input)
    np.testing.assert_array_equal(a.has_target, b.has_target)
    assert list(a.impls) == list(b.impls)
    for name in a.impls:
        np.testing.assert_array_equal(a.impls[name].flags, b.impls[name].flags, name)
        np.testing.assert_array_equal(bits(a.impls[name].loss), bits(b.impls[name].loss), name)


def assert_reports_equal(a, b):
    assert_findings_equal(a.findings, b.findings)
    for name in ("max_logit", "logsumexp"):
        np.testing.assert_array_equal(
            bits(getattr(a.measures, name)), bits(getattr(b.measures, name))
        )


def test_check_in_small_pieces_and_blocks_equals_one_block(monkeypatch, mixed_dump):
    x, targets = mixed_dump
    one = check(x, targets)
    monkeypatch.setattr(classify, "PIECE_BYTES", 3 * 50 * 4)  # three rows a piece
    monkeypatch.setattr(classify, "BLOCK_PIECES", 2)
    assert_reports_equal(check(x, targets), one)


def test_one_and_two_workers_give_the_same_table(monkeypatch, mixed_dump):
    x, targets = mixed_dump
    monkeypatch.setattr(classify, "PIECE_BYTES", 4 * 50 * 4)
    monkeypatch.setattr(classify, "BLOCK_PIECES", 3)
    reports = []
    for workers in (1, 2):
        monkeypatch.setattr(classify, "WORKERS", workers)
        reports.append(check(x, targets))
    assert_reports_equal(*reports)


def test_check_equals_the_reference_on_every_row(mixed_dump):
    x, targets = mixed_dump
    dtype = COMPUTE_DTYPES["float32"]
    expected = reference_findings(x.copy(), np.where(targets == -100, -1, targets), dtype)
    assert_findings_equal(check(x, targets).findings, expected)


def test_overflowing_and_underflowing_rows_need_no_reference(dtype):
    """The extreme rows of real dumps are decided from scalars, not by the slow fallback."""
    from softmax_cli import fastpath

    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 40)) * 3
    x[0] *= 100  # naive exp overflows
    x[1] -= 1e4  # naive sum is 0
    x[2, 7] = -1e4  # the target's p underflows to 0
    x[3, 5] = -np.inf  # target on a masked class
    x = dtype.to_work(x.astype(dtype.storage))
    targets = np.array([0, 1, 7, 5, -1, 3])
    scalars = fastpath.reduce_rows(x, targets, dtype, piece_rows=4)
    assert not fastpath.derive(scalars, targets, dtype).undecided.any()


def test_scratch_buffers_are_kept_per_dtype_and_bounded():
    """A sweep alternates dtypes block by block: each dtype finds its own buffers again
    (not made anew at every switch), and a process checking many shapes keeps only a few."""
    from softmax_cli import fastpath

    scratch = fastpath._Scratch()
    f32, bf16 = COMPUTE_DTYPES["float32"], COMPUTE_DTYPES["bfloat16"]
    first = scratch.buffers(4, 100, f32, 16)
    other = scratch.buffers(4, 100, bf16, 16)
    assert scratch.buffers(4, 100, f32, 16) is first
    assert scratch.buffers(4, 100, bf16, 8) is other  # a shorter block: the same running maxima
    assert other[0].dtype == np.float32 and other[2].dtype == bf16.storage
    longer = scratch.buffers(4, 100, f32, 32)  # a longer block: longer running maxima only
    assert all(a is b for a, b in zip(longer[:4], first[:4], strict=True))
    assert longer[4].shape == (32, fastpath._Strands.width(100)) and len(first[4]) == 16
    for classes in range(101, 101 + 3 * fastpath._Scratch.KEPT):
        scratch.buffers(4, classes, f32, 16)
    assert len(scratch.kept) == fastpath._Scratch.KEPT
    assert scratch.buffers(4, 100, f32, 16)[0] is not first[0]  # the oldest went first


def test_a_few_rows_use_the_whole_pieces_buffers():
    """The handful of rows a sweep checks between blocks (those its float64 cannot read off
    float32) must find the blocks' buffers, not push them out for buffers of their size."""
    from softmax_cli import fastpath

    dtype = COMPUTE_DTYPES["float32"]
    rng = np.random.default_rng(8)
    block, few = rng.standard_normal((8, 50)), rng.standard_normal((3, 50))
    targets = np.zeros(8, dtype=np.int64)
    fastpath.reduce_rows(block, targets, dtype, piece_rows=4)
    before = dict(fastpath._scratch.kept)
    fastpath.reduce_rows(few, targets[:3], dtype, piece_rows=4)
    assert fastpath._scratch.kept.keys() == before.keys()
    assert all(fastpath._scratch.kept[k] is v for k, v in before.items())


def top_two_directly(row: np.ndarray) -> tuple[float, float]:
    """A row's largest entry and its largest but one (a tie counts twice), by sorting."""
    if np.isnan(row).any():
        return np.nan, np.nan
    ordered = np.sort(row)
    return float(ordered[-1]), float(ordered[-2]) if len(row) > 1 else -np.inf


@pytest.mark.parametrize("classes", [*range(1, 40), 255, 256, 257, 271, 32000, 32003])
def test_strands_find_the_two_largest_as_sorting_does_wherever_they_are(classes):
    """Rows with the largest and second-largest entries in the same strand, in two, in the
    tail of a row that the strands do not divide, tied, or beside NaN and masks."""
    from softmax_cli.fastpath import _Strands

    rng = np.random.default_rng(classes)
    places = np.unique(np.r_[0, 1, classes - 1, classes // 2, rng.integers(0, classes, 6)])
    places = places[places < classes]
    rows = []
    for first in places:
        for second in places:
            row = rng.standard_normal(classes).astype(np.float32)
            row[second] = 5
            row[first] = 6 if first != second else 5
            rows.append(row)
            if first != second:
                tied = row.copy()
                tied[second] = 6  # a tie at the top: the margin is 0
                rows.append(tied)
    masked = np.full(classes, -np.inf, dtype=np.float32)
    rows.append(masked.copy())  # every class masked
    masked[places[-1]] = 1.0
    rows.append(masked)  # one live class
    with_nan = rng.standard_normal(classes).astype(np.float32)
    with_nan[places[-1]] = np.nan
    rows.append(with_nan)
    x = np.array(rows)
    dtype = COMPUTE_DTYPES["float32"]
    strands = _Strands(classes, np.empty((len(x), _Strands.width(classes)), dtype=dtype.work))
    # In pieces of 3 rows, as reduce_rows reads them.
    largest = np.concatenate(
        [strands.maxima(x[i : i + 3], slice(i, i + 3)) for i in range(0, len(x), 3)]
    )
    second = strands.second(x, dtype)
    expected = np.array([top_two_directly(row) for row in x])
    np.testing.assert_array_equal(largest, expected[:, 0])
    live = ~np.isnan(largest)
    np.testing.assert_array_equal(second[live], expected[live, 1])


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_the_margin_of_a_wider_file_is_that_of_its_values_in_d(name):
    """The second-largest entry is read from the block at the end: in D, as the piece holds
    it, not in the file's dtype (x2 and m round to D; a float64 margin of 1e-3 is 0)."""
    dtype = COMPUTE_DTYPES[name]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 257)) * 4
    x[:, 7] = x.max(axis=1) + 1e-3  # the largest, a hair above the second
    with np.errstate(over="ignore"):
        in_d = x.astype(dtype.storage)
    wide, narrow = check(x, dtype=name).measures, check(in_d, dtype=name).measures
    np.testing.assert_array_equal(wide.margin, narrow.margin)
    assert (narrow.margin == 0).any()  # the hair is below D's resolution on some rows
