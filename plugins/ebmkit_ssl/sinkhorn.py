r"""Sinkhorn–Knopp codes: SwAV's equipartitioned soft assignment of a batch to prototypes.

Its own module because two others need it, SwAV's loss and the collapse alarm that scores
an evaluation batch; neither imports the other.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sinkhorn"]


@torch.no_grad()
def sinkhorn(scores: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    r"""Sinkhorn–Knopp codes ``[B, K]`` for prototype scores ``[B, K]``: the transport plan
    closest to $\exp(\text{scores}/\varepsilon)$ whose prototypes each get $B/K$ of the batch
    and whose rows sum to 1 (Cuturi, 2013; SwAV's Algorithm 1).

    Args:
        scores: ``[B, K]`` scores (SwAV: cosines of embeddings with unit prototypes).
        epsilon: The entropic regularisation ε (SwAV: 0.05).
        iterations: Alternating normalisations (SwAV: 3).

    Returns:
        ``[B, K]`` float32 codes, each row summing to 1.
    """
    # In the log domain: with scores spread over more than ~80 ε, exp underflows in float32.
    log_q = scores.float() / epsilon                                                  # [b, k]
    b, k = log_q.shape
    for _ in range(iterations):
        # each prototype gets 1/k of the mass, then each sample 1/b
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(k)
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(b)
    return torch.exp(log_q) * b                                           # rows sum to 1
