"""The terminal table fits the width it is given: no column disappears, no number is cut,
no line is longer than the terminal (issue 9.6), whether the samples are few (laid out
from their cells) or many (laid out from the columns' arrays, written lazily)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import check
from softmax_cli.cli import app
from softmax_cli.options import OutputFormat, View
from softmax_cli.render import render
from softmax_cli.render.table import FEW_ROWS, render_text
from softmax_cli.render.words import TABLE_MEASURES, count_names, short_number
from softmax_cli.report import Report
from softmax_cli.sweep import rows as sweep_rows

WIDTHS = (40, 60, 80, 120)
VIEW = View(include_clean=True, max_rows=0)


def seed() -> Report:
    logits = np.array([[2, 1, 0.1], [1000, 0, -1000], [0.5, 2.5, -1]], dtype=np.float32)
    return check(logits, np.array([0, 2, 1]), logits_name="seed.npy")


def extreme() -> Report:
    """Numbers as long as short_number makes them (13 characters), an ignored target."""
    logits = np.array(
        [[-1.23456789e300, -2.3456789e300, -3.1e300], [1e-5, -1.23456e-5, 0.5], [7, 1, -100]],
        dtype=np.float64,
    )
    return check(logits, np.array([1, 2, -100]), logits_name="extreme.npy")


def nd() -> Report:
    logits = np.zeros((2, 3, 4), dtype=np.float16)
    logits[1, 2] = [12.0, 0.0, -3.0, 1.0]
    logits[0, 1, 0] = np.nan
    return check(logits, np.array([[0, 1, -100], [3, 2, 0]]), logits_name="nd.npy")


def many() -> Report:
    """More samples than are laid out from their cells: the lazy plain listing."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((FEW_ROWS * 3, 4)).astype(np.float32)
    logits[::2] *= 80  # naive overflows
    logits[::7, 1] = np.nan
    return check(logits, rng.integers(0, 4, FEW_ROWS * 3), logits_name="many.npy")


REPORTS = {"seed": seed, "extreme": extreme, "nd": nd, "many": many}


def expected_tokens(report: Report) -> set[str]:
    """Every number the JSON report holds for a listed sample, as the table must print it."""
    tokens = set()
    # JSON prints a float32 value as its shortest decimal; the table rounds the value itself.
    stored = report.measures.max_logit.dtype.type

    def exact(value: float | str, name: str) -> float:
        return float(value) if name == "headroom" else float(stored(float(value)))

    for sample in json.loads(render(report, OutputFormat.json, VIEW))["samples"]:
        for m in TABLE_MEASURES:
            value = sample[m.name]
            tokens.add("-" if value is None else short_number(exact(value, m.name)))
        for name in ("naive", "stable"):
            loss = sample[name]["loss"]
            if loss is not None:
                tokens.add(f"loss={short_number(exact(loss, 'loss'))}")
        tokens.add(str(sample["target"]))
    return tokens


@pytest.fixture(scope="module", params=list(REPORTS))
def report(request: pytest.FixtureRequest) -> Report:
    return REPORTS[request.param]()


@pytest.mark.parametrize("width", WIDTHS)
def test_no_line_is_longer_than_the_width(report: Report, width: int) -> None:
    text = render_text(report, VIEW, width=width)
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_no_line_ends_in_a_space(report: Report, width: int) -> None:
    assert not [
        line
        for line in render_text(report, VIEW, width=width).splitlines()
        if line != line.rstrip()
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_every_column_header_is_shown(report: Report, width: int) -> None:
    text = render_text(report, VIEW, width=width)
    words = ["samples", "with", *count_names(report), "sample", "target", "naive", "stable"]
    words += [word for m in TABLE_MEASURES for word in m.label.split()]
    assert [w for w in words if w not in text.split()] == []


@pytest.mark.parametrize("width", WIDTHS)
def test_every_number_is_printed_whole(report: Report, width: int) -> None:
    shown = set(render_text(report, VIEW, width=width).split())
    assert sorted(expected_tokens(report) - shown) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_every_listed_sample_has_a_row_or_a_block(report: Report, width: int) -> None:
    text = render_text(report, VIEW, width=width)
    listing = text[text.index("All samples, worst first") :].splitlines()
    listed = json.loads(render(report, OutputFormat.json, VIEW))["samples"]
    if any(line.startswith("  sample ") for line in listing):  # columns: header, rule, rows
        rows = [line for line in listing if re.match(r"  \S", line)][1:]
        starts = [line.split("   ")[0].strip() for line in rows]
    else:  # one stacked block per sample
        starts = [line.removeprefix("sample ") for line in listing if line.startswith("sample ")]
    assert starts == [position(s["position"]) for s in listed]


def position(where: list[int]) -> str:
    return str(where[0]) if len(where) == 1 else "(" + ", ".join(map(str, where)) + ")"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_counts_table_keeps_its_columns(width: int) -> None:
    text = render_text(seed(), VIEW, width=width)
    header = next(line for line in text.splitlines() if "samples with" in line)
    assert header.split() == ["samples", "with", "naive", "stable"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_command_fits_the_terminal_width(tmp_path, width: int) -> None:
    logits = np.array([[2, 1, 0.1], [1000, 0, -1000], [0.5, 2.5, -1]], dtype=np.float32)
    np.save(tmp_path / "seed.npy", logits)
    np.save(tmp_path / "t.npy", np.array([0, 2, 1]))
    args = [str(tmp_path / "seed.npy"), "--targets", str(tmp_path / "t.npy"), "--all"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": str(width), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= width
    assert "1000" in result.stdout.split() and "loss=2000" in result.stdout.split()
    for label in ("target", "logsumexp", "headroom", "naive", "stable"):
        assert label in result.stdout.split()


HEALTH = Path(__file__).resolve().parents[1] / "sample_logits" / "health"


def drift_run(width: int) -> str:
    """The table of the README's drift example (health, chart, drift) at ``width``."""
    args = [str(HEALTH / "step_2000.npy"), "--targets", str(HEALTH / "targets.npy")]
    args += ["--baseline", str(HEALTH / "step_1000.json")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": str(width), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output  # only the naive code breaks
    return result.stdout


def numbers_tables(text: str) -> list[list[str]]:
    """The rows of the health and drift tables of a table wide enough for them."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.split()[:1] in (["health"], ["compared"]):
            inside = True
        elif inside and not line.strip():
            inside = False
        elif inside and not line.lstrip().startswith("─"):
            rows.append(line.split())
    return rows


@pytest.mark.parametrize("width", WIDTHS)
def test_the_health_and_drift_numbers_are_printed_whole(width: int) -> None:
    """Where the health and drift tables do not fit, they are stacked, not cut."""
    rows = numbers_tables(drift_run(200))
    assert len(rows) == 6 + 7  # six statistics; the minimum headroom and six p99s
    text = drift_run(width)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    shown = text.split()
    for row in rows:
        numbers = [cell for cell in row if any(c.isdigit() for c in cell)]
        assert numbers and all(number in shown for number in numbers), row


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sweep_matrix_is_printed_whole(width: int) -> None:
    """Where the sweep's columns do not fit, even with their headers wrapped, each dtype is
    stacked over its cells: none is cut."""
    args = [str(HEALTH.parent / "attention_scores.npy"), "--masked", "ignore", "--sweep"]
    args += ["--dtype", "float32"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": str(width), "NO_COLOR": "1"})
    text = result.stdout
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    scores = np.load(HEALTH.parent / "attention_scores.npy")
    sweep = check(scores, dtype="float32", masked="ignore", sweep=True)
    for row in sweep_rows(sweep):
        cells = [row.compute_dtype, row.headroom_text, *row.input_text.split()]
        assert all(cell in text.split() for cell in cells), (row, text)
