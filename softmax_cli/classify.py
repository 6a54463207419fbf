"""Runs both paths over row chunks and turns what they compute into a Report."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from softmax_cli import fastpath, kernels
from softmax_cli.dtypes import ComputeDtype, resolve_compute_dtype
from softmax_cli.fastpath import ChunkResult
from softmax_cli.report import (
    DEFAULT_FAIL_ON,
    InputInfo,
    Path,
    Report,
    RowFlag,
    RowTable,
    parse_fail_on,
)
from softmax_cli.validate import check_logits, check_targets

# Rows per piece are chosen so a piece of the work dtype stays near this many bytes: small
# enough that a piece and its work buffer stay in the L2 cache.
CHUNK_BYTES = 1 << 20
# A thread takes this many pieces at a time: enough to amortise the per-block work on the
# per-row scalars, few enough that the blocks share out evenly and progress moves.
BLOCK_PIECES = 16
WORKERS = os.cpu_count() or 2

Progress = Callable[[int, int], None]


def check(
    logits: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    dtype: str = "auto",
    class_axis: int = -1,
    ignore_index: int = -100,
    fail_on: str | Iterable[str] = DEFAULT_FAIL_ON,
    logits_name: str = "<logits>",
    targets_name: str | None = None,
    on_progress: Progress | None = None,
) -> Report:
    """Check every sample of ``logits`` with the naive and the stable softmax/cross-entropy.

    ``class_axis`` is the class axis; every other axis is a sample axis. ``targets`` holds
    one class index per sample (or ``ignore_index`` for none). ``dtype`` is the precision
    to compute in; ``auto`` keeps a float input's own. Raises InputError for arrays that
    cannot be checked.
    """
    logits = np.asarray(logits)
    check_logits(logits, logits_name, class_axis)
    compute_dtype = resolve_compute_dtype(dtype, logits.dtype)
    rows = _SampleRows(logits, class_axis)
    flat_targets = None
    if targets is not None:
        flat_targets = check_targets(
            targets, targets_name or "<targets>", rows.count, rows.classes, ignore_index
        )
    table = _classify(rows, flat_targets, ignore_index, compute_dtype, on_progress)
    return Report(
        input=InputInfo(
            logits=logits_name,
            targets=None if targets is None else (targets_name or "<targets>"),
            shape=tuple(int(n) for n in logits.shape),
            dtype=str(logits.dtype),
            class_axis=class_axis,
        ),
        compute_dtype=compute_dtype.name,
        fail_on=parse_fail_on(fail_on),
        rows=table,
    )


class _SampleRows:
    """The logits seen as (samples, classes) rows in flat C order, fetched a chunk at a time.

    With the class axis last (the usual layout) a chunk is a slice of a reshaped view, so a
    memory-mapped file is read only as far as the loop has come; any other class axis is
    gathered with one fancy index per chunk.
    """

    def __init__(self, logits: np.ndarray, class_axis: int) -> None:
        self.by_sample = np.moveaxis(logits, class_axis, -1)
        self.sample_shape = self.by_sample.shape[:-1]
        self.classes = int(self.by_sample.shape[-1])
        self.count = int(np.prod(self.sample_shape, dtype=np.int64))
        self._flat = None
        # With at most one sample axis the (samples, classes) reshape is a view whatever the
        # strides; a lone sample (1-D logits) has no index to gather by, so it must go here.
        if self.by_sample.flags.c_contiguous or len(self.sample_shape) <= 1:
            self._flat = self.by_sample.reshape(self.count, self.classes)

    def chunk(self, start: int, stop: int) -> np.ndarray:
        if self._flat is not None:
            return self._flat[start:stop]
        where = np.unravel_index(np.arange(start, stop), self.sample_shape)
        return self.by_sample[where]


def _classify(
    rows: _SampleRows,
    targets: np.ndarray | None,
    ignore_index: int,
    dtype: ComputeDtype,
    on_progress: Progress | None,
) -> RowTable:
    """The one chunk loop: blocks of rows on a thread pool, each classified by classify_block.

    NumPy releases the GIL inside its loops, so the blocks run in parallel; each writes its
    own slice of the table, so the result does not depend on the number of workers.
    """
    n = rows.count
    flags = np.zeros(n, dtype=np.uint16)
    columns = {name: np.full(n, np.nan) for name in ("naive", "stable", "max", "lse")}
    # -1 marks "no target" for the chunk classifiers.
    row_targets = None if targets is None else np.where(targets == ignore_index, -1, targets)
    piece = _piece_rows(rows.classes, dtype)
    block = piece * BLOCK_PIECES

    def classify_rows(start: int) -> int:
        stop = min(n, start + block)
        block_targets = None if row_targets is None else row_targets[start:stop]
        result = classify_block(rows.chunk(start, stop), block_targets, dtype, piece)
        flags[start:stop] = result.flags
        columns["naive"][start:stop] = result.naive_loss
        columns["stable"][start:stop] = result.stable_loss
        columns["max"][start:stop] = result.max_logit
        columns["lse"][start:stop] = result.logsumexp
        return stop - start

    starts = range(0, n, block)
    workers = min(WORKERS, len(starts))
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        done = 0
        for count in pool.map(classify_rows, starts) if pool else map(classify_rows, starts):
            done += count
            if on_progress is not None:
                on_progress(done, n)
    finally:
        if pool is not None:
            # On an error or Ctrl-C, do not run the blocks still queued.
            pool.shutdown(wait=True, cancel_futures=True)
    return RowTable(
        flags=flags,
        targets=targets,
        naive_loss=columns["naive"],
        stable_loss=columns["stable"],
        max_logit=columns["max"],
        logsumexp=columns["lse"],
    )


def _piece_rows(classes: int, dtype: ComputeDtype) -> int:
    return max(1, CHUNK_BYTES // (classes * dtype.work.itemsize))


def classify_block(
    x: np.ndarray, targets: np.ndarray | None, dtype: ComputeDtype, piece_rows: int | None = None
) -> ChunkResult:
    """What classify_chunk returns for ``x`` (rows, classes, any real dtype), computed fast.

    The fast path decides almost every row from a few scalars per row; the rows it leaves
    undecided (non-finite input, extreme naive gradients) go through the reference kernels,
    a piece at a time so memory stays bounded however many there are.
    """
    x = np.asarray(x)
    if targets is None:
        targets = np.full(len(x), -1)
    piece_rows = piece_rows or _piece_rows(x.shape[1], dtype)
    decided = fastpath.derive(fastpath.reduce_rows(x, targets, dtype, piece_rows), targets, dtype)
    result = decided.rows
    undecided = np.flatnonzero(decided.undecided)
    for start in range(0, len(undecided), piece_rows):
        which = undecided[start : start + piece_rows]
        reference = classify_chunk(dtype.to_work(x[which]), targets[which], dtype)
        for column in dataclasses.fields(ChunkResult):
            getattr(result, column.name)[which] = getattr(reference, column.name)
    return result


def classify_chunk(x: np.ndarray, targets: np.ndarray | None, dtype: ComputeDtype) -> ChunkResult:
    """Flags and losses of a chunk of rows from the reference kernels' arrays.

    ``targets`` holds a class index per row, or -1 where the row has no target.
    """
    naive = kernels.naive(x, targets, dtype)
    stable = kernels.stable(x, targets, dtype)
    nonfinite = np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1)
    flags = np.zeros(len(x), dtype=np.uint16)
    flags |= np.where(nonfinite, RowFlag.NONFINITE, 0).astype(np.uint16)
    flags |= np.where(np.isneginf(x).all(axis=1), RowFlag.FULLY_MASKED, 0).astype(np.uint16)
    has_target = np.zeros(len(x), dtype=bool) if targets is None else targets >= 0
    flags |= np.where(has_target, RowFlag.HAS_TARGET, 0).astype(np.uint16)

    for path, arrays in ((Path.naive, naive), (Path.stable, stable)):
        overflow = (np.isposinf(arrays.exp).any(axis=1) | np.isposinf(arrays.sum)) & ~nonfinite
        underflow = arrays.sum == 0
        if targets is not None:
            p_t = np.take_along_axis(arrays.probs, np.maximum(targets, 0)[:, None], 1)[:, 0]
            underflow |= has_target & (p_t == 0)
        bits = (
            (path.overflow, overflow),
            (path.underflow, underflow),
            (path.nan_prob, np.isnan(arrays.probs).any(axis=1)),
        )
        if arrays.grad is not None:
            bits += ((path.nan_grad, has_target & np.isnan(arrays.grad).any(axis=1)),)
        for flag, mask in bits:
            flags |= np.where(mask, flag, 0).astype(np.uint16)

    def loss(arrays: kernels.PathArrays) -> np.ndarray:
        if arrays.loss is None:
            return np.full(len(x), np.nan)
        return np.where(has_target, arrays.loss, np.nan)

    return ChunkResult(
        flags=flags,
        naive_loss=loss(naive),
        stable_loss=loss(stable),
        max_logit=stable.max.astype(np.float64),
        logsumexp=kernels.logsumexp(stable.max, stable.sum, dtype).astype(np.float64),
    )
