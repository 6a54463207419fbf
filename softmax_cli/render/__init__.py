"""One module per ``--format``; each turns a Report into text and does no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from softmax_cli.report import PathFlags, Report, SampleResult


class OutputFormat(enum.StrEnum):
    """What ``--format`` (and ``--report FORMAT=PATH``) accepts."""

    table = "table"
    json = "json"
    junit = "junit"
    github = "github"
    markdown = "markdown"


@dataclass(frozen=True)
class View:
    """Which samples a report lists: flagged ones (or all), at most ``max_rows`` in tables."""

    include_clean: bool = False
    max_rows: int = 20  # 0: no cap


DEFAULT_VIEW = View()


def render(report: Report, fmt: OutputFormat, view: View = DEFAULT_VIEW) -> str:
    """The report as text in ``fmt``."""
    from softmax_cli.render import github, json, junit, markdown, table

    match fmt:
        case OutputFormat.table:
            return table.render_text(report, view)
        case OutputFormat.json:
            return json.render(report, view)
        case OutputFormat.junit:
            return junit.render(report, view)
        case OutputFormat.github:
            return github.render(report, view)
        case OutputFormat.markdown:
            return markdown.render(report, view)


# Words shared by the CI formats (junit, github, markdown), so a sample reads the same in
# every one of them.

FLAG_NAMES = ("overflow", "underflow", "nan_prob", "nan_grad")


def sample_label(sample: SampleResult) -> str:
    """``sample 1`` for a 1-D batch, ``sample (1, 3)`` for N-D sample axes."""
    position = sample.position
    where = str(position[0]) if len(position) == 1 else "(" + ", ".join(map(str, position)) + ")"
    return f"sample {where}"


def path_verdict(sample: SampleResult, flags: PathFlags) -> str:
    """``BROKEN loss=inf: overflow, nan_prob`` / ``note loss=2000: underflow`` / ``ok loss=0.4``."""
    from softmax_cli.render.table import number

    raised = [name for name in FLAG_NAMES if getattr(flags, name)]
    raised += [name for name in ("nonfinite", "fully_masked") if getattr(sample.input, name)]
    verdict = "BROKEN" if flags.breaks else "note" if raised else "ok"
    if flags.loss is not None:
        verdict += f" loss={number(flags.loss)}"
    return f"{verdict}: {', '.join(raised)}" if raised else verdict


def target_text(sample: SampleResult) -> str:
    """The target as a person reads it: ``2``, ``-100 (ignored)`` or ``-`` for none."""
    if sample.target is None:
        return "-"
    return f"{sample.target} (ignored)" if sample.naive.loss is None else str(sample.target)


def failing_categories(report: Report, sample: SampleResult) -> list[str]:
    """The ``--fail-on`` categories this sample falls in (empty: a note, not a failure)."""
    by_category = {
        "input": sample.input.nonfinite or sample.input.fully_masked,
        "stable": sample.stable.breaks,
        "naive": sample.naive.breaks,
    }
    return [c.value for c in report.fail_on if by_category[c.value]]


def policy_text(report: Report) -> str:
    """``--fail-on`` as given back: ``input,stable`` or ``none``."""
    return ",".join(c.value for c in report.fail_on) or "none"


def verdict_line(report: Report) -> str:
    """``passed: ...`` or ``FAILED --fail-on input,stable (input: 2)``, as the table says it."""
    policy = policy_text(report)
    if report.passed:
        return f"passed: no sample fails --fail-on {policy}"
    counts = ", ".join(
        f"{c.value}: {report.summary.failing(c)}"
        for c in report.fail_on
        if report.summary.failing(c)
    )
    return f"FAILED --fail-on {policy} ({counts})"
