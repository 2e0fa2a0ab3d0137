r"""``ssl.barlow``: Zbontar, Jing, Misra, LeCun & Deny (2021), *Barlow Twins:
Self-Supervised Learning via Redundancy Reduction*.

With $\tilde z^A, \tilde z^B$ the two views' embeddings standardised over the batch and
$C = \tfrac1N \tilde z^{A\top} \tilde z^B$ their $d \times d$ cross-correlation,

$$ L = \underbrace{\sum_i (1 - C_{ii})^2}_{\text{invariance}}
     + \lambda \underbrace{\sum_{i \ne j} C_{ij}^2}_{\text{redundancy reduction}}. $$

The energy of a pair is the invariance part per sample, $E(x, y) = \tfrac1d\sum_i
(\tilde z^A_i - \tilde z^B_i)^2$ under the batch's statistics (eval mode: the projector's
running statistics); the redundancy term limits the volume of low energy: a collapsed
embedding has no variance to standardise, and correlated dimensions cost λ each.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .base import JointEmbedding, SSLConfig

__all__ = ["BarlowTwins", "BarlowTwinsConfig", "BarlowTwinsLoss"]


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins' loss; returns ``(loss, invariance, redundancy)``.

    Args:
        lambda_: Weight of the off-diagonal terms (paper: 5e-3 with d = 8192; about 1/d
            is the paper's rule of thumb for other sizes).
        eps: Added to the batch std before dividing.
    """

    def __init__(self, lambda_: float = 5e-3, eps: float = 1e-5) -> None:
        super().__init__()
        self.lambda_ = ek.config.number("lambda_", lambda_, low=0.0, who="BarlowTwinsLoss")
        self.eps = eps

    def forward(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = z1.shape[0]
        a = (z1 - z1.mean(0)) / (z1.std(0) + self.eps)                             # [b, d]
        b = (z2 - z2.mean(0)) / (z2.std(0) + self.eps)
        c = a.T @ b / n                                                            # [d, d]
        diag = torch.diagonal(c)
        invariance = (1 - diag).square().sum()
        redundancy = c.square().sum() - diag.square().sum()
        return invariance + self.lambda_ * redundancy, invariance, redundancy


@dataclass
class BarlowTwinsConfig(SSLConfig):
    """Barlow Twins' options.

    Attributes:
        lambda_: Weight of the redundancy-reduction term.
    """

    lambda_: float = 0.03
    proj_layers: int = 2


class BarlowTwins(JointEmbedding):
    """Barlow Twins: make the views' cross-correlation the identity.

    Logs ``invariance`` and ``redundancy`` (the two terms, unweighted) and ``std``.
    """

    name = "ssl.barlow"
    config_class = BarlowTwinsConfig
    cfg: BarlowTwinsConfig

    def __init__(self, cfg: BarlowTwinsConfig) -> None:
        super().__init__(cfg)
        self.criterion = BarlowTwinsLoss(cfg.lambda_)

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        z = self.embed(self.augment(torch.cat([y, y])))                            # [2n, d]
        loss, inv, red = self.criterion(z[:n], z[n:])
        std = nnf.normalize(z.detach(), dim=1).std(0).mean()
        return loss, {"invariance": inv.detach(), "redundancy": red.detach(), "std": std}
