"""The check as a careful user would write it in plain NumPy: chunked, one thread, float32.

Naive and stable softmax / cross-entropy, forward and backward (the naive backward in
autograd's order), per-row flags. Standalone: it does not import softmax_cli. Flags use
softmax_cli's bit layout so the benchmark can compare them.

    python benchmarks/numpy_check.py LOGITS.npy TARGETS.npy [FLAGS_OUT.npy]
"""

from __future__ import annotations

import sys

import numpy as np

CHUNK_ROWS = 64
NONFINITE, FULLY_MASKED = 1 << 0, 1 << 1
NAIVE = (1 << 2, 1 << 3, 1 << 4, 1 << 5)  # overflow, underflow, nan_prob, nan_grad
STABLE = (1 << 6, 1 << 7, 1 << 8, 1 << 9)


def check(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    flags = np.zeros(len(logits), dtype=np.uint16)
    for start in range(0, len(logits), CHUNK_ROWS):
        x = np.asarray(logits[start : start + CHUNK_ROWS], dtype=np.float32)
        t = targets[start : start + CHUNK_ROWS]
        flags[start : start + len(x)] = check_chunk(x, t)
    return flags


def _bits(masks, values) -> np.ndarray:
    out = np.zeros(len(masks[0]), dtype=np.uint16)
    for mask, value in zip(masks, values, strict=True):
        out |= np.where(mask, value, 0).astype(np.uint16)
    return out


def check_chunk(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    rows = np.arange(len(x))
    nonfinite = np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1)
    masked = np.isneginf(x).all(axis=1)
    with np.errstate(all="ignore"):
        # Naive: e = exp(x), s = sum(e), p = e / s, loss = -log(p[t]).
        e = np.exp(x)
        s = e.sum(axis=1, keepdims=True)
        p = e / s
        p_t = p[rows, t]
        g_pt = -1 / p_t  # backward of -log
        g_p = np.zeros_like(p)
        g_p[rows, t] = g_pt
        g_e = g_p / s + (-g_p * (p / s)).sum(axis=1, keepdims=True)
        grad = g_e * e
        naive = (
            (np.isinf(e).any(axis=1) | np.isinf(s[:, 0])) & ~nonfinite,
            (s[:, 0] == 0) | (p_t == 0),
            np.isnan(p).any(axis=1),
            np.isnan(grad).any(axis=1),
        )
        # Stable: shift by the row max; loss = log(s) - (x[t] - m); grad = p - onehot.
        m = x.max(axis=1, keepdims=True)
        e = np.exp(x - m)
        s = e.sum(axis=1, keepdims=True)
        p = e / s
        grad = p.copy()
        grad[rows, t] -= 1
        stable = (
            (np.isinf(e).any(axis=1) | np.isinf(s[:, 0])) & ~nonfinite,
            (s[:, 0] == 0) | (p[rows, t] == 0),
            np.isnan(p).any(axis=1),
            np.isnan(grad).any(axis=1),
        )
    return _bits((nonfinite, masked, *naive, *stable), (NONFINITE, FULLY_MASKED, *NAIVE, *STABLE))


def main(argv: list[str]) -> None:
    logits = np.load(argv[0], mmap_mode="r")
    targets = np.load(argv[1])
    flags = check(logits, targets)
    if len(argv) > 2:
        np.save(argv[2], flags)
    print(f"flagged {np.count_nonzero(flags)} of {len(flags)}")


if __name__ == "__main__":
    main(sys.argv[1:])
