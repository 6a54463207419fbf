"""``--format github``: GitHub Actions workflow commands, one annotation per flagged sample.

``::error`` for a sample in a ``--fail-on`` category, ``::warning`` for the other flagged
ones, worst first. GitHub shows at most 10 annotations of each kind per step, so past that
the tenth says how many more there are; then one plain line with the verdict for the log.
Escaping follows the Actions toolkit (``escapeData`` / ``escapeProperty`` in
``@actions/core``): ``%``, CR and LF everywhere, and ``:`` and ``,`` in properties too.
"""

from __future__ import annotations

import numpy as np

from softmax_cli.errors import display
from softmax_cli.options import DEFAULT_VIEW, View
from softmax_cli.render.words import sample_label, target_text, verdict_line, verdicts
from softmax_cli.report import Report, SampleResult

TOOL = "softmax-check"
ANNOTATIONS_PER_LEVEL = 10  # GitHub shows 10 errors and 10 warnings per step
NOT_A_FILE = "<stdin>"  # the logits came from a pipe: nothing in the repository to point at


def render(report: Report, view: View = DEFAULT_VIEW) -> str:
    """Annotations, then the summary line; ``view`` is ignored (GitHub sets the cap)."""
    lines = [
        *_annotations(report, "error", report.ordered(where=report.fails), "fail --fail-on"),
        *_annotations(report, "warning", report.ordered(where=~report.fails), "are flagged"),
    ]
    s = report.summary
    # "naive breaks on 1, stable on 0": every implementation, the verb said once.
    breaks = ", ".join(f"{i.name} on {s.impls[i.name].breaks}" for i in report.implementations)
    # A plain line, not a command; a line break in a file name must not start one.
    summary = (
        f"{TOOL}: {display(report.input.logits)}: {s.flagged} of {s.samples} samples "
        f"flagged ({breaks.replace(' on ', ' breaks on ', 1)}); {verdict_line(report)}"
    )
    return "".join(f"{line}\n" for line in [*lines, summary])


def _annotations(report: Report, level: str, listed: np.ndarray, what: str) -> list[str]:
    """One command per sample of ``listed`` (indices, worst first), up to GitHub's cap."""
    cap = ANNOTATIONS_PER_LEVEL
    shown = listed if len(listed) <= cap else listed[: cap - 1]
    lines = [
        _command(
            level, s.file or report.input.logits, f"{TOOL}: {sample_label(s)}", _message(report, s)
        )
        for s in report.results(shown)
    ]
    hidden = len(listed) - len(shown)
    if hidden:
        lines.append(
            _command(
                level,
                None if report.input.several else report.input.logits,
                f"{TOOL}: {hidden} more samples",
                f"... and {hidden} more samples {what}; --format json or --format junit "
                "lists every one",
            )
        )
    return lines


def _message(report: Report, sample: SampleResult) -> str:
    return (
        f"{verdicts(report, sample)}; "
        + ("no target" if sample.target is None else f"target {target_text(sample)}")
        + f", flat index {sample.index}"
    )


def _command(level: str, file: str | None, title: str, message: str) -> str:
    """An annotation pointing at ``file`` (the sample's own: one of several, or the one)."""
    properties = {"title": title}
    if file is not None and file != NOT_A_FILE:
        # CR and LF go through the toolkit's escaping (the runner decodes them back); every
        # other control character, an escape sequence say, must not reach the log raw.
        shown = "".join(c if c in "\r\n" else display(c) for c in file)
        properties = {"file": shown, **properties}
    joined = ",".join(f"{key}={_property(value)}" for key, value in properties.items())
    return f"::{level} {joined}::{_data(message)}"


def _data(value: str) -> str:
    """The toolkit's ``escapeData``: a command's message."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(value: str) -> str:
    """The toolkit's ``escapeProperty``: a command's ``key=value`` property."""
    return _data(value).replace(":", "%3A").replace(",", "%2C")
