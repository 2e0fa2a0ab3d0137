r"""``ssl.vicreg``: Bardes, Ponce & LeCun (2022), *VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning*.

The energy of a pair is the invariance term, the mean squared distance of the embeddings,
$E(x, y) = \tfrac1d \lVert g(x) - g(y) \rVert^2$, and two regularisers on the batch limit
the volume of low energy:

$$ L = \lambda\, \overline{E}
     + \mu\, \tfrac12 \sum_{v} \tfrac1d \sum_j \big[\gamma - \sqrt{\mathrm{Var}(z^v_j) +
       \epsilon}\big]_+
     + \nu \sum_{v} \tfrac1d \sum_{i \ne j} \mathrm{Cov}(z^v)_{ij}^2, $$

variance (every dimension keeps a standard deviation of at least γ: no collapse to a point)
and covariance (dimensions decorrelated: no collapse to a line). Paper: λ = μ = 25, ν = 1,
γ = 1. The variance term is the *mean* over the two branches ($\tfrac12\sum_v$), as in the
authors' reference code (``std_loss = mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2``);
the paper's equation sums them, which doubles μ's effect. The covariance term is summed
over the branches in both. Each view passes the networks alone (its own batch-norm
statistics), as in the reference code. Each term is logged separately (the variance
term as computed, halved); ``variance=0`` shows collapse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

import ebmkit as ek

from .base import JointEmbedding, SSLConfig

__all__ = ["VICReg", "VICRegConfig", "VICRegLoss"]


def _variance(z: Tensor, gamma: float, eps: float) -> Tensor:
    return torch.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()


def _covariance(z: Tensor) -> Tensor:
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)                                                      # [d, d]
    return (cov.square().sum() - torch.diagonal(cov).square().sum()) / d


class VICRegLoss(nn.Module):
    """VICReg's loss; returns ``(loss, {"invariance", "variance", "covariance"})``.

    Args:
        invariance: λ (paper: 25).
        variance: μ (paper: 25).
        covariance: ν (paper: 1).
        gamma: Target standard deviation γ (paper: 1).
        eps: ε inside the square root (paper: 1e-4).
    """

    def __init__(self, invariance: float = 25.0, variance: float = 25.0,
                 covariance: float = 1.0, gamma: float = 1.0, eps: float = 1e-4) -> None:
        super().__init__()
        number = ek.config.number
        self.weights = tuple(number(k, v, low=0.0, who="VICRegLoss") for k, v in
                             (("invariance", invariance), ("variance", variance),
                              ("covariance", covariance)))
        self.gamma = number("gamma", gamma, low=0.0, low_open=True, who="VICRegLoss")
        self.eps = eps

    def forward(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        lam, mu, nu = self.weights
        inv = (z1 - z2).square().mean()
        # The reference code's mean over the branches (the paper's sum would double μ).
        var = (_variance(z1, self.gamma, self.eps) + _variance(z2, self.gamma, self.eps)) / 2
        cov = _covariance(z1) + _covariance(z2)
        loss = lam * inv + mu * var + nu * cov
        return loss, {"invariance": inv.detach(), "variance": var.detach(),
                      "covariance": cov.detach()}


@dataclass
class VICRegConfig(SSLConfig):
    """VICReg's options.

    Attributes:
        invariance: λ.
        variance: μ (0 removes the term that prevents collapse).
        covariance: ν.
        gamma: γ.
    """

    invariance: float = 25.0
    variance: float = 25.0
    covariance: float = 1.0
    gamma: float = 1.0
    proj_layers: int = 2


class VICReg(JointEmbedding):
    """VICReg: invariance energy plus variance and covariance regularisers.

    Logs ``invariance``, ``variance``, ``covariance`` (unweighted) and ``std``.
    """

    name = "ssl.vicreg"
    config_class = VICRegConfig
    cfg: VICRegConfig
    per_view_batch_norm = True

    def __init__(self, cfg: VICRegConfig) -> None:
        super().__init__(cfg)
        self.criterion = VICRegLoss(cfg.invariance, cfg.variance, cfg.covariance, cfg.gamma)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        r"""$E(x, y) = \frac1d \lVert g(x) - g(y) \rVert^2$ ``[B]`` (``x=None``: a random view)."""
        x = self.other_view(y, x)
        return (self.embed(y) - self.embed(x)).square().mean(dim=1)

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        z = self.per_view(self.embed, self.augment(torch.cat([y, y])))             # [2n, d]
        loss, terms = self.criterion(z[:n], z[n:])
        std = torch.nn.functional.normalize(z.detach(), dim=1).std(0).mean()
        return loss, {**terms, "std": std}
