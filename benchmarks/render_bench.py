"""Time every --format on a dump in which every sample is flagged.

    python benchmarks/render_bench.py                 # 1,000,000 flagged rows x 8 classes
    python benchmarks/render_bench.py --rows 160000 --all --max-rows 0

Prints the check time, then each format's render time (in-process, the report already
computed) and its ratio to JSON's, and the peak RSS growth while rendering. Half the rows
overflow the naive exp (a note under the default --fail-on), a tenth hold a NaN (input
failures), so every format meets errors and notes.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_logits(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, classes), dtype=np.float32)
    x[0::2] *= 60  # the naive exp overflows
    x[1::2, 0] -= 200  # the target's probability underflows: a note
    x[::10, 1] = np.nan  # input failures
    return x, rng.integers(0, classes, size=rows)


def main() -> None:
    from softmax_cli import check
    from softmax_cli.options import OutputFormat, View
    from softmax_cli.render import render

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--all", action="store_true", help="list every sample (--all)")
    parser.add_argument("--max-rows", type=int, default=20)
    parser.add_argument("--formats", default=",".join(f.value for f in OutputFormat))
    args = parser.parse_args()

    x, t = make_logits(args.rows, args.classes)
    start = time.perf_counter()
    report = check(x, t)
    print(f"check: {time.perf_counter() - start:.3f} s, {report.summary.flagged:,} flagged")
    view = View(include_clean=args.all, max_rows=args.max_rows)
    seconds = {}
    for name in args.formats.split(","):
        fmt = OutputFormat(name)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        text = render(report, fmt, view)
        seconds[name] = time.perf_counter() - start
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(
            f"{name:>9}: {seconds[name]:7.3f} s, {len(text) / 1e6:8.1f} MB of text, "
            f"peak RSS +{grew / 1024:.0f} MiB",
            flush=True,
        )
        del text
    if "json" in seconds:
        print(
            "ratio to json: "
            + ", ".join(f"{k} {v / seconds['json']:.2f}x" for k, v in seconds.items())
        )


if __name__ == "__main__":
    main()
