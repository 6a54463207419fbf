"""A blocked online softmax, as FlashAttention computes it: one pass over column blocks
keeping a running maximum and a sum rescaled whenever the maximum grows (Milakov &
Gimelshein, "Online normalizer calculation for softmax", 2018).

    softmax-check sample_logits/lm_head_fp16.npz --impl examples/online_softmax.py:online_softmax
"""

import torch

BLOCK = 2  # columns per block; tiny so the bundled samples span several blocks


def online_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Probabilities from a running max ``m`` and running sum ``s`` over column blocks."""
    rows = logits.shape[0]
    m = torch.full((rows, 1), -torch.inf, dtype=logits.dtype)
    s = torch.zeros((rows, 1), dtype=logits.dtype)
    for start in range(0, logits.shape[1], BLOCK):
        block = logits[:, start : start + BLOCK]
        m_new = torch.maximum(m, block.amax(dim=-1, keepdim=True))
        # The old sum was taken relative to the old maximum: rescale it to the new one.
        s = s * torch.exp(m - m_new) + torch.exp(block - m_new).sum(dim=-1, keepdim=True)
        m = m_new
    return torch.exp(logits - m) / s
