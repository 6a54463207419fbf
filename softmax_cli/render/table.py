"""``--format table``: a summary and the flagged samples, worst first, for a person.

Colour is only a second cue: every cell says BROKEN, note or ok in words, so the table
reads the same with ``NO_COLOR`` set or piped into a file.
"""

from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from softmax_cli.errors import display
from softmax_cli.options import DEFAULT_VIEW, View
from softmax_cli.render.words import (
    COUNT_NAMES,
    TABLE_MEASURES,
    dump_text,
    file_text,
    headroom_line,
    listed_rows,
    meaning,
    measure_text,
    position_text,
    raised_flags,
    short_number,
    target_text,
    targets_source,
    verdict_line,
    verdict_word,
)
from softmax_cli.report import PathFlags, Report, SampleResult

BROKEN_STYLE = "bold red"
NOTE_STYLE = "yellow"
OK_STYLE = "green"


def render_text(report: Report, view: View = DEFAULT_VIEW, width: int = 120) -> str:
    """The table as plain text (for ``--output``): no colour, a fixed width."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(renderable(report, view))
    return buffer.getvalue()


def renderable(report: Report, view: View = DEFAULT_VIEW) -> RenderableType:
    """The whole report: header, flag counts, listed samples, verdict."""
    parts: list[RenderableType] = [
        _header(report),
        _counts(report),
        Text(_input_line(report)),
        Text(headroom_line(report)),
        Text(),
    ]
    shown, hidden = listed_rows(report, view.include_clean, view.max_rows)
    if shown:
        parts.append(_samples(report, shown, view))
        if hidden:
            parts.append(
                Text(f"... and {hidden} more (--max-rows {view.max_rows}; --max-rows 0 shows all)")
            )
        parts.append(Text())
    parts.append(Text(meaning(report)))
    parts.append(_verdict(report))
    return Group(*parts)


def _input_line(report: Report) -> str:
    s = report.summary.input
    line = (
        f"input: {s.nonfinite} non-finite (NaN or +inf), {s.fully_masked} fully masked (all -inf)"
    )
    if s.out_of_range:
        line += f", {s.out_of_range} beyond {report.compute_dtype}'s range"
    return line


def _header(report: Report) -> Text:
    info = report.input
    text = Text("softmax-check ", style="bold")
    text.append(display(info.logits), style="bold cyan")
    text.append(f"\n{dump_text(report)}, {info.dtype} input computed in {report.compute_dtype}, ")
    targets = targets_source(report)
    text.append(f"targets from {targets}" if targets else "no targets")
    return text


def _counts(report: Report) -> Table:
    """Flag counts with one row per flag and one column per path: narrow enough for 80
    columns, and the two paths sit side by side for comparison."""
    s = report.summary
    table = Table(
        title=f"{s.flagged} of {s.samples} samples flagged",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("samples with")
    for implementation in report.implementations:
        table.add_column(implementation.name, justify="right")
    for name in COUNT_NAMES:
        counts = [getattr(s.impls[i.name], name) for i in report.implementations]
        style = BROKEN_STYLE if name == "breaks" else NOTE_STYLE
        table.add_row(name, *(Text(str(v), style=style if v else "") for v in counts))
    return table


def _samples(report: Report, samples: list[SampleResult], view: View) -> Table:
    title = "All samples" if view.include_clean else "Flagged samples"
    table = Table(title=f"{title}, worst first", title_justify="left", box=box.SIMPLE_HEAD)
    measures = TABLE_MEASURES
    several = report.input.several
    # With several files the sample cell names the file under the position (the flags
    # already take two lines); a long name folds in the cell, so 80 columns still fit.
    table.add_column("sample", justify="left", overflow="fold" if several else "ellipsis")
    table.add_column("target", justify="right")
    for m in measures:
        table.add_column(m.label, justify="right")
    for implementation in report.implementations:
        # Wrap flags between words, never inside one: "overfl…" says nothing.
        table.add_column(implementation.name, min_width=len("BROKEN loss=inf"), overflow="fold")
    for sample in samples:
        table.add_row(
            # Text, not a string: Rich would read "[" in a file name as markup.
            Text(f"{position_text(sample)}\n{file_text(report, sample)}")
            if several
            else position_text(sample),
            target_text(sample),
            *(measure_text(sample, m) for m in measures),
            *(_path_cell(sample, sample.results[i.name]) for i in report.implementations),
        )
    return table


def _path_cell(sample: SampleResult, flags: PathFlags) -> Text:
    """``BROKEN loss=inf`` / ``note loss=2000`` / ``ok loss=0.4``, then the raised flags."""
    raised = raised_flags(sample, flags)
    verdict = verdict_word(flags, raised)
    style = {"BROKEN": BROKEN_STYLE, "note": NOTE_STYLE, "ok": OK_STYLE}[verdict]
    text = Text(verdict, style=style)
    if flags.loss is not None:
        text.append(f" loss={short_number(flags.loss)}")
    if raised:
        text.append("\n" + " ".join(raised), style=style)
    return text


def _verdict(report: Report) -> Text:
    return Text(verdict_line(report), style=OK_STYLE if report.passed else BROKEN_STYLE)
