r"""Training strategies of the neural family: persistent CD with data noise, and JEM's joint loss.

Both draw their negatives like ``ek.strategies.ContrastiveDivergence`` (Langevin chains kept
in a replay buffer, a fraction restarted from uniform noise each step) and add the one
trick IGEBM and JEM both rely on: a little Gaussian noise on the data (σ = ``data_noise``),
so that the energy is learned on a slightly smoothed data density, whose gradients the
short-run chains can follow from noise (Du & Mordatch 2019, §3.3; Grathwohl et al. 2020,
App. H).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor

import ebmkit as ek
from ebmkit.errors import ConfigError

__all__ = ["JointTraining", "NoisyCD"]


def _batch_y(batch: Any, who: str) -> Tensor:
    if not isinstance(batch, Mapping) or "y" not in batch:
        raise ConfigError(f"{who}: expected a batch dict with 'y', got {type(batch).__name__}")
    return batch["y"]


class NoisyCD(ek.strategies.ContrastiveDivergence):
    r"""Persistent contrastive divergence on noised data:

    $$ L = \overline{E(y + \sigma\varepsilon)} - \overline{E(\tilde y)}
           + \alpha\,\overline{E_+^2 + E_-^2}, $$

    with $\tilde y$ from the replay-buffered Langevin chains and $\sigma$ = ``data_noise``
    (0 gives ``ContrastiveDivergence`` exactly). Same arguments as
    ``ContrastiveDivergence``, plus ``data_noise``.
    """

    def __init__(self, *args: Any, data_noise: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not data_noise >= 0:
            raise ConfigError(f"NoisyCD: data_noise must be >= 0, got {data_noise!r}")
        self.data_noise = float(data_noise)

    def __call__(self, model: Any, batch: dict[str, Tensor]) -> ek.StepOutput:
        y = _batch_y(batch, "NoisyCD")
        if self.data_noise:
            batch = {**batch, "y": y + self.data_noise * torch.randn_like(y)}
        return super().__call__(model, batch)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, data_noise={self.data_noise:g})".replace(
            "ContrastiveDivergence(", "NoisyCD(", 1)


class JointTraining(ek.strategies.ContrastiveDivergence):
    r"""JEM's objective (Grathwohl et al. 2020): log p(c | y) + log p(y) from one classifier.

    With logits $f(y) \in \mathbb R^K$, $E(y, c) = -f(y)_c$ and
    $E(y) = -\log\sum_c \exp f(y)_c$, the loss per batch is

    $$ L = \mathrm{CE}(f(y_\sigma), c)
         + w\,\big(\overline{E(y_\sigma)} - \overline{E(\tilde y)}\big)
         + \alpha\,\overline{E(y_\sigma)^2 + E(\tilde y)^2}, $$

    where $y_\sigma = y + \sigma\varepsilon$ (``data_noise``), $\tilde y$ come from Langevin
    chains on $E(y)$ kept in a replay buffer, and $w$ = ``generative`` weighs the
    contrastive estimate of $-\nabla\log p(y)$. JEM itself has $\alpha = 0$; a small
    $\alpha$ keeps the energies from drifting (it is IGEBM's regulariser).

    Logs ``cross_entropy``, ``accuracy`` (on the noised batch), ``e_pos``, ``e_neg``.
    """

    def __init__(self, *args: Any, data_noise: float = 0.0, generative: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not data_noise >= 0:
            raise ConfigError(f"JointTraining: data_noise must be >= 0, got {data_noise!r}")
        if not generative >= 0:
            raise ConfigError(f"JointTraining: generative must be >= 0, got {generative!r}")
        self.data_noise, self.generative = float(data_noise), float(generative)

    def __call__(self, model: Any, batch: dict[str, Tensor]) -> ek.StepOutput:
        y = _batch_y(batch, "JointTraining")
        label = batch.get("label")
        if label is None:
            raise ConfigError("neural.jem trains on labelled images: the batch has no 'label' "
                              "(use a labelled dataset such as digits)")
        y_pos = y + self.data_noise * torch.randn_like(y) if self.data_noise else y
        logits = model.logits(y_pos)  # [B, K]
        ce = nnf.cross_entropy(logits, label)
        logs = {"cross_entropy": ce.detach(),
                "accuracy": (logits.detach().argmax(1) == label).float().mean()}
        loss = ce
        if self.generative > 0:
            y_neg = self.negatives(model, y)
            e_pos = -torch.logsumexp(logits, dim=1)  # [B]
            e_neg = model.free_energy(y_neg)  # [B]
            loss = loss + self.generative * (e_pos.mean() - e_neg.mean()) \
                + self.alpha * (e_pos.square() + e_neg.square()).mean()
            logs |= {"e_pos": e_pos.detach().mean(), "e_neg": e_neg.detach().mean()}
        return ek.StepOutput(loss, logs)

    def __repr__(self) -> str:
        return (f"JointTraining({self.sampler!r}, buffer={self.buffer!r}, alpha={self.alpha:g}, "
                f"data_noise={self.data_noise:g}, generative={self.generative:g})")
