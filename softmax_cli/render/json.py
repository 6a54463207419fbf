"""``--format json``: the contract's schema, strict JSON (non-finite floats as strings)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from softmax_cli import __version__
from softmax_cli.render import DEFAULT_VIEW, View
from softmax_cli.report import Report, SampleResult

SCHEMA_VERSION = 1


def render(report: Report, view: View = DEFAULT_VIEW) -> str:
    """The JSON document; ``samples`` lists every flagged sample (every one with --all)."""
    return json.dumps(document(report, view), indent=2, allow_nan=False) + "\n"


def document(report: Report, view: View = DEFAULT_VIEW) -> dict[str, Any]:
    info = report.input
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "softmax-check", "version": __version__},
        "input": {
            "logits": info.logits,
            "targets": info.targets,
            "shape": list(info.shape),
            "dtype": info.dtype,
            "class_axis": info.class_axis,
        },
        "compute_dtype": report.compute_dtype,
        "fail_on": [c.value for c in report.fail_on],
        "passed": report.passed,
        "summary": dataclasses.asdict(report.summary),
        "samples": [sample(s) for s in report.samples(include_clean=view.include_clean)],
    }


def sample(result: SampleResult) -> dict[str, Any]:
    return {
        "index": result.index,
        "position": list(result.position),
        "target": result.target,
        "max_logit": number(result.max_logit),
        "logsumexp": number(result.logsumexp),
        "input": dataclasses.asdict(result.input),
        "naive": _path(result.naive),
        "stable": _path(result.stable),
    }


def _path(flags: Any) -> dict[str, Any]:
    out = dataclasses.asdict(flags)
    out["loss"] = None if flags.loss is None else number(flags.loss)
    return out


def number(value: float) -> float | str:
    """A float, or ``"nan"``, ``"inf"``, ``"-inf"`` so the document stays strict JSON."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
