r"""``ssl.byol``: Grill, Strub, Altché, Tallec, Richemond et al. (2020), *Bootstrap Your Own
Latent: A New Approach to Self-Supervised Learning*.

An online network (encoder, projector $g$, predictor $p$) predicts the embedding that a
target network $g'$ — an exponential moving average of the online one — gives the other
view. The energy of a pair is the distance between the normalised prediction and target,

$$ E(x, y) = \big\lVert \hat p(g(x)) - \hat g'(y) \big\rVert^2 = 2 - 2\cos(p(g(x)), g'(y)), $$

minimised symmetrically over the two views, with no negatives. The target's rate rises
from $\tau_\text{base}$ to 1 over the run by the paper's cosine schedule,
$\tau_k = 1 - (1 - \tau_\text{base})\,(\cos(\pi k / K) + 1) / 2$ at step $k$ of $K$, so
the target moves fast at first and freezes at the end. Each view passes the networks
alone (its own batch-norm statistics), as in the paper's code. Nothing in the loss forbids
a constant embedding; what keeps BYOL away from it is the asymmetry — the predictor and the
stop-gradient through the slowly moving target (Tian, Chen & Ganguli, 2021, analyse why).
The collapse meter is how you check that it worked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .base import JointEmbedding, SSLConfig
from .momentum import momentum_copy

__all__ = ["BYOL", "BYOLConfig", "BYOLLoss"]


class BYOLLoss(nn.Module):
    """``2 − 2 cos(prediction, target)`` per sample ``[B]`` (targets carry no gradient)."""

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return 2.0 - 2.0 * nnf.cosine_similarity(prediction, target.detach(), dim=1)


@dataclass
class BYOLConfig(SSLConfig):
    """BYOL's options.

    Attributes:
        momentum: $\tau_\text{base}$, the target's EMA rate at the start (paper: 0.996 on
            ImageNet's 1,000 epochs; small data and short runs want a faster target: on
            digits, seed 0, 0.98 gave probe / 5-NN 0.983 / 0.983 and 0.99 gave 0.969 /
            0.969 under the cosine schedule).
        momentum_schedule: ``"cosine"`` (the paper's: from ``momentum`` up to 1 over the
            run, which needs the run's length: ``ek.Trainer`` gives it; a model stepped by
            hand stays at ``momentum``) or ``"constant"``.
        pred_hidden: The predictor's hidden width.
        predictor: The ``predictor`` slot, ``(proj_dim,)`` → ``(proj_dim,)``: None
            (``ssl.head`` with ``pred_hidden``, two layers), a registered network name,
            ``{"name": ..., **options}``, or an ``nn.Module``.
    """

    momentum: float = 0.98
    momentum_schedule: str = "cosine"
    pred_hidden: int = 128
    predictor: str | dict[str, Any] | nn.Module | None = None
    proj_layers: int = 2


class BYOL(JointEmbedding):
    """BYOL: online network + predictor regress an EMA target's embedding of the other view.

    Logs ``e_pos`` (the energy above, mean over both directions) and ``std``.
    """

    name = "ssl.byol"
    config_class = BYOLConfig
    cfg: BYOLConfig
    slots = {**JointEmbedding.slots,
             "predictor": "ssl.head (pred_hidden, two layers), (proj_dim,) → (proj_dim,)"}
    needs_batch = True  # batch norm in the heads needs more than one sample
    per_view_batch_norm = True

    def __init__(self, cfg: BYOLConfig) -> None:
        super().__init__(cfg)
        ek.config.number("momentum", cfg.momentum, low=0.0, high=1.0, who=self.name)
        ek.config.one_of("momentum_schedule", cfg.momentum_schedule, ("cosine", "constant"),
                         who=self.name)
        ek.config.at_least("pred_hidden", cfg.pred_hidden, who=self.name)
        self.predictor = ek.networks.build_slot(
            "predictor", cfg.predictor, in_shape=(cfg.proj_dim,), out_shape=(cfg.proj_dim,),
            default={"name": "ssl.head", "hidden": cfg.pred_hidden, "layers": 2}, who=self.name)
        self.target_encoder = momentum_copy(self.encoder)
        self.target_projector = momentum_copy(self.projector)
        self.criterion = BYOLLoss()

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        r"""$E(x, y) = 2 - 2\cos(p(g(x)), g'(y))$ ``[B]``: the online prediction from view
        ``x`` against the target's embedding of view ``y`` (``x=None``: a random view)."""
        x = self.other_view(y, x)
        with torch.no_grad():
            target = self._target(y)
        return self.criterion(self.predictor(self.embed(x)), target)

    def momentum(self) -> float:
        r"""The target's EMA rate now: $1 - (1 - \tau_\text{base})(\cos(\pi k/K) + 1)/2$ at
        step $k$ of $K$ (``self.progress``), or $\tau_\text{base}$ when the schedule is
        constant or the run's length is unknown. A Python float: no device work."""
        base = self.cfg.momentum
        k, total = self.progress
        if self.cfg.momentum_schedule == "constant" or not total:
            return base
        return 1.0 - (1.0 - base) * (math.cos(math.pi * min(k, total) / total) + 1.0) / 2.0

    def _target(self, views: Tensor) -> Tensor:
        return self.target_projector(self.target_encoder(self.images(views)))

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        tau = self.momentum()
        ek.train.ema_(self.target_encoder, self.encoder, tau)
        ek.train.ema_(self.target_projector, self.projector, tau)
        views = self.augment(torch.cat([y, y]))                                    # [2n, dim]
        z = self.per_view(self.embed, views)                                       # [2n, d]
        prediction = self.per_view(self.predictor, z)
        with torch.no_grad():
            target = self.per_view(self._target, views).roll(n, dims=0)
        e = self.criterion(prediction, target)                                     # [2n]
        loss = e.mean()
        std = nnf.normalize(z.detach(), dim=1).std(0).mean()
        return loss, {"e_pos": e.detach().mean(), "std": std,
                      "momentum": std.new_full((), tau)}
