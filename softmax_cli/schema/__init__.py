"""The published JSON Schema (2020-12) of ``--format json``, shipped with the package.

Validate a report with ``jsonschema``::

    import json, jsonschema
    from softmax_cli import schema
    jsonschema.validate(json.load(open("report.json")), schema.load())
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORT_V1 = "report-v1.schema.json"


def path(name: str = REPORT_V1) -> Path:
    """Where the schema file is on disk (for tools that take a path, e.g. check-jsonschema)."""
    return Path(__file__).with_name(name)


def load(name: str = REPORT_V1) -> dict[str, Any]:
    """The schema as a dict, ready for ``jsonschema.validate`` or a validator class."""
    return json.loads(path(name).read_text(encoding="utf-8"))
