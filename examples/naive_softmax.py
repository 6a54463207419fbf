"""The textbook softmax and cross-entropy in PyTorch, as the seed article writes them.

Deliberately unguarded: exp of a large logit overflows and exp of a very negative one
underflows. Check it beside softmax-check's own naive path, which it matches flag for flag::

    softmax-check sample_logits/seed.csv --impl examples/naive_softmax.py:naive_softmax
"""

import torch


def naive_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """exp, then divide by the row sum: probabilities (softmax-check takes -log(p[t]))."""
    e = torch.exp(logits)
    return e / e.sum(dim=-1, keepdim=True)


def naive_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss per row, -log(p[t]); rows without a target (the ignore index) pick class 0,
    and softmax-check disregards their loss."""
    p = naive_softmax(logits, targets)
    return -torch.log(p.gather(-1, targets.clamp(min=0)[:, None])[:, 0])
