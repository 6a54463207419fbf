"""``--format markdown``: the verdict, the flag counts and a table of the flagged samples.

GitHub-flavoured Markdown for ``$GITHUB_STEP_SUMMARY`` or a merge-request comment: pipe
tables with ``|`` escaped in cells, file names in code spans so that ``<stdin>`` or a ``*``
in a name is shown, not interpreted. Capped at ``--max-rows`` rows like the terminal
table: a comment has a size limit.
"""

from __future__ import annotations

import re

from softmax_cli.render import (
    COUNT_NAMES,
    DEFAULT_VIEW,
    View,
    meaning,
    number,
    path_verdict,
    sample_label,
    target_text,
    verdict_line,
)
from softmax_cli.report import Report, SampleResult


def render(report: Report, view: View = DEFAULT_VIEW) -> str:
    """The Markdown document, ending in a newline."""
    info, s = report.input, report.summary
    icon = ":white_check_mark:" if report.passed else ":x:"
    blocks = [
        f"## softmax-check: {_code(info.logits)}",
        f"{icon} **{_escape(verdict_line(report))}**",
        f"{s.samples} samples x {info.classes} classes, {info.dtype} input, computed in "
        f"{report.compute_dtype}, "
        + (f"targets from {_code(info.targets)}." if info.targets else "no targets.")
        + f" **{s.flagged} flagged.** {_escape(meaning(report))}",
        _counts(report),
    ]
    listed = report.ordered_indices(include_clean=view.include_clean)
    shown = listed if view.max_rows <= 0 else listed[: view.max_rows]
    if len(shown):
        title = "All samples" if view.include_clean else "Flagged samples"
        blocks.append(f"### {title}, worst first")
        blocks.append(_samples([report.sample(int(i)) for i in shown]))
        hidden = len(listed) - len(shown)
        if hidden:
            blocks.append(
                f"... and {hidden} more (`--max-rows {view.max_rows}`; `--max-rows 0` shows all)"
            )
    return "\n\n".join(blocks) + "\n"


def _counts(report: Report) -> str:
    s = report.summary
    rows = ["| samples with | naive | stable |", "|---|---:|---:|"]
    for name in COUNT_NAMES:
        rows.append(f"| {name} | {getattr(s.naive, name)} | {getattr(s.stable, name)} |")
    rows.append(f"| input: nonfinite | {s.input.nonfinite} | |")
    rows.append(f"| input: fully_masked | {s.input.fully_masked} | |")
    return "\n".join(rows)


def _samples(samples: list[SampleResult]) -> str:
    rows = [
        "| sample | target | max logit | logsumexp | naive | stable |",
        "|---|---:|---:|---:|---|---|",
    ]
    for sample in samples:
        cells = (
            sample_label(sample).removeprefix("sample "),
            target_text(sample),
            number(sample.max_logit),
            number(sample.logsumexp),
            _verdict_cell(path_verdict(sample, sample.naive)),
            _verdict_cell(path_verdict(sample, sample.stable)),
        )
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _verdict_cell(verdict: str) -> str:
    """``BROKEN`` in bold, so the eye finds it in a long table."""
    if verdict.startswith("BROKEN"):
        return "**BROKEN**" + _escape(verdict.removeprefix("BROKEN"))
    return _escape(verdict)


def _escape(text: str) -> str:
    """Plain text for a table cell or a paragraph: one line, no markup, no cell breaks."""
    text = " ".join(text.splitlines())
    for char in "\\`*[]<>|":
        text = text.replace(char, "\\" + char)
    return text


def _code(text: str) -> str:
    """``text`` as a code span, with a fence longer than any run of backticks inside it."""
    text = " ".join(text.splitlines())
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
