"""The log Z chart: drawn in the terminal table when it says something, and as a PNG."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from softmax_cli import check
from softmax_cli.cli import app
from softmax_cli.options import OutputFormat
from softmax_cli.render import chart, render, table


def spread(n: int = 400, seed: int = 2) -> np.ndarray:
    """Rows whose log Z spreads from about 2 to 100: across the float16 and float32 limits."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    x += rng.uniform(0, 95, (n, 1)).astype(np.float32)
    return x


def text_at(report, width: int) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None).print(table.renderable(report))
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 120])
def test_the_chart_fits_the_terminal_and_marks_both_limits(width: int) -> None:
    text = text_at(check(spread()), width)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("log Z per sample"))
    block = lines[start : start + chart.HEIGHT + 5]
    assert all(len(line) <= width for line in block)
    assert "↑f16" in block[chart.HEIGHT + 2] and "↑f32" in block[chart.HEIGHT + 2]


def test_the_bars_are_numpys_histogram() -> None:
    x = spread()
    report = check(x)
    x64 = x.astype(np.float64)
    m = x64.max(axis=1)
    lse = m + np.log(np.exp(x64 - m[:, None]).sum(axis=1))
    counts, _ = np.histogram(lse, bins=60)
    lines = chart.lines(chart.log_z(report), 60)
    bars = [line.split("│", 1)[1].ljust(60) for line in lines[1 : 1 + chart.HEIGHT]]
    # The tallest column is full on every row; an empty bin is blank on every row.
    tallest = int(np.argmax(counts))
    assert all(row[tallest] == "█" for row in bars)
    for empty in np.flatnonzero(counts == 0):
        assert all(row[empty] == " " for row in bars)
    assert lines[1].split("│")[0].strip() == str(counts.max())


def test_no_chart_below_twenty_samples_or_without_a_spread() -> None:
    assert not chart.informative(check(spread(19)))
    assert not chart.informative(check(np.zeros((50, 4), np.float32)))
    assert chart.informative(check(spread(20)))
    assert "log Z per sample" not in text_at(check(spread(19)), 120)


@pytest.mark.parametrize("fmt", [f for f in OutputFormat if f is not OutputFormat.table])
def test_never_in_ci_formats(fmt: OutputFormat) -> None:
    text = render(check(spread()), fmt)
    assert "log Z per sample" not in text and "█" not in text


@pytest.mark.plot
def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "x.npy", spread())
    out = tmp_path / "chart.png"
    result = CliRunner().invoke(app, [str(tmp_path / "x.npy"), "--plot", str(out), "--no-config"])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_without_matplotlib_exits_2_saying_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    np.save(tmp_path / "x.npy", spread())
    result = CliRunner().invoke(
        app, [str(tmp_path / "x.npy"), "--plot", str(tmp_path / "c.png"), "--no-config"]
    )
    assert result.exit_code == 2
    assert "pip install softmax-check[plot]" in result.stderr
    assert not (tmp_path / "c.png").exists()
