"""``--format markdown``: the verdict, the flag counts and a table of the flagged samples.

GitHub-flavoured Markdown for ``$GITHUB_STEP_SUMMARY`` or a merge-request comment: pipe
tables with ``|`` escaped in cells, file names in code spans so that ``<stdin>`` or a ``*``
in a name is shown, not interpreted. Capped at ``--max-rows`` rows like the terminal
table: a comment has a size limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from softmax_cli.errors import display
from softmax_cli.options import DEFAULT_VIEW, View
from softmax_cli.render import health
from softmax_cli.render.words import (
    INPUT_FLAG_NAMES,
    TABLE_MEASURES,
    count_names,
    count_text,
    headroom_line,
    listed_rows,
    meaning,
    measure_text,
    path_verdict,
    position_text,
    target_text,
    verdict_line,
)
from softmax_cli.report import InputInfo, Report
from softmax_cli.sweep import COLUMNS, rows, verdict


def render(report: Report, view: View = DEFAULT_VIEW) -> str:
    """The Markdown document, ending in a newline."""
    return "".join(chunks(report, view))


def chunks(report: Report, view: View = DEFAULT_VIEW) -> Iterator[str]:
    """The document a piece at a time: the sample table's rows are made as they are
    written, a batch at a time."""
    info, s = report.input, report.summary
    icon = ":white_check_mark:" if report.passed else ":x:"
    size = f"{s.samples} samples x {info.classes} classes"
    targets = f"targets from {_targets(info)}." if info.targets else "no targets."
    if info.several:
        size += f" in {len(info.files)} files"
        targets = "targets from each file." if report.targets is not None else "no targets."
    blocks = [
        f"## softmax-check: {_code(info.logits)}",
        f"{icon} **{_escape(verdict_line(report))}**",
        f"{size}, {info.dtype} input, computed in {report.compute_dtype}, "
        + targets
        + f" **{s.flagged} flagged.** {_escape(meaning(report))}",
        _counts(report),
        _escape(headroom_line(report)),
        *_sweep(report),
        *_health_blocks(report),
    ]
    yield "\n\n".join(blocks)
    shown, hidden = listed_rows(report, view.include_clean, view.max_rows)
    if len(shown):
        title = "All samples" if view.include_clean else "Flagged samples"
        yield f"\n\n### {title}, worst first\n\n"
        yield from _samples(report, shown)
        if hidden:
            yield (
                f"\n\n... and {hidden} more (`--max-rows {view.max_rows}`; `--max-rows 0` "
                "shows all)"
            )
    yield "\n"


def _health_blocks(report: Report) -> list[str]:
    """Health statistics, drift against a baseline and batch-level traps."""
    blocks = []
    rows = health.health_rows(report)
    if rows:
        blocks.append(_numbers_table(health.HEALTH_COLUMNS, rows))
    if report.drift is not None:
        blocks.append(f"### {_escape(health.drift_title(report))}")
        blocks.append(_numbers_table(health.DRIFT_COLUMNS, health.drift_rows(report)))
        blocks.append(_escape(health.drift_verdict(report)))
    blocks.extend(f"> {_escape(line)}" for line in health.trap_lines(report))
    return blocks


def _numbers_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A name column, then columns of numbers, right-aligned."""
    lines = [_row(columns), _rule(["---", *("---:" for _ in columns[1:])])]
    return "\n".join(lines + [_row(r) for r in rows])


def _counts(report: Report) -> str:
    s = report.summary
    names = [i.name for i in report.implementations]
    rows = [_row(["samples with", *names]), _rule(["---", *("---:" for _ in names)])]
    for count in count_names(report):
        rows.append(_row([count, *(count_text(report, n, count) for n in names)]))
    for flag in INPUT_FLAG_NAMES:
        # The count goes under the first implementation; the other cells stay empty.
        rows.append(f"| input: {flag} | {getattr(s.input, flag)} |" + " |" * (len(names) - 1))
    return "\n".join(rows)


def _sweep(report: Report) -> list[str]:
    """With ``--sweep``: the verdict and one table row per compute dtype, widest first."""
    sweep = rows(report)
    if not sweep:
        return []
    lines = [
        _row(name for name, _ in COLUMNS),
        _rule("---:" if numbers else "---" for _, numbers in COLUMNS),
    ]
    for row in sweep:
        name = row.compute_dtype
        lines.append(
            _row(
                [
                    f"**{name}**" if name == report.compute_dtype else name,
                    str(row.naive_breaks),
                    str(row.stable_breaks),
                    row.input_text,
                    str(row.notes),
                    row.headroom_text,
                ]
            )
        )
    return [
        f"### The check in every dtype (the rest is {report.compute_dtype}'s)",
        _escape(verdict(sweep)),
        "\n".join(lines),
    ]


def _samples(report: Report, shown: np.ndarray) -> Iterator[str]:
    """The pipe table of the samples at ``shown``, a batch of rows per piece, without a
    final newline."""
    measures = TABLE_MEASURES
    names = [i.name for i in report.implementations]
    file = ["file"] if report.input.several else []
    yield _row([*file, "sample", "target", *(m.label for m in measures), *names])
    yield "\n" + _rule(
        ["---" for _ in file]
        + ["---", "---:"]
        + ["---:" for _ in measures]
        + ["---" for _ in names]
    )
    rows = []
    for sample in report.results(shown):
        cells = (
            *([_code(sample.file)] if sample.file is not None else []),
            position_text(sample),
            target_text(sample),
            *(measure_text(sample, m) for m in measures),
            *(_verdict_cell(path_verdict(sample, sample.results[n])) for n in names),
        )
        rows.append(_row(cells))
        if len(rows) >= _CHUNK_ROWS:
            yield "\n" + "\n".join(rows)
            rows = []
    if rows:
        yield "\n" + "\n".join(rows)


_CHUNK_ROWS = 512  # rows per piece of the sample table


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _rule(alignments: Iterable[str]) -> str:
    """The delimiter row under a header: ``|---|---:|``."""
    return "|" + "|".join(alignments) + "|"


def _verdict_cell(verdict: str) -> str:
    """``BROKEN`` in bold, so the eye finds it in a long table."""
    if verdict.startswith("BROKEN"):
        return "**BROKEN**" + _escape(verdict.removeprefix("BROKEN"))
    return _escape(verdict)


def _escape(text: str) -> str:
    """Plain text for a table cell or a paragraph: one line, no markup, no cell breaks, no
    control character (see ``errors.display``)."""
    text = display(" ".join(text.splitlines()))
    for char in "\\`*[]<>|":
        text = text.replace(char, "\\" + char)
    return text


def _targets(info: InputInfo) -> str:
    """``targets.npy``, or ``column 'label' of scores.csv`` when a CSV carried them."""
    if info.target_column is None:
        return _code(info.targets or "")
    return f"column {_code(info.target_column)} of {_code(info.targets or '')}"


def _code(text: str) -> str:
    """``text`` (a path or key) as a code span, with a fence longer than any run of backticks
    inside it; control characters escaped (see ``errors.display``)."""
    text = display(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
