r"""``ssl.barlow``: Zbontar, Jing, Misra, LeCun & Deny (2021), *Barlow Twins:
Self-Supervised Learning via Redundancy Reduction*.

With $\tilde z^A, \tilde z^B$ the two views' embeddings standardised over the batch and
$C = \tfrac1N \tilde z^{A\top} \tilde z^B$ their $d \times d$ cross-correlation,

$$ L = \underbrace{\sum_i (1 - C_{ii})^2}_{\text{invariance}}
     + \lambda \underbrace{\sum_{i \ne j} C_{ij}^2}_{\text{redundancy reduction}}. $$

The standardisation is the reference code's affine-free batch norm applied to each view
alone, $\tilde z = (z - \mu_B) / \sqrt{\sigma_B^2 + \epsilon}$ with the batch's mean and
(biased) variance, whose running averages the model keeps.

The energy of a pair is the invariance part per sample, $E(x, y) = \tfrac1d\sum_i
(\tilde z^A_i - \tilde z^B_i)^2$, each view standardised by its own batch's statistics in
train mode and by the running statistics in eval mode (so in eval mode a sample's energy
does not depend on the rest of its batch). When $\tilde z^A, \tilde z^B$ are standardised,
the batch mean of this energy is $\tfrac2d\sum_i (1 - C_{ii})$: the invariance term's
linear cousin. The redundancy term limits the volume of low energy: a collapsed embedding
has no variance to standardise, and correlated dimensions cost λ each.
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
        eps: Added to the batch variance under the square root (batch norm's ε).
        dim: The embedding size; given, the loss keeps running averages of the batch
            statistics (an affine-free ``BatchNorm1d``) for
            [`standardize`][ebmkit_ssl.barlow.BarlowTwinsLoss.standardize] in eval mode.
    """

    def __init__(self, lambda_: float = 5e-3, eps: float = 1e-5, dim: int | None = None) -> None:
        super().__init__()
        self.lambda_ = ek.config.number("lambda_", lambda_, low=0.0, who="BarlowTwinsLoss")
        self.eps = eps
        self.bn = nn.BatchNorm1d(dim, eps=eps, affine=False) if dim else None

    def _batch_norm(self, z: Tensor, update: bool) -> Tensor:
        bn = self.bn
        running = (bn.running_mean, bn.running_var) if bn is not None and update else (None, None)
        return nnf.batch_norm(z, *running, training=True,
                              momentum=0.1 if bn is None else bn.momentum, eps=self.eps)

    def standardize(self, z: Tensor) -> Tensor:
        """``z`` ``[B, d]`` standardised per dimension: by the batch's own mean and variance
        in train mode, by the running ones in eval mode (with ``dim`` given). Updates
        nothing."""
        if self.training or self.bn is None:
            if z.shape[0] < 2:
                raise ek.errors.ConfigError(
                    f"ssl.barlow: standardising by batch statistics needs at least 2 samples, "
                    f"got {z.shape[0]}; call model.eval() to use the running statistics")
            return self._batch_norm(z, update=False)
        return nnf.batch_norm(z, self.bn.running_mean, self.bn.running_var, training=False,
                              eps=self.eps)

    def forward(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = z1.shape[0]
        a = self._batch_norm(z1, update=True)                                      # [b, d]
        b = self._batch_norm(z2, update=True)
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
    per_view_batch_norm = True

    def __init__(self, cfg: BarlowTwinsConfig) -> None:
        super().__init__(cfg)
        self.criterion = BarlowTwinsLoss(cfg.lambda_, dim=cfg.proj_dim)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        r"""$E(x, y) = \frac1d \lVert \tilde g(x) - \tilde g(y) \rVert^2$ ``[B]``: the
        invariance part per sample, each view standardised by its batch's statistics (train
        mode) or the running ones (eval mode); ``x=None``: a random view."""
        self.check(y)
        x = self.other_view(y, x)
        a = self.criterion.standardize(self.embed(y))
        b = self.criterion.standardize(self.embed(x))
        return (a - b).square().mean(dim=1)

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        z = self.per_view(self.embed, self.augment(torch.cat([y, y])))             # [2n, d]
        loss, inv, red = self.criterion(z[:n], z[n:])
        std = nnf.normalize(z.detach(), dim=1).std(0).mean()
        return loss, {"invariance": inv.detach(), "redundancy": red.detach(), "std": std}
