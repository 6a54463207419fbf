"""Words for logit health, drift and batch-level traps, shared by the table and Markdown."""

from __future__ import annotations

import numpy as np

from softmax_cli.baseline import Change
from softmax_cli.health import Statistic
from softmax_cli.render.words import short_number
from softmax_cli.report import Report

HEALTH_LABELS = {
    "max_logit": "max logit",
    "logsumexp": "log Z",
    "z_loss": "z-loss",
    "entropy": "entropy",
    "margin": "margin",
    "loss": "loss",
}


def health_rows(report: Report) -> list[list[str]]:
    """One row per statistic: name, min, p50, p99, max, mean (``-`` when none qualifies)."""
    health = report.summary.health
    if health is None:
        return []
    rows = []
    for name, stat in health.items():
        cells = ["-"] * 5 if stat is None else [_n(v) for v in _values(stat)]
        rows.append([HEALTH_LABELS[name], *cells])
    return rows


HEALTH_COLUMNS = ("health", "min", "p50", "p99", "max", "mean")


def _values(stat: Statistic) -> tuple[float, ...]:
    return (stat.min, stat.p50, stat.p99, stat.max, stat.mean)


def _n(value: float | None) -> str:
    return "-" if value is None else short_number(value)


def drift_title(report: Report) -> str:
    """``drift against old.json: naive 2 newly breaking, 1 fixed; stable none``."""
    drift = report.drift
    assert drift is not None
    parts = []
    for name in drift.new_breaks:
        new, fixed = drift.new_breaks[name], drift.fixed[name]
        parts.append(f"{name} {new} newly breaking, {fixed} fixed")
    return f"drift against {drift.path}: " + "; ".join(parts)


DRIFT_COLUMNS = ("compared", "before", "after", "change")


def drift_rows(report: Report) -> list[list[str]]:
    """min headroom, then each statistic's p99: before, after, change."""
    drift = report.drift
    assert drift is not None

    def row(label: str, c: Change) -> list[str]:
        change = c.change
        sign = "+" if change is not None and change > 0 else ""
        return [label, _n(c.before), _n(c.after), "-" if change is None else sign + _n(change)]

    rows = [row("min headroom", drift.min_headroom)]
    rows += [row(f"{HEALTH_LABELS[n]} p99", c) for n, c in drift.health.items()]
    return rows


def drift_verdict(report: Report) -> str:
    """Whether the minimum headroom fell by more than allowed."""
    drift = report.drift
    assert drift is not None
    drop = drift.max_headroom_drop
    allowed = f"{drop:g} {'nat' if drop == 1 else 'nats'}"
    if drift.headroom_fell:
        return (
            f"the minimum headroom fell by more than {allowed} (--max-headroom-drop): a regression"
        )
    return f"the minimum headroom fell by no more than {allowed}"


def trap_lines(report: Report) -> list[str]:
    """Batch-level traps that per-sample flags do not show, one line each, when they apply."""
    lines = []
    if report.targets is not None and len(report) and not report.findings.has_target.any():
        lines.append(
            "every target is ignored: a mean cross-entropy over no sample is NaN in "
            "PyTorch (0 / 0), and so is its gradient"
        )
    shape = report.input.sample_shape
    if not report.input.several and len(shape) >= 2:
        per_batch = int(np.prod(shape[1:], dtype=np.int64))
        batches = shape[0]
        for name, mask in report.breaks.items():
            broken = np.flatnonzero(mask)
            if not len(broken):
                continue
            poisoned = len(np.unique(broken // per_batch))
            lines.append(
                f"{name} breaks in {poisoned} of {batches} batches (first sample axis); one "
                "broken sample makes a batch's mean loss and gradients NaN"
            )
    return lines
