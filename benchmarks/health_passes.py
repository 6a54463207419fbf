"""What each health pass costs on its own: the float32 check's NumPy passes, with and
without the margin's and the entropy's, on the benchmark dump.

    python benchmarks/health_passes.py                 # two threads, 15 rounds
    python benchmarks/health_passes.py --threads 1 --rounds 9

Replays the passes of ``fastpath.reduce_rows`` for a float32 dump (naive exp and sum, max,
x - max, exp and sum; then argmax and the second-largest entry for the margin, the dot
product for the entropy) on 2048 rows of the 4096 x 32000 dump, in pieces of 8 rows as the
check makes them, each variant in turn within every round so a drifting machine hurts all
alike. Prints each variant's median and its ratio to the variant without health passes:
the cost of the passes themselves, apart from everything else the check does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import make_dump  # noqa: E402

ROWS, PIECE = 2048, 8


def passes(x: np.ndarray, t: np.ndarray, margin: bool, entropy: bool) -> None:
    classes = x.shape[1]
    e, exact = np.empty((PIECE, classes), np.float32), np.empty((PIECE, classes), np.float32)
    count = np.arange(PIECE)
    with np.errstate(all="ignore"):  # per thread; the extreme rows overflow, by design
        for start in range(0, len(x), PIECE):
            piece = x[start : start + PIECE]
            at = (count, t[start : start + PIECE])
            np.exp(piece, out=e)
            e.sum(axis=1), e[at]
            m = piece.max(axis=1)
            shifted = np.subtract(piece, m[:, None], out=e)
            if margin:
                top = (count, shifted.argmax(axis=1))
                kept = shifted[top]
                shifted[top] = -np.inf
                shifted.max(axis=1)
                shifted[top] = kept
            np.exp(shifted, out=exact)
            if entropy:
                np.einsum("ij,ij->i", exact, shifted)
            exact.sum(axis=1), exact[at]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    logits, targets = make_dump(4096, 32000)
    x = np.load(logits, mmap_mode="r")[:ROWS]
    t = np.load(targets)[:ROWS]
    share = ROWS // args.threads
    variants = {
        "no health passes": (False, False),
        "margin only": (True, False),
        "entropy only": (False, True),
        "both (the check)": (True, True),
    }

    def run(margin: bool, entropy: bool) -> float:
        threads = [
            threading.Thread(
                target=passes,
                args=(x[i * share : (i + 1) * share], t[i * share : (i + 1) * share]),
                kwargs={"margin": margin, "entropy": entropy},
            )
            for i in range(args.threads)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {name: [] for name in variants}
    for flags in variants.values():
        run(*flags)  # warm-up: the rows into the page cache
    for _ in range(args.rounds):
        for name, flags in variants.items():
            times[name].append(run(*flags))
    base = statistics.median(times["no health passes"])
    print(f"{ROWS} x 32000 float32, {args.threads} thread(s), medians of {args.rounds} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:18s} {median * 1e3:7.1f} ms  {median / base:.3f}x")


if __name__ == "__main__":
    main()
