"""Benchmark several files checked as one dump, locally and on a local Dask cluster.

    python benchmarks/shards_bench.py                 # all four measurements
    python benchmarks/shards_bench.py --no-dask       # the local ones only

Prints: the time of 16 shards of 256 x 32000 float32 against one 4096 x 32000 file (same
logits) on the local thread pool, and their ratio; 2 single-threaded Dask workers on the 16
shards against the local threaded run; Dask's cost per task, from many tiny shards; and how
the client's memory grows with the number of samples (NumPy's allocations, traced), and
does not with the number of classes. Medians of interleaved runs; dumps go to
benchmarks/data/shards/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "shards"
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import make_dump  # noqa: E402

from softmax_cli import classify, cluster, sources  # noqa: E402
from softmax_cli.load import ArrayKeys  # noqa: E402
from softmax_cli.options import CheckOptions  # noqa: E402

ROWS, CLASSES, SHARDS = 4096, 32000, 16


def write_shards(
    logits: Path, targets: Path, count: int, directory: Path
) -> tuple[list[str], list[str]]:
    """``logits`` (and its targets) cut along the rows into ``count`` .npy shards."""
    directory.mkdir(parents=True, exist_ok=True)
    whole = np.load(logits, mmap_mode="r")
    labels = np.load(targets)
    step = len(whole) // count
    names, target_names = [], []
    for i in range(count):
        path, tpath = directory / f"shard_{i:02d}.npy", directory / f"targets_{i:02d}.npy"
        if not path.exists():
            np.save(path, whole[i * step : (i + 1) * step])
            np.save(tpath, labels[i * step : (i + 1) * step])
        names.append(str(path))
        target_names.append(str(tpath))
    return names, target_names


def checker(files: list[str], targets: list[str], scheduler: str | None = None) -> Callable:
    def run():
        loaded = sources.load_files(files, targets, ArrayKeys())
        return classify.check_loaded(loaded, CheckOptions.of(), scheduler=scheduler)

    return run


def interleaved(runs: dict[str, Callable], repeats: int) -> dict[str, float]:
    """Median seconds of each run, the runs taking turns so load changes hit them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm up: page cache, imports, a cluster's first tasks
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def local(repeats: int) -> tuple[list[str], list[str], float]:
    logits, targets = make_dump(ROWS, CLASSES)
    files, target_files = write_shards(logits, targets, SHARDS, DATA / f"{SHARDS}")
    times = interleaved(
        {
            "one file": checker([str(logits)], [str(targets)]),
            f"{SHARDS} shards": checker(files, target_files),
        },
        repeats,
    )
    one, many = times["one file"], times[f"{SHARDS} shards"]
    print(f"local threads ({classify.WORKERS} workers), {load_note()}")
    print(f"  1 file  {ROWS} x {CLASSES} float32:          {one * 1e3:8.1f} ms")
    print(f"  {SHARDS} shards {ROWS // SHARDS} x {CLASSES} float32:       {many * 1e3:8.1f} ms")
    print(f"  ratio shards / file:                     {many / one:8.2f}  (target <= 1.2)")
    return files, target_files, many


def dask(files: list[str], targets: list[str], local_seconds: float, repeats: int) -> None:
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster_,
        distributed.Client(cluster_) as client,
    ):
        client.wait_for_workers(2)
        address = cluster_.scheduler_address
        times = interleaved(
            {"local": checker(files, targets), "dask": checker(files, targets, address)},
            repeats,
        )
        print(f"\nDask LocalCluster, 2 workers x 1 thread, {load_note()}")
        print(f"  local threads on the {SHARDS} shards:    {times['local'] * 1e3:8.1f} ms")
        print(f"  dask on the {SHARDS} shards:             {times['dask'] * 1e3:8.1f} ms")
        print(
            f"  ratio dask / local:                      {times['dask'] / times['local']:8.2f}"
            "  (target <= 2)"
        )

        # Per task: many shards of one tiny block each, so the work is nothing and the
        # time is Dask's (submit, schedule, run, send back, put in place) plus connecting.
        tiny_dir = DATA / "tiny"
        tiny_dir.mkdir(parents=True, exist_ok=True)
        tiny = []
        for i in range(400):
            path = tiny_dir / f"t{i:03d}.npy"
            if not path.exists():
                np.save(path, np.random.default_rng(i).normal(size=(4, 8)).astype(np.float32))
            tiny.append(str(path))
        none = [None] * len(tiny)
        small = interleaved(
            {"1": checker(tiny[:1], none[:1], address), "400": checker(tiny, none, address)},
            repeats,
        )
        per_task = (small["400"] - small["1"]) / 399
        print(f"  one tiny task (connect + 1 task):        {small['1'] * 1e3:8.1f} ms")
        print(f"  per-task overhead (400 tiny tasks):      {per_task * 1e3:8.2f} ms")
        blocks = len(cluster._tasks(classify.blocks(_parts(files, targets), _piece())))
        print(
            f"  the {SHARDS} shards made {blocks} tasks: overhead ~{blocks * per_task * 1e3:.0f} ms"
            " of work spread over 2 workers"
        )


def _parts(files: list[str], targets: list[str]) -> list:
    return classify._prepare(sources.load_files(files, targets, ArrayKeys()), CheckOptions.of())


def _piece() -> int:
    from softmax_cli.dtypes import COMPUTE_DTYPES

    return classify._piece_rows(CLASSES, COMPUTE_DTYPES["float32"])


def memory() -> None:
    """NumPy's peak traced allocations in a check, per sample, as samples and classes grow
    (memory-mapped .npy shards: the files' bytes are page cache, not the process's)."""
    print(f"\nclient memory (NumPy allocations traced, peak during the check), {load_note()}")
    print("  samples    classes  shards   file MiB   peak MiB   bytes/sample")
    for rows, classes, shards in (
        (1 << 18, 64, 8),
        (1 << 20, 64, 8),
        (1 << 22, 64, 8),
        (1 << 20, 512, 16),
    ):
        directory = DATA / f"mem_{rows}x{classes}"
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        step = rows // shards
        for i in range(shards):
            path = directory / f"s{i:02d}.npy"
            if not path.exists():
                out = np.lib.format.open_memmap(path, "w+", np.float32, (step, classes))
                rng = np.random.default_rng(i)
                for start in range(0, step, 1 << 16):
                    stop = min(step, start + (1 << 16))
                    out[start:stop] = rng.standard_normal((stop - start, classes), np.float32)
                out.flush()
                del out
            files.append(str(path))
        run = checker(files, [None] * shards)
        tracemalloc.start()
        report = run()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del report
        print(
            f"  {rows:>9}  {classes:>7}  {shards:>6}  {rows * classes * 4 / 2**20:>9.0f}"
            f"  {peak / 2**20:>9.1f}  {peak / rows:>13.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    files, targets, local_seconds = local(args.repeats)
    if not args.no_dask:
        dask(files, targets, local_seconds, args.repeats)
    if not args.no_memory:
        memory()


if __name__ == "__main__":
    main()
