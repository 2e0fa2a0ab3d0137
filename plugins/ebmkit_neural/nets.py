"""The convolutional body shared by ``neural.conv`` and ``neural.jem``.

No batch norm anywhere: an energy must be a function of its own sample, never of the rest of
the batch (Du & Mordatch 2019 and Grathwohl et al. 2020 drop it for the same reason), and
Langevin chains call the network on batches of samples only. Spectral normalisation
(Miyato et al. 2018), optional, bounds each layer's Lipschitz constant, which keeps the
energy surface smooth enough for short-run chains (IGEBM's choice).

Axis letters in shape comments: B batch, C channels, H height, W width, F features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ebmkit.errors import ConfigError

__all__ = ["ConvBody", "ConvNet", "conv_net"]

ACTIVATIONS = {"silu": nn.SiLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU}


class ConvBody(nn.Module):
    """``[B, C, H, W] -> [B, F]``: two 3×3 convolutions at full resolution, then two stages of
    (4×4 stride-2 convolution, 3×3 convolution) doubling the channels, flattened.

    Args:
        image_shape: ``(C, H, W)``; H and W divisible by 4.
        channels: Channels of the first stage (then 2× and 4×).
        activation: ``"silu"`` (Swish, IGEBM's), ``"leaky_relu"`` or ``"elu"``.
        spectral_norm: Spectral normalisation on every layer.
    """

    def __init__(self, image_shape: tuple[int, int, int] | list[int], channels: int,
                 activation: str = "silu", spectral_norm: bool = False) -> None:
        super().__init__()
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ConfigError(f"the convolutional energy halves the image twice: image_shape "
                              f"must have H and W divisible by 4, got {list(image_shape)}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; expected one of "
                              f"{', '.join(map(repr, ACTIVATIONS))}")
        act = ACTIVATIONS[activation]
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        ch = channels
        self.net = nn.Sequential(
            sn(nn.Conv2d(c, ch, 3, padding=1)), act(),                 # [B, ch, H, W]
            sn(nn.Conv2d(ch, ch, 3, padding=1)), act(),
            sn(nn.Conv2d(ch, 2 * ch, 4, 2, 1)), act(),                 # [B, 2ch, H/2, W/2]
            sn(nn.Conv2d(2 * ch, 2 * ch, 3, padding=1)), act(),
            sn(nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1)), act(),             # [B, 4ch, H/4, W/4]
            nn.Flatten())
        self.num_features = 4 * ch * (h // 4) * (w // 4)
        self.sn = sn

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)  # [B, F]

    def head(self, out: int) -> nn.Module:
        """A linear read-out ``[B, F] -> [B, out]``, spectrally normalised like the body."""
        return self.sn(nn.Linear(self.num_features, out))


class ConvNet(nn.Module):
    """``[B, C, H, W] -> [B, *out_shape]``: [`ConvBody`][ebmkit_neural.nets.ConvBody] and its
    linear read-out (``out_shape=()``: one energy per image; ``(K,)``: K logits). Inputs
    given flat, ``[B, C·H·W]``, are reshaped."""

    def __init__(self, image_shape: Sequence[int], out_shape: Sequence[int], channels: int,
                 activation: str = "silu", spectral_norm: bool = False) -> None:
        super().__init__()
        self.image_shape, self.out_shape = tuple(image_shape), tuple(out_shape)
        self.body = ConvBody(list(image_shape), channels, activation, spectral_norm)
        self.head = self.body.head(math.prod(self.out_shape))

    def forward(self, y: Tensor) -> Tensor:
        y = y.reshape(y.shape[0], *self.image_shape)
        return self.head(self.body(y)).reshape(y.shape[0], *self.out_shape)


def conv_net(*, in_shape: Sequence[int], out_shape: Sequence[int], channels: int = 16,
             activation: str = "silu", spectral_norm: bool = False) -> ConvNet:
    """The neural family's conv energy net (no batch norm, optional spectral norm)."""
    if len(in_shape) != 3:
        raise ConfigError(f"network 'neural.conv': expected an image shape (C, H, W) as "
                          f"in_shape, got {tuple(in_shape)}")
    return ConvNet(in_shape, out_shape, channels, activation, spectral_norm)
