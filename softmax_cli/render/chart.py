"""The logit-health chart: a histogram of per-sample log Z with the naive code's limits.

``log Z`` (the accurate log-sum-exp of a row) is the number that decides whether the naive
softmax works: beyond ``+-ln(max_finite(D))`` its sum overflows, or ``1/s`` does. The chart
shows where a dump's rows sit against those edges for float16 (11.09), bfloat16 and float32
(88.72). In the terminal it is drawn with block characters (only in the table format, when
at least :data:`MIN_SAMPLES` rows have a finite log Z and they are not all equal); ``--plot``
writes the same chart as a PNG with matplotlib (the ``plot`` extra), imported only then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from softmax_cli import atomic
from softmax_cli.errors import UsageError
from softmax_cli.report import Report

MIN_SAMPLES = 20  # fewer rows than this make a histogram of noise
HEIGHT = 8  # text rows of bars; each row has 8 levels (the eighth blocks)
BLOCKS = " ▁▂▃▄▅▆▇█"
# The naive code's limits, ln(max_finite(D)), and their short labels on the axis.
LIMITS = (("f16", "float16", math.log(65504.0)), ("f32", "float32/bfloat16", 88.72283911167299))
_LABEL_WIDTH = 7  # the count labels left of the axis


def log_z(report: Report) -> np.ndarray:
    """The finite log Z values the chart shows."""
    values = report.measures.log_partition
    return values[np.isfinite(values)]


def informative(report: Report) -> bool:
    """Is the chart worth drawing: enough rows with a finite log Z, and a spread?"""
    values = log_z(report)
    return len(values) >= MIN_SAMPLES and float(values.max()) > float(values.min())


@dataclass(frozen=True)
class Histogram:
    """Counts of log Z in equal bins between the smallest and the largest value."""

    counts: np.ndarray
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray, bins: int) -> Histogram:
        counts, edges = np.histogram(values, bins=bins)
        return cls(counts, float(edges[0]), float(edges[-1]))

    def column(self, value: float) -> int | None:
        """The bin a value falls in, or None outside the range."""
        if not self.low <= value <= self.high:
            return None
        width = (self.high - self.low) / len(self.counts)
        return min(len(self.counts) - 1, int((value - self.low) / width))


def limit_marks(low: float, high: float) -> list[tuple[str, str, float]]:
    """The limits (label, dtype, value, with both signs) inside [low, high]."""
    marks = []
    for short, name, value in LIMITS:
        for signed in (-value, value):
            if low <= signed <= high:
                marks.append((("-" if signed < 0 else "") + short, name, signed))
    return marks


class TerminalChart:
    """The histogram as Rich renders it, as wide as the console allows (at most 100 bins)."""

    def __init__(self, report: Report) -> None:
        self.values = log_z(report)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        bins = max(10, min(100, options.max_width - _LABEL_WIDTH - 2))
        for line in lines(self.values, bins):
            yield Text(line)


def lines(values: np.ndarray, bins: int) -> list[str]:
    """The chart as plain lines, ``bins`` columns of bars right of the count labels."""
    hist = Histogram.of(values, bins)
    top = int(hist.counts.max())
    # Eighths of a text row; a bin with any sample shows at least the lowest block.
    units = np.ceil(hist.counts / top * HEIGHT * 8).astype(int)
    pad = " " * _LABEL_WIDTH
    out = [f"log Z per sample ({len(values)} with a finite log Z), nats"]
    for row in range(HEIGHT, 0, -1):
        level = np.clip(units - (row - 1) * 8, 0, 8)
        bars = "".join(BLOCKS[v] for v in level.tolist())
        label = f"{top:>{_LABEL_WIDTH - 1}} " if row == HEIGHT else pad
        out.append(f"{label}│{bars}".rstrip())
    marks = limit_marks(hist.low, hist.high)
    axis = ["─"] * bins
    under = [" "] * (bins + 1)
    for short, _, value in marks:
        at = hist.column(value)
        axis[at] = "┼"
        _place(under, at, "↑" + short)
    out.append(f"{'0':>{_LABEL_WIDTH - 1}} └" + "".join(axis))
    if marks:
        out.append(pad + " " + "".join(under).rstrip())
    low, high = f"{hist.low:.4g}", f"{hist.high:.4g}"
    out.append(pad + " " + low + " " * max(1, bins - len(low) - len(high)) + high)
    out.append(_legend(marks, hist))
    return out


def _place(cells: list[str], at: int, label: str) -> None:
    """Write ``label`` into ``cells`` from column ``at`` if it does not cover another one."""
    start = min(at, len(cells) - len(label))
    if all(c == " " for c in cells[max(0, start - 1) : start + len(label) + 1]):
        cells[start : start + len(label)] = list(label)


def _legend(marks: list[tuple[str, str, float]], hist: Histogram) -> str:
    """What the marks are, and how far the limits outside the range are."""
    parts = []
    for short, name, value in LIMITS:
        name = name.replace("/", ", ")
        if any(m[0].lstrip("-") == short for m in marks):
            parts.append(f"{short} = {name} +-{value:.2f}")
        elif hist.high < value and hist.low > -value:
            room = min(value - hist.high, hist.low + value)
            parts.append(f"{name} +-{value:.2f} is {room:.3g} nats away")
        else:
            parts.append(f"every row is beyond {name} +-{value:.2f}")
    return "naive limits: " + "; ".join(parts)


def require_matplotlib() -> None:
    """``--plot`` needs matplotlib: say how to get it, before any work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install softmax-check[plot]") from None


def write_png(report: Report, path: str) -> None:
    """The chart as a PNG at ``path`` (Agg backend: no display needed), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    values = log_z(report)
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    axes = figure.subplots()
    if len(values):
        axes.hist(values, bins=min(100, max(10, len(values) // 5)), color="#4c72b0")
        low, high = float(values.min()), float(values.max())
    else:
        axes.text(0.5, 0.5, "no sample has a finite log Z", ha="center", transform=axes.transAxes)
        low, high = -1.0, 1.0
    span = max(high - low, 1.0)
    colors = {"float16": "#dd8452", "float32/bfloat16": "#c44e52"}
    for _, name, value in LIMITS:
        drawn = [v for v in (-value, value) if low - span <= v <= high + span]
        # Limits within a span of the data are drawn; farther ones would squash it.
        for k, signed in enumerate(drawn):
            axes.axvline(
                signed,
                color=colors[name],
                linestyle="--",
                linewidth=1.2,
                label=f"naive limit of {name}: +-{value:.2f}" if k == 0 else None,
            )
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper right", fontsize=9)
    axes.set_xlabel("log Z = logsumexp of the row (nats)")
    axes.set_ylabel("samples")
    axes.set_title(
        f"softmax-check: log Z of {len(values)} samples ({report.input.logits}, "
        f"computed in {report.compute_dtype})",
        fontsize=10,
    )
    atomic.write(path, lambda temporary: figure.savefig(temporary, format="png"))
