"""``--format table``: a summary and the flagged samples, worst first, for a person.

Colour is only a second cue: every cell says BROKEN, note or ok in words, so the table
reads the same with ``NO_COLOR`` set or piped into a file.

The table fits the width it is given: no column disappears and no number is cut. The
samples are a Rich table while it fits and they are few; a long listing is written as
plain fixed-width lines with the same columns and words, one row at a time (Rich lays out
a table in memory, about half a millisecond a row); where neither fits the width, each
sample is a small stacked block of ``label value`` lines. The health, drift and sweep
tables stack the same way where their columns do not fit.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from softmax_cli.errors import display
from softmax_cli.options import DEFAULT_VIEW, View
from softmax_cli.render import chart, health
from softmax_cli.render.words import (
    NOT_REPORTED,
    TABLE_MEASURES,
    count_names,
    count_text,
    dump_text,
    file_text,
    headroom_line,
    listed_rows,
    meaning,
    measure_text,
    position_text,
    raised_flags,
    shared_directory,
    target_text,
    targets_source,
    verdict_head,
    verdict_line,
)
from softmax_cli.report import Implementation, PathFlags, Report, SampleResult
from softmax_cli.sweep import COLUMNS, rows, verdict

BROKEN_STYLE = "bold red"
NOTE_STYLE = "yellow"
OK_STYLE = "green"
DEFAULT_WIDTH = 120

# Up to this many listed samples are laid out from their cells (coloured on a terminal);
# beyond, from the columns' arrays, as plain lines written as they are made.
FEW_ROWS = 200
CHUNK_LINES = 1024  # plain lines per piece of text


def render_text(report: Report, view: View = DEFAULT_VIEW, width: int = DEFAULT_WIDTH) -> str:
    """The table as plain text (for ``--output``): no colour, a fixed width."""
    return "".join(chunks(report, view, width=width))


def chunks(
    report: Report,
    view: View = DEFAULT_VIEW,
    width: int = DEFAULT_WIDTH,
    console: Console | None = None,
) -> Iterator[str]:
    """The table as text, a piece at a time: the long listing of samples is made as it is
    written. ``console`` (a terminal's, with its width and colours) renders the Rich parts;
    by default they are plain text ``width`` columns wide. Lines carry no trailing spaces."""
    if console is None:
        console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    for part in renderable(report, view, console.width).renderables:
        if isinstance(part, _Listing) and part.plain:
            yield from part.chunks()
        else:
            with console.capture() as capture:
                console.print(part)
            yield _strip_trailing(capture.get())


def renderable(report: Report, view: View = DEFAULT_VIEW, width: int = DEFAULT_WIDTH) -> Group:
    """The whole report: header, flag counts, listed samples, verdict."""
    parts: list[RenderableType] = [
        _header(report),
        *_counts(report, width),
        Text(_input_line(report)),
        Text(headroom_line(report)),
        *_health_parts(report, width),
        Text(),
        *sweep_matrix(report, width),
    ]
    shown, hidden = listed_rows(report, view.include_clean, view.max_rows)
    if len(shown):
        parts.append(_samples(report, shown, view, width))
        if hidden:
            parts.append(
                Text(f"... and {hidden} more (--max-rows {view.max_rows}; --max-rows 0 shows all)")
            )
        parts.append(Text())
    parts.append(Text(meaning(report)))
    parts.append(_verdict(report))
    return Group(*parts)


# Trailing spaces, possibly followed by the escape codes that end a style.
_TRAILING = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


def _strip_trailing(text: str) -> str:
    return _TRAILING.sub(r"\1", text)


def _health_parts(report: Report, width: int) -> list[RenderableType]:
    """Health statistics, the log Z chart (when it says something), drift and traps."""
    parts: list[RenderableType] = []
    rows = health.health_rows(report)
    if rows:
        parts.append(_numbers_table(health.HEALTH_COLUMNS, rows, width))
    if chart.informative(report):
        parts.append(chart.TerminalChart(report))
    if report.drift is not None:
        parts.append(Text(health.drift_title(report), style="bold"))
        parts.append(_numbers_table(health.DRIFT_COLUMNS, health.drift_rows(report), width))
        parts.append(Text(health.drift_verdict(report)))
    parts.extend(Text(line, style=NOTE_STYLE) for line in health.trap_lines(report))
    return parts


def _numbers_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], width: int
) -> RenderableType:
    """A name column, then columns of numbers, right-aligned. Where that is wider than
    ``width``, the rows stacked instead: the first column's header, then each row's name
    over its ``column value`` pairs, as many to a line as fit (no number is cut)."""
    table = Table(box=box.SIMPLE_HEAD)
    for k, name in enumerate(columns):
        table.add_column(name, justify="left" if k == 0 else "right")
    for row in rows:
        table.add_row(*row)
    if _measure(table).maximum <= width:
        return table
    return Text("\n".join(["", *_stacked(columns[0], columns, rows, width), ""]))


def _stacked(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], width: int
) -> list[str]:
    """The lines of a table too wide for ``width``: ``title``, then each row's first cell
    over its other cells as ``column value`` pairs, as many to a line as fit."""
    lines = [title]
    for name, *cells in rows:
        lines.append(f"  {name}")
        line = ""
        for column, cell in zip(columns[1:], cells, strict=True):
            pair = f"{column} {cell}"
            if line and len(line) + len(_GAP) + len(pair) > width:
                lines.append(line)
                line = ""
            line = f"{line}{_GAP}{pair}" if line else f"    {pair}"
        lines.append(line)
    return lines


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


def _counts(report: Report, width: int) -> list[Table]:
    """Flag counts with one row per flag and one column per implementation, so they sit
    side by side; as many tables as it takes to fit ``width`` when there are many."""
    groups: list[list[Implementation]] = [[]]
    for implementation in report.implementations:
        candidate = _counts_table(report, [*groups[-1], implementation])
        if groups[-1] and _measure(candidate).maximum > width:
            groups.append([implementation])
        else:
            groups[-1].append(implementation)
    tables = [_counts_table(report, group) for group in groups]
    for later in tables[1:]:
        later.title = None
    return tables


def _counts_table(report: Report, implementations: list[Implementation]) -> Table:
    s = report.summary
    table = Table(
        title=f"{s.flagged} of {s.samples} samples flagged",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("samples with")
    for implementation in implementations:
        table.add_column(implementation.name, justify="right")
    for name in count_names(report):
        cells = [count_text(report, i.name, name) for i in implementations]
        style = BROKEN_STYLE if name == "breaks" else NOTE_STYLE
        table.add_row(
            name,
            *(Text(v, style=style if v not in ("0", NOT_REPORTED) else "") for v in cells),
        )
    return table


def _measure(renderable: RenderableType) -> Measurement:
    """The widths ``renderable`` takes: ``maximum`` when nothing in it is wrapped,
    ``minimum`` when every cell is wrapped at its spaces."""
    console = Console(file=io.StringIO(), width=10_000)
    return Measurement.get(console, console.options, renderable)


def _title(view: View) -> str:
    return ("All samples" if view.include_clean else "Flagged samples") + ", worst first"


def _samples(report: Report, shown: np.ndarray, view: View, width: int) -> _Listing:
    return _Listing(report, shown, view, width)


def _verdict(report: Report) -> Text:
    return Text(verdict_line(report), style=OK_STYLE if report.passed else BROKEN_STYLE)


def sweep_matrix(report: Report, width: int = DEFAULT_WIDTH) -> list[RenderableType]:
    """With ``--sweep``: one row per compute dtype, widest first, and the verdict line;
    stacked where the columns are wider than ``width``."""
    sweep = rows(report)
    if not sweep:
        return []
    title = f"The check in every dtype (--sweep); the rest is {report.compute_dtype}'s"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name, numbers in COLUMNS:
        table.add_column(name, justify="right" if numbers else "left")
    for row in sweep:
        table.add_row(
            Text(
                row.compute_dtype, style="bold" if row.compute_dtype == report.compute_dtype else ""
            ),
            _count_cell(row.naive_breaks, BROKEN_STYLE),
            _count_cell(row.stable_breaks, BROKEN_STYLE),
            Text(row.input_text, style=NOTE_STYLE if row.input_text != "-" else ""),
            _count_cell(row.notes, NOTE_STYLE),
            row.headroom_text,
        )
    broken = any(row.breaks for row in sweep)
    line = Text(verdict(sweep), style=NOTE_STYLE if broken else OK_STYLE)
    if _measure(table).minimum > width:  # its headers may wrap, its cells may not be cut
        cells = [
            (
                r.compute_dtype,
                str(r.naive_breaks),
                str(r.stable_breaks),
                r.input_text,
                str(r.notes),
                r.headroom_text,
            )
            for r in sweep
        ]
        names = [name for name, _ in COLUMNS]
        return [Text("\n".join([*_stacked(title, names, cells, width), ""])), line, Text()]
    return [table, line, Text()]


def _count_cell(count: int, style: str) -> Text:
    return Text(str(count), style=style if count else "")


# --- the sample listing --------------------------------------------------------------------

_GAP = "   "  # between columns, as Rich's SIMPLE_HEAD box lays them out
_EDGE = "  "
_LOSS = "BROKEN loss="
_VERDICT_STYLES = (("BROKEN", BROKEN_STYLE), ("note", NOTE_STYLE), ("ok", OK_STYLE))


@dataclass(frozen=True)
class _Column:
    label: str
    width: int
    right: bool


class _Listing:
    """The listed samples as lines of text laid out by hand, so that they fit ``width``
    with no number cut: fixed-width columns (the raised flags wrapped between words under
    each verdict if need be), else one stacked block of ``label value`` lines per sample.

    Up to ``FEW_ROWS`` samples are made first and the columns are as wide as their cells
    (as a Rich table would be); a longer listing takes its widths from the columns' arrays
    and makes its rows lazily, a batch at a time, as plain text (``plain``). It is also a
    Rich renderable, whose verdict words are coloured on a terminal."""

    def __init__(self, report: Report, shown: np.ndarray, view: View, width: int) -> None:
        self.report = report
        self.shown = shown
        self.view = view
        self.width = width
        self.plain = len(shown) > FEW_ROWS
        self.samples = None if self.plain else list(report.results(shown))
        if self.samples is None:
            self.columns = _plain_columns(report, shown)
        else:
            natural = _cell_columns(report, self.samples, wrap=False)
            self.columns = natural
            if _row_width(natural) > width:
                self.columns = _widen(
                    _cell_columns(report, self.samples, wrap=True), natural, width
                )
        self.wide = _row_width(self.columns) <= width

    def _rows(self) -> Iterator[SampleResult]:
        if self.samples is not None:
            return iter(self.samples)
        return self.report.results(self.shown)

    def chunks(self) -> Iterator[str]:
        lines: list[str] = []
        for line in self.lines():
            lines.append(line)
            if len(lines) >= CHUNK_LINES:
                yield "\n".join(lines) + "\n"
                lines = []
        if lines:
            yield "\n".join(lines) + "\n"

    def lines(self) -> Iterator[str]:
        yield _title(self.view)
        yield ""
        if self.wide:
            yield from self._table_lines()
        else:
            yield from self._stacked_lines()
        yield ""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines():
            text = Text(line)
            for word, style in _VERDICT_STYLES:
                text.highlight_regex(rf"(?<=\s){word}\b", style)
            yield text

    def _table_lines(self) -> Iterator[str]:
        columns = self.columns
        header = _EDGE + _GAP.join(_cell(c.label, c) for c in columns)
        yield header.rstrip()
        yield " " + "─" * (_row_width(columns) - 2)
        report = self.report
        several = report.input.several
        first = columns[0].width
        verdict_columns = columns[-len(report.implementations) :]
        for sample in self._rows():
            cells = [
                _fold(position_text(sample), first)
                + (_fold(file_text(report, sample), first) if several else []),
                [target_text(sample)],
                *([measure_text(sample, m)] for m in TABLE_MEASURES),
                *(
                    _verdict_lines(sample, sample.results[i.name], c.width)
                    for i, c in zip(report.implementations, verdict_columns, strict=True)
                ),
            ]
            height = max(map(len, cells))
            for k in range(height):
                line = _EDGE + _GAP.join(
                    _cell(cell[k] if k < len(cell) else "", c)
                    for cell, c in zip(cells, columns, strict=True)
                )
                yield line.rstrip()

    def _stacked_lines(self) -> Iterator[str]:
        report = self.report
        labels = ["target", *(m.label for m in TABLE_MEASURES)]
        labels += [i.name for i in report.implementations]
        if report.input.several:
            labels.append("file")
        key = max(map(len, labels))
        longest = max(c.width for c in self.columns[1:])
        inline = 2 + key + 2 + min(longest, len(_LOSS) + 13) <= self.width
        value_width = max(self.width - (2 + key + 2 if inline else 4), 1)
        first = True
        for sample in self._rows():
            if not first:
                yield ""
            first = False
            yield "sample " + position_text(sample)
            rows: list[tuple[str, list[str]]] = []
            if report.input.several:
                rows.append(("file", _fold(file_text(report, sample), value_width)))
            rows.append(("target", [target_text(sample)]))
            rows += [(m.label, [measure_text(sample, m)]) for m in TABLE_MEASURES]
            rows += [
                (i.name, _verdict_lines(sample, sample.results[i.name], value_width))
                for i in report.implementations
            ]
            for label, values in rows:
                if inline:
                    yield f"  {label:<{key}}  {values[0]}".rstrip()
                    for more in values[1:]:
                        yield " " * (key + 4) + more
                else:
                    yield "  " + label
                    for value in values:
                        yield "    " + value


_FILE_WIDTH = 40  # a longer file name folds in the sample column


def _cell_columns(report: Report, samples: list[SampleResult], wrap: bool) -> list[_Column]:
    """Columns as wide as their widest cell; with ``wrap``, the verdict columns only as
    wide as their verdicts and longest flag name (the flags wrap between words)."""
    sample = max([len("sample")] + [len(position_text(s)) for s in samples])
    if report.input.several:
        files = max(len(file_text(report, s)) for s in samples)
        sample = max(sample, min(files, _FILE_WIDTH))
    columns = [
        _Column("sample", sample, False),
        _Column("target", max([len("target")] + [len(target_text(s)) for s in samples]), True),
    ]
    for m in TABLE_MEASURES:
        width = max([len(m.label)] + [len(measure_text(s, m)) for s in samples])
        columns.append(_Column(m.label, width, True))
    for i in report.implementations:
        width = len(i.name)
        for s in samples:
            flags = s.results[i.name]
            lines = _verdict_lines(s, flags, 10_000)
            raised = raised_flags(s, flags)
            width = max(width, len(lines[0]), *(map(len, raised) if wrap else map(len, lines)))
        columns.append(_Column(i.name, width, False))
    return columns


def _widen(columns: list[_Column], natural: list[_Column], width: int) -> list[_Column]:
    """``columns`` grown, one character at a time in turn, towards their ``natural`` widths
    while the row still fits ``width``: the flags wrap no more than they must."""
    widths = [c.width for c in columns]
    spare = width - _row_width(columns)
    while spare > 0:
        grown = False
        for k, goal in enumerate(natural):
            if spare > 0 and widths[k] < goal.width:
                widths[k] += 1
                spare -= 1
                grown = True
        if not grown:
            break
    return [_Column(c.label, w, c.right) for c, w in zip(columns, widths, strict=True)]


def _plain_columns(report: Report, shown: np.ndarray) -> list[_Column]:
    """Column widths for ``shown`` decided before any row is made, from the columns' arrays:
    wide enough for every value, so no row has to be seen twice."""
    info = report.input
    if info.several:
        longest = max(len(file_text_of(report, f.logits)) for f in info.files)
        shapes = [f.sample_shape for f in info.files]
    else:
        longest = 0
        shapes = [info.sample_shape]
    sample = max(len("sample"), min(longest, _FILE_WIDTH), *(_position_width(s) for s in shapes))
    target = len("target")
    if report.targets is not None and len(shown):
        values = report.targets[shown]
        ignored = ~report.findings.has_target[shown]
        for chosen, extra in ((values[~ignored], 0), (values[ignored], len(" (ignored)"))):
            if len(chosen):
                low, high = int(chosen.min()), int(chosen.max())
                target = max(target, len(str(low)) + extra, len(str(high)) + extra)
    columns = [_Column("sample", sample, False), _Column("target", target, True)]
    for m in TABLE_MEASURES:
        values = report.measure(m.name, shown)
        columns.append(_Column(m.label, max(len(m.label), _number_width(values)), True))
    for i in report.implementations:
        loss = report.findings.impls[i.name].loss[shown]
        # "BROKEN loss=<number>", and room for the longest flag name on its own line.
        width = max(len(i.name), len(_LOSS) + _number_width(loss), len("out_of_range"))
        columns.append(_Column(i.name, width, False))
    return columns


def file_text_of(report: Report, logits: str) -> str:
    """A file's name as the sample column shows it (without the shared directory)."""
    directory = shared_directory(report)
    return logits[len(directory) :] if directory else logits


def _position_width(shape: tuple[int, ...]) -> int:
    """The longest ``position_text`` of a sample of a file with these sample axes."""
    digits = [len(str(max(size - 1, 0))) for size in shape]
    if len(digits) == 1:
        return digits[0]
    return 2 + sum(digits) + 2 * (len(digits) - 1)


def _number_width(values: np.ndarray) -> int:
    """The widest ``short_number`` of ``values``: at most 12 characters (``-1.23457e-05``,
    ``-0.000123457``), 13 with a three-digit exponent."""
    finite = values[np.isfinite(values)].astype(np.float64)  # 1e100 is no float32
    if not len(finite):
        return 4  # "-inf"
    magnitude = np.abs(finite)
    huge = bool(((magnitude >= 1e100) | ((magnitude < 1e-99) & (magnitude > 0))).any())
    return 13 if huge else 12


def _row_width(columns: list[_Column]) -> int:
    return len(_EDGE) + sum(c.width for c in columns) + len(_GAP) * (len(columns) - 1)


def _cell(text: str, column: _Column) -> str:
    return text.rjust(column.width) if column.right else text.ljust(column.width)


def _verdict_lines(sample: SampleResult, flags: PathFlags, width: int) -> list[str]:
    """``BROKEN loss=inf`` on the first line, the raised flags wrapped between words below."""
    raised = raised_flags(sample, flags)
    lines = [verdict_head(flags, raised)]
    line = ""
    for name in raised:
        if line and len(line) + 1 + len(name) > width:
            lines.append(line)
            line = name
        else:
            line = f"{line} {name}" if line else name
    if line:
        lines.append(line)
    return lines


def _fold(text: str, width: int) -> list[str]:
    """``text`` in pieces of ``width`` characters (a long file name)."""
    if len(text) <= width:
        return [text]
    return [text[k : k + width] for k in range(0, len(text), width)]
