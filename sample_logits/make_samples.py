"""Writes the bundled example dumps; run from anywhere: python sample_logits/make_samples.py"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
NEG = -np.inf

# The seed example: three samples of three classes; the second holds 1000 and -1000, so the
# naive exp overflows (and exp(-1000) underflows) while the stable loss is exactly 2000.
SEED_LOGITS = np.array([[2.0, 1.0, 0.1], [1000.0, 0.0, -1000.0], [0.5, 2.5, -1.0]], np.float32)
SEED_TARGETS = np.array([0, 2, 1], np.int64)

# Attention scores, float16, (batch 2, query 3, key 5), no targets: causal (partly masked)
# rows, a padding query whose row is fully masked, and one score of 12.5, past the 11.09
# where exp overflows in float16.
ATTENTION = np.array(
    [
        [[1.2, -0.3, 0.5, NEG, NEG], [0.3, 2.1, -1.0, 0.7, NEG], [12.5, 3.0, 1.0, 0.5, -0.2]],
        [[0.1, NEG, NEG, NEG, NEG], [NEG, NEG, NEG, NEG, NEG], [0.5, 0.2, -0.1, 0.9, 0.3]],
    ],
    np.float16,
)

# A float16 language-model head with targets, in one .npz: a healthy row, logits drifting
# just past float16's exp range, a row so negative every naive exp rounds to 0, and a
# target on a masked class (infinite loss on both paths, as it should be).
LM_HEAD_LOGITS = np.array(
    [
        [0.5, -1.0, 2.0, 0.0, 1.5, -0.5],
        [11.5, 9.0, 3.0, -2.0, 0.0, 1.0],
        [-20.0, -21.0, -19.5, -22.0, -20.5, -23.0],
        [1.0, 2.0, NEG, 0.5, -1.0, 0.0],
    ],
    np.float16,
)
LM_HEAD_TARGETS = np.array([2, 1, 0, 2], np.int64)

# A float32 classifier dumped by four data-parallel ranks, one .npz shard each (logits and
# targets), checked as one dump: shard 1 holds a row past float32's exp range (88.7), shard
# 2 a row so negative that every naive exp rounds to 0, shard 3 a target on a masked class.
SHARDS = [
    (
        np.array([[1.5, -0.5, 0.2, 2.0], [0.1, 0.3, -1.2, 0.8], [2.2, 1.1, 0.0, -0.4]], np.float32),
        np.array([3, 1, 0], np.int64),
    ),
    (
        np.array(
            [[0.4, 1.9, -0.7, 0.0], [95.0, 90.0, 12.0, 3.0], [-0.2, 0.6, 1.4, 0.9]], np.float32
        ),
        np.array([1, 0, 2], np.int64),
    ),
    (
        np.array(
            [[1.0, 0.5, -0.5, 0.2], [-110.0, -108.5, -112.0, -109.0], [0.3, -0.1, 2.4, 1.0]],
            np.float32,
        ),
        np.array([0, 1, 2], np.int64),
    ),
    (
        np.array([[0.7, NEG, 1.3, -0.6], [1.2, 0.4, 0.9, -1.1], [-0.3, 2.6, 0.1, 0.5]], np.float32),
        np.array([1, 0, -100], np.int64),
    ),
]


# float64 attention scores from an unscaled dot product: one score of 7.9e5, which float32
# holds and float16 (largest finite 65504) does not, so checked in float16 it is out of
# range, not a NaN or +inf of the file's own; and a row 2 nats from float16's exp limit.
SCORES_FP64 = np.array(
    [[0.3, 1.2, -0.4, 2.0], [7.9e5, 1.0, 0.0, -2.0], [9.0, 8.5, 7.0, 6.0]], np.float64
)


def main() -> None:
    header = ",".join(f"class_{i}" for i in range(SEED_LOGITS.shape[1])) + ",target"
    rows = [
        ",".join([*(f"{v:g}" for v in row), str(t)])
        for row, t in zip(SEED_LOGITS, SEED_TARGETS, strict=True)
    ]
    (HERE / "seed.csv").write_text("\n".join([header, *rows]) + "\n")
    np.save(HERE / "seed_logits.npy", SEED_LOGITS)
    np.save(HERE / "seed_targets.npy", SEED_TARGETS)
    np.save(HERE / "attention_scores.npy", ATTENTION)
    np.save(HERE / "scores_fp64.npy", SCORES_FP64)
    np.savez(HERE / "lm_head_fp16.npz", logits=LM_HEAD_LOGITS, targets=LM_HEAD_TARGETS)
    (HERE / "shards").mkdir(exist_ok=True)
    for rank, (logits, targets) in enumerate(SHARDS):
        np.savez(HERE / "shards" / f"rank_{rank:02d}.npz", logits=logits, targets=targets)


if __name__ == "__main__":
    main()
