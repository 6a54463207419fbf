"""Logit health: summary statistics of the per-sample measures over a whole dump.

Flags say where a softmax already breaks; these numbers say how close the logits are to
breaking and whether they drift between checkpoints. ``z_loss = logsumexp**2`` is the
auxiliary term PaLM (Chowdhery et al., 2022, section 5) adds with a 1e-4 coefficient to keep
``log Z`` near 0. Every statistic covers the samples whose ``log Z`` is finite (masked, NaN
and ``+inf`` rows have none: their input flags report them); the loss covers those with a
target and a finite stable loss. Percentiles are NumPy's default (linear interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from softmax_cli.report import Measures


@dataclass(frozen=True)
class Statistic:
    """One measure over the samples that qualify."""

    min: float
    p50: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: np.ndarray) -> Statistic | None:
        """The statistic of the finite ``values``; None when there are none."""
        values = np.asarray(values)
        return cls._of_own(values[np.isfinite(values)])

    @classmethod
    def _of_own(cls, values: np.ndarray) -> Statistic | None:
        """The statistic of ``values``, a copy of the caller's that this may reorder:
        non-finite ones are left out (a second copy only if there are any). The
        percentiles come from one partition in place rather than a sorted copy, in the
        values' own dtype: a dump's columns are never widened whole."""
        if not _all_finite(values):
            values = values[np.isfinite(values)]
        n = len(values)
        if not n:
            return None
        # NumPy's default percentile (linear): position q * (n - 1) between two order
        # statistics, interpolated as numpy.lib's _lerp does it.
        positions = [q * (n - 1) for q in (0.5, 0.99)]
        below = [math.floor(p) for p in positions]
        values.partition(sorted({0, n - 1, *below, *(min(b + 1, n - 1) for b in below)}))
        p50, p99 = (_lerp(values, p, b) for p, b in zip(positions, below, strict=True))
        with np.errstate(over="ignore"):  # the sum of huge values can only be +-inf
            mean = float(values.mean(dtype=np.float64))
        # The extremes are stored values: a float32 one as its shortest decimal, which
        # prints no digit it lacks. The percentiles and the mean are computed in float64.
        low, high = (float(str(v)) if v.dtype == np.float32 else float(v) for v in values[[0, -1]])
        return cls(min=low, p50=p50, p99=p99, max=high, mean=mean)


_CHUNK = 1 << 18  # rows per chunk of a per-sample pass: its temporaries stay small


def row_chunks(count: int) -> Iterator[slice]:
    """Slices of at most ``_CHUNK`` rows covering ``count``: a pass over a dump's columns a
    chunk at a time keeps its (float64) temporaries a few MB however many samples."""
    for start in range(0, count, _CHUNK):
        yield slice(start, start + _CHUNK)


def _all_finite(values: np.ndarray) -> bool:
    """Are all ``values`` finite, without a whole-column mask."""
    with np.errstate(invalid="ignore"):  # a signalling NaN's "invalid"
        return all(np.isfinite(values[part]).all() for part in row_chunks(len(values)))


def _lerp(ordered: np.ndarray, position: float, below: int) -> float:
    """The value at ``position`` between the order statistics ``below`` and the next."""
    a = float(ordered[below])
    if below >= len(ordered) - 1:
        return a
    b = float(ordered[below + 1])
    t = position - below
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.float64(b) - np.float64(a)
        return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


@dataclass(frozen=True)
class HealthSummary:
    """``summary.health``: one :class:`Statistic` (or None) per measure, in the JSON order."""

    max_logit: Statistic | None
    logsumexp: Statistic | None
    z_loss: Statistic | None
    entropy: Statistic | None
    margin: Statistic | None
    loss: Statistic | None

    @classmethod
    def of(
        cls, measures: Measures, stable_loss: np.ndarray, has_target: np.ndarray
    ) -> HealthSummary:
        """The statistics of a dump's columns, one at a time (each needs one copy of its
        qualifying values, in its own dtype). The logsumexp and z-loss statistics use the
        accurate log Z (~1e-7, rounded once to the work dtype) rather than the value
        rounded to D."""
        m = measures.max_logit
        rows = slice(None) if _all_finite(m) else np.isfinite(m)  # where log Z is finite
        # log Z (Measures.log_partition_at, float64) rounded once to the columns' dtype
        # (1e-4 is the contract's accuracy): one array of that dtype is the only per-sample
        # temporary.
        lse = np.empty(len(m) if isinstance(rows, slice) else int(np.count_nonzero(rows)), m.dtype)
        done = 0
        for part in row_chunks(len(m)):
            log_partition = measures.log_partition_at(part)
            live = log_partition if isinstance(rows, slice) else log_partition[rows[part]]
            lse[done : done + len(live)] = live
            done += len(live)
        logsumexp = Statistic._of_own(lse)
        # float64 input near 1e155 and beyond: a z-loss of +inf is what it is.
        with np.errstate(over="ignore"):
            z_loss = Statistic._of_own(np.multiply(lse, lse, out=lse))
        del lse
        # A margin is infinite when a row has one finite entry: no spread to summarise.
        return cls(
            max_logit=Statistic._of_own(measures.max_logit[rows].copy()),
            logsumexp=logsumexp,
            z_loss=z_loss,
            entropy=Statistic._of_own(measures.entropy[rows].copy()),
            margin=Statistic._of_own(measures.margin[rows].copy()),
            loss=Statistic._of_own(stable_loss[has_target]),
        )

    def items(self) -> list[tuple[str, Statistic | None]]:
        """(name, statistic) pairs in declaration order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


HEALTH_NAMES = tuple(f.name for f in fields(HealthSummary))
