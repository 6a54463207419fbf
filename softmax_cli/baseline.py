"""Drift: this check compared with an earlier JSON report of a dump with the same samples.

A training run checked at each checkpoint answers "did anything get worse?": samples that
break now and did not before (per implementation), samples fixed, the minimum headroom and
each health statistic's p99 before and after. The earlier report lists only its flagged
samples (every one with ``--all``); a sample it does not list did not break. The category
``regression`` holds the newly breaking samples and, when the minimum headroom fell by more
than ``max_headroom_drop`` nats, the sample that now has the minimum.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from softmax_cli.errors import InputError, OptionError
from softmax_cli.health import HEALTH_NAMES
from softmax_cli.report import BREAKING, BUILTIN, NAIVE, Report

SCHEMA_VERSION = 1
TOOL_NAME = "softmax-check"
PATHS = tuple(i.name for i in BUILTIN)  # the implementations a baseline always has


@dataclass(frozen=True, eq=False)
class Baseline:
    """What drift needs from an earlier report: which samples broke, and its summary."""

    path: str
    samples: int
    breaks: Mapping[str, np.ndarray]  # flat sample indices that broke, per implementation
    min_headroom: float | None
    p99: Mapping[str, float | None]  # each health statistic's p99


@dataclass(frozen=True)
class Change:
    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(frozen=True, eq=False)
class Drift:
    """This report against a baseline: counts per implementation, changes, and the
    ``regression`` mask over this report's samples."""

    path: str
    new_breaks: Mapping[str, int]
    fixed: Mapping[str, int]
    min_headroom: Change
    health: Mapping[str, Change]
    regression: np.ndarray
    max_headroom_drop: float

    @property
    def headroom_fell(self) -> bool:
        """Did the minimum headroom fall by more than the allowed drop?"""
        change = self.min_headroom.change
        return change is not None and -change > self.max_headroom_drop


def check_headroom_drop(max_headroom_drop: float) -> float:
    """``max_headroom_drop`` validated (a finite number of nats, 0 or more) before any work."""
    if not math.isfinite(max_headroom_drop) or max_headroom_drop < 0:
        raise OptionError(
            "max_headroom_drop",
            f"{{option}} must be a finite number, 0 or more, not {max_headroom_drop!r}",
        )
    return float(max_headroom_drop)


def load(path: str) -> Baseline:
    """An earlier ``--format json`` report; anything else is an InputError naming ``path``."""
    hint = "give a report written by softmax-check --format json"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory", hint) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(
            path, f"cannot read: {getattr(error, 'strerror', None) or error}"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(path, f"not JSON ({error.msg}, line {error.lineno})", hint) from None
    tool = document.get("tool") if isinstance(document, dict) else None
    if not isinstance(tool, dict) or tool.get("name") != TOOL_NAME:
        raise InputError(path, "not a softmax-check report (no tool.name 'softmax-check')", hint)
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(
            path,
            f"schema_version {version!r}; this softmax-check reads {SCHEMA_VERSION}",
            "check the old dump again with this version to make a new baseline",
        )
    try:
        return _read(path, document)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError(
            path, "a softmax-check report with missing or malformed keys", hint
        ) from None


def _read(path: str, document: dict[str, Any]) -> Baseline:
    summary = document["summary"]
    samples = int(summary["samples"])
    broken: dict[str, list[int]] = {name: [] for name in PATHS}
    for sample in document["samples"]:
        for name in PATHS:
            if _breaks(sample[name]):
                broken[name].append(int(sample["index"]))
    health = summary.get("health") or {}
    return Baseline(
        path=path,
        samples=samples,
        breaks=MappingProxyType({k: np.array(v, dtype=np.int64) for k, v in broken.items()}),
        min_headroom=_number((summary.get("headroom") or {}).get("min")),
        p99=MappingProxyType(
            {name: _number((health.get(name) or {}).get("p99")) for name in HEALTH_NAMES}
        ),
    )


# The JSON keys of the flags that break a built-in path (overflow, nan_prob, nan_grad): the
# report's own definition (report.BREAKING), read back.
_BREAKING_KEYS = tuple(f.key for f in NAIVE.reported if f & BREAKING)


def _breaks(flags: dict[str, Any]) -> bool:
    """A path breaks on a breaking flag or a non-finite loss, as ``Report.breaks`` says."""
    loss = flags.get("loss")
    return any(flags[key] for key in _BREAKING_KEYS) or (
        loss is not None and not math.isfinite(float(loss))
    )


def _number(value: Any) -> float | None:
    """A JSON number (``"inf"`` strings included) as a float; None for null or absent."""
    return None if value is None else float(value)


def compare(report: Report, baseline: Baseline, max_headroom_drop: float = 1.0) -> Drift:
    """``report`` against ``baseline``; a baseline of another sample count is an InputError."""
    n = len(report)
    if baseline.samples != n:
        raise InputError(
            baseline.path,
            f"a baseline of {baseline.samples} samples; this dump has {n}",
            "compare reports of dumps with the same samples",
        )
    new_breaks, fixed = {}, {}
    regression = np.zeros(n, dtype=bool)
    for name in PATHS:
        before = np.zeros(n, dtype=bool)
        before[baseline.breaks[name][baseline.breaks[name] < n]] = True
        # A sample this check ignores (padding, --masked ignore) breaks nothing now; the
        # baseline lists its NaN flags all the same. Set aside, it is neither new nor fixed.
        before &= ~report.ignored
        now = report.breaks[name]
        new_breaks[name] = int(np.count_nonzero(now & ~before))
        fixed[name] = int(np.count_nonzero(before & ~now))
        regression |= now & ~before
    summary = report.summary
    health = summary.health
    drift = Drift(
        path=baseline.path,
        new_breaks=MappingProxyType(new_breaks),
        fixed=MappingProxyType(fixed),
        min_headroom=Change(baseline.min_headroom, summary.headroom.min),
        health=MappingProxyType(
            {
                name: Change(baseline.p99[name], None if stat is None else stat.p99)
                for name, stat in (health.items() if health else [])
            }
        ),
        regression=regression,
        max_headroom_drop=max_headroom_drop,
    )
    if drift.headroom_fell and summary.headroom.index is not None:
        regression[summary.headroom.index] = True
    return drift
