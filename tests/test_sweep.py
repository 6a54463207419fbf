"""``--sweep``: the whole check in float64, float32, bfloat16 and float16 from one input.

Each dtype of the sweep is held to a check run in that dtype alone (the sweep reads each
block once for all four, which must change nothing); the verdicts to rows whose fate in
each dtype follows from the dtypes' ranges: ``exp(12)`` overflows float16 (max 65504)
only, ``exp(100)`` float32 and bfloat16 too (ln max 88.7), ``exp(800)`` every dtype.
"""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

from softmax_cli import check, classify, widen
from softmax_cli.cli import app
from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.options import OutputFormat
from softmax_cli.render import json as json_render
from softmax_cli.render import render
from softmax_cli.schema import load as load_schema
from softmax_cli.sweep import SWEEP_DTYPES, rows, share, verdict

ORDER = ["float64", "float32", "bfloat16", "float16"]


def _rows(n: int, peak: float, rng: np.random.Generator, classes: int = 9) -> np.ndarray:
    """``n`` rows of small logits whose maximum is ``peak``."""
    x = rng.uniform(-3, 0, size=(n, classes))
    x[:, 0] = peak
    return x


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def mixed(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """100 rows: 88 harmless, 12 whose naive exp overflows float16 only."""
    x = np.concatenate([_rows(88, 2.0, rng), _rows(12, 12.0, rng)]).astype(np.float32)
    rng.shuffle(x)
    return x, rng.integers(0, x.shape[1], size=len(x))


def test_sweep_lists_the_four_dtypes_widest_first(mixed):
    report = check(*mixed, sweep=True)
    assert [r.compute_dtype for r in report.sweep] == ORDER
    assert list(SWEEP_DTYPES) == ORDER


def extreme_rows(rng: np.random.Generator, classes: int = 9) -> np.ndarray:
    """Rows at and around every limit of every dtype, and rows no dtype can check."""
    peaks = [0.0, 11.0, 11.2, 80.0, 86.0, 87.5, 88.5, 88.8, 100.0]
    peaks += [690.0, 705.0, 707.5, 709.5, 709.9, 720.0, -90.0, -100.0, -105.0, -700.0, -750.0]
    x = np.concatenate([_rows(3, peak, rng, classes) for peak in peaks])
    low = _rows(6, 0.0, rng, classes)
    low[:, 1] = [-84.0, -87.0, -90.0, -104.0, -705.0, -750.0]  # the target's p[t] is tiny
    odd = _rows(3, 0.0, rng, classes)
    odd[0] = -np.inf
    odd[1, 2] = np.nan
    odd[2, 3] = np.inf
    return np.concatenate([x, low, odd])


def extreme_targets(x: np.ndarray) -> np.ndarray:
    targets = np.zeros(len(x), dtype=np.int64)
    targets[-9:-3] = 1  # the low rows' tiny class
    targets[::7] = -100  # some ignored
    return targets


def assert_close(got, expected, path="summary"):
    """Equal JSON summaries, floats to 1e-5 (a dtype read off another: see widen)."""
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), path
        for key in expected:
            assert_close(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, float) and not isinstance(got, str):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-5), path
    else:
        assert got == expected, path


def assert_read_off_agrees(swept, alone):
    """A dtype read off another against its check alone: input flags and path flags
    equal, losses, headroom and the summary's numbers to 1e-6 / 1e-5 (the contract: 1e-4)."""
    np.testing.assert_array_equal(swept.findings.input, alone.findings.input)
    for name in ("naive", "stable"):
        mine, theirs = swept.findings.impls[name], alone.findings.impls[name]
        np.testing.assert_array_equal(mine.flags, theirs.flags, name)
        np.testing.assert_allclose(mine.loss, theirs.loss, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(swept.headroom, alone.headroom, rtol=1e-9, atol=1e-5)
    mine = json_render.document(swept)["summary"]
    theirs = json_render.document(alone)["summary"]
    # Rows tied for the minimum headroom (the same logits in another order) are ordered by
    # their last digits: either is the answer.
    index = mine["headroom"]["index"]
    if index is not None and index != theirs["headroom"]["index"]:
        assert alone.headroom[index] == pytest.approx(theirs["headroom"]["min"], abs=1e-5)
        mine["headroom"]["index"] = theirs["headroom"]["index"]
    assert_close(mine, theirs)


@pytest.mark.parametrize("source", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("data", ["mixed", "extreme"])
@pytest.mark.parametrize("dtype", ORDER)
def test_each_swept_dtype_finds_what_a_check_in_that_dtype_alone_finds(
    mixed, rng, source, data, dtype
):
    """Flags and counts exactly; the dtypes read off another (float64 of a float32 dump,
    float32 and float64 of a half-precision one) their losses and health to 1e-5."""
    x, targets = mixed if data == "mixed" else (extreme_rows(rng), None)
    if targets is None:
        targets = extreme_targets(x)
    with np.errstate(over="ignore"):  # beyond float16's range: +-inf, out_of_range
        x = x.astype(COMPUTE_DTYPES[source].storage)
    swept = next(r for r in check(x, targets, sweep=True).sweep if r.compute_dtype == dtype)
    alone = check(x, targets, dtype=dtype)
    read_off = dtype in widen.plan(
        [COMPUTE_DTYPES[d] for d in (source, *ORDER)], x.dtype, x.shape[1]
    )
    assert read_off == (dtype == "float64" or (source != "float32" and dtype == "float32")), (
        "which dtypes are read off another"
    )
    if read_off:
        assert_read_off_agrees(swept, alone)
        return
    np.testing.assert_array_equal(swept.findings.input, alone.findings.input)
    for name in ("naive", "stable"):
        mine, theirs = swept.findings.impls[name], alone.findings.impls[name]
        np.testing.assert_array_equal(mine.flags, theirs.flags, name)
        if name == "naive" and dtype != source:
            # Not shown in a sweep: the naive loss of a row whose flags are provably clear
            # is read off the stable pass, a few roundings of D from the naive code's own.
            np.testing.assert_array_equal(np.isfinite(mine.loss), np.isfinite(theirs.loss))
            unit = float(COMPUTE_DTYPES[dtype].finfo.eps)
            np.testing.assert_allclose(mine.loss, theirs.loss, rtol=4 * unit, atol=4 * unit)
        else:
            np.testing.assert_array_equal(mine.loss, theirs.loss)
    assert swept.summary == alone.summary
    np.testing.assert_array_equal(swept.headroom, alone.headroom)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_sweep_flags_rows_at_the_naive_sums_edge_as_a_check_alone(dtype):
    # Rows of n entries v (the rest masked) whose naive sum in D, n rounded exp(v) added
    # up, is just past D's largest value or just short of it, and on the other side of it
    # from n * exp(v) unrounded: a sweep that took such a row's naive flags from its log Z
    # rather than from the naive pass itself (widen.MARGIN too small) would flag it wrongly.
    d = COMPUTE_DTYPES[dtype]
    classes = 1000
    candidates = np.arange(2**15, dtype=np.uint16).view(d.storage).astype(np.float32)
    candidates = candidates[(candidates > 0) & (candidates < d.log_max)]
    rows = []
    with np.errstate(over="ignore"):
        rounded = d.round(np.exp(candidates))
        for n in range(100, classes):
            naive_sum = d.round((rounded * np.float32(n)).astype(np.float32))
            read_off = d.round((np.exp(candidates.astype(np.float64)) * n).astype(np.float32))
            for v in candidates[np.isinf(naive_sum) != np.isinf(read_off)]:
                rows.append(np.where(np.arange(classes) < n, v, -np.inf))
    x = np.array(rows, dtype=np.float32)
    targets = np.zeros(len(x), dtype=np.int64)
    swept = next(r for r in check(x, targets, sweep=True).sweep if r.compute_dtype == dtype)
    alone = check(x, targets, dtype=dtype)
    assert alone.summary.naive.overflow > 0
    for name in ("naive", "stable"):
        mine, theirs = swept.findings.impls[name], alone.findings.impls[name]
        np.testing.assert_array_equal(mine.flags, theirs.flags, name)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_report_itself_stays_the_dtype_run(mixed, dtype):
    swept, alone = check(*mixed, dtype=dtype, sweep=True), check(*mixed, dtype=dtype)
    assert swept.compute_dtype == dtype
    assert swept.summary == alone.summary
    assert swept.passed == alone.passed
    np.testing.assert_array_equal(swept.ordered(), alone.ordered())


def test_without_sweep_there_is_none(mixed):
    assert check(*mixed).sweep == ()


def test_the_sweep_reads_each_block_once(mixed, monkeypatch):
    """Classifying four dtypes fetches every block once, as one dtype does."""
    fetched = []
    block = classify._SampleRows.block
    monkeypatch.setattr(
        classify._SampleRows,
        "block",
        lambda self, a, b: fetched.append((a, b)) or block(self, a, b),
    )
    monkeypatch.setattr(classify, "BLOCK_PIECES", 1)
    monkeypatch.setattr(classify, "PIECE_BYTES", 9 * 8 * 10)  # 10 float64 rows a block
    check(*mixed, dtype="float64")
    once = sorted(fetched)
    fetched.clear()
    check(*mixed, dtype="float64", sweep=True)
    assert sorted(fetched) == once
    assert len(once) == 10


def test_the_float16_row_counts_the_rows_past_its_range(mixed):
    """exp(12) = 162755 > 65504: the naive path overflows on exactly the 12 rows in float16,
    nowhere in the wider dtypes, and the stable one never does."""
    x, _ = mixed
    expected = int(np.count_nonzero(x.max(axis=1) > np.log(65504)))
    assert expected == 12
    by_dtype = {row.compute_dtype: row for row in rows(check(*mixed, sweep=True))}
    assert by_dtype["float16"].naive_breaks == expected
    assert all(by_dtype[d].naive_breaks == 0 for d in ORDER[:3])
    assert all(row.stable_breaks == 0 for row in by_dtype.values())


def test_min_headroom_per_dtype_is_ln_max_minus_the_largest_logsumexp(mixed):
    x, _ = mixed
    x64 = x.astype(np.float64)
    m = x64.max(axis=1)
    lse = m + np.log(np.exp(x64 - m[:, None]).sum(axis=1))
    for row in rows(check(*mixed, sweep=True)):
        if row.compute_dtype == "float64":
            log_max = np.log(np.finfo(np.float64).max)
        elif row.compute_dtype == "float16":
            log_max = np.log(65504.0)
        else:
            log_max = np.log(float(np.finfo(np.float32).max))
        # bfloat16 and float16 round the logits: a few hundredths of a nat at 12.
        assert row.min_headroom == pytest.approx(log_max - np.abs(lse).max(), abs=0.05)


# --- the verdict line ----------------------------------------------------------------------


def _verdict(x: np.ndarray, targets: np.ndarray | None = None) -> str:
    return verdict(rows(check(x, targets, sweep=True)))


def test_verdict_safe_everywhere(rng):
    assert _verdict(_rows(10, 1.0, rng)) == (
        "safe in every dtype down to float16: neither path breaks on any sample"
    )


def test_verdict_safe_down_to_bfloat16(rng):
    x = np.concatenate([_rows(75, 1.0, rng), _rows(25, 12.0, rng)])
    assert _verdict(x) == (
        "safe down to bfloat16; in float16 the naive path breaks on 25% of samples "
        "and the stable one on none"
    )


def test_verdict_safe_only_in_float64_names_the_worse_narrower_dtype(rng):
    x = np.concatenate([_rows(80, 1.0, rng), _rows(10, 100.0, rng), _rows(10, 12.0, rng)])
    assert _verdict(x) == (
        "safe down to float64; in float32 the naive path breaks on 10% of samples and the "
        "stable one on none; in float16 the naive path on 20% of samples and the stable one "
        "on none"
    )


def test_verdict_breaks_already_in_float64(rng):
    x = np.concatenate([_rows(999, 1.0, rng), _rows(1, 800.0, rng)])
    assert _verdict(x) == (
        "breaks already in float64: the naive path breaks on 0.1% of samples (1) "
        "and the stable one on none"
    )


def test_verdict_does_not_blame_a_dtype_for_nan_input(rng):
    x = _rows(10, 1.0, rng)
    x[3, 2] = np.nan
    assert _verdict(x) == (
        "safe in every dtype down to float16: neither path breaks on any sample "
        "(not counting samples whose input is NaN, +inf or fully masked)"
    )


def test_verdict_says_nothing_of_padding_that_breaks_nothing(rng):
    x = _rows(10, 1.0, rng)
    x[3] = -np.inf
    assert verdict(rows(check(x, masked="ignore", sweep=True))) == (
        "safe in every dtype down to float16: neither path breaks on any sample"
    )


def test_verdict_counts_values_beyond_float16s_range(rng):
    """70000 is finite in the file but +inf in float16: the naive path breaks on it in every
    dtype, the stable one only in float16, and the verdict counts that (it is the dtype's
    doing, not the input's)."""
    x = _rows(4, 1.0, rng)
    x[2, 0] = 70000.0
    assert _verdict(x.astype(np.float32), np.zeros(4, dtype=np.int64)) == (
        "breaks already in float64: the naive path breaks on 25% of samples and the stable "
        "one on none; in float16 the naive path on 25% of samples and the stable one on 25% "
        "of samples"
    )


@pytest.mark.parametrize(
    ("count", "total", "text"),
    [
        (0, 10, "none"),
        (10, 10, "every sample"),
        (1, 8, "12% of samples"),
        (999, 1000, "99% of samples"),
        (1, 4096, "0.024% of samples (1)"),
        (3, 100, "3% of samples"),
    ],
)
def test_share_words(count, total, text):
    assert share(count, total) == text


# --- renderers -----------------------------------------------------------------------------


def test_json_sweep_is_per_contract_and_valid(mixed):
    report = check(*mixed, sweep=True)
    document = json.loads(render(report, OutputFormat.json))
    jsonschema.validate(document, load_schema())
    assert [e["compute_dtype"] for e in document["sweep"]] == ORDER
    for entry in document["sweep"]:
        assert set(entry) == {"compute_dtype", "passed", "summary"}
        alone = check(*mixed, dtype=entry["compute_dtype"])
        assert_close(entry["summary"], json_render.document(alone)["summary"])
        assert entry["passed"] == alone.passed
    assert document["compute_dtype"] == "float32"
    assert list(document)[-1] == "samples"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda sweep: sweep.reverse(),
        lambda sweep: sweep.pop(),
        lambda sweep: sweep[2]["summary"].pop("naive"),
        lambda sweep: sweep[0].pop("passed"),
    ],
    ids=["wrong order", "a dtype missing", "summary misshapen", "passed missing"],
)
def test_the_schema_refuses_a_bad_sweep(mixed, mutate):
    document = json.loads(render(check(*mixed, sweep=True), OutputFormat.json))
    mutate(document["sweep"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, load_schema())


def test_json_has_no_sweep_key_without_sweep(mixed):
    assert "sweep" not in json.loads(render(check(*mixed), OutputFormat.json))


@pytest.mark.parametrize("fmt", [OutputFormat.table, OutputFormat.markdown])
def test_table_and_markdown_show_a_row_per_dtype_and_the_verdict(mixed, fmt):
    report = check(*mixed, sweep=True)
    text = render(report, fmt)
    line = verdict(rows(report))
    assert " ".join(line.split()[:4]) in " ".join(text.split())
    matrix = text[text.index("every dtype") :]
    lead = "| " if fmt is OutputFormat.markdown else "  "
    # The --dtype row is in bold in Markdown.
    positions = [
        min(i for i in (matrix.find(f"\n{lead}{d} "), matrix.find(f"\n{lead}**{d}**")) if i >= 0)
        for d in ORDER
    ]
    assert positions == sorted(positions)


def test_sweep_row_notes_count_flagged_samples_nothing_breaks_on(rng):
    """Padding rows (all -inf) under masked="ignore" are listed but blamed on nobody: notes,
    in every dtype; under the default they are input findings, not notes."""
    x = _rows(5, 1.0, rng)
    x[[1, 3]] = -np.inf
    for masked, notes in (("ignore", 2), ("flag", 0)):
        swept = rows(check(x, masked=masked, sweep=True))
        assert [row.notes for row in swept] == [notes] * 4
        assert all(row.fully_masked == 2 for row in swept)


# --- the command line ----------------------------------------------------------------------


def test_cli_sweep_exit_status_follows_the_dtype_run(tmp_path, mixed):
    """float16's naive breaks do not fail a float32 run with --fail-on naive."""
    x, t = mixed
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    args = [str(tmp_path / "x.npy"), "--targets", str(tmp_path / "t.npy"), "--no-config"]
    runner = CliRunner()
    swept = runner.invoke(app, [*args, "--sweep", "--fail-on", "naive", "--format", "json"])
    assert swept.exit_code == 0, swept.output
    document = json.loads(swept.stdout)
    assert [e["passed"] for e in document["sweep"]] == [True, True, True, False]
    in_float16 = runner.invoke(app, [*args, "--sweep", "--fail-on", "naive", "--dtype", "fp16"])
    assert in_float16.exit_code == 1
    assert "safe down to bfloat16" in " ".join(in_float16.stdout.split())


# --- the README's thresholds table ---------------------------------------------------------


def test_readme_thresholds_table_is_what_the_dtypes_say():
    """Each row of the README's table, to the digits it shows, is the dtype's own figure
    (the overflow threshold is found by bisection with this machine's np.exp)."""
    import math
    from pathlib import Path

    from softmax_cli.dtypes import COMPUTE_DTYPES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Thresholds per dtype") :]
    table = [line for line in section.splitlines() if line.startswith(("| float", "| bfloat"))]
    assert [line.split("|")[1].strip() for line in table[:4]] == ORDER
    for line in table[:4]:
        name, threshold, log_max, top, normal, subnormal, window = (
            cell.strip() for cell in line.strip("|").split("|")
        )
        dtype = COMPUTE_DTYPES[name]
        finfo = dtype.finfo

        def same(shown: str, value: float) -> bool:
            digits = len(shown.split("e")[0].replace(".", "").lstrip("0"))
            return math.isclose(float(shown), value, rel_tol=10.0 ** (1 - digits))

        assert same(threshold, dtype.exp_overflow_threshold), name
        assert same(log_max, dtype.log_max), name
        assert same(top, float(finfo.max)), name
        assert same(normal, float(finfo.smallest_normal)), name
        assert same(subnormal, float(finfo.smallest_subnormal)), name
        assert same(window.removeprefix("±"), dtype.log_max), name


def test_a_read_off_dtype_may_name_either_of_two_rows_tied_for_the_minimum_headroom():
    # Rows 0 and 2 hold the same logits in another order: the same headroom but for the
    # last digits of their sums, which the read-off (from float32) and float64 alone order
    # differently. Found by the Hypothesis test below.
    x = np.zeros((3, 6), dtype=np.float32)
    x[0, 0] = x[2, 3] = 1.25
    swept = next(r for r in check(x, np.zeros(3, dtype=int), sweep=True).sweep)
    alone = check(x, np.zeros(3, dtype=int), dtype="float64")
    assert swept.summary.headroom.index != alone.summary.headroom.index
    assert_read_off_agrees(swept, alone)


def test_integer_logits_sweep_reads_float64_off_float32(rng):
    """int16 logits are exact in float32 and float64: float64 is read off, and agrees."""
    x = rng.integers(-30, 30, size=(40, 9)).astype(np.int16)
    x[3, 2] = 200  # past float32's limit, within float64's
    targets = rng.integers(0, 9, size=40)
    assert "float64" in widen.plan(
        [COMPUTE_DTYPES[d] for d in ("float32", *ORDER)], x.dtype, x.shape[1]
    )
    swept = {r.compute_dtype: r for r in check(x, targets, sweep=True).sweep}
    assert_read_off_agrees(swept["float64"], check(x, targets, dtype="float64"))
    assert swept["float32"].summary.naive.breaks == 1  # exp(200) overflows float32 only
    assert swept["float64"].summary.naive.breaks == 0


@settings(max_examples=150, deadline=None)
@given(data=st.data(), source=st.sampled_from(["float32", "bfloat16", "float16"]))
def test_read_off_dtypes_flag_what_a_check_alone_flags_on_any_rows(data, source):
    """Rows drawn around every limit the read-off reasons about (each dtype's exp overflow,
    log Z at +-ln(max), a target's log p at -ln(max), masks, NaN): the read-off dtypes'
    flags are those of a check in that dtype alone, their losses agree."""
    classes = data.draw(st.integers(1, 7), label="classes")
    rows = data.draw(st.integers(1, 6), label="rows")
    edges = [88.72, 86.7, 90.7, -86.7, -88.72, -103.9, 709.78, 707.8, -707.8, -745.1, 11.09]
    elements = st.one_of(
        st.floats(-800, 800, width=32),
        st.sampled_from([-np.inf, np.inf, np.nan, *edges]),
        st.floats(-3, 3, width=32),
    )
    x = data.draw(hnp.arrays(np.float64, (rows, classes), elements=elements), label="x")
    targets = data.draw(
        hnp.arrays(
            np.int64,
            rows,
            elements=st.integers(-100, classes - 1).filter(lambda t: t == -100 or t >= 0),
        ),
        label="targets",
    )
    with np.errstate(over="ignore"):
        x = x.astype(COMPUTE_DTYPES[source].storage)
    report = check(x, targets, sweep=True)
    plan = widen.plan([COMPUTE_DTYPES[d] for d in (source, *ORDER)], x.dtype, classes)
    for swept in report.sweep:
        if swept.compute_dtype not in plan:
            continue
        assert_read_off_agrees(swept, check(x, targets, dtype=swept.compute_dtype))
