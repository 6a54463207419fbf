r"""A softmax that returns zeros on a fully masked row (every logit -inf) instead of NaN, as
``jax.nn.softmax(x, where=mask)`` does: a padding query attends to nothing.

The `where` is taken twice: once so the forward pass never computes 0/0, once so the
backward pass never multiplies a NaN by the zero that the outer `where` sends back.

    softmax-check sample_logits/attention_scores.npy \
        --impl examples/masked_softmax.py:masked_softmax
"""

import torch


def masked_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    m = logits.amax(dim=-1, keepdim=True)
    # A fully masked row has max -inf; shifting it by 0 keeps exp(-inf) = 0, not NaN.
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(logits - m)
    s = e.sum(dim=-1, keepdim=True)
    empty = s == 0
    return torch.where(empty, torch.zeros_like(e), e / torch.where(empty, torch.ones_like(s), s))
