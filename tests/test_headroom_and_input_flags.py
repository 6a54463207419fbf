"""Headroom, cast overflow (out_of_range), --masked and --min-headroom, in every format.

Expected headroom values come from a float64 log-sum-exp of the row's values in D (and
mpmath for a few rows), never from softmax-check's own numbers.
"""

from __future__ import annotations

import json
import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import check
from softmax_cli.cli import app
from softmax_cli.dtypes import COMPUTE_DTYPES
from softmax_cli.options import OutputFormat

DTYPES = list(COMPUTE_DTYPES)
# The contract's figures, to their two decimals.
LOG_MAX = {"float64": 709.78, "float32": 88.72, "bfloat16": 88.72, "float16": 11.09}


def _logsumexp64(rows: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) per row in float64, max-shifted (rows hold values of D)."""
    with np.errstate(all="ignore"):
        m = rows.max(axis=1)
        out = m + np.log(np.exp(rows - m[:, None]).sum(axis=1))
    return np.where(np.isfinite(m), out, m)


@pytest.mark.parametrize("name", DTYPES)
def test_ln_max_finite_is_the_contract_figure(name):
    dtype = COMPUTE_DTYPES[name]
    assert dtype.log_max == pytest.approx(LOG_MAX[name], abs=0.005)
    exact = mpmath.log(mpmath.mpf(float(ml_dtypes.finfo(dtype.storage).max)))
    assert dtype.log_max == pytest.approx(float(exact), rel=1e-15)


@pytest.mark.parametrize("name", DTYPES)
def test_headroom_is_ln_max_minus_the_accurate_logsumexp(name, rng):
    dtype = COMPUTE_DTYPES[name]
    x = rng.standard_normal((400, 257)) * rng.choice([0.1, 3, 30], size=(400, 1))
    x += rng.choice([-50.0, 0.0, 8.0, 80.0], size=(400, 1))
    x[::7, ::3] = -np.inf  # masks
    with np.errstate(over="ignore"):
        in_d = x.astype(dtype.storage)
    report = check(in_d)
    expected = dtype.log_max - np.abs(_logsumexp64(in_d.astype(np.float64)))
    # 1e-6 absolute: the unrounded float32 sum of exp(x - m) carries ~1e-7 relative error.
    np.testing.assert_allclose(report.headroom, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_half_precision_headroom_is_not_limited_by_rounding_the_sum_to_d(name):
    # Many equal entries: each exp(x - m) rounds the same way in D, so a sum rounded to D
    # would be off by up to half an ulp of D; the headroom must not be.
    dtype = COMPUTE_DTYPES[name]
    row = np.full((1, 1000), -0.3, dtype=dtype.storage)
    row[0, 0] = 0
    values = [mpmath.mpf(float(v)) for v in row[0]]
    exact = float(mpmath.log(mpmath.fsum(mpmath.exp(v) for v in values)))
    got = check(row).headroom[0]
    assert got == pytest.approx(dtype.log_max - abs(exact), abs=1e-5)


@pytest.mark.parametrize(
    "row", [[-np.inf, -np.inf], [np.nan, 0.0], [np.inf, 0.0]], ids=["masked", "nan", "inf"]
)
def test_headroom_is_null_where_logsumexp_is_not_finite(row):
    report = check(np.array([row, [0.0, 1.0]], dtype=np.float32))
    assert math.isnan(report.headroom[0])
    document = _json(report)
    assert document["samples"][0]["headroom"] is None


def test_summary_headroom_names_the_lowest_sample_and_counts_those_below(rng):
    x = rng.standard_normal((50, 10)).astype(np.float32)
    x[17] += 85  # log Z about 87.5: 1.2 nats from float32's edge
    x[3] += 40
    report = check(x, min_headroom=50)  # row 3: log Z about 42, 46.5 nats left
    h = report.summary.headroom
    assert h.index == 17
    assert h.min == pytest.approx(88.7228391 - _logsumexp64(x[17:18].astype(np.float64))[0])
    assert h.below == 2  # rows 17 and 3
    assert report.failing_count(next(c for c in report.fail_on if c.value == "headroom")) == 2


def _json(report) -> dict:
    from softmax_cli.render import render

    return json.loads(render(report, OutputFormat.json))


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def drifting(tmp_path):
    """float32 logits whose row 1 drifted to log Z of about 80: no flag yet, 8.7 nats left."""
    x = np.zeros((3, 4), dtype=np.float32)
    x[1] = [80.0, 79.0, 0.0, 0.0]
    path = tmp_path / "drift.npy"
    np.save(path, x)
    return str(path)


def test_min_headroom_fails_a_run_that_nothing_else_fails(drifting):
    runner = CliRunner()
    assert runner.invoke(app, [drifting, "--format", "json"]).exit_code == 0
    result = runner.invoke(app, [drifting, "--format", "json", "--min-headroom", "10"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert "headroom" in document["fail_on"]
    assert [s["index"] for s in document["samples"]] == [1]  # listed although unflagged
    assert document["summary"]["headroom"]["below"] == 1


def test_min_headroom_below_every_sample_passes(drifting):
    result = CliRunner().invoke(app, [drifting, "--min-headroom", "5"])
    assert result.exit_code == 0, result.stdout


def test_a_non_finite_min_headroom_is_an_error_naming_the_option(drifting):
    result = CliRunner().invoke(app, [drifting, "--min-headroom", "nan"])
    assert result.exit_code == 2
    assert "--min-headroom" in result.stderr


@pytest.fixture
def too_wide(tmp_path):
    """float64 values that fit no float32: 1e39 and -1e39 become +-inf when cast."""
    path = tmp_path / "wide.npy"
    np.save(path, np.array([[1e39, 0.0, 1.0], [0.0, -1e39, 1.0], [0.0, 1.0, 2.0]]))
    return str(path)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_cast_overflow_is_out_of_range_not_nonfinite_in_every_format(too_wide, fmt):
    result = CliRunner().invoke(app, [too_wide, "--dtype", "float32", "--format", fmt.value])
    assert result.exit_code == 1  # an input finding under the default --fail-on
    assert "out_of_range" in result.stdout
    if fmt is OutputFormat.json:
        document = json.loads(result.stdout)
        assert document["summary"]["input"] == {
            "nonfinite": 0,
            "fully_masked": 0,
            "out_of_range": 2,
        }
    if fmt is OutputFormat.table:
        assert "0 non-finite (NaN or +inf)" in result.stdout
        assert "2 beyond float32's range" in result.stdout


def test_the_same_values_in_float64_are_in_range(too_wide):
    result = CliRunner().invoke(app, [too_wide, "--format", "json"])
    assert json.loads(result.stdout)["summary"]["input"]["out_of_range"] == 0


def test_a_file_nan_stays_nonfinite_beside_a_cast_overflow(tmp_path):
    path = tmp_path / "both.npy"
    np.save(path, np.array([[np.nan, 1e39, 0.0]]))
    result = CliRunner().invoke(app, [str(path), "--dtype", "float32", "--format", "json"])
    sample = json.loads(result.stdout)["samples"][0]
    assert sample["input"] == {"nonfinite": True, "fully_masked": False, "out_of_range": True}


def test_integers_beyond_float16_are_out_of_range():
    report = check(np.array([[70000, 0, 1]], dtype=np.int32), dtype="float16")
    assert report.summary.input.out_of_range == 1 and report.summary.input.nonfinite == 0


@pytest.fixture
def padded(tmp_path):
    """Attention scores with one padding query: every key masked."""
    x = np.array([[0.0, 1.0, -np.inf], [-np.inf, -np.inf, -np.inf]], dtype=np.float32)
    path = tmp_path / "padded.npy"
    np.save(path, x)
    return str(path)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_masked_ignore_passes_padding_in_every_format(padded, fmt):
    runner = CliRunner()
    flagged = runner.invoke(app, [padded, "--format", fmt.value])
    ignored = runner.invoke(app, [padded, "--format", fmt.value, "--masked", "ignore"])
    assert flagged.exit_code == 1
    assert ignored.exit_code == 0, ignored.stdout
    assert "fully_masked" in ignored.stdout  # still listed, as a note
    if fmt is OutputFormat.json:
        document = json.loads(ignored.stdout)
        assert document["summary"]["input"]["fully_masked"] == 1
        assert document["summary"]["stable"]["breaks"] == 0
        assert document["samples"][0]["input"]["fully_masked"] is True
    if fmt is OutputFormat.github:
        assert "::error" not in ignored.stdout and "::warning" in ignored.stdout
    if fmt is OutputFormat.junit:
        assert "<failure" not in ignored.stdout


def test_masked_ignore_still_fails_on_other_findings(padded, tmp_path):
    x = np.load(padded)
    x[0, 0] = np.nan
    np.save(tmp_path / "worse.npy", x)
    result = CliRunner().invoke(app, [str(tmp_path / "worse.npy"), "--masked", "ignore"])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("alias", "name"), [("fp16", "float16"), ("BF16", "bfloat16"), ("fp32", "float32")]
)
def test_dtype_aliases_name_the_same_dtypes(alias, name):
    assert check(np.zeros((1, 2)), dtype=alias).compute_dtype == name


def test_bfloat16_dumps_compute_in_bfloat16_under_auto():
    x = np.zeros((2, 3), dtype=ml_dtypes.bfloat16)
    assert check(x).compute_dtype == "bfloat16"
