r"""``ssl.swav``: Caron, Misra, Mairal, Goyal, Bojanowski & Joulin (2020), *Unsupervised
Learning of Visual Features by Contrasting Cluster Assignments*.

Embeddings are compared with $K$ learned unit prototypes $c_k$ rather than with each other.
The energy of embedding $z$ at prototype $k$ is $E_k(z) = -z^\top c_k / \tau$; each view's
*code* $q$ (a soft assignment to prototypes) comes from the other view by Sinkhorn–Knopp,
which forces the batch to spread evenly over the prototypes — the equipartition constraint
is what stops collapse. The loss is the swapped prediction

$$ L = \sum_{s \ne t} \Big[ \sum_k q_{t,k}\, E_k(z_s) + \log \sum_k e^{-E_k(z_s)} \Big]
     = \sum_{s \ne t} H(q_t, \mathrm{softmax}(-E(z_s))), $$

a cross-entropy, i.e. the expected energy under the code plus the free energy over the K
prototypes: "contrastive" against prototypes instead of against samples.

Collapse symptom: predictions that stay uniform over the prototypes give a loss of exactly
$\log K$. The ``swav`` metric computes this cross-entropy on the evaluation data and warns
when it sits at $\log K$; ``loss_logk`` (loss ÷ log K per view pair) is logged every step.
Prototypes stay frozen for the first ``freeze_prototypes`` steps (the paper: one epoch).
Multi-crop: ``crops`` extra low-resolution views, predicted from the two global views'
codes (the small crops are resized to the full size here, so they batch together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .augment import Compose, MultiCrop
from .base import JointEmbedding, SSLConfig
from .sinkhorn import sinkhorn

__all__ = ["SwAV", "SwAVConfig", "SwAVLoss", "sinkhorn"]


class SwAVLoss(nn.Module):
    """Swapped prediction over prototype scores.

    Args:
        temperature: τ of the prediction softmax (paper: 0.1).
        epsilon: Sinkhorn's entropic regularisation ε (paper: 0.05).
        iterations: Sinkhorn iterations (paper: 3).
    """

    def __init__(self, temperature: float = 0.1, epsilon: float = 0.05,
                 iterations: int = 3) -> None:
        super().__init__()
        number = ek.config.number
        self.temperature = number("temperature", temperature, low=0.0, low_open=True,
                                  who="SwAVLoss")
        self.epsilon = number("epsilon", epsilon, low=0.0, low_open=True, who="SwAVLoss")
        self.iterations = ek.config.at_least("sinkhorn_iterations", iterations, who="SwAVLoss")

    def forward(self, scores: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """``scores[v]`` ``[B, K]`` for each view; the first two are the global views whose
        codes every other view predicts.

        Returns:
            ``(loss, codes)``: the mean cross-entropy per (code, view) pair, and the two
            global views' Sinkhorn codes ``[B, K]`` (no gradient), for logging.
        """
        total, pairs = scores[0].new_zeros(()), 0
        codes = [sinkhorn(scores[t], self.epsilon, self.iterations, distributed=True)
                 for t in (0, 1)]
        logp = [nnf.log_softmax(sc / self.temperature, dim=1) for sc in scores]
        for t, q in enumerate(codes):
            for s, lp in enumerate(logp):
                if s == t:
                    continue
                total = total - (q * lp).sum(dim=1).mean()
                pairs += 1
        return total / pairs, codes


@dataclass
class SwAVConfig(SSLConfig):
    """SwAV's options.

    Attributes:
        prototypes: K (paper: 3000 on ImageNet; a few times the number of classes here).
        temperature: τ.
        epsilon: Sinkhorn's ε.
        sinkhorn_iterations: Sinkhorn's iterations.
        freeze_prototypes: Optimizer steps during which the prototypes do not move.
        crops: Extra low-resolution (multi-crop) views.
        crop_size: Their side as a fraction of the image's.
    """

    prototypes: int = 30
    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    freeze_prototypes: int = 10
    crops: int = 2
    crop_size: float = 0.6
    proj_layers: int = 2


class SwAV(JointEmbedding):
    """SwAV: online clustering with equipartitioned codes, swapped prediction, multi-crop.

    Logs ``loss_logk`` (loss ÷ log K: 1 is the uniform-prediction collapse symptom),
    ``std`` and ``code_entropy`` (mean entropy of the codes, ÷ log K).
    """

    name = "ssl.swav"
    config_class = SwAVConfig
    cfg: SwAVConfig

    def __init__(self, cfg: SwAVConfig) -> None:
        super().__init__(cfg)
        ek.config.at_least("prototypes", cfg.prototypes, 2, who=self.name)
        ek.config.at_least("freeze_prototypes", cfg.freeze_prototypes, 0, who=self.name)
        ek.config.at_least("crops", cfg.crops, 0, who=self.name)
        self.criterion = SwAVLoss(cfg.temperature, cfg.epsilon, cfg.sinkhorn_iterations)
        self.prototypes = nn.Linear(cfg.proj_dim, cfg.prototypes, bias=False)
        with torch.no_grad():
            self.prototypes.weight.copy_(nnf.normalize(self.prototypes.weight, dim=1))
        self.local = Compose([*self.transform.transforms, MultiCrop(cfg.crop_size)]) \
            if cfg.image_shape is not None else self.transform
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def scores(self, y: Tensor) -> Tensor:
        """``[B, K]``: cosine of each normalised embedding with each unit prototype."""
        return self.prototypes(nnf.normalize(self.embed(y), dim=1))

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n, cfg = y.shape[0], self.cfg
        with torch.no_grad():  # the prototypes stay on the unit sphere
            self.prototypes.weight.copy_(nnf.normalize(self.prototypes.weight, dim=1))
        views = [self.augment(torch.cat([y, y]))]                                  # [2n, dim]
        if cfg.crops:
            views.append(self.augment(y.repeat(cfg.crops, 1), self.local))         # [crops·n, dim]
        z = nnf.normalize(self.embed(torch.cat(views)), dim=1)                     # [(2+crops)n, d]
        # Frozen prototypes: their gradient is multiplied by 0 until `freeze_prototypes`
        # steps are done (a device-side switch, no host sync).
        w = self.prototypes.weight
        live = (self.steps >= cfg.freeze_prototypes).to(w.dtype)
        w = w.detach() + live * (w - w.detach())
        s = z @ w.T                                                                # [(2+crops)n, k]
        loss, codes = self.criterion(list(s.split(n)))
        self.steps += 1
        with torch.no_grad():  # the first view's codes, as the loss computed them
            q = codes[0]
            ent = -(q * torch.log(q.clamp_min(1e-12))).sum(1).mean() / math.log(cfg.prototypes)
        return loss, {"loss_logk": loss.detach() / math.log(cfg.prototypes),
                      "std": z[:n].detach().std(0).mean(), "code_entropy": ent}

    def metrics(self) -> dict[str, Any]:
        from .collapse import SwAVAlarm

        return {**super().metrics(), "swav": SwAVAlarm(who=self.name)}
