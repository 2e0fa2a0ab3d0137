r"""The collapse meter: is the embedding still using its dimensions?

A joint-embedding energy $E(x, y) = D(g(x), g(y))$ is minimised everywhere by a constant
embedding: every pair of inputs then has the lowest energy, and the features are useless.
Two numbers tell how far a method is from that flat surface:

- **normalised std**: the mean over dimensions of the standard deviation (over samples) of
  the L2-normalised embeddings $\hat z = z / \lVert z\rVert$. Isotropic unit vectors in $d$
  dimensions give $1/\sqrt d$; full collapse gives 0 (Grill et al., 2020, and lightly's
  ``std_of_l2_normalized``).
- **effective rank** (Roy & Vetterli, 2007): $\exp H(p)$ with $p_i = \sigma_i / \sum_j \sigma_j$
  the normalised singular values of the centred embeddings; $d$ when every direction is used
  alike, 1 when the embeddings lie on a line ("dimensional collapse", Jing et al., 2022).

[`CollapseMeter`][ebmkit_ssl.collapse.CollapseMeter] computes both over a whole evaluation
set (a torchmetrics metric, so it runs after every epoch of ``ebmkit train`` and in
``ebmkit eval``) and warns when the embedding has collapsed.

Both alarms stay silent during a training run's first ``WARMUP_STEPS`` optimizer steps
(the model's ``progress``, which the strategy sets): an untrained encoder's outputs point
one way, which is where collapse is measured, and a healthy run leaves it within tens of
steps (on digits at batch 256, measured: PIRL's normalised std is under 0.1 of the isotropic
value after its first 6 steps, SwAV's swapped-prediction loss on the validation rows is still
above 0.98 log K after 60, while its linear probe already reaches 0.94). After the warm-up,
at a run's last step, and outside training (``ebmkit eval``, a loaded model) they warn.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .sinkhorn import sinkhorn

__all__ = ["CollapseMeter", "CollapseWarning", "SwAVAlarm", "WARMUP_STEPS", "effective_rank",
           "normalized_std"]

#: Optimizer steps of a training run during which the collapse alarms do not warn.
WARMUP_STEPS = 100


def _in_warmup(model: Any, warmup_steps: int) -> bool:
    """Whether ``model`` is in a training run's first ``warmup_steps`` steps and the run is
    not over. Its ``progress`` is ``(step, total)``, set before each step (so ``step + 1``
    steps are done after it), with a known total only once a run has trained it; a finished
    run is judged."""
    step, total = getattr(model, "progress", (0, None))
    return total is not None and step + 1 < min(warmup_steps, total)


class CollapseWarning(UserWarning):
    """The embeddings of a joint-embedding model have (nearly) collapsed."""


def normalized_std(z: Tensor) -> Tensor:
    """Mean per-dimension std of the L2-normalised rows of ``z`` ``[N, d]``: a scalar in
    ``[0, 1/√d]``-ish (``1/√d`` for isotropic directions, 0 for a constant embedding)."""
    zn = torch.nn.functional.normalize(z.float(), dim=1)
    return zn.std(dim=0).mean()


def effective_rank(z: Tensor) -> Tensor:
    """exp(entropy of the normalised singular values of the centred ``z`` ``[N, d]``)."""
    zc = z.float() - z.float().mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(zc)
    p = s / s.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return torch.exp(entropy)


class CollapseMeter(Metric):
    """``update(model, batch)`` stores ``model.embed(batch["y"])``; ``compute()`` returns
    ``{"std": normalised std, "rank": effective rank, "std_ratio": std · √d}`` and warns
    ([`CollapseWarning`][ebmkit_ssl.collapse.CollapseWarning]) when ``std_ratio`` falls below
    ``warn_below`` or the rank below 2, except in a training run's first ``warmup_steps``.

    Args:
        warn_below: Warn when the normalised std is under this fraction of the isotropic
            $1/\\sqrt d$.
        who: The model's name, for the warning.
        warmup_steps: Training steps during which it does not warn (see the module's notes).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, warn_below: float = 0.1, who: str = "",
                 warmup_steps: int = WARMUP_STEPS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warn_below, self.who = float(warn_below), who
        self.warmup_steps, self.warming_up = int(warmup_steps), False
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")

    def update(self, model: Any, batch: Any) -> None:  # type: ignore[override]
        self.warming_up = _in_warmup(model, self.warmup_steps)
        self.embeddings.append(model.embed(batch["y"]).detach().float())

    def compute(self) -> dict[str, Tensor]:
        z = dim_zero_cat(self.embeddings)
        std, rank = normalized_std(z), effective_rank(z)
        ratio = std * math.sqrt(z.shape[1])
        if not self.warming_up and (float(ratio) < self.warn_below or float(rank) < 2.0):
            warnings.warn(
                f"{self.who or 'model'}: the embeddings are collapsed: normalised std "
                f"{float(std):.3g} ({float(ratio):.2f} of the isotropic 1/√{z.shape[1]}), "
                f"effective rank {float(rank):.2f} of {z.shape[1]}, so every pair of inputs "
                f"has nearly the same energy. In the first epochs this is where an untrained "
                f"encoder starts (its outputs point one way); if it persists, check the "
                f"method's anti-collapse term (negatives, variance, predictor) and the "
                f"learning rate.", CollapseWarning, stacklevel=2)
        return {"std": std, "rank": rank, "std_ratio": ratio}


class SwAVAlarm(Metric):
    """The swapped-prediction cross-entropy on un-augmented data (codes by Sinkhorn over the
    whole evaluation batch), ÷ log K; warns when it sits at 1 *and* the codes are uniform
    (their mean entropy above 0.98 log K: Sinkhorn finds nothing to tell the inputs apart),
    SwAV's collapse symptom, except in a training run's first ``warmup_steps``.

    The codes' entropy tells a collapsed or untrained encoder (0.999 log K on the digits test
    split) from a healthy one whose loss is still near log K on a small validation split
    (the demo's 10-epoch tour: codes 0.87 log K, linear probe 0.94)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, who: str = "", warmup_steps: int = WARMUP_STEPS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.who = who
        self.warmup_steps, self.warming_up = int(warmup_steps), False
        self.add_state("total", default=torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("logk", default=torch.zeros(()), dist_reduce_fx="max")
        self.add_state("code_entropy", default=torch.zeros(()), dist_reduce_fx="sum")

    def update(self, model: Any, batch: Any) -> None:  # type: ignore[override]
        self.warming_up = _in_warmup(model, self.warmup_steps)
        s = model.scores(batch["y"])
        q = sinkhorn(s, model.cfg.epsilon, model.cfg.sinkhorn_iterations)
        logp = nnf.log_softmax(s / model.cfg.temperature, dim=1)
        self.total += -(q * logp).sum()
        codes = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)
        self.code_entropy += -(codes * codes.clamp_min(1e-12).log()).sum()
        self.count += s.shape[0]
        self.logk.fill_(math.log(s.shape[1]))

    def compute(self) -> Tensor:
        ratio = self.total / self.count.clamp_min(1) / self.logk.clamp_min(1e-12)
        uniform = self.code_entropy / self.count.clamp_min(1) / self.logk.clamp_min(1e-12)
        if not self.warming_up and float(ratio) > 0.98 and float(uniform) > 0.98:
            warnings.warn(f"{self.who or 'ssl.swav'}: the swapped-prediction loss is "
                          f"{float(ratio):.3f} × log K and the codes' entropy "
                          f"{float(uniform):.3f} × log K — Sinkhorn's codes are uniform over "
                          f"the prototypes, SwAV's collapse symptom. It is where training starts "
                          f"(frozen prototypes, an untrained encoder; on digits the recipe "
                          f"leaves it after ~50 steps); if it persists, lower the learning "
                          f"rate, freeze the prototypes longer, or raise epsilon.",
                          CollapseWarning, stacklevel=2)
        return ratio
