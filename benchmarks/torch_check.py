"""The check in PyTorch with autograd (torch==2.13.0, 2 threads), float32.

Naive: the textbook graph ``exp -> sum -> div -> log -> index`` and its backward; stable:
``F.cross_entropy`` and its backward, plus the shifted exp for the overflow / underflow
flags; per-row NaN / Inf checks. Flags use softmax_cli's bit layout.

    python benchmarks/torch_check.py LOGITS.npy TARGETS.npy [FLAGS_OUT.npy]
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F

CHUNK_ROWS = 256
NONFINITE, FULLY_MASKED = 1 << 0, 1 << 1
NAIVE = (1 << 2, 1 << 3, 1 << 4, 1 << 5)  # overflow, underflow, nan_prob, nan_grad
STABLE = (1 << 6, 1 << 7, 1 << 8, 1 << 9)


def check(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    torch.set_num_threads(2)
    flags = np.zeros(len(logits), dtype=np.uint16)
    for start in range(0, len(logits), CHUNK_ROWS):
        x = torch.from_numpy(np.array(logits[start : start + CHUNK_ROWS]))
        t = torch.from_numpy(np.asarray(targets[start : start + CHUNK_ROWS], dtype=np.int64))
        flags[start : start + len(x)] = check_chunk(x.float(), t).numpy()
    return flags


def check_chunk(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(len(x))
    nonfinite = x.isnan().any(1) | x.isposinf().any(1)
    masked = x.isneginf().all(1)

    xn = x.detach().requires_grad_(True)
    e = xn.exp()
    s = e.sum(1, keepdim=True)
    p = e / s
    loss = -p[rows, t].log()
    loss.sum().backward()
    naive = (
        (e.isinf().any(1) | s[:, 0].isinf()) & ~nonfinite,
        (s[:, 0] == 0) | (p[rows, t] == 0),
        p.isnan().any(1),
        xn.grad.isnan().any(1),
    )

    xs = x.detach().requires_grad_(True)
    F.cross_entropy(xs, t, reduction="none").sum().backward()
    with torch.no_grad():
        es = (x - x.amax(1, keepdim=True)).exp()
        ss = es.sum(1)
        ps = es / ss[:, None]
        stable = (
            (es.isinf().any(1) | ss.isinf()) & ~nonfinite,
            (ss == 0) | (ps[rows, t] == 0),
            ps.isnan().any(1),
            xs.grad.isnan().any(1),
        )
        out = torch.zeros(len(x), dtype=torch.int32)
        bits = (NONFINITE, FULLY_MASKED, *NAIVE, *STABLE)
        for mask, bit in zip((nonfinite, masked, *naive, *stable), bits, strict=True):
            out |= mask.to(torch.int32) * bit
    return out.to(torch.int16)


def main(argv: list[str]) -> None:
    logits = np.load(argv[0], mmap_mode="r")
    targets = np.load(argv[1])
    flags = check(logits, targets)
    if len(argv) > 2:
        np.save(argv[2], flags)
    print(f"flagged {np.count_nonzero(flags)} of {len(flags)}")


if __name__ == "__main__":
    main(sys.argv[1:])
