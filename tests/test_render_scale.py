"""Every format scales with the listed samples (issues 14.5, 15.4): renderers stream their
rows in chunks, capped formats make only the samples they print, and a failure midway
leaves no partial --output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_cli import check, cli
from softmax_cli.options import OutputFormat, View
from softmax_cli.render import render, render_chunks
from softmax_cli.report import Report

ROWS = 3000


@pytest.fixture(scope="module")
def flagged() -> Report:
    """Every sample flagged: the naive exp overflows on each row."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((ROWS, 3)).astype(np.float32)
    logits[:, 0] = 100.0
    return check(logits, rng.integers(0, 3, ROWS), logits_name="flagged.npy")


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many samples the renderers have had made, so far."""
    count = [0]
    original = Report.results

    def counting(self: Report, indices: np.ndarray, *args, **kwargs):
        for result in original(self, indices, *args, **kwargs):
            count[0] += 1
            yield result

    monkeypatch.setattr(Report, "results", counting)
    return count


STREAMED = [OutputFormat.json, OutputFormat.table, OutputFormat.markdown]


@pytest.mark.parametrize("fmt", STREAMED)
def test_the_first_chunk_comes_before_most_samples_are_made(flagged, made, fmt) -> None:
    chunks = render_chunks(flagged, fmt, View(include_clean=True, max_rows=0))
    next(chunks)
    next(chunks)
    assert made[0] < ROWS / 2


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_chunks_join_to_the_whole_report(flagged, fmt) -> None:
    view = View(include_clean=True, max_rows=0)
    assert "".join(render_chunks(flagged, fmt, view)) == render(flagged, fmt, view)


@pytest.mark.parametrize("fmt", [OutputFormat.table, OutputFormat.markdown, OutputFormat.github])
def test_capped_formats_make_only_the_samples_they_print(flagged, made, fmt) -> None:
    render(flagged, fmt, View(max_rows=20))
    assert made[0] <= 21  # the rows shown, and the sample with the least headroom


@pytest.mark.parametrize("fmt", [OutputFormat.table, OutputFormat.markdown])
def test_a_long_listing_lists_every_sample(flagged, fmt) -> None:
    text = render(flagged, fmt, View(include_clean=True, max_rows=0))
    assert text.count("BROKEN") == ROWS  # the naive path breaks on each, the stable never


def test_a_long_json_listing_lists_every_sample(flagged) -> None:
    document = json.loads(render(flagged, OutputFormat.json, View(max_rows=0)))
    assert sorted(s["index"] for s in document["samples"]) == list(range(ROWS))


def test_a_failure_midway_leaves_no_partial_output(tmp_path, monkeypatch) -> None:
    logits = tmp_path / "x.npy"
    np.save(logits, np.zeros((4, 3), dtype=np.float32))
    output = tmp_path / "report.json"
    output.write_text("old report\n")

    def broken(report, fmt, view):
        yield "{\n"
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(cli, "render_chunks", broken)
    result = CliRunner().invoke(cli.app, [str(logits), "--format", "json", "-o", str(output)])
    assert result.exit_code == 2
    assert output.read_text() == "old report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "x.npy"]
