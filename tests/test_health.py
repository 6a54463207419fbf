"""Logit health: per-sample entropy and margin, and summary.health, against float64 directly."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from softmax_cli import check
from softmax_cli.render import json as json_render

DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}


def reference(row: np.ndarray) -> tuple[float, float, float]:
    """(log Z, entropy, margin) of one row of D's values, directly in float64."""
    x = row.astype(np.float64)
    if np.isnan(x).any() or np.isposinf(x).any() or np.isneginf(x).all():
        return np.nan, np.nan, np.nan
    m = x.max()
    e = np.exp(x - m)
    s = e.sum()
    p = e / s
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum()
    margin = np.nan if len(x) == 1 else float(m - np.sort(x)[-2])
    return float(m + np.log(s)), float(entropy), margin


def rows(dtype: type, seed: int = 0) -> np.ndarray:
    """Random rows of several scales, and the extreme ones: masks, NaN, +inf, ties."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 50)) * rng.choice([0.01, 1, 5, 30], size=(40, 1))
    x[1] += 1000 if dtype is not np.float16 else 8
    x[2, 3:] = -np.inf  # three live classes
    x[3, 1:] = -np.inf  # one live class: margin inf
    x[4] = -np.inf  # fully masked
    x[5, 7] = np.nan
    x[6, 9] = np.inf
    x[7, :2] = x[7].max() + 1  # a tie at the top: margin 0
    x[8] = 0.0  # uniform
    x[9, 0] = x[9, 1:].max() + 40  # one-hot
    return x.astype(dtype)


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    """1e-4 relative or absolute, NaN where the reference is NaN, inf where it is inf."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(
        actual[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]
    )
    err = np.abs(actual[finite] - expected[finite]) / np.maximum(1.0, np.abs(expected[finite]))
    assert err.max(initial=0) <= 1e-4, err.max()


@pytest.mark.parametrize("name", DTYPES)
def test_entropy_and_margin_match_float64_on_random_and_extreme_rows(name: str) -> None:
    x = rows(DTYPES[name])
    report = check(x, dtype=name)
    expected = np.array([reference(row) for row in x])
    close(report.measures.entropy, expected[:, 1])
    close(report.measures.margin, expected[:, 2])


@pytest.mark.parametrize("name", DTYPES)
def test_entropy_matches_torch_on_a_wide_vocabulary(name: str) -> None:
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(1).standard_normal((6, 32000)) * 4).astype(DTYPES[name])
    x64 = torch.from_numpy(x.astype(np.float64))
    expected = torch.distributions.Categorical(logits=x64).entropy().numpy()
    close(check(x, dtype=name).measures.entropy, expected)


def test_one_class_has_no_margin_and_zero_entropy() -> None:
    report = check(np.array([[3.0], [-2.0]], dtype=np.float32))
    assert np.isnan(report.measures.margin).all()
    assert (report.measures.entropy == 0).all()
    sample = json_render.sample(report.sample(0))
    assert sample["margin"] is None and sample["entropy"] == 0.0


def test_summary_health_is_numpy_statistics_over_finite_log_z() -> None:
    x = rows(np.float32)
    targets = np.arange(40) % 50
    targets[10] = -100
    report = check(x, targets)
    expected = np.array([reference(row) for row in x])
    live = np.isfinite(expected[:, 0])
    lse, entropy, margin = expected[live, 0], expected[live, 1], expected[live, 2]
    margin = margin[np.isfinite(margin)]
    x64 = x.astype(np.float64)
    health = report.summary.health
    for stat, values in [
        (health.logsumexp, lse),
        (health.z_loss, lse**2),
        (health.entropy, entropy),
        (health.margin, margin),
        (health.max_logit, x64[live].max(axis=1)),
    ]:
        want = [values.min(), *np.percentile(values, [50, 99]), values.max(), values.mean()]
        got = [stat.min, stat.p50, stat.p99, stat.max, stat.mean]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # The loss: samples with a target and a finite stable loss.
    loss = np.array([lse_ - x64[i, targets[i]] for i, lse_ in enumerate(expected[:, 0]) if i != 10])
    loss = loss[np.isfinite(loss)]
    assert health.loss.max == pytest.approx(loss.max(), rel=1e-4)
    assert health.loss.p50 == pytest.approx(np.percentile(loss, 50), rel=1e-4, abs=1e-4)


def test_health_is_null_when_no_sample_has_a_finite_log_z() -> None:
    x = np.full((3, 4), -np.inf, dtype=np.float32)
    document = json.loads(json_render.render(check(x)))
    assert document["summary"]["health"] == {
        k: None for k in ("max_logit", "logsumexp", "z_loss", "entropy", "margin", "loss")
    }


def test_health_is_in_the_json_summary_in_the_contract_order() -> None:
    document = json.loads(json_render.render(check(rows(np.float32), np.zeros(40, int))))
    health = document["summary"]["health"]
    assert list(health) == ["max_logit", "logsumexp", "z_loss", "entropy", "margin", "loss"]
    assert list(health["entropy"]) == ["min", "p50", "p99", "max", "mean"]


def table_text(report) -> str:
    from softmax_cli.render import table

    return table.render_text(report)


def test_every_target_ignored_is_a_batch_trap_in_table_and_markdown() -> None:
    from softmax_cli.render import markdown

    report = check(np.zeros((4, 3), np.float32), np.full(4, -100))
    assert "every target is ignored" in table_text(report)
    assert "every target is ignored" in markdown.render(report)
    assert "every target is ignored" not in table_text(check(np.zeros((4, 3)), np.zeros(4, int)))


def test_a_batch_axis_counts_the_batches_a_broken_sample_poisons() -> None:
    x = np.zeros((5, 3, 4), np.float32)  # 5 batches of 3 samples
    x[1, 2, 0] = 1000.0  # batch 1: naive overflow
    x[3, 0, 0] = x[3, 1, 0] = 1000.0  # batch 3, twice
    text = table_text(check(x, np.zeros((5, 3), int)))
    assert "naive breaks in 2 of 5 batches" in text
    assert "stable breaks in" not in text
    # A 1-D batch has no batch axis: no such line.
    assert "batches" not in table_text(check(x.reshape(15, 4), np.zeros(15, int)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 100, 1001])
def test_a_statistic_is_numpy_percentile_and_mean_in_the_values_own_dtype(dtype, n) -> None:
    from softmax_cli.health import Statistic

    values = (np.random.default_rng(n).standard_normal(n) * 50).astype(dtype)
    values[1::7] = np.inf  # left out, as NaN would be
    stat = Statistic.of(values)
    finite = values[np.isfinite(values)].astype(np.float64)
    p50, p99 = np.percentile(finite, [50, 99])
    # The percentiles and the mean are float64 from the stored values: NumPy's exactly.
    assert (stat.p50, stat.p99) == (p50, p99)
    assert stat.mean == pytest.approx(finite.mean(), rel=1e-15)
    # The extremes are the stored values themselves (float32: its shortest decimal).
    assert dtype(stat.min) == finite.min() and dtype(stat.max) == finite.max()
    assert Statistic.of(np.full(3, np.nan, dtype)) is None


@pytest.mark.parametrize("name", DTYPES)
def test_entropy_keeps_its_digits_on_peaked_rows(name: str) -> None:
    # One class ahead by 5 to 15 nats: the entropy is 1e-2 to 1e-5, and relative to it
    # the sum 1 + (the others) loses the digits that matter if it is kept in D's width.
    margins = np.linspace(5, 11 if name == "float16" else 15, 11)
    x = np.zeros((len(margins), 64))
    x[:, 1:] = np.random.default_rng(3).standard_normal((len(margins), 63)) * 0.5
    x[:, 0] = x[:, 1:].max(axis=1) + margins
    x = x.astype(DTYPES[name])
    expected = np.array([reference(row)[1] for row in x])
    got = check(x, dtype=name).measures.entropy.astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("name", DTYPES)
def test_a_rows_measures_do_not_depend_on_the_rows_beside_it(name: str) -> None:
    # A NaN, +inf or masked row in the same piece must not change a peaked row's entropy.
    x = rows(DTYPES[name])
    alone = np.array([check(x[i : i + 1], dtype=name).measures.entropy[0] for i in range(len(x))])
    together = check(x, dtype=name).measures.entropy
    np.testing.assert_array_equal(together, alone)
