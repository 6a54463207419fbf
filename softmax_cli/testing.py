"""A helper for your own test suite: ``assert_passes(logits, targets)`` in a pytest test.

``assert check(logits, targets).passed`` fails with a dump of the report's dataclass; this
fails with what a person wants in the pytest log: the verdict, the counts, and the worst
few samples with their position, flags and losses, in the words the CLI's table uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from softmax_cli.report import Report

WORST_SHOWN = 5  # samples listed in a failure message, worst first


def assert_passes(
    logits: np.ndarray, targets: np.ndarray | None = None, **check_options: Any
) -> Report:
    """Check ``logits`` (``check_options`` as :func:`softmax_cli.check` takes them) and
    return the Report; raise AssertionError with a readable message when a sample falls in
    a ``fail_on`` category."""
    from softmax_cli.classify import check

    report = check(logits, targets, **check_options)
    if not report.passed:
        raise AssertionError(failure_message(report))
    return report


def failure_message(report: Report) -> str:
    """The verdict, the counts of failing samples per category and per implementation, and
    the worst :data:`WORST_SHOWN` failing samples, one line each."""
    from softmax_cli.errors import display
    from softmax_cli.render.words import meaning, sample_label, verdict_line, verdicts

    s = report.summary
    failing = report.ordered(where=report.fails)
    breaks = ", ".join(f"{i.name} {s.impls[i.name].breaks}" for i in report.implementations)
    lines = [
        f"softmax-check {verdict_line(report)}",
        meaning(report),
        f"{s.flagged} of {s.samples} samples flagged, {len(failing)} failing; breaks: {breaks}",
        f"worst {min(len(failing), WORST_SHOWN)} of the failing samples:",
    ]
    for sample in report.results(failing[:WORST_SHOWN]):
        where = f" of {display(sample.file)}" if sample.file else ""
        target = "no target" if sample.target is None else f"target {sample.target}"
        failing_in = ",".join(c.value for c in sample.failing)
        lines.append(
            f"  {sample_label(sample)}{where} ({target}; fails {failing_in}): "
            f"{verdicts(report, sample)}"
        )
    if len(failing) > WORST_SHOWN:
        lines.append(f"  ... and {len(failing) - WORST_SHOWN} more")
    return "\n".join(lines)
