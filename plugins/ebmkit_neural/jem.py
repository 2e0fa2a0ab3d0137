r"""JEM: a classifier read as an energy-based model (Grathwohl et al. 2020).

A classifier's logits $f(y) \in \mathbb R^K$ define a joint energy over an image $y$ and its
class $c$, and, by summing the class out, an energy of the image alone:

$$ E(y, c) = -f(y)_c, \qquad
   F(y) = -\log \sum_c \exp\big(-E(y, c)\big) = -\operatorname{logsumexp}_c f(y)_c . $$

So $p(c \mid y) = \operatorname{softmax}(f(y))_c$ is the classifier it always was, and
$p(y) = \exp(-F(y)) / Z$ is a density over images from the same network. In ebmkit's
vocabulary the class is a discrete latent $z$: ``energy(y, z=c)`` is $E(y, c)$,
``free_energy(y)`` is $F(y)$ (the soft minimum over $z$ at $\beta = 1$, exact: $K$ terms),
``infer(y)`` is $\check z = \arg\min_c E(y, c)$, the predicted class.

Training ([`JointTraining`][ebmkit_neural.strategy.JointTraining]) adds the cross-entropy of
the labels to persistent contrastive divergence on $F$. Axis letters: B batch, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.config import at_least
from ebmkit.errors import ConfigError
from ebmkit.model import check_input

from .models import ImageConfig, _NeuralEnergy

__all__ = ["JEM", "JEMConfig"]


@dataclass
class JEMConfig(ImageConfig):
    """JEM: a convolutional classifier whose logits are negative energies."""

    num_classes: int = 10
    channels: int = 32
    # JEM's sampler: short-run SGLD with step 1 and noise 0.01, a replay buffer with 5%
    # restarts from uniform noise, data noise σ = 0.03 (Grathwohl et al. 2020, App. H)
    langevin_steps: int = 20
    step_size: float = 1.0
    noise: float | None = 0.01
    buffer_size: int = 2_000
    reinit: float = 0.05
    data_noise: float = 0.03
    alpha: float = 0.1  # energy-magnitude penalty (JEM has none; see JointTraining)
    generative: float = 1.0  # weight w of the log p(y) term; 0 trains a plain classifier
    # slot (`ek.networks`): image_shape → (num_classes,), the logits f(y); None:
    # 'neural.conv' with the options above (no batch norm: an energy depends on its sample)
    classifier: str | dict[str, Any] | nn.Module | None = None


class JEM(_NeuralEnergy):
    """A convolutional classifier as a joint energy E(y, c) = −f(y)_c (no batch norm)."""

    name = "neural.jem"
    config_class = JEMConfig
    cfg: JEMConfig
    slots = {"classifier": "neural.conv (channels, activation, spectral_norm), image_shape → "
                           "(num_classes,): its logits are the negative energies"}

    def __init__(self, cfg: JEMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._check_sampler_config()
        at_least("num_classes", cfg.num_classes, 2, who=self.name)
        if not cfg.data_noise >= 0 or not cfg.generative >= 0:
            raise ConfigError(f"neural.jem: data_noise and generative must be >= 0, got "
                              f"{cfg.data_noise!r} and {cfg.generative!r}")
        self.classifier = self._image_net("classifier", cfg.classifier, (cfg.num_classes,))

    def logits(self, y: Tensor) -> Tensor:
        """f(y): the class logits, ``[B, K]`` (y flat ``[B, C·H·W]`` or ``[B, C, H, W]``)."""
        return self.classifier(self._images(y))

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, c) = −f(y)_c for classes ``z`` (int64 ``[B]``); without z, F(y). ``[B]``."""
        logits = self.logits(y)
        if z is None:
            return -torch.logsumexp(logits, dim=1)
        if not isinstance(z, Tensor) or z.shape != logits.shape[:1] or z.is_floating_point():
            got = f"{z.dtype} {list(z.shape)}" if isinstance(z, Tensor) else type(z).__name__
            raise ConfigError(f"neural.jem: z is the class, int64 of shape [{logits.shape[0]}] "
                              f"in 0…{self.cfg.num_classes - 1}; got {got}")
        check_input(z, "neural.jem: z", floating=False, device=logits.device)
        if z.device.type == "cpu" or not torch.is_grad_enabled():  # no sync in a step
            lo, hi = (int(t) for t in torch.aminmax(z))
            if lo < 0 or hi >= self.cfg.num_classes:
                raise ConfigError(f"neural.jem: z must hold class ids in [0, "
                                  f"{self.cfg.num_classes - 1}], got values in [{lo}, {hi}]")
        return -logits.gather(1, z.long().unsqueeze(1)).squeeze(1)

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F(y) = −logsumexp_c f(y)_c, exact (the class summed out), ``[B]``."""
        return -torch.logsumexp(self.logits(y), dim=1)

    def infer(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """ž = argmin_c E(y, c) = argmax_c f(y)_c: the predicted class, int64 ``[B]``."""
        with torch.no_grad():
            return self.logits(y).argmax(dim=1)

    predict = infer

    def predict_proba(self, y: Tensor) -> Tensor:
        """p(c | y) = softmax(f(y)), ``[B, K]``."""
        with torch.no_grad():
            return torch.softmax(self.logits(y), dim=1)

    def default_strategy(self) -> Any:
        from .strategy import JointTraining

        cfg = self.cfg
        buffer = (ek.samplers.ReplayBuffer(capacity=cfg.buffer_size, reinit=cfg.reinit)
                  if cfg.buffer_size else None)  # 0: short-run chains from noise
        return JointTraining(
            sampler=self.langevin(),
            buffer=buffer,
            alpha=cfg.alpha, init=self._uniform, data_noise=cfg.data_noise,
            generative=cfg.generative)

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        metrics = super().metrics()
        metrics["accuracy"] = ek.metrics.Adapter(
            torchmetrics.Accuracy(task="multiclass", num_classes=self.cfg.num_classes),
            _predictions)
        return metrics


def _predictions(model: JEM, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    if "label" not in batch:
        raise ConfigError("neural.jem accuracy needs labelled data (a batch with 'label')")
    return model.predict(batch["y"]), batch["label"]
