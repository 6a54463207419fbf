"""Benchmark ``--sweep`` against one float32 check of the same dump.

    python benchmarks/sweep_bench.py                 # 4096 x 32000 float32, 3 repeats
    python benchmarks/sweep_bench.py --repeats 5 --each

Times ``check_loaded`` in-process (after a warm-up) on the 4096 x 32000 float32 dump of
benchmarks/bench.py: one float32 check, and the same check with ``sweep`` (float64,
float32, bfloat16 and float16, each block read once for all four); interleaved runs,
medians, and their ratio (the target is at most 4.5x). ``--each`` also times a check in
each dtype alone, to show where the sweep's time goes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import make_dump  # noqa: E402

from softmax_cli.classify import check_loaded  # noqa: E402
from softmax_cli.load import ArrayKeys, load_inputs  # noqa: E402
from softmax_cli.options import CheckOptions  # noqa: E402
from softmax_cli.sweep import SWEEP_DTYPES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--each", action="store_true", help="also time each dtype alone")
    args = parser.parse_args()
    logits, targets = make_dump(4096, 32000)
    loaded = load_inputs(str(logits), str(targets), ArrayKeys())
    runs = {
        "float32": CheckOptions.of(dtype="float32"),
        "sweep": CheckOptions.of(dtype="float32", sweep=True),
    }
    if args.each:
        runs.update({f"{name} alone": CheckOptions.of(dtype=name) for name in SWEEP_DTYPES})
    check_loaded(loaded, runs["float32"])  # warm-up: page cache, thread pool, imports
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, options in runs.items():  # interleaved: the machine's load hits all alike
            start = time.perf_counter()
            check_loaded(loaded, options)
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"4096 x 32000 float32 .npy, medians of {args.repeats} interleaved runs")
    for name, seconds in median.items():
        shown = " ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:16s} {seconds:7.2f} s   (runs: {shown})")
    print(f"  sweep / float32  {median['sweep'] / median['float32']:7.2f}x   (target <= 4.5x)")


if __name__ == "__main__":
    main()
