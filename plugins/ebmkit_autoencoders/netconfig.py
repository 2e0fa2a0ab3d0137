"""The options every autoencoder shares, their checks, and the encoder/decoder slots.

Split from ``models`` (which re-exports every name here): `NetConfig` (the networks and the
data), `AutoencoderConfig`, `check_net_config`, the `SLOTS` table for `ebmkit models -v`,
and the builders of the ``encoder`` and ``decoder`` slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

import ebmkit as ek
from ebmkit.config import at_least, one_of
from ebmkit.errors import ConfigError

from .nets import activation

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SLOTS", "AutoencoderConfig", "NetConfig", "build_decoder", "build_encoder",
           "check_net_config", "data_shape"]


@dataclass
class NetConfig:
    """Options shared by every model of the family (the encoder/decoder and the data)."""

    dim: int = 64  # features of y (set from the data by `ebmkit train`)
    code: int = 16  # size K of the code h: < dim under-complete, > dim over-complete
    hidden: int = 128  # width of the hidden layers (mlp)
    depth: int = 1  # hidden layers on each side (mlp); 0: h = f(W y + b) directly
    arch: str = "mlp"  # "mlp" or "conv" (conv needs image_shape)
    channels: int = 16  # conv: channels of the first convolution (then twice that)
    image_shape: list[int] | None = None  # [C, H, W] for images (set by `ebmkit train`)
    activation: str = "relu"  # activation of the hidden layers
    low: float = 0.0  # the box the data lives in (set from the data by `ebmkit train`)
    high: float = 1.0
    anomaly_classes: list[int] | None = None  # labels scored by the `auroc` metric
    # Slots (`ek.networks`): None (the default built from the options above), a registered
    # network name, {"name": ..., **options}, or an nn.Module. The encoder maps the data's
    # shape (image_shape, or (dim,)) to (code,); the decoder maps (code,) back to it.
    encoder: str | dict[str, Any] | nn.Module | None = None
    decoder: str | dict[str, Any] | nn.Module | None = None


@dataclass
class AutoencoderConfig(NetConfig):
    """A deterministic autoencoder: E(y) = C(y, Dec(Enc(y)))."""

    code_activation: str = "identity"  # f at the code layer
    tied: bool = False  # decoder weights = transposed encoder weights (mlp only)
    cost: str = "auto"  # "bce", "mse" or "auto" (bce when [low, high] ⊆ [0, 1])


def check_net_config(cfg: NetConfig, who: str) -> None:
    """Validate the shared options; raise ConfigError saying what was expected."""
    at_least("dim", cfg.dim, who=who)
    at_least("code", cfg.code, who=who)
    at_least("hidden", cfg.hidden, who=who)
    at_least("depth", cfg.depth, 0, who=who)
    at_least("channels", cfg.channels, who=who)
    one_of("arch", cfg.arch, ("mlp", "conv"), who=who)
    activation(cfg.activation, f"{who}: activation")
    if not cfg.high > cfg.low:
        raise ConfigError(f"{who}: expected high > low, got low={cfg.low}, high={cfg.high}")
    if cfg.image_shape is not None:
        shape = list(cfg.image_shape)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ConfigError(f"{who}: image_shape must be [C, H, W] of positive ints, got "
                              f"{cfg.image_shape!r}")
        if math.prod(shape) != cfg.dim:
            raise ConfigError(f"{who}: image_shape {shape} has {math.prod(shape)} features but "
                              f"dim={cfg.dim}; expected dim = C·H·W")
        cfg.image_shape = shape
    elif cfg.arch == "conv":
        raise ConfigError(f"{who}: arch='conv' needs image_shape=[C, H, W] (e.g. [1, 8, 8] for "
                          f"digits); `ebmkit train` sets it from image data")
    if cfg.anomaly_classes is not None:
        cfg.anomaly_classes = [int(c) for c in cfg.anomaly_classes]


#: The family's slots and their defaults, for `ebmkit models -v`.
SLOTS = {"encoder": "autoencoder.mlp_encoder (arch='conv': autoencoder.conv_encoder), "
                    "data shape → (code,)",
         "decoder": "autoencoder.mlp_decoder (arch='conv': autoencoder.conv_decoder; tied=True: "
                    "the encoder's transpose), (code,) → data shape"}


def data_shape(cfg: NetConfig) -> tuple[int, ...]:
    """The shape of one sample: ``image_shape`` for images, ``(dim,)`` for vectors."""
    return tuple(cfg.image_shape) if cfg.image_shape is not None else (cfg.dim,)


def build_encoder(cfg: NetConfig, out: int, code_act: str, who: str) -> torch.nn.Module:
    """The ``encoder`` slot: data shape → ``(out,)``; default MLP or conv by ``cfg.arch``."""
    default: dict[str, Any] = (
        {"name": "autoencoder.conv_encoder", "channels": cfg.channels} if cfg.arch == "conv"
        else {"name": "autoencoder.mlp_encoder", "hidden": cfg.hidden, "depth": cfg.depth})
    default.update(activation=cfg.activation, code_activation=code_act)
    return ek.networks.build_slot("encoder", cfg.encoder, in_shape=data_shape(cfg),
                                  out_shape=(out,), default=default, who=who)


def build_decoder(cfg: NetConfig, who: str) -> torch.nn.Module:
    """The ``decoder`` slot, before the output activation: ``(code,)`` → data shape."""
    default: dict[str, Any] = (
        {"name": "autoencoder.conv_decoder", "channels": cfg.channels} if cfg.arch == "conv"
        else {"name": "autoencoder.mlp_decoder", "hidden": cfg.hidden, "depth": cfg.depth})
    default.update(activation=cfg.activation)
    return ek.networks.build_slot("decoder", cfg.decoder, in_shape=(cfg.code,),
                                  out_shape=data_shape(cfg), default=default, who=who)
