"""``--format json``: the contract's schema, strict JSON (non-finite floats as strings)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from softmax_cli.baseline import Change, Drift
from softmax_cli.options import DEFAULT_VIEW, View
from softmax_cli.report import (
    BUILTIN,
    MEASURES,
    NAIVE,
    Implementation,
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
    """The JSON document; ``samples`` lists every flagged sample (every one with --all)."""
    return "".join(chunks(report, view))


def chunks(report: Report, view: View = DEFAULT_VIEW) -> Iterator[str]:
    """The document a piece at a time: the samples are encoded as they are written, a
    batch at a time, so a report listing millions of them never holds them all.

    The document is indented, but each sample is one compact line: Python's JSON encoder
    only uses its C implementation without ``indent`` (10x faster); one line per sample
    also suits grep and ``head``.
    """
    head = json.dumps(document(report), indent=2, allow_nan=False)
    implementations = report.implementations
    # ``head`` ends with "\n}"; the samples, always the last key, go before the brace.
    yield f'{head[:-2]},\n  "samples": '
    lines: list[str] = []
    separator = "[\n    "
    for s in report.samples(include_clean=view.include_clean, shortest=True):
        lines.append(json.dumps(sample(s, implementations), allow_nan=False))
        if len(lines) >= _CHUNK_SAMPLES:
            yield separator + ",\n    ".join(lines)
            separator, lines = ",\n    ", []
    if lines:
        yield separator + ",\n    ".join(lines)
        separator = ""
    yield "[]\n}\n" if separator == "[\n    " else "\n  ]\n}\n"


_CHUNK_SAMPLES = 512  # samples per piece of the document


def document(report: Report) -> dict[str, Any]:
    """Every key of the document but ``samples``, in the contract's order."""
    info = report.input
    summary = report.summary
    own = {
        i.name: {k: _summary_value(v) for k, v in vars(summary.impls[i.name]).items()}
        for i in report.own_implementations
    }
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
            **{i.name: vars(summary.impls[i.name]) for i in report.implementations if i.builtin},
            **({"impls": own} if own else {}),
            "headroom": vars(summary.headroom),
            "health": _health(summary),
        },
        **({"sweep": [_swept(r) for r in report.sweep]} if report.sweep else {}),
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


def _swept(report: Report) -> dict[str, Any]:
    """One dtype of ``--sweep``: its summary is shaped like the top-level one."""
    whole = document(report)
    return {key: whole[key] for key in ("compute_dtype", "passed", "summary")}


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


def _summary_value(value: int | float | None) -> int | float | str | None:
    return json_number(value) if isinstance(value, float) else value


_FLAG_KEYS = tuple(f.key for f in NAIVE.reported)  # the built-in paths' keys


def sample(
    result: SampleResult, implementations: tuple[Implementation, ...] = BUILTIN
) -> dict[str, Any]:
    """One sample: the built-in paths at the top level, a user's under ``impls``."""
    # Built by hand: dataclasses.asdict deep-copies, and this runs once per listed sample.
    where = {} if result.file is None else {"file": result.file}
    document = {
        "index": result.index,
        **where,
        "position": list(result.position),
        "target": result.target,
        **{m.name: _measure(result.measures[m.name], m) for m in _MEASURES},
        "input": {key: getattr(result.input, key) for key in _INPUT_KEYS},
        **{i.name: _path(result.results[i.name]) for i in implementations if i.builtin},
    }
    own = {i.name: _own(result.results[i.name]) for i in implementations if not i.builtin}
    if own:
        document["impls"] = own
    return document


def _path(flags: PathFlags) -> dict[str, Any]:
    return {
        **{key: getattr(flags, key) for key in _FLAG_KEYS},
        "loss": None if flags.loss is None else json_number(flags.loss),
    }


def _own(flags: PathFlags) -> dict[str, Any]:
    return {
        "nan_prob": flags.nan_prob,
        "nan_grad": flags.nan_grad,
        "loss": None if flags.loss is None else json_number(flags.loss),
        "error": None if flags.error is None else json_number(flags.error),
        "breaks": flags.breaks,
    }


def json_number(value: float) -> float | str:
    """A float, or ``"nan"``, ``"inf"``, ``"-inf"`` so the document stays strict JSON."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
