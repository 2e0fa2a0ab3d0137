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
def sinkhorn(scores: Tensor, epsilon: float = 0.05, iterations: int = 3,
             distributed: bool = False) -> Tensor:
    r"""Sinkhorn–Knopp codes ``[B, K]`` for prototype scores ``[B, K]``: the transport plan
    closest to $\exp(\text{scores}/\varepsilon)$ whose prototypes each get $B/K$ of the batch
    and whose rows sum to 1 (Cuturi, 2013; SwAV's Algorithm 1).

    Args:
        scores: ``[B, K]`` scores (SwAV: cosines of embeddings with unit prototypes).
        epsilon: The entropic regularisation ε (SwAV: 0.05).
        iterations: Alternating normalisations (SwAV: 3).
        distributed: Under an initialised process group, normalise over the global batch
            (every rank's rows; the prototype sums are all-reduced, as SwAV's code does),
            so each prototype gets 1/K of the whole batch, not of each rank's share.

    Returns:
        ``[B, K]`` float32 codes, each row summing to 1.
    """
    # In the log domain: with scores spread over more than ~80 ε, exp underflows in float32.
    log_q = scores.float() / epsilon                                                  # [b, k]
    b, k = log_q.shape
    dist = torch.distributed
    group = (distributed and dist.is_available() and dist.is_initialized()
             and dist.get_world_size() > 1)
    total = torch.full((1, 1), float(b), device=log_q.device)
    if group:
        dist.all_reduce(total)                                    # the global batch size B
    for _ in range(iterations):
        # each prototype gets 1/k of the mass, then each sample 1/B
        if group:  # logsumexp over every rank's rows: a max and a sum, all-reduced
            top = log_q.amax(dim=0, keepdim=True)
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
            mass = (log_q - top).exp().sum(dim=0, keepdim=True)
            dist.all_reduce(mass)
            log_q = log_q - (mass.log() + top) - math.log(k)
        else:
            log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(k)
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - total.log()
    return torch.exp(log_q) * total                                       # rows sum to 1
