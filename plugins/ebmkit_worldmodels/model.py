"""The composite ``worldmodels`` model: V, M and C in one state dict, and its policy.

Saved and loaded like every ebmkit model (safetensors + JSON, no pickle): the JSON holds the
options below, ``ek.get_model("worldmodels", **options)`` rebuilds V (through the registry:
``autoencoder.variational``), M and C, and the weights file fills all three.

Its ``energy`` is M's: the negative log-likelihood of a latent trajectory given its actions,
a sum of transition energies. V's own energy (its free energy, −ELBO, per frame) is
``model.vision.free_energy(frames)``.

Axis letters in shape comments: B batch, T time, K latent size, D frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.config import at_least, number
from ebmkit.errors import ConfigError
from ebmkit.model import check_input

from .controller import Agent, LinearController
from .env import FrameSpec, resolve_crop
from .mdnrnn import MDNRNN, mixture_nll

__all__ = ["Policy", "WorldModel", "WorldModelConfig"]


@dataclass
class WorldModelConfig:
    """Ha & Schmidhuber's agent: V (VAE on frames), M (MDN-RNN), C (linear on [z, h])."""

    env: str = "CartPole-v1"  # the gymnasium id the agent acts in
    frame_size: int = 64  # frames are grey, frame_size × frame_size
    # [top, bottom, left, right] of the render; "full" (or None): the whole frame; "auto": the
    # env's known crop (an error where none is known), stored resolved
    crop: list[int] | str | None = "auto"
    code: int = 8  # K, V's latent size
    channels: int = 16  # V's conv channels (then twice that)
    vae: dict[str, Any] = field(default_factory=dict)  # more autoencoder.variational options
    hidden: int = 32  # H, M's LSTM state size
    mixtures: int = 5  # Gaussians per latent dimension in M
    actions: int = 2  # discrete actions of the environment
    temperature: float = 1.0  # τ of dreamed rollouts
    memory: bool = True  # C reads [z, h] (V+M); False: z only (the V-only ablation)
    # V's slots (`ek.networks`), passed to autoencoder.variational: the encoder maps a frame
    # [1, S, S] to (2·code,) (μ, log σ²), the decoder (code,) back to [1, S, S]; None: V's
    # conv networks
    encoder: str | dict[str, Any] | nn.Module | None = None
    decoder: str | dict[str, Any] | nn.Module | None = None


class WorldModel(ek.EnergyModel):
    """V + M + C. ``energy(y, x)``: −log p(z_1..T | z_0, a_0..T−1) under M, ``[B]``."""

    name = "worldmodels"
    config_class = WorldModelConfig
    cfg: WorldModelConfig
    slots = {"encoder": "autoencoder.conv_encoder (channels), frame [1, S, S] → (2·code,): "
                        "V's μ and log σ²",
             "decoder": "autoencoder.conv_decoder (channels), (code,) → frame [1, S, S]"}

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        who = self.name
        at_least("frame_size", cfg.frame_size, 8, who=who)
        at_least("code", cfg.code, who=who)
        at_least("channels", cfg.channels, who=who)
        at_least("hidden", cfg.hidden, who=who)
        at_least("mixtures", cfg.mixtures, who=who)
        at_least("actions", cfg.actions, 2, who=who)
        number("temperature", cfg.temperature, low=0.0, who=who)
        crop = resolve_crop(cfg.env, cfg.crop)
        cfg.crop = list(crop) if crop is not None else None
        if not isinstance(cfg.vae, dict):
            raise ConfigError(f"{who}: vae must be a dict of autoencoder.variational options, "
                              f"got {cfg.vae!r}")
        self.cfg = cfg
        s = cfg.frame_size
        # V's decoder stays the Bernoulli (a sub-normalised density on grey frames: its F_V is a
        # cross-entropy, see the docs). On the recipe's 6,725 frames (8 epochs) it read the
        # pole's angle best, linear R² 0.94 from z, against 0.87 for the continuous Bernoulli
        # (whose held-out error, 10.6, is no better than the mean frame's 10.1) and 0.80–0.82
        # for a Gaussian with σ = 0.1 or 0.05 (error 0.57); vae={"likelihood": ...} changes it.
        vae = {"arch": "conv", "dim": s * s, "image_shape": [1, s, s], "code": cfg.code,
               "channels": cfg.channels, "likelihood": "bernoulli", **cfg.vae}
        for slot in ("encoder", "decoder"):
            if getattr(cfg, slot) is not None:
                if slot in cfg.vae:
                    raise ConfigError(f"{who}: V's {slot} is given twice, as {slot}= and in "
                                      f"vae=; keep one")
                vae[slot] = getattr(cfg, slot)
        self.vision = ek.get_model("autoencoder.variational", **vae)
        self.memory = MDNRNN(cfg.code, cfg.actions, cfg.hidden, cfg.mixtures)
        self.controller = LinearController(cfg.code + (cfg.hidden if cfg.memory else 0),
                                           cfg.actions)
        self.frames = FrameSpec(s, crop)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """Sum of M's transition energies along latent trajectories.

        Args:
            y: Latents ``z_0 … z_T``, ``[B, T + 1, K]``.
            x: Actions ``a_0 … a_{T−1}``, ``[B, T]`` (integers).
        """
        dev = self.controller.weight.device
        check_input(y, f"{self.name}.energy: y", shape=(None, None, self.cfg.code),
                    device=dev, finite=False)
        if y.shape[0] == 0 or y.shape[1] < 2:
            raise ConfigError(f"{self.name}.energy: y must hold at least one sample of at least "
                              f"two latents [B ≥ 1, T + 1 ≥ 2, {self.cfg.code}], got "
                              f"{list(y.shape)}")
        want = [y.shape[0], y.shape[1] - 1]
        if not isinstance(x, Tensor) or list(x.shape) != want:
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(f"{self.name}.energy: x must be the actions, shape [B, T] = "
                              f"{want} between the latents y, got {got}")
        check_input(x, f"{self.name}.energy: x", floating=False, device=dev, finite=False)
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ConfigError(f"{self.name}.energy: x must hold integer action ids, got "
                              f"{x.dtype}")
        # one host sync for every value check (a public entry, not a step of any loop)
        finite, low, high = torch.stack([torch.isfinite(y).all(), (x >= 0).all(),
                                         (x < self.cfg.actions).all()]).tolist()
        if not finite:
            raise ConfigError(f"{self.name}.energy: y contains NaN or infinite values; expected "
                              "finite latents")
        if not (low and high):
            raise ConfigError(f"{self.name}.energy: x must hold action ids in [0, "
                              f"{self.cfg.actions - 1}], got values in [{int(x.min())}, "
                              f"{int(x.max())}]")
        mix, _ = self.memory(y[:, :-1], x.long())
        return mixture_nll(y[:, 1:], mix).sum(dim=1)

    def default_strategy(self) -> Any:
        raise ConfigError(f"{self.name} is not trained by ek.Trainer: its three parts train in "
                          "turn; run `ebmkit worldmodels` or ebmkit_worldmodels.pipeline.run")

    def policy(self) -> Policy:
        """A stateful policy for the real environment: call ``reset()`` before each episode,
        then ``policy(frame)`` with gymnasium's ``rgb_array`` frame to get an action."""
        return Policy(self)


class Policy:
    """``reset()``, then ``policy(frame uint8 [H, W, 3]) -> int``; deterministic (V's mean
    code, M's state, C's argmax) and without autograd."""

    def __init__(self, model: WorldModel) -> None:
        self.model = model.eval()
        self.agent: Agent | None = None

    def reset(self) -> None:
        m = self.model
        self.agent = Agent(m.vision, m.memory, m.controller, 1, use_memory=m.cfg.memory)

    @torch.no_grad()
    def __call__(self, frame: Any) -> int:
        if self.agent is None:
            self.reset()
        x = self.model.frames(frame, device=self.model.device)
        return int(self.agent(x, [0])[0])
