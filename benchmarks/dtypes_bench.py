"""Time softmax-check per compute dtype on the benchmark dump, and the rounding alone.

    python benchmarks/dtypes_bench.py                 # 4096 x 32000, 5 timed runs each
    python benchmarks/dtypes_bench.py --repeats 9

The dump (benchmarks/bench.py's ``make_dump``) is cast to float16 and bfloat16 in memory
once, outside the timing, so each figure is the in-process check of ``x_D``, as the command
line makes it (``listed_only``: a half-precision check skips the naive pass where it can
raise no flag; ``--all`` times the full check that ``--all`` and ``check()`` make): ``--repeats``
rounds of one run per dtype after a warm-up, in wall-clock and in CPU seconds (all
threads); the ratios are the medians of each round's ratio, so a slow spell of a shared
machine, which hits every dtype of its round, cancels out. It also prints the time of
``ComputeDtype.round`` on one 1 MiB piece of float32 (what the fast path rounds in its hot
loop), in ns per element.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench import SHAPES, make_dump  # noqa: E402

from softmax_cli.classify import check_loaded  # noqa: E402
from softmax_cli.dtypes import COMPUTE_DTYPES  # noqa: E402
from softmax_cli.load import Loaded  # noqa: E402
from softmax_cli.options import CheckOptions  # noqa: E402


def median_time(run, repeats: int, clock=time.perf_counter) -> float:
    """Median seconds of ``repeats`` calls of ``run`` on ``clock``."""
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append(clock() - start)
    return statistics.median(times)


def round_ns_per_element(name: str, repeats: int = 200) -> float:
    """Median ns per element of ``round`` on a 1 MiB piece of float32 logits (sd 3)."""
    dtype = COMPUTE_DTYPES[name]
    values = np.random.default_rng(0).standard_normal((8, 32768), dtype=np.float32) * 3
    work = np.empty_like(values)
    scratch = np.empty(values.shape, dtype=dtype.storage)

    def run() -> None:
        np.copyto(work, values)
        dtype.round(work, scratch=scratch)

    run()
    clock = time.thread_time  # one thread, so CPU time: steady on a shared machine
    copy = median_time(lambda: np.copyto(work, values), repeats, clock)
    return (median_time(run, repeats, clock) - copy) / values.size * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="default")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each check")
    parser.add_argument("--all", action="store_true", help="time the check --all makes")
    args = parser.parse_args()
    options = CheckOptions.of()

    def check(x: np.ndarray, t: np.ndarray) -> None:
        loaded = Loaded(logits=x, targets=t, logits_name="x", targets_name="t", from_text=False)
        check_loaded(loaded, options, listed_only=not args.all)

    rows, classes = SHAPES[args.shape]
    logits, targets = make_dump(rows, classes)
    x32 = np.load(logits)
    t = np.load(targets)
    with np.errstate(over="ignore"):  # the x60 rows overflow half precision, as intended
        inputs = {
            "float32": x32,
            "float16": x32.astype(np.float16),
            "bfloat16": x32.astype(ml_dtypes.bfloat16),
        }
    made = "with --all" if args.all else "as the command line makes it"
    print(f"{rows} x {classes} = {rows * classes / 1e6:.0f} M elements, "
          f"{args.repeats} rounds of one in-process run per dtype, {made}\n")  # fmt: skip
    print("| dtype | check (s) | / float32 | check, CPU (s) | / float32 "
          "| round, 1 MiB piece (ns/element) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for x in inputs.values():
        check(x, t)  # warm-up: thread pool, lazy imports, cached thresholds
    # Round-robin, so that a slow spell of this shared machine slows every dtype alike; the
    # ratios are medians of each round's own ratio.
    wall: dict[str, list[float]] = {name: [] for name in inputs}
    cpu: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(args.repeats):
        for name, x in inputs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            check(x, t)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    for name in inputs:
        ratio = statistics.median(a / b for a, b in zip(wall[name], wall["float32"], strict=True))
        cpu_ratio = statistics.median(a / b for a, b in zip(cpu[name], cpu["float32"], strict=True))
        rounding = round_ns_per_element(name) if name != "float32" else 0.0
        seconds, cpu_seconds = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"| {name} | {seconds:.3f} | {ratio:.2f}x | {cpu_seconds:.3f} "
              f"| {cpu_ratio:.2f}x | {rounding:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
