r"""``ssl.moco``: He, Fan, Wu, Xie & Girshick (2020), *Momentum Contrast for Unsupervised
Visual Representation Learning* (with v2's two-layer MLP head and stronger augmentations;
Chen et al., 2020; the head keeps batch norm here, with MoCo's shuffled batch norm done
on one device: see [`momentum`][ebmkit_ssl.momentum]).

A query $q = g(x)$ is contrasted with its key $k_+ = g'(y)$ (another view, through the
momentum encoder $g' \leftarrow m g' + (1 - m) g$) and with $K$ keys of earlier batches kept
in a queue:

$$ L = -\log \frac{e^{-E(q, k_+)/\tau}}{e^{-E(q, k_+)/\tau} + \sum_{k \in Q} e^{-E(q, k)/\tau}}
     = \tfrac1\tau\,\mathrm{nll}(E_+, E_-; T = \tau), \qquad E(q, k) = 1 - \cos(q, k). $$

The queue decouples the number of negatives from the batch; the slowly moving key encoder
keeps the queued keys comparable. Under ``torchrun`` the keys of all ranks are gathered
before they are enqueued (see [`Memory`][ebmkit_ssl.memory.Memory]). The loss is symmetrised
over the two views (as in MoCo v3), which on small data sets doubles the signal per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .momentum import MomentumQueue, MomentumQueueConfig, finite_mean

__all__ = ["MoCo", "MoCoConfig", "MoCoLoss"]


class MoCoLoss(nn.Module):
    """InfoNCE of queries against their keys and a queue, through ``ek.losses.nll``.

    Args:
        temperature: τ > 0 (v1: 0.07, v2: 0.2).
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.temperature = ek.config.number("temperature", temperature, low=0.0, low_open=True,
                                            who="MoCoLoss")

    def forward(self, q: Tensor, k: Tensor, e_neg: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, e_pos [B])`` for unit queries/keys ``[B, d]`` and negatives ``[B, K]``."""
        e_pos = 1.0 - (q * k).sum(dim=1)
        t = self.temperature
        return ek.losses.nll(e_pos, e_neg, temperature=t) / t, e_pos


@dataclass
class MoCoConfig(MomentumQueueConfig):
    """MoCo's options.

    Attributes:
        queue: Keys kept (the paper's 65,536 on ImageNet; at most the data set's size).
        momentum: m of the key encoder's EMA (paper: 0.999; small data sets move faster).
        temperature: τ.
        head_batch_norm: Batch norm in the projection head's hidden layer (v2's head has
            none; on digits it scored far lower without it: see
            [`momentum`][ebmkit_ssl.momentum]).
        shuffle_bn: MoCo's shuffled batch norm on one device: queries normalised view by
            view, keys by two random halves of the views (False: one shared batch, where
            a query and its key can find each other through the statistics).

    MoCo's views are stronger than the shared default (±10° rotation, ±10 % zoom): on digits
    the recipe's linear probe rose from 0.975 (±5° / ±5 %) to 0.989 with them (seed 0).
    """

    queue: int = 1024
    temperature: float = 0.2
    degrees: float = 10.0
    scale: float = 0.1


class MoCo(MomentumQueue):
    """MoCo: query encoder, momentum key encoder, a queue of negatives.

    Logs ``e_pos``, ``e_neg`` (mean over the queue), ``std`` (collapse meter of the batch)
    and ``queue_self`` (share of queue entries masked as the query's own image).
    """

    name = "ssl.moco"
    config_class = MoCoConfig
    cfg: MoCoConfig

    def __init__(self, cfg: MoCoConfig) -> None:
        super().__init__(cfg, cfg.queue, "queue")
        self.criterion = MoCoLoss(cfg.temperature)

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        self.update_keys()
        views = self.augment(torch.cat([y, y]))                                    # [2n, dim]
        q = nnf.normalize(self.per_view(self.embed, views), dim=1)                 # [2n, d]
        k = self.keys(views).roll(n, dims=0)                           # the other view's key
        prints = self.memory.fingerprint(y).repeat(2)
        e_neg, self_share = self.memory.energies(q, prints)                        # [2n, K]
        loss, e_pos = self.criterion(q, k, e_neg)
        self.memory.push(k[:n], prints[:n])
        std = q.detach().std(dim=0).mean()
        return loss, {"e_pos": e_pos.detach().mean(), "e_neg": finite_mean(e_neg), "std": std,
                      "queue_self": self_share}
