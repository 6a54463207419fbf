"""What each health pass costs on its own: the float32 check's NumPy passes, with and
without the margin's and the entropy's, on the benchmark dump.

    python benchmarks/health_passes.py                 # two threads, 15 rounds
    python benchmarks/health_passes.py --threads 1 --rounds 9

Replays the passes of ``fastpath.reduce_rows`` for a float32 dump (naive exp and sum, max,
``x - max``, exp and sum; then the strands' running maxima in place of max and the
second-largest entry at the end of each block for the margin, the dot product beside a
second buffer for the entropy) on 2048 rows of the 4096 x 32000 dump, in pieces of 8 rows
and blocks of 128 as the check makes them, each variant in turn within every round so a
drifting machine hurts all alike. Prints each variant's median and its ratio to the variant
without health passes: the cost of the passes themselves, apart from everything else the
check does.
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

sys.path.insert(0, str(HERE.parent))
from softmax_cli.dtypes import COMPUTE_DTYPES  # noqa: E402
from softmax_cli.fastpath import _Strands  # noqa: E402

ROWS, PIECE, BLOCK = 2048, 8, 128
FLOAT32 = COMPUTE_DTYPES["float32"]


def passes(x: np.ndarray, t: np.ndarray, margin: bool, entropy: bool) -> None:
    classes = x.shape[1]
    e, exact = np.empty((PIECE, classes), np.float32), np.empty((PIECE, classes), np.float32)
    count = np.arange(PIECE)
    running = np.empty((BLOCK, _Strands.width(classes)), np.float32)
    with np.errstate(all="ignore"):  # per thread; the extreme rows overflow, by design
        for block in range(0, len(x), BLOCK):
            rows = x[block : block + BLOCK]
            strands = _Strands(classes, running[: len(rows)])
            for start in range(0, len(rows), PIECE):
                piece = rows[start : start + PIECE]
                at = (count, t[block + start : block + start + PIECE])
                np.exp(piece, out=e)
                e.sum(axis=1), e[at]
                m = (
                    strands.maxima(piece, slice(start, start + PIECE))
                    if margin
                    else piece.max(axis=1)
                )
                shifted = np.subtract(piece, m[:, None], out=e)
                if entropy:
                    np.exp(shifted, out=exact)
                    np.einsum("ij,ij->i", exact, shifted)
                    exact.sum(axis=1), exact[at]
                else:
                    np.exp(shifted, out=shifted)
                    shifted.sum(axis=1), shifted[at]
            if margin:
                strands.second(rows, FLOAT32)


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
