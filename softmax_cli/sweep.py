"""``--sweep``: the whole check in every compute dtype, as one matrix and a one-line verdict.

Would this dump survive float16? The sweep answers with the check itself, run on the same
logits in float64, float32, bfloat16 and float16 (widest first; the classifier reads each
block once for all four, see :func:`softmax_cli.classify.check_loaded`). This module holds
the order, the matrix rows read off each dtype's :class:`Report`, and the verdict's words;
renderers only lay them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from softmax_cli.options import Category
from softmax_cli.report import NAIVE, STABLE, InputFlag, Report

# Widest first: the verdict reads "safe down to X" along this order.
SWEEP_DTYPES: tuple[str, ...] = ("float64", "float32", "bfloat16", "float16")

# The matrix's columns as the renderers lay them out: (header, holds numbers).
COLUMNS: tuple[tuple[str, bool], ...] = (
    ("dtype", False),
    ("naive breaks", True),
    ("stable breaks", True),
    ("input flags", False),
    ("notes", True),
    ("min headroom", True),
)


@dataclass(frozen=True)
class SweepRow:
    """One compute dtype's line of the matrix: sample counts and the minimum headroom."""

    compute_dtype: str
    samples: int
    naive_breaks: int
    stable_breaks: int
    nonfinite: int
    fully_masked: int
    out_of_range: int
    notes: int  # flagged, yet no implementation breaks and no input flag counts against it
    min_headroom: float | None
    passed: bool
    # Breaks on samples whose input is NaN, +inf or fully masked in the file: the same in
    # every dtype, so the verdict leaves them to the input line.
    naive_on_clean: int
    stable_on_clean: int

    @classmethod
    def of(cls, report: Report) -> SweepRow:
        summary = report.summary
        breaks = report.breaks
        any_break = np.zeros(len(report), dtype=bool)
        for mask in breaks.values():
            any_break |= mask
        notes = report.flagged & ~any_break & ~report.category(Category.input)
        # out_of_range rows are the dtype's own doing (a value beyond its range); NaN, +inf
        # and all -inf are the file's.
        given = report.has(InputFlag.NONFINITE) | report.has(InputFlag.FULLY_MASKED)
        return cls(
            compute_dtype=report.compute_dtype,
            samples=summary.samples,
            naive_breaks=summary.naive.breaks,
            stable_breaks=summary.stable.breaks,
            nonfinite=summary.input.nonfinite,
            fully_masked=summary.input.fully_masked,
            out_of_range=summary.input.out_of_range,
            notes=int(np.count_nonzero(notes)),
            min_headroom=summary.headroom.min,
            passed=report.passed,
            naive_on_clean=int(np.count_nonzero(breaks[NAIVE.name] & ~given)),
            stable_on_clean=int(np.count_nonzero(breaks[STABLE.name] & ~given)),
        )

    @property
    def input_text(self) -> str:
        """``1 nonfinite, 3 out_of_range``: the input flags raised, by name; ``-`` if none."""
        counts = (
            ("nonfinite", self.nonfinite),
            ("fully_masked", self.fully_masked),
            ("out_of_range", self.out_of_range),
        )
        return ", ".join(f"{n} {name}" for name, n in counts if n) or "-"

    @property
    def headroom_text(self) -> str:
        """The minimum headroom in nats, ``-`` when no sample has a finite log-sum-exp."""
        return "-" if self.min_headroom is None else f"{self.min_headroom:.6g}"

    @property
    def breaks(self) -> bool:
        """Does either implementation break on a sample whose input is not to blame."""
        return bool(self.naive_on_clean or self.stable_on_clean)


def rows(report: Report) -> list[SweepRow]:
    """The matrix of a swept report, widest dtype first (empty without ``--sweep``)."""
    return [SweepRow.of(r) for r in report.sweep]


def share(count: int, total: int) -> str:
    """``none``, ``every sample``, ``12% of samples``, ``0.024% of samples (1)``."""
    if count == 0:
        return "none"
    if count == total:
        return "every sample"
    percent = 100 * count / total
    # Two significant digits, but never rounded up to 100% or down to 0%.
    text = f"{min(percent, 99):.0f}" if percent >= 10 else f"{percent:.2g}"
    return f"{text}% of samples" + (f" ({count})" if percent < 1 else "")


def verdict(sweep: Sequence[SweepRow]) -> str:
    """One line: the narrowest dtype the dump is safe in, and what breaks below it.

    "Safe" means neither implementation breaks on a sample whose input is fine: NaN, +inf
    and fully masked rows break in every dtype alike, and the input flags count them. When
    a narrower dtype breaks on more samples than the first one that breaks, the worst is
    named too: "...; in float16 the naive path on 20% of samples and the stable one on none".
    """
    first = next((i for i, row in enumerate(sweep) if row.breaks), None)
    if first is None:
        text = (
            f"safe in every dtype down to {sweep[-1].compute_dtype}: neither path breaks "
            "on any sample"
        )
    else:
        row = sweep[first]
        if first == 0:
            text = f"breaks already in {row.compute_dtype}: "
        else:
            text = f"safe down to {sweep[first - 1].compute_dtype}; in {row.compute_dtype} "
        text += (
            f"the naive path breaks on {share(row.naive_on_clean, row.samples)} "
            f"and the stable one on {share(row.stable_on_clean, row.samples)}"
        )
        worst = max(sweep[first:], key=_broken)
        if _broken(worst) > _broken(row):
            text += (
                f"; in {worst.compute_dtype} the naive path on "
                f"{share(worst.naive_on_clean, worst.samples)} and the stable one on "
                f"{share(worst.stable_on_clean, worst.samples)}"
            )
    if any(r.naive_breaks > r.naive_on_clean or r.stable_breaks > r.stable_on_clean for r in sweep):
        text += " (not counting samples whose input is NaN, +inf or fully masked)"
    return text


def _broken(row: SweepRow) -> tuple[int, int]:
    """How badly a dtype breaks: the stable path first, then the naive one."""
    return row.stable_on_clean, row.naive_on_clean
