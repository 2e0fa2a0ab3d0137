r"""``ssl.byol``: Grill, Strub, Altché, Tallec, Richemond et al. (2020), *Bootstrap Your Own
Latent: A New Approach to Self-Supervised Learning*.

An online network (encoder, projector $g$, predictor $p$) predicts the embedding that a
target network $g'$ — an exponential moving average of the online one — gives the other
view. The energy of a pair is the distance between the normalised prediction and target,

$$ E(x, y) = \big\lVert \hat p(g(x)) - \hat g'(y) \big\rVert^2 = 2 - 2\cos(p(g(x)), g'(y)), $$

minimised symmetrically over the two views, with no negatives. Nothing in the loss forbids
a constant embedding; what keeps BYOL away from it is the asymmetry — the predictor and the
stop-gradient through the slowly moving target (Tian, Chen & Ganguli, 2021, analyse why).
The collapse meter is how you check that it worked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .base import JointEmbedding, SSLConfig
from .nets import head

__all__ = ["BYOL", "BYOLConfig", "BYOLLoss"]


class BYOLLoss(nn.Module):
    """``2 − 2 cos(prediction, target)`` per sample ``[B]`` (targets carry no gradient)."""

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return 2.0 - 2.0 * nnf.cosine_similarity(prediction, target.detach(), dim=1)


@dataclass
class BYOLConfig(SSLConfig):
    """BYOL's options.

    Attributes:
        momentum: The target's EMA rate (paper: 0.996 rising to 1 over a long run; small data
            and short runs want a faster target).
        pred_hidden: The predictor's hidden width.
    """

    momentum: float = 0.99
    pred_hidden: int = 128
    proj_layers: int = 2


class BYOL(JointEmbedding):
    """BYOL: online network + predictor regress an EMA target's embedding of the other view.

    Logs ``e_pos`` (the energy above, mean over both directions) and ``std``.
    """

    name = "ssl.byol"
    config_class = BYOLConfig
    cfg: BYOLConfig
    needs_batch = True  # batch norm in the heads needs more than one sample

    def __init__(self, cfg: BYOLConfig) -> None:
        super().__init__(cfg)
        ek.config.number("momentum", cfg.momentum, low=0.0, high=1.0, who=self.name)
        ek.config.at_least("pred_hidden", cfg.pred_hidden, who=self.name)
        self.predictor = head(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim, 2)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.criterion = BYOLLoss()

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        r"""$E(x, y) = 2 - 2\cos(p(g(x)), g'(y))$ ``[B]``: the online prediction from view
        ``x`` against the target's embedding of view ``y`` (``x=None``: a random view)."""
        if x is None:
            x = self.augment(y)
        self.check(x, "x")
        with torch.no_grad():
            target = self.target_projector(self.target_encoder(self.check(y)))
        return self.criterion(self.predictor(self.embed(x)), target)

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        ek.train.ema_(self.target_encoder, self.encoder, self.cfg.momentum)
        ek.train.ema_(self.target_projector, self.projector, self.cfg.momentum)
        views = self.augment(torch.cat([y, y]))                                    # [2n, dim]
        z = self.embed(views)                                                      # [2n, d]
        prediction = self.predictor(z)
        with torch.no_grad():
            target = self.target_projector(self.target_encoder(views)).roll(n, dims=0)
        e = self.criterion(prediction, target)                                     # [2n]
        loss = e.mean()
        std = nnf.normalize(z.detach(), dim=1).std(0).mean()
        return loss, {"e_pos": e.detach().mean(), "std": std}
