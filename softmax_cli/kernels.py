"""Softmax and cross-entropy, naive and stable, forward and backward, in pure NumPy.

Every function takes a chunk of rows ``x`` of shape (rows, classes) in the work dtype of a
:class:`~softmax_cli.dtypes.ComputeDtype` D, holding values of D, and rounds every
intermediate to D, so the results are what a framework computing in D produces.

These are the reference kernels: they materialise every intermediate so each flag can be
read straight off the arrays. The tests hold them to PyTorch autograd and to mpmath.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from softmax_cli.dtypes import ComputeDtype


@dataclass(frozen=True, eq=False)
class PathArrays:
    """What one path computes for a chunk of rows.

    ``loss`` and ``grad`` are None without targets; rows whose target is ``-1`` (none, or
    ignored) hold a loss and gradient for class 0 that the caller must disregard.
    """

    exp: np.ndarray
    sum: np.ndarray
    probs: np.ndarray
    loss: np.ndarray | None
    grad: np.ndarray | None


def accumulate_rows(values: np.ndarray, dtype: ComputeDtype) -> np.ndarray:
    """Row sums accumulated in ``dtype.accumulate``, in the work dtype, not rounded to D."""
    return values.sum(axis=1, dtype=dtype.accumulate).astype(dtype.work, copy=False)


def sum_rows(values: np.ndarray, dtype: ComputeDtype) -> np.ndarray:
    """Row sums accumulated in ``dtype.accumulate`` and rounded once to D (as torch.sum)."""
    return dtype.round(accumulate_rows(values, dtype))


def _pick(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """values[i, targets[i]] for every row (a missing target, -1, reads class 0)."""
    return np.take_along_axis(values, np.maximum(targets, 0)[:, None], axis=1)[:, 0]


def naive(x: np.ndarray, targets: np.ndarray | None, dtype: ComputeDtype) -> PathArrays:
    """The textbook code, deliberately unguarded: it must fail exactly where users' code does.

    Forward: ``e = exp(x)``, ``s = sum(e)``, ``p = e / s``, ``loss = -log(p[t])``.
    Backward: reverse mode through exactly those operations, in PyTorch's order
    (``derivatives.yaml``): neg, then log (``g / p``), index (a one-hot scatter), div
    (self: ``g / s``; other: ``sum(-g * ((e / s) / s))``), sum (broadcast), the two
    gradients of ``e`` added, then exp (``g * e``). The order matters: it decides where
    ``0 * inf`` makes a NaN.
    """
    r = dtype.round
    with np.errstate(all="ignore"):  # overflow, 0/0 and inf/inf are the point here
        e = r(np.exp(x))
        s = sum_rows(e, dtype)[:, None]
        p = r(e / s)
        if targets is None:
            return PathArrays(e, s[:, 0], p, None, None)
        p_t = _pick(p, targets)
        loss = -r(np.log(p_t))
        # d(-log p_t)/dp_t: neg passes -1 on, log's backward divides by p_t.
        g_pt = r(np.negative(np.ones_like(p_t)) / p_t)
        g_p = np.zeros_like(p)
        np.put_along_axis(g_p, np.maximum(targets, 0)[:, None], g_pt[:, None], axis=1)
        g_e = r(g_p / s)
        # The gradient reaching s: sum over the broadcast of -g * ((e / s) / s).
        g_s = sum_rows(r(np.negative(g_p) * r(p / s)), dtype)[:, None]
        g_e = r(g_e + g_s)
        grad = r(g_e * e)
    return PathArrays(e, s[:, 0], p, loss, grad)


@dataclass(frozen=True, eq=False)
class StableArrays(PathArrays):
    """The stable path's arrays, with the row maximum it shifts by."""

    max: np.ndarray


def stable(x: np.ndarray, targets: np.ndarray | None, dtype: ComputeDtype) -> StableArrays:
    """Max-shifted softmax and log-sum-exp cross-entropy, as PyTorch's fused kernels
    (``torch.softmax``, ``F.log_softmax``, ``F.cross_entropy``) compute them.

    ``m = max(x)``, ``e = exp(x - m)``, ``S = sum(e)``, ``s = S`` rounded to D,
    ``p = e / S``; the loss is ``log(s) - (x[t] - m)``, which equals
    ``logsumexp(x) - x[t]`` but subtracts the two nearby numbers first, as ``log_softmax``
    does, so a large ``m`` costs no digits. The gradient is ``exp(log p) - onehot(t)``, as
    autograd's ``log_softmax`` backward computes it.

    Each of those kernels is one pass that computes every element in the work dtype
    (float32 for float16 and bfloat16) and rounds to D only what it stores: ``p``; the sum
    and its log, which ``log_softmax`` keeps in D between its passes; ``log p``; the
    gradient. So ``x - m`` and ``exp(x - m)`` are not rounded to D, and ``p`` divides by the
    unrounded sum. On the CPU this is bit for bit what torch computes (tests/
    test_kernels_torch.py), but where a float32 sum added in another order rounds to
    another value of D. In float32 and float64 every rounding is the identity and this
    is the textbook form.
    """
    r = dtype.round
    with np.errstate(all="ignore"):  # -inf - -inf on fully masked rows is NaN by design
        m = x.max(axis=1)
        shifted = x - m[:, None]
        e = np.exp(shifted)
        total = accumulate_rows(e, dtype)
        s = r(total.copy())
        p = r(e / total[:, None])
        if targets is None:
            return StableArrays(e, s, p, None, None, m)
        log_s = r(np.log(s))
        loss = r(log_s - (_pick(x, targets) - m))
        grad = np.exp(r(shifted - log_s[:, None]))
        at = np.maximum(targets, 0)[:, None]
        np.put_along_axis(grad, at, np.take_along_axis(grad, at, 1) - 1, 1)
        grad = r(grad)
    return StableArrays(e, s, p, loss, grad, m)


def logsumexp(row_max: np.ndarray, stable_sum: np.ndarray, dtype: ComputeDtype) -> np.ndarray:
    """log(sum(exp(x))) per row from the row maximum and the shifted sum ``s`` (in D), as
    ``log_softmax`` has it: ``m + log(s)``, with the log rounded to D and then the sum.

    Rows whose maximum is infinite get that infinity (all ``-inf``: ``-inf``; a ``+inf``
    entry: ``+inf``) and rows with a NaN get NaN, as ``torch.logsumexp`` and
    ``scipy.special.logsumexp`` do, though the shifted sum is NaN on such rows.
    """
    with np.errstate(all="ignore"):
        finite = row_max + dtype.round(np.log(stable_sum))
    return dtype.round(np.where(np.isfinite(row_max), finite, row_max))
