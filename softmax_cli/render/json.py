"""``--format json``: the contract's schema, strict JSON (non-finite floats as strings)."""

from __future__ import annotations

import json
import math
from typing import Any

from softmax_cli.baseline import Change, Drift
from softmax_cli.options import DEFAULT_VIEW, View
from softmax_cli.report import (
    MEASURES,
    Flag,
    InputFlag,
    InputInfo,
    MeasureSpec,
    PathFlags,
    Report,
    SampleResult,
    Summary,
)
from softmax_cli.version import __version__

SCHEMA_VERSION = 1


def render(report: Report, view: View = DEFAULT_VIEW) -> str:
    """The JSON document; ``samples`` lists every flagged sample (every one with --all).

    The document is indented, but each sample is one compact line: a report can list
    millions of samples, and Python's JSON encoder only uses its C implementation without
    ``indent`` (10x faster); one line per sample also suits grep and ``head``.
    """
    head = json.dumps(document(report), indent=2, allow_nan=False)
    lines = [
        json.dumps(sample(s), allow_nan=False)
        for s in report.samples(include_clean=view.include_clean)
    ]
    listing = "[\n    " + ",\n    ".join(lines) + "\n  ]" if lines else "[]"
    # ``head`` ends with "\n}"; the samples, always the last key, go before the brace.
    return f'{head[:-2]},\n  "samples": {listing}\n}}\n'


def document(report: Report) -> dict[str, Any]:
    """Every key of the document but ``samples``, in the contract's order."""
    info = report.input
    summary = report.summary
    document = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "softmax-check", "version": __version__},
        "input": _input(info),
        "compute_dtype": report.compute_dtype,
        "fail_on": [c.value for c in report.fail_on],
        "passed": report.passed,
        "summary": {
            "samples": summary.samples,
            "flagged": summary.flagged,
            "input": vars(summary.input),
            **{i.name: vars(summary.impls[i.name]) for i in report.implementations},
            "headroom": vars(summary.headroom),
            "health": _health(summary),
        },
    }
    if report.drift is not None:
        document["baseline"] = _baseline(report.drift)
    return document


def _baseline(drift: Drift) -> dict[str, Any]:
    def change(c: Change) -> dict[str, Any]:
        return {
            key: None if value is None else json_number(value)
            for key, value in (("before", c.before), ("after", c.after), ("change", c.change))
        }

    return {
        "path": drift.path,
        "new_breaks": dict(drift.new_breaks),
        "fixed": dict(drift.fixed),
        "min_headroom": change(drift.min_headroom),
        "health": {name: change(c) for name, c in drift.health.items()},
    }


def _health(summary: Summary) -> dict[str, Any] | None:
    if summary.health is None:
        return None
    return {
        name: None if stat is None else {k: json_number(v) for k, v in vars(stat).items()}
        for name, stat in summary.health.items()
    }


def _input(info: InputInfo) -> dict[str, Any]:
    """One file as it always was; several as ``files`` with where each one's samples start."""
    if not info.several:
        return {
            "logits": info.logits,
            "targets": info.targets,
            "shape": list(info.shape),
            "dtype": info.dtype,
            "class_axis": info.class_axis,
        }
    files = [
        {
            "logits": f.logits,
            "targets": f.targets,
            "shape": list(f.shape),
            "dtype": f.dtype,
            "samples": f.samples,
            "first_index": f.first_index,
        }
        for f in info.files
    ]
    return {"files": files, "samples": info.shape[0], "class_axis": info.class_axis}


_INPUT_KEYS = tuple(f.key for f in InputFlag)
_MEASURES = tuple(m for m in MEASURES if m.json)


def _measure(value: float, spec: MeasureSpec) -> float | str | None:
    return None if spec.null and math.isnan(value) else json_number(value)


_FLAG_KEYS = tuple(f.key for f in Flag)


def sample(result: SampleResult) -> dict[str, Any]:
    # Built by hand: dataclasses.asdict deep-copies, and this runs once per listed sample.
    where = {} if result.file is None else {"file": result.file}
    return {
        "index": result.index,
        **where,
        "position": list(result.position),
        "target": result.target,
        **{m.name: _measure(result.measures[m.name], m) for m in _MEASURES},
        "input": {key: getattr(result.input, key) for key in _INPUT_KEYS},
        **{name: _path(flags) for name, flags in result.results.items()},
    }


def _path(flags: PathFlags) -> dict[str, Any]:
    return {
        **{key: getattr(flags, key) for key in _FLAG_KEYS},
        "loss": None if flags.loss is None else json_number(flags.loss),
    }


def json_number(value: float) -> float | str:
    """A float, or ``"nan"``, ``"inf"``, ``"-inf"`` so the document stays strict JSON."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
