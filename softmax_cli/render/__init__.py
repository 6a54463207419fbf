"""One module per ``--format``; each turns a Report into text and does no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from softmax_cli.report import Report


class OutputFormat(enum.StrEnum):
    """What ``--format`` accepts."""

    table = "table"
    json = "json"


@dataclass(frozen=True)
class View:
    """Which samples a report lists: flagged ones (or all), at most ``max_rows`` in tables."""

    include_clean: bool = False
    max_rows: int = 20  # 0: no cap


DEFAULT_VIEW = View()


def render(report: Report, fmt: OutputFormat, view: View = DEFAULT_VIEW) -> str:
    """The report as text in ``fmt``."""
    from softmax_cli.render import json, table

    match fmt:
        case OutputFormat.table:
            return table.render_text(report, view)
        case OutputFormat.json:
            return json.render(report, view)
