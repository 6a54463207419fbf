"""The fast classifier: the reference kernels' flags and losses from two exp passes per row.

The reference kernels materialise every intermediate (``e``, ``p``, the gradients) and read
the flags off them: a dozen passes over the data. Almost every flag is in fact decided by a
few numbers per row, so this module makes only the passes those numbers need, on pieces of
rows small enough to stay in the L2 cache:

- ``e = exp(x)``, its sum and the entry at the target (the naive path);
- ``m = max(x)``, by strands whose running maxima also give the second-largest entry
  (the margin); ``e = exp(x - m)``, its sum ``S``, the entry at the target and
  ``sum(e * (x - m))`` (the entropy),

each with exactly the ufuncs, dtypes and roundings of :mod:`softmax_cli.kernels`, so every
scalar is bit for bit the reference's (the row sums come from the same ``np.sum`` over the
same contiguous rows). :func:`derive` turns them into flags and losses. Rows it cannot decide
from scalars (a NaN or ``+inf`` entry, all ``-inf``, or a naive gradient whose intermediates
are extreme) are marked for the reference kernels; on real dumps they are a few in a
thousand.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from softmax_cli import kernels, widen
from softmax_cli.dtypes import COMPUTE_DTYPES, ComputeDtype
from softmax_cli.report import NAIVE, STABLE, Findings, Flag, ImplRows, InputFlag, Measures


@dataclass(frozen=True, eq=False)
class RowScalars:
    """What the two passes leave per row, in the work dtype (``*_exp_t``: e at the target)."""

    max: np.ndarray
    logit_t: np.ndarray
    # sum(exp(x - m)) in the accumulate dtype, not rounded to D (the stable code divides
    # by it; it rounds it to D for its log).
    stable_sum: np.ndarray
    stable_exp_t: np.ndarray
    naive_sum: np.ndarray
    naive_exp_t: np.ndarray
    # stable_sum in float64, the maximum's 1 added apart on peaked rows: log Z to ~1e-7.
    exact_sum: np.ndarray
    # A finite value of the file's that is +-inf in D (a cast overflow, not the input's own).
    out_of_range: np.ndarray
    # sum(exp(x - m) * (x - m)) with the unrounded exp: the entropy's second term.
    weighted: np.ndarray
    # The second-largest entry minus the largest (<= 0): minus the margin.
    second: np.ndarray
    # Rows whose naive pass was skipped (naive_losses=False): naive_sum is exp(m) * S.
    screened: np.ndarray

    @classmethod
    def empty(cls, rows: int, dtype: ComputeDtype) -> RowScalars:
        work = [np.empty(rows, dtype=dtype.work) for _ in range(6)]
        return cls(
            *work,
            np.empty(rows),
            np.zeros(rows, dtype=bool),
            np.empty(rows, dtype=dtype.work),
            np.empty(rows, dtype=dtype.work),
            np.zeros(rows, dtype=bool),
        )


@dataclass(frozen=True, eq=False)
class Decided:
    """What the scalars decide; the ``undecided`` rows' findings need the reference kernels
    (their measures are final: the reference computes them from the same scalars)."""

    findings: Findings
    measures: Measures
    undecided: np.ndarray


class _Scratch(threading.local):
    """Per-thread work buffers, reused from piece to piece so they stay in cache.

    One set per compute dtype: a sweep checks each block in four dtypes in turn, and
    buffers made anew at every switch cost their page faults (a fifth of a sweep's time).
    """

    KEPT = len(COMPUTE_DTYPES)  # a long-lived process may check many shapes: keep the last few

    def buffers(
        self, rows: int, classes: int, dtype: ComputeDtype, block_rows: int
    ) -> tuple[np.ndarray, ...]:
        """Pieces of ``rows`` rows: the piece, e, D's rounding, exact e, and the strands'
        running maxima for ``block_rows`` rows (grown when a longer block comes)."""
        key = (rows, classes, dtype.name)
        kept: dict[tuple[int, int, str], tuple[np.ndarray, ...]] = self.__dict__.setdefault(
            "kept", {}
        )
        arrays = kept.pop(key, None)
        if arrays is None:
            piece = np.empty((rows, classes), dtype=dtype.work)  # the piece in the work dtype
            e = np.empty((rows, classes), dtype=dtype.work)
            rounding = np.empty((rows, classes), dtype=dtype.storage)  # rounding to D
            # exp(x - m), the stable code's e (which it does not round to D). When D is not
            # emulated rounding is the identity, which never touches its scratch: the two
            # share one buffer.
            exact = np.empty_like(e) if dtype.is_emulated else rounding
            arrays = (piece, e, rounding, exact, np.empty((0, 0), dtype=dtype.work))
        if len(arrays[4]) < block_rows:
            running = np.empty((block_rows, _Strands.width(classes)), dtype=dtype.work)
            arrays = (*arrays[:4], running)
        kept[key] = arrays  # the most recent last
        while len(kept) > self.KEPT:
            del kept[next(iter(kept))]
        return arrays


_scratch = _Scratch()


def reduce_rows(
    x: np.ndarray,
    targets: np.ndarray,
    dtype: ComputeDtype,
    piece_rows: int,
    *,
    naive_losses: bool = True,
) -> RowScalars:
    """The per-row scalars of ``x`` (rows, classes), any real dtype, ``piece_rows`` at a time.

    ``targets`` holds a class index per row, or -1 (the entry at class 0 is then read).

    ``naive_losses=False`` says the caller reads the naive path's flags but not its loss
    (a sweep's other dtypes, which show counts only; a check whose clean samples are not
    listed). A half-precision D then skips the naive pass on the rows where
    :func:`softmax_cli.widen.clear` proves that the naive code raises no flag, from the
    stable pass's log Z: their naive sum is ``exp(m) * S`` rounded to D, exact for the
    flags (none) and within a few roundings of D for the loss; ``screened`` marks them.

    The piece is read from memory once; every later pass finds its operands in the L2
    cache. A piece of the work dtype is first read by the naive exp, which computes long
    enough per element to hide the wait for memory (``max`` first would wait and leave
    exp as slow); one that needs converting is read by the conversion.
    """
    n, classes = x.shape
    out = RowScalars.empty(n, dtype)
    piece_rows = max(1, piece_rows)
    # Buffers for whole pieces even when x is shorter: a sweep checks a handful of rows
    # (those read off another dtype cannot answer) between whole blocks, and buffers sized
    # to them would push the blocks' out of the cache of kept ones, to be made anew (and
    # their pages faulted in) at every block.
    x_buf, e_buf, d_buf, exact_buf, running = _scratch.buffers(piece_rows, classes, dtype, n)
    picked = np.maximum(targets, 0)
    narrows = dtype.narrows(x.dtype)
    counts = np.arange(piece_rows)
    strands = _Strands(classes, running[:n])
    # The naive pass after the stable one, on the rows it cannot skip.
    screen = dtype.is_emulated and not naive_losses and widen.widens(dtype, classes)
    # A piece is some 30 NumPy calls; those on per-row scalars cost their call overhead
    # alone, and hold the GIL that the other workers need: the common case takes the
    # fewest (a NaN check by one sum, not a mask and its indices).
    for start in range(0, n, piece_rows):
        stop = min(n, start + piece_rows)
        rows = slice(start, stop)
        piece = dtype.to_work(x[rows], out=x_buf[: stop - start])
        e = e_buf[: stop - start]
        d = d_buf[: stop - start]
        # The naive pass's: its e, D's scratch, and a float32 one (the stable pass's exact e,
        # free until then, and again after).
        buffers = (e, d, exact_buf[: stop - start])
        count = counts[: stop - start]
        at_target = (count, picked[rows])
        with np.errstate(all="ignore"):  # NaN, inf and masked rows are sorted out in derive
            out.logit_t[rows] = piece[at_target]
            if dtype.is_emulated:
                m = strands.maxima(piece, rows)  # NaN if the row holds one
                if not screen:
                    _naive(piece, m, out.logit_t[rows], at_target, dtype, buffers, out, rows)
            else:
                _naive(piece, None, out.logit_t[rows], at_target, dtype, buffers, out, rows)
                m = strands.maxima(piece, rows)
            out.max[rows] = m
            if narrows:
                out.out_of_range[rows] = _cast_overflows(piece, x[rows], m)
            # x - m, unrounded (exact to half an ulp of the work dtype); 0 at the maximum.
            shifted = np.subtract(piece, m[:, None], out=e)
            exact = np.exp(shifted, out=exact_buf[: stop - start])
            # The entropy's sum(e * (x - m)) from the unrounded e, in one pass; a masked
            # entry makes it 0 * -inf = NaN, recomputed at the end for those rows only.
            # einsum, not np.vecdot: vecdot calls BLAS, whose threads (OpenBLAS starts one
            # per core for a row this long) fight the classifier's own workers for the
            # cores and cost more than they save, and whose sum then depends on their number.
            np.einsum("ij,ij->i", exact, shifted, out=out.weighted[rows])
            # The stable code's e is exp(x - m) itself, in every dtype: the fused kernels it
            # stands for round to D only what they store (kernels.stable).
            total = kernels.accumulate_rows(exact, dtype)
            out.stable_sum[rows] = total
            out.exact_sum[rows] = total
            # On a peaked row (S < 2) log(S) ~ the others' sum, of which S keeps only
            # 6e-8 (float32): sum those rows again without the maximum's 1, added in float64.
            peaked = np.flatnonzero(total < 2)  # not min(): NaN rows
            if len(peaked):
                others = exact[peaked]
                others[np.arange(len(peaked)), others.argmax(axis=1)] = 0  # the maximum's 1
                exact_sum = 1.0 + kernels.accumulate_rows(others, dtype).astype(np.float64)
                out.exact_sum[start + peaked] = exact_sum
            out.stable_exp_t[rows] = exact[at_target]
            if screen:
                log_z = m.astype(np.float64) + np.log(out.exact_sum[rows])
                logit_t = out.logit_t[rows].astype(np.float64)
                skip = widen.clear(dtype, log_z, m, logit_t, targets[rows] >= 0)
                _naive(piece, m, out.logit_t[rows], at_target, dtype, buffers, out, rows, skip)
                if skip.any():
                    wide = np.exp(m[skip].astype(np.float64)) * total[skip].astype(np.float64)
                    out.naive_sum[rows][skip] = dtype.round(wide.astype(dtype.work))
                    out.screened[rows] = skip
    with np.errstate(all="ignore"):  # -inf - -inf and 0 * -inf on masked rows, NaN rows
        # Minus the margin, r(x2 - m): the largest r(x - m) but one, rounding being
        # monotonic. With one class there is no second entry: NaN, for a null margin.
        out.second[:] = strands.second(x, dtype) - out.max if classes > 1 else np.nan
        if math.isnan(out.weighted.sum()):
            again = np.flatnonzero(np.isnan(out.weighted) & np.isfinite(out.max))
            out.weighted[again] = _weighted(dtype.to_work(x[again]), out.max[again])
    return out


# Rows seen as this many strands by _Strands (fewer for short rows): alone, the fastest of
# 4, 8, 16 and 32 on rows of 32 000; in the check, 8 and 32 made no measurable difference.
_STRANDS = 16


class _Strands:
    """The margin's second-largest entry from one pass per piece and a few calls per block.

    A row of ``k * w (+ t)`` entries is ``k`` strands of ``w``: their entry-wise maximum,
    ``w`` running maxima (the last ``t < w`` entries folded into the first ``t``), takes
    one SIMD ``maximum`` per strand, in place of ``max`` and at about twice its time, and
    gives the row's maximum. Its largest but one is either the maximum of another of the
    ``w`` or one of the ``k (+ 1)`` entries that the largest gathers, read from the block
    at the end (:meth:`second`).

    The per-row work is done once for the whole block, not in every piece: a call on a
    piece's few rows costs a few microseconds, holding the GIL that the other workers need.
    The argmax, masked copy and second max that each piece took before were three passes
    and half a dozen such calls; the check is 6 % faster without them.
    """

    def __init__(self, classes: int, running: np.ndarray) -> None:
        """``running``: a work-dtype buffer of (rows, :meth:`width`), the block's rows."""
        self.k = self._strands(classes)
        self.w = classes // self.k
        self.t = classes - self.k * self.w
        self.running = running

    @staticmethod
    def _strands(classes: int) -> int:
        return min(_STRANDS, math.isqrt(classes))  # so that t < k <= w

    @classmethod
    def width(cls, classes: int) -> int:
        """How many running maxima a row of ``classes`` entries has."""
        return classes // cls._strands(classes)

    def maxima(self, piece: np.ndarray, rows: slice) -> np.ndarray:
        """The piece's row maxima (NaN where a row holds one); keeps its running maxima."""
        k, w, t = self.k, self.w, self.t
        running = self.running[rows]
        np.maximum.reduce(piece[:, : k * w].reshape(len(piece), k, w), axis=1, out=running)
        if t:
            np.maximum(running[:, :t], piece[:, k * w :], out=running[:, :t])
        return running.max(axis=1)

    def second(self, x: np.ndarray, dtype: ComputeDtype) -> np.ndarray:
        """Each row's largest entry but one (a tie counts twice; ``-inf`` with one class),
        from the running maxima of every row of ``x`` (the block, in any dtype)."""
        k, w, t = self.k, self.w, self.t
        rows = np.arange(len(x))
        j = self.running.argmax(axis=1)
        # The entries that j gathers: one per strand, and the tail's where j < t.
        gathered = np.full((len(x), k + 1), -np.inf, dtype=dtype.work)
        gathered[:, :k] = dtype.to_work(x[rows[:, None], j[:, None] + w * np.arange(k)])
        if t:
            tail = np.flatnonzero(j < t)
            gathered[tail, k] = dtype.to_work(x[tail, k * w + j[tail]])
        gathered[rows, gathered.argmax(axis=1)] = -np.inf
        self.running[rows, j] = -np.inf
        return np.maximum(self.running.max(axis=1), gathered.max(axis=1))


def _naive(
    piece: np.ndarray,
    m: np.ndarray | None,
    logit_t: np.ndarray,
    at_target: tuple[np.ndarray, np.ndarray],
    dtype: ComputeDtype,
    buffers: tuple[np.ndarray, np.ndarray, np.ndarray],
    out: RowScalars,
    rows: slice,
    skip: np.ndarray | None = None,
) -> None:
    """The naive path's sum and entry at the target: the kernel's r(exp(x)), summed.

    The rows marked in ``skip`` (with ``m`` given) get no pass: their sum is the caller's.

    Given the row maxima ``m``, only the rows whose ``r(exp(m))`` is finite and nonzero get
    the pass (without, every row does). Where it is
    ``+inf`` (float16: a maximum above 11.09), every entry is at most ``exp(m)`` and at least
    0 (exp and rounding are monotonic, and ``m`` finite means no NaN), so the sum is ``+inf``
    whatever the others are; where it is 0, every entry is 0 and so is the sum. Either way
    the entry at the target matters to :func:`derive` only through being finite or not
    (``e_t / inf`` is 0 or NaN, ``e_t / 0`` never happens with ``e_t = 0``), which the
    scalar ``r(exp(x_t))`` tells. Rows with a NaN or infinite maximum are the reference
    kernels' (undecided), so their naive scalars are never read.
    """
    e, d, spare = buffers
    # Given m, the rows left hold no NaN, and every e is at most r(exp(m)), finite: in range
    # (no e is a zero whose sign is read, either).
    known = m is not None
    if known:
        e_max = dtype.round(np.exp(m))
        out.naive_sum[rows] = e_max
        out.naive_exp_t[rows] = dtype.round(np.exp(logit_t))
        needed = np.isfinite(m) & (e_max > 0) & (e_max < np.inf)
        if skip is not None:
            needed &= ~skip
    every = not known or needed.all()
    which = slice(None) if every else np.flatnonzero(needed)
    chosen = piece if every else piece[which]
    n = len(chosen)
    if not n:
        return
    normal = known and _normal_exps(chosen, m[which], dtype)
    naive_e = np.exp(chosen, out=e[:n])
    naive_e = dtype.round(
        naive_e, scratch=d[:n], finite=known, in_range=known, normal=normal, spare=spare[:n]
    )
    out.naive_sum[rows][which] = kernels.sum_rows(naive_e, dtype)
    out.naive_exp_t[rows][which] = naive_e[at_target[0][:n], at_target[1][which]]


# exp(x) is a normal float32 (or 0) from here up: exp(-87) = 1.6e-38 > 2**-126 = 1.2e-38.
_NORMAL_EXP_MIN = -87.0
# ... and below dtypes.BFLOAT16_NORMAL_MAX = 2**111 up to here: exp(76) = 1.0e33 < 2.6e33.
_NORMAL_EXP_MAX = 76.0


def _normal_exps(piece: np.ndarray, m: np.ndarray, dtype: ComputeDtype) -> bool:
    """Is every exp of ``piece`` (rows of finite maxima ``m``) 0 or a normal float32 below
    ``2**111``, so that bfloat16 can take its three-pass rounding (``round(normal=True)``)?
    Masked (``-inf``) entries and entries below -87 send the piece the five-pass way."""
    if dtype.name != "bfloat16":
        return False
    return float(m.max()) <= _NORMAL_EXP_MAX and float(piece.min()) >= _NORMAL_EXP_MIN


def _cast_overflows(piece: np.ndarray, source: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Which rows of ``piece`` (``source`` in D, ``m`` its row maxima) hold an infinity
    where ``source`` holds a finite value: a value beyond D's range, which the cast made
    infinite.

    Only a row whose maximum in D is ``+inf`` (or NaN) or whose minimum is ``-inf`` can: one
    cheap reduction finds those (masked rows among them), and only they are compared entry
    by entry with the file, four passes that every row used to take.
    """
    found = np.zeros(len(piece), dtype=bool)
    suspects = np.flatnonzero(~(m < np.inf) | (piece.min(axis=1) == -np.inf))
    if len(suspects):
        found[suspects] = (np.isinf(piece[suspects]) & ~np.isinf(source[suspects])).any(axis=1)
    return found


def _weighted(rows: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sum(exp(x - m) * (x - m)) of rows with masked (-inf) entries, which add nothing."""
    shifted = rows - m[:, None]
    e = np.exp(shifted)
    return np.where(e > 0, e * shifted, 0).sum(axis=1)


def measures(scalars: RowScalars, logsumexp: np.ndarray, dtype: ComputeDtype) -> Measures:
    """The measures of the rows, in the work dtype: what the stable code computes, log Z's
    log(s) to ~1e-7, and each row's entropy and margin (NaN where log Z is not finite)."""
    work = dtype.work
    # log(0) and inf - inf on masked and NaN rows; a signalling NaN's "invalid" in the cast.
    with np.errstate(all="ignore"):
        # H = -sum(p log p) with p = e / s and log p = (x - m) - log s.
        s = scalars.exact_sum
        log_sum = np.log(s)
        entropy = log_sum - scalars.weighted.astype(np.float64) / s
        margin = work.type(0) - scalars.second  # +0, not -0, on a tie
    defined = np.isfinite(scalars.max)
    return Measures(
        max_logit=scalars.max,
        logsumexp=logsumexp.astype(work, copy=False),
        log_sum=np.where(defined, log_sum, np.nan).astype(work),
        # Rounding can leave -1e-8 on a one-hot row; entropy is never negative.
        entropy=np.where(defined, np.maximum(entropy, 0.0), np.nan).astype(work),
        margin=np.where(defined, margin, np.nan).astype(work, copy=False),  # NaN with one class
    )


def derive(scalars: RowScalars, targets: np.ndarray, dtype: ComputeDtype) -> Decided:
    """Flags and losses from the per-row scalars, identical to the reference kernels'.

    On a row with a finite maximum (no NaN, no ``+inf``, not all ``-inf``):

    - stable: ``x - m <= 0`` with a 0 at the maximum, so every ``e`` is in [0, 1] and
      ``S >= 1``: no NaN in ``p = e / S``, in ``log p = (x - m) - log(s)`` (``-inf`` at
      worst) or in ``grad = exp(log p) - onehot``; it overflows only when ``s``, ``S``
      rounded to D, does (float16, more than 65504 classes) and underflows when ``p[t]``
      rounds to 0.
    - naive: ``e`` has no NaN, so ``s`` is ``+inf`` exactly when some ``e`` or the sum
      overflowed. ``p = e / s`` is NaN exactly when ``s == 0`` (0/0) or some ``e`` is
      ``+inf`` (inf/inf), and since exp and rounding are monotonic that is ``exp(m)``.
    - naive gradient (the autograd order of :func:`kernels.naive`): with ``s`` 0 or
      ``+inf`` the gradient at the target is NaN (``0/0`` or ``-inf/inf``); with
      ``p[t] == 0`` the term ``-(-1/p[t]) * (p[t]/s)`` of ``g_s`` is ``inf * 0``. Otherwise,
      if ``g_pt = -1/p[t]``, ``g_pt/s``, every ``(p[i]/s)/s`` (the largest is at the
      maximum), the term ``-g_pt * (p[t]/s)`` and its sum with ``g_pt/s`` are finite, then
      ``g_s`` equals that term (the other terms are signed zeros), every ``g_e`` is finite
      and so is each ``e``: no NaN. Any other row is left undecided.
    """
    r = dtype.round
    m, total, s_nv = scalars.max, scalars.stable_sum, scalars.naive_sum
    has_target = targets >= 0
    with np.errstate(all="ignore"):  # the naive scalars overflow and divide by 0 by design
        decided = np.isfinite(m)
        # The stable code (kernels.stable): p divides by the unrounded sum, the log takes
        # it rounded to D.
        s_st = r(total.copy())
        p_st = r(scalars.stable_exp_t / total)
        stable_loss = r(r(np.log(s_st)) - (scalars.logit_t - m))
        logsumexp = kernels.logsumexp(m, s_st, dtype)

        e_max = r(np.exp(m))
        p_nv = r(scalars.naive_exp_t / s_nv)
        naive_loss = -r(np.log(p_nv))
        nv_zero = s_nv == 0
        nv_inf = s_nv == np.inf
        grad_nan = nv_zero | nv_inf | (p_nv == 0)
        g_pt = r(-1 / p_nv)
        g_e_t = r(g_pt / s_nv)
        q_max = r(r(e_max / s_nv) / s_nv)
        g_s = r(-g_pt * r(p_nv / s_nv))
        g_t = r(g_e_t + g_s)
        grad_clean = (
            np.isfinite(g_pt)
            & np.isfinite(g_e_t)
            & np.isfinite(q_max)
            & np.isfinite(g_s)
            & np.isfinite(g_t)
        )

    def bits(*pairs: tuple[Flag, np.ndarray]) -> np.ndarray:
        flags = np.zeros(len(m), dtype=np.uint8)
        for flag, mask in pairs:
            flags |= mask.astype(np.uint8) * np.uint8(flag)
        return flags

    stable = ImplRows(
        flags=bits(
            (Flag.OVERFLOW, s_st == np.inf),
            (Flag.UNDERFLOW, has_target & (p_st == 0)),
        ),
        loss=np.where(has_target, stable_loss, np.nan),
    )
    naive = ImplRows(
        flags=bits(
            (Flag.OVERFLOW, nv_inf),
            (Flag.UNDERFLOW, nv_zero | (has_target & (p_nv == 0))),
            (Flag.NAN_PROB, nv_zero | (e_max == np.inf)),
            (Flag.NAN_GRAD, has_target & grad_nan),
        ),
        loss=np.where(has_target, naive_loss, np.nan),
    )
    return Decided(
        findings=Findings(
            input=np.where(scalars.out_of_range, np.uint8(InputFlag.OUT_OF_RANGE), np.uint8(0)),
            has_target=has_target,
            naive_estimated=scalars.screened.copy(),
            impls={NAIVE.name: naive, STABLE.name: stable},
        ),
        measures=measures(scalars, logsumexp, dtype),
        undecided=~decided | (has_target & ~grad_nan & ~grad_clean),
    )
