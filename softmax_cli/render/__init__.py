"""One module per ``--format``; each turns a Report into text and does no I/O.

This module only dispatches; the words the formats share are in :mod:`.words`.
"""

from __future__ import annotations

from collections.abc import Iterator

from softmax_cli.options import DEFAULT_VIEW, OutputFormat, View
from softmax_cli.report import Report


def render(report: Report, fmt: OutputFormat, view: View = DEFAULT_VIEW) -> str:
    """The report as text in ``fmt``."""
    return "".join(render_chunks(report, fmt, view))


def render_chunks(report: Report, fmt: OutputFormat, view: View = DEFAULT_VIEW) -> Iterator[str]:
    """The report as text in ``fmt``, a piece at a time: a listing of millions of samples
    is made as it is written, never held whole. Each format's module is imported when it
    is used: a JSON run never loads Rich's table code."""
    match fmt:
        case OutputFormat.table:
            from softmax_cli.render import table

            return table.chunks(report, view)
        case OutputFormat.json:
            from softmax_cli.render import json

            return json.chunks(report, view)
        case OutputFormat.junit:
            from softmax_cli.render import junit

            return junit.chunks(report, view)
        case OutputFormat.github:
            from softmax_cli.render import github

            return iter((github.render(report, view),))
        case OutputFormat.markdown:
            from softmax_cli.render import markdown

            return markdown.chunks(report, view)
