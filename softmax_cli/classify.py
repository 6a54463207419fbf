"""Runs every implementation over blocks of rows and turns what they compute into a Report.

Vocabulary: a *block* is the rows one thread-pool task takes; a *piece* is the part of a
block small enough to stay in the L2 cache, which the kernels work on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmax_cli import arrays, fastpath, impl, kernels, sources, widen
from softmax_cli.dtypes import COMPUTE_DTYPES, ComputeDtype, resolve_compute_dtype
from softmax_cli.errors import OptionError
from softmax_cli.load import ArrayKeys, Loaded
from softmax_cli.options import DEFAULT_FAIL_ON, CheckOptions
from softmax_cli.report import (
    BUILTIN,
    NAIVE,
    STABLE,
    FileInfo,
    Findings,
    Flag,
    ImplRows,
    InputFlag,
    InputInfo,
    Measures,
    Report,
)
from softmax_cli.sweep import SWEEP_DTYPES
from softmax_cli.validate import check_logits, check_targets

# Rows per piece are chosen so a piece of the work dtype stays near this many bytes: small
# enough that a piece and its work buffer stay in the L2 cache.
PIECE_BYTES = 1 << 20
# ... and at most this many rows: the per-row scalars and their temporaries (a few hundred
# bytes a row while a block is classified) then stay bounded by the block, not by the dump,
# on narrow dumps too (100 M rows x 2 classes would otherwise make blocks of 2 M rows).
MAX_PIECE_ROWS = 8192
# A block is this many pieces: enough to amortise the per-block work on the per-row
# scalars, few enough that the blocks share out evenly and progress moves.
BLOCK_PIECES = 16
WORKERS = os.cpu_count() or 2

Progress = Callable[[int, int], None]
# What check() takes for an array: see softmax_cli.arrays.
ArrayLike = Any


def check(
    logits: ArrayLike,
    targets: ArrayLike | None = None,
    *,
    dtype: str = "auto",
    class_axis: int = -1,
    ignore_index: int = -100,
    fail_on: str | Iterable[str] = DEFAULT_FAIL_ON,
    masked: str = "flag",
    min_headroom: float | None = None,
    sweep: bool = False,
    logits_name: str = "<logits>",
    targets_name: str | None = None,
    on_progress: Progress | None = None,
    implementations: Iterable[impl.ImplementationLike] | None = None,
    impl_rtol: float | None = None,
) -> Report:
    """Check every sample of ``logits`` with the naive and the stable softmax/cross-entropy.

    ``class_axis`` is the class axis; every other axis is a sample axis. ``targets`` holds
    one class index per sample (or ``ignore_index`` for none). ``dtype`` is the precision
    to compute in; ``auto`` keeps a float input's own. ``masked="ignore"`` counts fully
    masked rows as padding, in no failing category; ``min_headroom`` (nats) adds the category
    ``headroom`` to ``fail_on``. ``sweep`` also runs the whole check in float64, float32,
    bfloat16 and float16 (``Report.sweep``); the report itself stays the ``dtype`` one.
    ``implementations`` adds your own (functions, or ``"[NAME=]path/to/file.py:function"``
    strings; see :mod:`softmax_cli.impl`), their loss held to ``impl_rtol`` (default per
    dtype). The options are validated before any work (an OptionError names the parameter);
    arrays that cannot be checked raise InputError.

    ``logits`` and ``targets`` may be NumPy arrays, ``torch.Tensor`` (any device, any float
    dtype), anything with ``__dlpack__`` or ``__array__``, or nested lists; a CPU tensor is
    read in place, not copied. A masked array's masked logits are ``-inf`` and its masked
    targets ``ignore_index`` (see :mod:`softmax_cli.arrays`).
    """
    options = CheckOptions.of(
        dtype,
        class_axis,
        ignore_index,
        fail_on,
        masked=masked,
        min_headroom=min_headroom,
        sweep=sweep,
    )
    own = impl.resolve(implementations)
    impl_rtol = impl.check_rtol(impl_rtol)
    logits_array, targets_array = arrays.logits_array(logits, logits_name), None
    if targets is not None:
        targets_name = targets_name or "<targets>"
        targets_array = arrays.targets_array(targets, targets_name, options.ignore_index)
    loaded = Loaded(
        logits=logits_array,
        targets=targets_array,
        logits_name=logits_name,
        targets_name=None if targets is None else targets_name,
        from_text=False,
    )
    return check_loaded(loaded, options, on_progress, implementations=own, impl_rtol=impl_rtol)


def check_loaded(
    loaded: Loaded | Sequence[Loaded],
    options: CheckOptions,
    on_progress: Progress | None = None,
    *,
    scheduler: str | None = None,
    keys: ArrayKeys | None = None,
    implementations: Iterable[impl.ImplementationLike] | None = None,
    impl_rtol: float | None = None,
    listed_only: bool = False,
) -> Report:
    """Check what :func:`softmax_cli.load.load_inputs` read, with validated options.

    Several files are checked as one dump: every file is validated (and must have the same
    classes, compute dtype and kind of targets) before any work, then their blocks share
    one pool. ``scheduler`` is a Dask scheduler's address to run the blocks on instead;
    its workers read the files again with ``keys``, as they were read here. Your own
    ``implementations`` (see :func:`check`) run locally, after the built-in ones, in the
    compute dtype.

    With ``options.sweep`` the check also runs in every compute dtype, each block read once
    for all of them (on a cluster, once per dtype); the report is the compute dtype's, with
    the four in ``sweep``.

    ``listed_only=True`` says the caller shows the naive loss of listed (flagged) samples
    only, never of every sample (the command line without ``--all``): a half-precision
    check then makes the naive pass only where it can raise a flag (see
    :func:`softmax_cli.fastpath.reduce_rows`; on a cluster the dtype's own check stays
    whole). Every sample any report of the check may list is then checked again in full,
    so what is shown is the same to the last bit.
    """
    own = impl.resolve(implementations)
    impl_rtol = impl.check_rtol(impl_rtol)
    if own and scheduler is not None:
        raise OptionError(
            "scheduler",
            "{option} and your own implementations (--impl) do not go together: run --impl locally",
        )
    files = [loaded] if isinstance(loaded, Loaded) else list(loaded)
    parts = _prepare(files, options)
    compute_dtype = parts[0].compute_dtype
    dtypes = [compute_dtype]
    if options.sweep:
        dtypes += [COMPUTE_DTYPES[name] for name in SWEEP_DTYPES if name != compute_dtype.name]
    if scheduler is None:
        results = _classify(
            parts, options.ignore_index, dtypes, on_progress, own, impl_rtol, listed_only
        )
    else:
        from softmax_cli import cluster

        results = cluster.classify(
            scheduler, parts, options, dtypes, on_progress, keys or ArrayKeys()
        )
    targets = None
    if parts[0].targets is not None:
        targets = (
            parts[0].targets if len(parts) == 1 else np.concatenate([p.targets for p in parts])
        )
    for dtype, (findings, measures) in zip(dtypes, results, strict=True):
        _compute_listable(parts, options, dtype, findings, measures)
    # A corrupt archive member is an input error, not a report: wait for its CRC check.
    for part in parts:
        part.loaded.verify()
    info = _input_info(parts, options.class_axis)
    mine = (*BUILTIN, *(o.implementation for o in own))
    reports = {
        dtype.name: Report(
            input=info,
            compute_dtype=dtype.name,
            fail_on=options.fail_on,
            findings=findings,
            measures=measures,
            targets=targets,
            masked=options.masked,
            min_headroom=options.min_headroom,
            implementations=mine if dtype is compute_dtype else BUILTIN,
        )
        for dtype, (findings, measures) in zip(dtypes, results, strict=True)
    }
    report = reports[compute_dtype.name]
    if not options.sweep:
        return report
    return dataclasses.replace(report, sweep=tuple(reports[name] for name in SWEEP_DTYPES))


def _compute_listable(
    parts: list[Part],
    options: CheckOptions,
    dtype: ComputeDtype,
    findings: Findings,
    measures: Measures,
) -> None:
    """Check again in full the samples whose naive loss was estimated (``listed_only``)
    that a report may list: any flag or input flag of any implementation, a non-finite
    loss, a headroom below ``options.min_headroom`` (listed when ``--fail-on`` holds
    ``headroom``), or the lowest headroom (a regression when it fell against a baseline).
    A sample with none of these is listed by nothing but ``--all``, which checks in full."""
    estimated = findings.naive_estimated
    if not estimated.any():
        return
    listable = findings.input != 0
    for rows in findings.impls.values():
        listable |= (rows.flags != 0) | (findings.has_target & ~np.isfinite(rows.loss))
    headroom = measures.headroom_at(dtype.log_max)
    with np.errstate(invalid="ignore"):
        listable |= headroom < options.min_headroom
    if np.isfinite(headroom).any():
        listable[np.nanargmin(headroom)] = True
    again = np.flatnonzero(listable & estimated)
    step = _piece_rows(parts[0].rows.classes, dtype) * BLOCK_PIECES
    for start in range(0, len(again), step):
        which = again[start : start + step]
        x, targets = _rows_at(parts, which, options.ignore_index)
        rows_findings, _ = classify_block(x, targets, dtype)  # the measures are the same
        findings.put(which, rows_findings)


def _rows_at(
    parts: list[Part], samples: np.ndarray, ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """The logits rows and block targets (-1: none) of the samples at flat ``samples``."""
    starts = np.array([p.first_index for p in parts])
    which = np.searchsorted(starts, samples, side="right") - 1
    rows, targets = [], []
    for i in np.unique(which):
        part = parts[i]
        local = samples[which == i] - part.first_index
        rows.append(part.rows.take(local))
        given = np.full(len(local), -1) if part.targets is None else part.targets[local]
        targets.append(marked_targets(given, ignore_index))
    return np.concatenate(rows), np.concatenate(targets)


def marked_targets(given: np.ndarray, ignore_index: int) -> np.ndarray:
    """``given`` targets as the block classifiers take them: -1 marks "no target"."""
    return np.where(given == ignore_index, -1, given)


@dataclass(frozen=True, eq=False)
class Part:
    """One validated logits file: its rows, its targets and where its samples start."""

    loaded: Loaded
    rows: _SampleRows
    targets: np.ndarray | None  # flat int64, as given (ignored ones keep the ignore index)
    compute_dtype: ComputeDtype
    first_index: int


def _prepare(files: list[Loaded], options: CheckOptions) -> list[Part]:
    """Every file validated, and checked to be like the first, before any work."""
    parts: list[Part] = []
    first_index = 0
    for loaded in files:
        logits = loaded.logits
        check_logits(logits, loaded.logits_name, options.class_axis)
        compute_dtype = resolve_compute_dtype(options.dtype, logits.dtype, text=loaded.from_text)
        rows = _SampleRows(logits, options.class_axis)
        targets = None
        if loaded.targets is not None:
            targets = check_targets(
                loaded.targets,
                loaded.targets_name or "<targets>",
                rows.count,
                rows.classes,
                options.ignore_index,
                logits_shape=logits.shape,
                class_axis=options.class_axis,
            )
        part = Part(loaded, rows, targets, compute_dtype, first_index)
        if parts:
            sources.check_alike(parts[0], part)
        parts.append(part)
        first_index += rows.count
    return parts


def _input_info(parts: list[Part], class_axis: int) -> InputInfo:
    def info(part: Part) -> FileInfo:
        loaded = part.loaded
        return FileInfo(
            logits=loaded.logits_name,
            targets=None if part.targets is None else loaded.targets_name,
            shape=tuple(int(n) for n in loaded.logits.shape),
            dtype=str(loaded.logits.dtype),
            class_axis=class_axis,
            first_index=part.first_index,
        )

    if len(parts) == 1:
        one = info(parts[0])
        column = parts[0].loaded.target_column if one.targets is not None else None
        return InputInfo(one.logits, one.targets, one.shape, one.dtype, class_axis, (), column)
    files = tuple(info(p) for p in parts)
    return InputInfo.of_files(sources.label([f.logits for f in files]), files)


class _SampleRows:
    """The logits seen as (samples, classes) rows in flat C order, fetched a block at a time.

    With the class axis last (the usual layout) a block is a slice of a reshaped view, so a
    memory-mapped file is read only as far as the loop has come; any other class axis is
    gathered with one fancy index per block.
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

    def block(self, start: int, stop: int) -> np.ndarray:
        return self.take(np.arange(start, stop)) if self._flat is None else self._flat[start:stop]

    def take(self, samples: np.ndarray) -> np.ndarray:
        """The rows of the samples at flat indices ``samples``, as a new array."""
        if self._flat is not None:
            return self._flat[samples]
        return self.by_sample[np.unravel_index(samples, self.sample_shape)]


def _classify(
    parts: list[Part],
    ignore_index: int,
    dtypes: Sequence[ComputeDtype],
    on_progress: Progress | None,
    own: tuple[impl.OwnImplementation, ...] = (),
    impl_rtol: float | None = None,
    listed_only: bool = False,
) -> list[tuple[Findings, Measures]]:
    """The one block loop: the blocks of every file on one thread pool, each classified by
    classify_block in each of ``dtypes`` while it is in memory (the file is read once
    however many dtypes are asked for).

    NumPy releases the GIL inside its loops, so the blocks run in parallel; each writes its
    own rows of the columns, so the result does not depend on the number of workers. Your
    own implementations then run on the same blocks, one after the other in this thread:
    torch spreads each call over the cores itself.
    """
    n = sum(p.rows.count for p in parts)
    implementations = (*BUILTIN, *(o.implementation for o in own))
    results = [
        (Findings.blank(n, mine, d.work), Measures.empty(n, d.work))
        for mine, d in zip((implementations, *(BUILTIN for _ in dtypes[1:])), dtypes, strict=True)
    ]
    classes = parts[0].rows.classes
    pieces = [_piece_rows(classes, dtype) for dtype in dtypes]

    def row_targets(which: int, start: int, stop: int) -> np.ndarray | None:
        # -1 marks "no target" for the block classifiers; made a block at a time, so no
        # copy of a dump's targets is held.
        given = parts[which].targets
        if given is None:
            return None
        return marked_targets(given[start:stop], ignore_index)

    def classify_rows(task: tuple[int, int, int]) -> int:
        which, start, stop = task
        part, targets = parts[which], row_targets(*task)
        x = part.rows.block(start, stop)
        at = slice(part.first_index + start, part.first_index + stop)
        put_in(results, at, classify_in(x, targets, dtypes, pieces, listed_only))
        return stop - start

    tasks = blocks(parts, pieces[0])
    workers = min(WORKERS, len(tasks))
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    total = n * (1 + len(own))
    try:
        done = 0
        for count in pool.map(classify_rows, tasks) if pool else map(classify_rows, tasks):
            done += count
            if on_progress is not None:
                on_progress(done, total)
    finally:
        if pool is not None:
            # On an error or Ctrl-C, do not run the blocks still queued.
            pool.shutdown(wait=True, cancel_futures=True)
    if own:
        dtype, (findings, measures) = dtypes[0], results[0]
        rtol = impl.rtol_for(dtype, impl_rtol)
        for which, start, stop in tasks:
            part, targets = parts[which], row_targets(which, start, stop)
            x = part.rows.block(start, stop)
            block_targets = np.full(stop - start, -1) if targets is None else targets
            at = slice(part.first_index + start, part.first_index + stop)
            for o in own:
                rows_of_own = impl.run_block(
                    o, x, block_targets, dtype, ignore_index, rtol, measures.log_partition_at(at)
                )
                findings.impls[o.name].put(at, rows_of_own)
                done += stop - start
                if on_progress is not None:
                    on_progress(done, total)
    return results


def blocks(parts: list[Part], piece_rows: int) -> list[tuple[int, int, int]]:
    """(file, start, stop) of every block, file after file: a flat list of tasks, so the
    pool (or a cluster) shares out the files as it shares out one file's blocks."""
    block = piece_rows * BLOCK_PIECES
    return [
        (which, start, min(part.rows.count, start + block))
        for which, part in enumerate(parts)
        for start in range(0, part.rows.count, block)
    ]


def _piece_rows(classes: int, dtype: ComputeDtype) -> int:
    return max(1, min(MAX_PIECE_ROWS, PIECE_BYTES // (classes * dtype.work.itemsize)))


def classify_in(
    x: np.ndarray,
    targets: np.ndarray | None,
    dtypes: Sequence[ComputeDtype],
    pieces: Sequence[int],
    listed_only: bool = False,
) -> list[tuple[Findings, Measures]]:
    """Findings and measures of the block ``x`` in each of ``dtypes`` (``pieces``: rows per
    piece in each), one after the other while the block is in memory. ``listed_only``: see
    :func:`check_loaded`.

    A wide dtype that holds the file's values exactly (float64 in the sweep of a float32
    dump) is read off the check in another such dtype rather than checked again: see
    :mod:`softmax_cli.widen`. Its flags are its own; its losses and measures agree with its
    own to about 1e-6. The dtypes after the first are a sweep's, which shows counts and
    health only: their naive losses are not computed where the naive flags are provably
    clear (within a few roundings of D there).
    """
    plan = widen.plan(dtypes, x.dtype, x.shape[1])
    if targets is None:
        targets = np.full(len(x), -1)
    done: dict[str, tuple[Findings, Measures]] = {}
    # The dtypes checked in full first: the others are read off them.
    for dtype, piece in sorted(zip(dtypes, pieces, strict=True), key=lambda d: d[0].name in plan):
        if dtype.name in plan:
            base = done[plan[dtype.name].name][1]
            done[dtype.name] = _read_off(x, targets, base, dtype, piece)
        else:
            naive_losses = dtype is dtypes[0] and not listed_only
            done[dtype.name] = classify_block(x, targets, dtype, piece, naive_losses=naive_losses)
    return [done[d.name] for d in dtypes]


def put_in(
    results: Sequence[tuple[Findings, Measures]],
    at: slice,
    per_dtype: Sequence[tuple[Findings, Measures]],
) -> None:
    """A block's findings and measures in each dtype (:func:`classify_in`) into the dump's
    columns of that dtype, at its rows ``at``."""
    for (findings, measures), (block_findings, block_measures) in zip(
        results, per_dtype, strict=True
    ):
        findings.put(at, block_findings)
        measures.put(at, block_measures)


def _read_off(
    x: np.ndarray,
    targets: np.ndarray,
    base: Measures,
    dtype: ComputeDtype,
    piece_rows: int,
) -> tuple[Findings, Measures]:
    """D's findings of ``x`` read off ``base``, the measures of another dtype holding its
    values; the rows that cannot be are checked in full in D."""
    findings, measures, rest = widen.read_off(x, targets, base, dtype)
    for start in range(0, len(rest), piece_rows):
        which = rest[start : start + piece_rows]
        rows_findings, rows_measures = classify_block(x[which], targets[which], dtype, piece_rows)
        findings.put(which, rows_findings)
        measures.put(which, rows_measures)
    return findings, measures


def classify_block(
    x: np.ndarray,
    targets: np.ndarray | None,
    dtype: ComputeDtype,
    piece_rows: int | None = None,
    *,
    naive_losses: bool = True,
) -> tuple[Findings, Measures]:
    """Findings and measures of ``x`` (rows, classes, any real dtype), computed fast.

    The fast path decides almost every row from a few scalars per row; the rows it leaves
    undecided (non-finite input, extreme naive gradients) get the reference kernels'
    findings, a piece at a time so memory stays bounded however many there are.
    ``naive_losses=False``: the caller reads the naive path's flags only (see
    :func:`softmax_cli.fastpath.reduce_rows`).
    """
    x = np.asarray(x)
    if targets is None:
        targets = np.full(len(x), -1)
    piece_rows = piece_rows or _piece_rows(x.shape[1], dtype)
    scalars = fastpath.reduce_rows(x, targets, dtype, piece_rows, naive_losses=naive_losses)
    decided = fastpath.derive(scalars, targets, dtype)
    undecided = np.flatnonzero(decided.undecided)
    for start in range(0, len(undecided), piece_rows):
        which = undecided[start : start + piece_rows]
        rows = x[which]
        decided.findings.put(
            which, reference_findings(dtype.to_work(rows), targets[which], dtype, source=rows)
        )
    return decided.findings, decided.measures


def reference_findings(
    x: np.ndarray,
    targets: np.ndarray | None,
    dtype: ComputeDtype,
    source: np.ndarray | None = None,
) -> Findings:
    """The findings of a few rows read off the reference kernels' arrays.

    ``x`` holds values of D in the work dtype; ``targets`` a class index per row, or -1
    where the row has no target; ``source`` the same rows as read from the file (default:
    ``x``), so that a value the cast to D made infinite is ``out_of_range``, not the file's
    own ``nonfinite``.
    """
    source = x if source is None else source
    nonfinite = np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1)
    input_bits = np.zeros(len(x), dtype=np.uint8)
    # A signalling NaN in a bfloat16 file raises "invalid" in isnan (ml_dtypes 0.6): it is
    # the NaN the flag reports, not a problem of ours.
    with np.errstate(invalid="ignore"):
        masks = (
            (InputFlag.NONFINITE, np.isnan(source).any(axis=1) | np.isposinf(source).any(axis=1)),
            (InputFlag.FULLY_MASKED, np.isneginf(x).all(axis=1)),
            (InputFlag.OUT_OF_RANGE, (np.isinf(x) & ~np.isinf(source)).any(axis=1)),
        )
    for flag, mask in masks:
        input_bits[mask] |= np.uint8(flag)
    has_target = np.zeros(len(x), dtype=bool) if targets is None else targets >= 0

    def findings(arrays: kernels.PathArrays) -> ImplRows:
        overflow = (np.isposinf(arrays.exp).any(axis=1) | np.isposinf(arrays.sum)) & ~nonfinite
        underflow = arrays.sum == 0
        if targets is not None:
            p_t = np.take_along_axis(arrays.probs, np.maximum(targets, 0)[:, None], 1)[:, 0]
            underflow |= has_target & (p_t == 0)
        masks = [
            (Flag.OVERFLOW, overflow),
            (Flag.UNDERFLOW, underflow),
            (Flag.NAN_PROB, np.isnan(arrays.probs).any(axis=1)),
        ]
        if arrays.grad is not None:
            masks.append((Flag.NAN_GRAD, has_target & np.isnan(arrays.grad).any(axis=1)))
        flags = np.zeros(len(x), dtype=np.uint8)
        for flag, mask in masks:
            flags[mask] |= np.uint8(flag)
        loss = np.full(len(x), np.nan) if arrays.loss is None else arrays.loss
        return ImplRows(flags=flags, loss=np.where(has_target, loss, np.nan))

    return Findings(
        input=input_bits,
        has_target=has_target,
        impls={
            NAIVE.name: findings(kernels.naive(x, targets, dtype)),
            STABLE.name: findings(kernels.stable(x, targets, dtype)),
        },
    )
