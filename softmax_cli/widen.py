"""A check in a wide dtype read off a check already made on the same values.

A sweep of a float32 dump checks it in float64 too, and one of a bfloat16 dump in float32
and float64. Those dtypes hold every value of the file exactly, so each sees the very
logits the first check saw, only with more range and precision to compute in; and far from
the limits of that range, nothing breaks: the textbook code's sum, probabilities and
gradient are all finite and nonzero. Whether a row is that far is read off the log Z, the
maximum and the target's logit the first check measured, with a margin that no rounding
can cross. Those rows get the answer straight away: no flag, and the stable code's loss
``log(s) - (x[t] - m)``. The few others (near or past a limit, NaN, infinite or masked) are checked
in full in the wide dtype, so every flag and every count is that dtype's own.

What is not the wide dtype's own is the last digits of the numbers: the loss and the health
measures (log Z, entropy, margin) of the rows answered straight away come from the first
check, accurate to about 1e-6 (log Z is summed in float32 there), not rounded as a check in
the wide dtype alone would round them. The sweep shows only counts and health statistics,
which the contract holds to 1e-4.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np

from softmax_cli.dtypes import ComputeDtype
from softmax_cli.report import BUILTIN, NAIVE, STABLE, Findings, Measures

# How far (in nats) log Z, the maximum, the target's logit and log p[t] must stay inside
# +-ln(max_finite(D)) for a row to be answered without its own check. The first check's
# log Z is off by 1e-6 at most, and D's naive sum differs from exp(log Z) by a factor
# kept below e^0.5 (see ``widens``); with 2 nats, every quantity the naive gradient
# divides by stays above e^-1.5 of D's largest value's reciprocal, and the sum of two of
# its terms below a third of D's largest value.
MARGIN = 2.0


def holds(dtype: ComputeDtype, source: np.dtype) -> bool:
    """Does D hold every value of ``source`` (a file's dtype) exactly?"""
    source = np.dtype(source)
    if source == dtype.storage:
        return True
    mine = dtype.finfo
    if source.kind in "iub":
        return source.itemsize * 8 <= mine.nmant + 1
    try:
        theirs = ml_dtypes.finfo(source)
    except ValueError:  # not a float dtype
        return False
    return (
        mine.nmant >= theirs.nmant and mine.maxexp >= theirs.maxexp and mine.minexp <= theirs.minexp
    )


def plan(dtypes: Sequence[ComputeDtype], source: np.dtype, classes: int) -> dict[str, ComputeDtype]:
    """Which of ``dtypes`` (the first is the report's) to read off which other one.

    The one checked in full is the report's own dtype if it holds the file's values, else
    float32 if it does (the fastest check). Every other dtype that holds them and is not
    emulated (float32, float64: their own roundings are far below the answer's accuracy)
    is read off that one, as long as ``classes`` keeps its naive sum within the margin.
    """
    holding = [d for d in dtypes if holds(d, source)]
    if len(holding) < 2:
        return {}
    base = holding[0] if holding[0] is dtypes[0] else min(holding, key=_cost)
    return {
        d.name: base for d in holding if d is not base and not d.is_emulated and widens(d, classes)
    }


def _cost(dtype: ComputeDtype) -> int:
    """The order of a full check's time per logit: float32, then half precision, float64."""
    return {"float32": 0, "float16": 1, "bfloat16": 2}.get(dtype.name, 3)


def widens(dtype: ComputeDtype, classes: int) -> bool:
    """Does the naive code's row sum of ``classes`` terms in D stay within e^0.5 of the
    exact sum? Each term is rounded to D once, added in the accumulate dtype, and the sum
    rounded to D once."""
    unit = float(dtype.finfo.eps) / 2
    added = float(np.finfo(dtype.accumulate).eps) / 2
    return classes * added + 2 * unit < 0.5


def clear(
    dtype: ComputeDtype,
    log_z: np.ndarray,
    row_max: np.ndarray,
    logit_t: np.ndarray,
    has_target: np.ndarray,
) -> np.ndarray:
    """The rows on which the naive code can raise no flag in D, from float64 measures of
    the row's values in D (log Z to 1e-6, the maximum, the target's logit), as the module
    docstring says; the caller makes sure that ``widens(dtype, classes)``. Neither can the
    stable code where D has float32's range (its sum stays below e^(2 * log_max)). NaN,
    +inf and masked rows are never clear."""
    limit = dtype.log_max - MARGIN
    with np.errstate(invalid="ignore"):  # NaN compares false
        answered = (np.abs(log_z) < limit) & (row_max > -limit)
        answered &= ~has_target | ((logit_t > -limit) & (logit_t - log_z > -limit))
    return answered


def read_off(
    x: np.ndarray,
    targets: np.ndarray,
    measures: Measures,
    dtype: ComputeDtype,
) -> tuple[Findings, Measures, np.ndarray]:
    """D's findings and measures of the rows ``x`` (as in the file), read off ``measures``,
    those of the same rows in a dtype that also holds their values; and the indices of the
    rows it could not answer, which the caller must check in full in D.

    ``targets`` holds a class index per row, or -1 where the row has none.
    """
    count = len(x)
    work = dtype.work
    has_target = targets >= 0
    row_max = measures.max_logit.astype(np.float64)
    log_z = measures.log_partition_at()
    logit_t = x[np.arange(count), np.maximum(targets, 0)].astype(np.float64)
    answered = clear(dtype, log_z, row_max, logit_t, has_target)
    with np.errstate(invalid="ignore"):
        # As the stable code subtracts: log(s) - (x[t] - m), which keeps the digits of a
        # small loss (x[t] near the maximum), where log Z - x[t] would cancel them.
        log_sum = measures.log_sum.astype(np.float64)
        loss = log_sum - (logit_t - row_max)
        loss = np.where(has_target & answered, loss, np.nan).astype(work)
    mine = Findings.blank(count, BUILTIN, work)
    mine.has_target[:] = has_target
    for path in (NAIVE, STABLE):
        mine.impls[path.name].loss[:] = loss  # no flag: both paths' rows are clean
    wide = Measures(
        max_logit=row_max.astype(work),
        logsumexp=log_z.astype(work),
        log_sum=measures.log_sum.astype(work),
        entropy=measures.entropy.astype(work),
        margin=measures.margin.astype(work),
    )
    return mine, wide, np.flatnonzero(~answered)
