"""Logit health: summary statistics of the per-sample measures over a whole dump.

Flags say where a softmax already breaks; these numbers say how close the logits are to
breaking and whether they drift between checkpoints. ``z_loss = logsumexp**2`` is the
auxiliary term PaLM (Chowdhery et al., 2022, section 5) adds with a 1e-4 coefficient to keep
``log Z`` near 0. Every statistic covers the samples whose ``log Z`` is finite (masked, NaN
and ``+inf`` rows have none: their input flags report them); the loss covers those with a
target and a finite stable loss. Percentiles are NumPy's default (linear interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


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
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return None
        with np.errstate(over="ignore"):  # the sum of huge values can only be +-inf
            p50, p99 = np.percentile(values, [50, 99])
            mean = float(values.mean())
        return cls(
            min=float(values.min()),
            p50=float(p50),
            p99=float(p99),
            max=float(values.max()),
            mean=mean,
        )


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
        cls,
        max_logit: np.ndarray,
        log_partition: np.ndarray,
        entropy: np.ndarray,
        margin: np.ndarray,
        stable_loss: np.ndarray,
        has_target: np.ndarray,
    ) -> HealthSummary:
        """The statistics of a dump's columns. ``log_partition`` is the accurate log Z:
        the logsumexp and z-loss statistics use it rather than the value rounded to D."""
        finite = np.isfinite(log_partition)
        lse = log_partition[finite]
        # A margin is infinite when a row has one finite entry: no spread to summarise.
        return cls(
            max_logit=Statistic.of(max_logit[finite]),
            logsumexp=Statistic.of(lse),
            # float64 input near 1e155 and beyond: a z-loss of +inf is what it is.
            z_loss=Statistic.of(_squared(lse)),
            entropy=Statistic.of(entropy[finite]),
            margin=Statistic.of(margin[finite]),
            loss=Statistic.of(stable_loss[has_target]),
        )

    def items(self) -> list[tuple[str, Statistic | None]]:
        """(name, statistic) pairs in declaration order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


HEALTH_NAMES = tuple(f.name for f in fields(HealthSummary))


def _squared(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # overflow to +inf is the right answer
        return values * values
