"""Neural energies E_θ(y) trained by contrastive divergence with Langevin chains.

The density is p_θ(y) = exp(−E_θ(y)) / Z_θ. The gradient of the negative log-likelihood is
∇_θ E_θ(y₊) − E_{y₋∼p_θ}[∇_θ E_θ(y₋)]: push the energy down on data, up on samples of
the model, which come from Langevin chains — kept alive across steps in a replay buffer
(persistent CD, ``neural.mlp``), or started afresh from uniform noise every step and run
for a fixed, short number of steps (``neural.conv``'s default, ``buffer_size=0``: the
non-persistent short-run chains of Nijkamp et al. 2019, whose model learns to make its
samples in exactly that many steps, so ``sample(n)`` runs the very sampler it was trained
with).

Axis letters in shape comments: B batch, D features, C channels, H height, W width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.model import check_input


@dataclass
class SamplerConfig:
    """Langevin and replay-buffer settings shared by the neural families."""

    langevin_steps: int = 20
    step_size: float = 0.01
    noise: float | None = None  # None: √(2·step_size), exact SGLD
    buffer_size: int = 10_000  # replay-buffer slots; 0: no buffer, every chain starts from noise
    reinit: float = 0.05
    alpha: float = 0.1  # energy-magnitude penalty α·(E₊² + E₋²)
    low: float = -4.0  # box where chains start and stay
    high: float = 4.0


@dataclass
class MLPConfig(SamplerConfig):
    """An MLP energy for vectors, trained by persistent CD with Langevin."""

    dim: int = 2
    hidden: int = 128
    depth: int = 3
    # slot (`ek.networks`): (dim,) → () ; None: 'mlp' with SiLU, `hidden` and `depth`
    energy: str | dict[str, Any] | nn.Module | None = None


@dataclass
class ImageConfig(SamplerConfig):
    """What the image families share: the image shape, the default ``neural.conv`` network's
    options and the box [0, 1] of pixel values."""

    image_shape: list[int] = field(default_factory=lambda: [1, 8, 8])
    channels: int = 16
    activation: str = "silu"  # Swish, IGEBM's
    spectral_norm: bool = False
    low: float = 0.0
    high: float = 1.0


@dataclass
class ConvConfig(ImageConfig):
    """A convolutional energy for images, trained by short-run CD with Langevin."""

    # short-run chains (Nijkamp et al. 2019; Du & Mordatch 2019): big gradient steps, little
    # noise, every chain from uniform noise; the model learns to make its samples in exactly
    # this many steps
    langevin_steps: int = 30
    step_size: float = 1.0
    noise: float | None = 0.005
    buffer_size: int = 0
    data_noise: float = 0.01  # σ of the Gaussian noise on the data (IGEBM, JEM)
    # slot (`ek.networks`): image_shape → () ; None: 'neural.conv' with the options above
    energy: str | dict[str, Any] | nn.Module | None = None


class _NeuralEnergy(ek.EnergyModel):
    """Shared parts: config checks, the CD strategy, sampling by Langevin."""

    cfg: SamplerConfig
    config_class: type[SamplerConfig] = SamplerConfig

    def _check_sampler_config(self) -> None:
        cfg = self.cfg
        if not cfg.high > cfg.low:
            raise ek.errors.ConfigError(f"{self.name}: expected high > low, got low={cfg.low}, "
                                        f"high={cfg.high}")
        ek.config.at_least("langevin_steps", cfg.langevin_steps, who=self.name)
        ek.config.at_least("buffer_size", cfg.buffer_size, 0, who=self.name)
        ek.config.number("data_noise", getattr(cfg, "data_noise", 0.0), low=0.0, who=self.name)

    def _image_net(self, slot: str, spec: Any, out_shape: tuple[int, ...]) -> nn.Module:
        """Check ``image_shape`` and ``channels`` (an ``ImageConfig``) and build the network
        in ``slot`` from ``spec``, ``neural.conv`` with the config's options by default."""
        cfg = self.cfg
        assert isinstance(cfg, ImageConfig)
        shape = list(cfg.image_shape)
        if len(shape) != 3 or min(shape) <= 0:
            raise ek.errors.ConfigError(f"{self.name}: image_shape must be [C, H, W], got {shape}")
        ek.config.at_least("channels", cfg.channels, who=self.name)
        self.flat_dim = math.prod(shape)
        return ek.networks.build_slot(
            slot, spec, in_shape=shape, out_shape=out_shape, who=self.name,
            default={"name": "neural.conv", "channels": cfg.channels,
                     "activation": cfg.activation, "spectral_norm": cfg.spectral_norm})

    def _images(self, y: Tensor) -> Tensor:
        """``y`` as images ``[B, C, H, W]`` (flat ``[B, C·H·W]`` is reshaped), checked."""
        c, h, w = self.cfg.image_shape  # type: ignore[attr-defined]
        if isinstance(y, Tensor) and y.dim() == 2:
            check_input(y, "y", shape=(None, c * h * w), device=self.device, finite="auto")
            return y.reshape(y.shape[0], c, h, w)
        return check_input(y, "y", shape=(None, c, h, w), device=self.device, finite="auto")

    def langevin(self, steps: int | None = None) -> Any:
        cfg = self.cfg
        return ek.samplers.Langevin(steps=steps or cfg.langevin_steps, step_size=cfg.step_size,
                                    noise=cfg.noise, clamp=(cfg.low, cfg.high))

    def _uniform(self, like: Tensor) -> Tensor:
        return torch.rand_like(like) * (self.cfg.high - self.cfg.low) + self.cfg.low

    def default_strategy(self) -> Any:
        """Contrastive divergence on Langevin chains: persistent in a replay buffer, or (with
        ``buffer_size=0``) from fresh uniform noise each step; data noised by ``data_noise``."""
        from .strategy import NoisyCD

        cfg = self.cfg
        buffer = (ek.samplers.ReplayBuffer(capacity=cfg.buffer_size, reinit=cfg.reinit)
                  if cfg.buffer_size else None)
        return NoisyCD(sampler=self.langevin(), buffer=buffer, alpha=cfg.alpha,
                       init=self._uniform, data_noise=getattr(cfg, "data_noise", 0.0))

    def sample(self, n: int, generator: torch.Generator | None = None,
               steps: int | None = None) -> Tensor:
        """``n`` samples by Langevin from uniform noise in the box; shape ``[n, D]``.

        ``steps`` defaults to the training chain length for short-run models (``noise`` set:
        they learn to sample in that many steps) and to ``max(500, langevin_steps)`` for exact
        SGLD (``noise=None``), whose chains need to mix.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ek.errors.ConfigError(f"{self.name}.sample: n must be a positive integer, got "
                                        f"{n!r}")
        if steps is None:
            cfg = self.cfg
            steps = cfg.langevin_steps if cfg.noise is not None else max(500, cfg.langevin_steps)
        shape = (n, self.flat_dim)
        where = self.device if generator is None else generator.device
        init = torch.rand(shape, generator=generator, device=where).to(self.device)
        init = init * (self.cfg.high - self.cfg.low) + self.cfg.low
        was_training = self.training
        self.eval()
        try:
            return self.langevin(steps).sample(self, init)
        finally:
            self.train(was_training)

    def score(self, y: Tensor) -> Tensor:
        """Anomaly score: the free energy F(y), ``[B]`` (high = unlike the training data)."""
        with torch.no_grad():
            return self.free_energy(y)


class MLPEnergy(_NeuralEnergy):
    """E(y) = MLP(y): SiLU layers of width ``hidden``, one scalar out."""

    name = "neural.mlp"
    config_class = MLPConfig
    slots = {"energy": "mlp (activation='silu', hidden, depth), (dim,) → []"}

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._check_sampler_config()
        for key in ("dim", "hidden", "depth"):
            ek.config.at_least(key, getattr(cfg, key), who=self.name)
        self.net = ek.networks.build_slot(
            "energy", cfg.energy, in_shape=(cfg.dim,), out_shape=(), who=self.name,
            default={"name": "mlp", "hidden": cfg.hidden, "depth": cfg.depth,
                     "activation": "silu"})
        self.flat_dim = cfg.dim

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        check_input(y, "y", shape=(None, self.cfg.dim), device=self.device, finite="auto")
        return self.net(y)  # [B, D] -> [B]

    def metrics(self) -> dict[str, Any]:
        metrics = super().metrics()
        if self.cfg.dim == 2:
            from .metrics import GridLogLikelihood

            box = ((self.cfg.low, self.cfg.high), (self.cfg.low, self.cfg.high))
            metrics["log_likelihood"] = GridLogLikelihood(box)
        return metrics


class ConvEnergy(_NeuralEnergy):
    """E(y) = w · ConvBody(y) + b: five convolutions (two of them stride 2), no batch norm,
    optionally spectrally normalised, read out linearly to one scalar."""

    name = "neural.conv"
    config_class = ConvConfig
    slots = {"energy": "neural.conv (channels, activation, spectral_norm), image_shape → []"}

    def __init__(self, cfg: ConvConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._check_sampler_config()
        self.net = self._image_net("energy", cfg.energy, ())

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        return self.net(self._images(y))  # [B]
