"""The block loop on a Dask cluster: each task reads its own blocks of its own file.

Only the file's path and the block bounds travel to a worker, and only the per-row
:class:`~softmax_cli.report.Findings` and :class:`~softmax_cli.report.Measures` come
back (a few tens of bytes a row), which the client puts in place: the logits never cross
the network, so the files must be visible to every worker at the same path. The blocks and
the code that classifies them are the local run's, so the report is the same byte for byte.

Dask is imported only here, and only when a scheduler is given: start-up time matters.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from softmax_cli.errors import InputError, OptionError, SoftmaxCheckError
from softmax_cli.load import ArrayKeys, load_inputs
from softmax_cli.load.files import STDIN
from softmax_cli.report import Findings, Measures

if TYPE_CHECKING:
    from softmax_cli.classify import Part, Progress
    from softmax_cli.dtypes import ComputeDtype
    from softmax_cli.options import CheckOptions

INSTALL_HINT = "install it with: pip install 'softmax-check[dask]'"
CONNECT_SECONDS = 10
# Consecutive blocks of one file per task: enough rows to make Dask's per-task cost (a few
# milliseconds) small beside the work, few enough that the tasks share out evenly.
TASK_BLOCKS = 4


@dataclass(frozen=True)
class Source:
    """What a worker needs to read one file's blocks: paths, keys, and what to expect."""

    logits: str  # absolute: a worker's working directory is not ours
    targets: str | None
    keys: ArrayKeys
    shape: tuple[int, ...]
    dtype: str
    class_axis: int
    ignore_index: int
    compute_dtypes: tuple[str, ...]  # the report's first, then the sweep's (local order)
    piece_rows: tuple[int, ...]  # one per compute dtype


@dataclass(frozen=True)
class Failure:
    """Bad input met on a worker, sent back as data: a deterministic error is not Dask's
    to retry, and the client re-raises it as the InputError it was."""

    source: str
    problem: str
    hint: str | None


# Per block: its bounds and its findings and measures in each compute dtype.
Rows = list[tuple[int, int, list[tuple[Findings, Measures]]]]


def classify(
    address: str,
    parts: list[Part],
    options: CheckOptions,
    dtypes: Sequence[ComputeDtype],
    on_progress: Progress | None,
    keys: ArrayKeys,
) -> list[tuple[Findings, Measures]]:
    """Findings and measures of every part's rows in each of ``dtypes``, computed on the
    cluster at ``address``, each block read once for all of them as a local run reads it;
    ``keys`` say how the files were read, for the workers to read them the same way."""
    from softmax_cli.classify import _piece_rows, blocks, put_in

    distributed = _distributed()
    n = sum(p.rows.count for p in parts)
    results = [(Findings.blank(n, work=d.work), Measures.empty(n, d.work)) for d in dtypes]
    pieces = tuple(_piece_rows(parts[0].rows.classes, d) for d in dtypes)
    sources = [_source(p, options, dtypes, pieces, keys) for p in parts]
    names = {s.logits: p.loaded.logits_name for s, p in zip(sources, parts, strict=True)}
    names.update(
        {s.targets: p.loaded.targets_name for s, p in zip(sources, parts, strict=True) if s.targets}
    )
    tasks = _tasks(blocks(parts, pieces[0]))
    client = _connect(distributed, address)
    try:
        # One map (one message to the scheduler), and results gathered in batches as
        # they finish: per task, Dask costs a few milliseconds instead of a round trip.
        futures = client.map(
            classify_blocks,
            [sources[which] for which, _ in tasks],
            [spans for _, spans in tasks],
            pure=False,
        )
        owner = {f.key: parts[which] for f, (which, _) in zip(futures, tasks, strict=True)}
        done = 0
        finished = distributed.as_completed(futures, loop=client.loop, with_results=True)
        for batch in finished.batches():
            for future, result in batch:
                if isinstance(result, Failure):
                    client.cancel(futures)
                    raise InputError(
                        names.get(result.source, result.source), result.problem, result.hint
                    )
                first = owner[future.key].first_index
                for start, stop, per_dtype in result:
                    put_in(results, slice(first + start, first + stop), per_dtype)
                    done += stop - start
                future.release()
            if on_progress is not None:
                on_progress(done, n)
    finally:
        client.close()
    return results


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise OptionError(
            "scheduler",
            "{option} needs dask.distributed, which is not installed",
            hint=INSTALL_HINT,
        ) from None
    return distributed


def _connect(distributed: Any, address: str) -> Any:
    try:
        return distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OptionError(
            "scheduler",
            f"{{option}} {address}: cannot reach a Dask scheduler there ({reason})",
            hint="start one with: dask scheduler --port 8786, and workers with: "
            "dask worker tcp://HOST:8786",
        ) from None


def refuse_stdin(paths: list[str | None]) -> None:
    """Workers read the files themselves: standard input (``-``) cannot go to them."""
    if STDIN in paths or "<stdin>" in paths:
        raise OptionError(
            "scheduler", "{option}: standard input cannot be read on a cluster's workers"
        )


def _source(
    part: Part,
    options: CheckOptions,
    dtypes: Sequence[ComputeDtype],
    pieces: tuple[int, ...],
    keys: ArrayKeys,
) -> Source:
    loaded = part.loaded
    refuse_stdin([loaded.logits_name, loaded.targets_name])
    return Source(
        logits=os.path.abspath(loaded.logits_name),
        targets=None
        if loaded.targets_name in (None, loaded.logits_name)
        else os.path.abspath(loaded.targets_name),
        keys=keys,
        shape=tuple(int(n) for n in loaded.logits.shape),
        dtype=str(loaded.logits.dtype),
        class_axis=options.class_axis,
        ignore_index=options.ignore_index,
        compute_dtypes=tuple(d.name for d in dtypes),
        piece_rows=pieces,
    )


def _tasks(block_list: list[tuple[int, int, int]]) -> list[tuple[int, list[tuple[int, int]]]]:
    """Up to TASK_BLOCKS consecutive blocks of one file per task."""
    tasks: list[tuple[int, list[tuple[int, int]]]] = []
    for which, start, stop in block_list:
        if tasks and tasks[-1][0] == which and len(tasks[-1][1]) < TASK_BLOCKS:
            tasks[-1][1].append((start, stop))
        else:
            tasks.append((which, [(start, stop)]))
    return tasks


# --- on a worker ---------------------------------------------------------------------------


def classify_blocks(source: Source, spans: list[tuple[int, int]]) -> Rows | Failure:
    """Run on a worker: read ``source``'s blocks at ``spans`` and classify each one."""
    from softmax_cli.classify import classify_in
    from softmax_cli.dtypes import COMPUTE_DTYPES

    try:
        status = os.stat(source.logits)
        rows, targets = _open(source, status.st_mtime_ns, status.st_size)
        dtypes = [COMPUTE_DTYPES[name] for name in source.compute_dtypes]
        out: Rows = []
        for start, stop in spans:
            block_targets = None if targets is None else targets[start:stop]
            x = rows.block(start, stop)
            out.append((start, stop, classify_in(x, block_targets, dtypes, source.piece_rows)))
        return out
    except FileNotFoundError:
        return _failure(source, InputError(source.logits, "no such file"))
    except InputError as error:
        return _failure(source, error)
    except SoftmaxCheckError as error:
        return _failure(source, InputError(source.logits, str(error)))


def _failure(source: Source, error: InputError) -> Failure:
    where = "on a Dask worker"
    try:
        from distributed import get_worker

        where = f"on Dask worker {get_worker().address}"
    except (ImportError, ValueError):
        pass
    return Failure(
        error.source,
        f"{error.problem} ({where})",
        error.hint or "the files must be readable by every worker, at the same path",
    )


@functools.lru_cache(maxsize=4)
def _open(source: Source, mtime_ns: int, size: int) -> tuple[Any, np.ndarray | None]:
    """The file's rows and targets, read once per worker for all its blocks (memory-mapped;
    the modification time and size in the key make a changed file read afresh)."""
    from softmax_cli.classify import _SampleRows, marked_targets
    from softmax_cli.validate import check_logits, check_targets

    loaded = load_inputs(source.logits, source.targets, source.keys)
    logits = loaded.logits
    check_logits(logits, source.logits, source.class_axis)
    seen = (tuple(int(n) for n in logits.shape), str(logits.dtype))
    if seen != (source.shape, source.dtype):
        raise InputError(
            source.logits,
            f"is {seen[1]} of shape {seen[0]} on the worker but {source.dtype} of shape "
            f"{source.shape} on the client",
            "the file changed while it was checked, or the workers see another file",
        )
    rows = _SampleRows(logits, source.class_axis)
    targets = None
    if loaded.targets is not None:
        targets = check_targets(
            loaded.targets,
            loaded.targets_name or source.logits,
            rows.count,
            rows.classes,
            source.ignore_index,
        )
        targets = marked_targets(targets, source.ignore_index)
    return rows, targets
