"""The overhead of --impl: softmax-check running your function vs you running it yourself.

Both sides call the same function (the naive softmax of examples/naive_softmax.py, or any
SPEC) on the same blocks of rows as the check's block loop, with the same autograd: a leaf
tensor with requires_grad, the loss -log(p[t]) and backward of its sum. softmax-check does
more per block (the NaN searches of p and the gradient, the float64 reference loss, the
error), and that is what the ratio measures. Best of --repeat runs each, alternating.

    python benchmarks/impl_bench.py [--rows 4096] [--classes 32000] [--spec FILE.py:FUNCTION]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from softmax_cli import classify, impl  # noqa: E402
from softmax_cli.dtypes import COMPUTE_DTYPES  # noqa: E402


def by_hand(function, x: np.ndarray, targets: np.ndarray, block: int) -> None:
    """What a user writes: each block as a leaf tensor, the loss, its backward."""
    for start in range(0, len(x), block):
        logits = torch.from_numpy(x[start : start + block].copy()).requires_grad_(True)
        t = torch.from_numpy(targets[start : start + block])
        p = function(logits, t)
        loss = -torch.log(p.gather(1, t[:, None])[:, 0])
        loss.sum().backward()


def by_softmax_check(own, x: np.ndarray, targets: np.ndarray, block: int) -> None:
    """The --impl loop of classify._classify, without the built-in paths."""
    dtype = COMPUTE_DTYPES["float32"]
    for start in range(0, len(x), block):
        stop = min(len(x), start + block)
        impl.run_block(own, x[start:stop], targets[start:stop], dtype, -100, 1e-5)


def best(runs, repeat: int) -> list[float]:
    """The best time of each run; the runs alternate, so a change in the machine's load
    falls on both sides alike."""
    times = [[] for _ in runs]
    for _ in range(repeat):
        for run, spent in zip(runs, times, strict=True):
            began = time.perf_counter()
            run()
            spent.append(time.perf_counter() - began)
    return [min(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--spec", default=str(ROOT / "examples/naive_softmax.py:naive_softmax"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.rows, args.classes)) * 3).astype(np.float32)
    targets = rng.integers(0, args.classes, args.rows)
    (own,) = impl.resolve([args.spec])
    dtype = COMPUTE_DTYPES["float32"]
    block = classify._piece_rows(args.classes, dtype) * classify.BLOCK_PIECES

    print(
        f"{args.rows} x {args.classes} float32, blocks of {block} rows, {own.spec}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    hand, tool = best(
        [
            lambda: by_hand(own.function, x, targets, block),
            lambda: by_softmax_check(own, x, targets, block),
        ],
        args.repeat,
    )
    print(f"by hand (call, loss, backward)   {hand:8.3f} s")
    print(f"softmax-check --impl runner      {tool:8.3f} s")
    print(f"ratio                            {tool / hand:8.2f}x")


if __name__ == "__main__":
    main()
