"""``conv``: a small convolutional network whose direction follows the shapes.

- image → anything (an encoder, an energy): ``depth`` 3×3 stride-2 convolutions, the first
  with ``channels`` channels and each next one doubling them, then a linear read-out;
- vector → image (a decoder, a generator): the mirror image, a linear map to the smallest
  grid then ``depth`` 3×3 stride-2 transposed convolutions back to exactly ``(C, H, W)``;
- image → image of the same height and width (inpainting): ``depth`` 3×3 convolutions at
  full resolution, then a 3×3 convolution to the output channels.

Axis letters in shape comments: B batch, C channels, H height, W width, F features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ..config import at_least
from ..errors import ConfigError
from .layers import Readout, activation, image_shape

__all__ = ["ConvDecoder", "ConvEncoder", "ConvTranslator", "conv"]


def _down(n: int) -> int:
    """Output size of a 3×3, stride-2, padding-1 convolution."""
    return (n - 1) // 2 + 1


def _sizes(h: int, w: int, depth: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(depth):
        sizes.append((_down(sizes[-1][0]), _down(sizes[-1][1])))
    return sizes  # [(H, W), (H/2, W/2), …]


class ConvEncoder(nn.Module):
    """``[B, C, H, W] -> [B, *out_shape]`` (inputs given flat as ``[B, C·H·W]`` are reshaped)."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], channels: int,
                 depth: int, act: str) -> None:
        super().__init__()
        self.in_shape = c, h, w = image_shape(in_shape, "network 'conv': in_shape")
        layers: list[nn.Module] = []
        for i in range(depth):
            out = channels * 2 ** i
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), activation(act)]
            c = out
        self.body = nn.Sequential(*layers, nn.Flatten())
        gh, gw = _sizes(h, w, depth)[-1]
        self.head = Readout(c * gh * gw, out_shape)

    def forward(self, y: Tensor) -> Tensor:
        return self.head(self.body(y.reshape(y.shape[0], *self.in_shape)))


class ConvDecoder(nn.Module):
    """``[B, *in_shape] -> [B, C, H, W]``: the encoder's mirror image."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], channels: int,
                 depth: int, act: str, out_act: str) -> None:
        super().__init__()
        c, h, w = image_shape(out_shape, "network 'conv': out_shape")
        sizes = _sizes(h, w, depth)
        widths = [channels * 2 ** i for i in range(depth)]
        self.grid = (widths[-1] if depth else c, *sizes[-1])
        self.head = nn.Sequential(nn.Flatten(), Readout(math.prod(in_shape), self.grid),
                                  activation(act) if depth else nn.Identity())
        layers: list[nn.Module] = []
        for i in reversed(range(depth)):
            (bh, bw), (sh, sw) = sizes[i], sizes[i + 1]
            out = widths[i - 1] if i else c
            # a 3×3 stride-2 padding-1 transposed conv gives 2n − 1 + output_padding
            layers.append(nn.ConvTranspose2d(widths[i], out, 3, stride=2, padding=1,
                                             output_padding=(bh - (2 * sh - 1), bw - (2 * sw - 1))))
            if i:
                layers.append(activation(act))
        self.body = nn.Sequential(*layers, activation(out_act, "network 'conv': out_activation"))

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.head(z))  # [B, *in] -> [B, C, H, W]


class ConvTranslator(nn.Module):
    """``[B, C, H, W] -> [B, C', H, W]`` at full resolution (same-padding 3×3 convolutions)."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], channels: int,
                 depth: int, act: str, out_act: str) -> None:
        super().__init__()
        c, h, w = image_shape(in_shape, "network 'conv': in_shape")
        oc, oh, ow = image_shape(out_shape, "network 'conv': out_shape")
        if (h, w) != (oh, ow):
            raise ConfigError(f"network 'conv': image to image keeps the size, but in_shape "
                              f"{tuple(in_shape)} and out_shape {tuple(out_shape)} differ in "
                              f"height or width")
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(c, channels, 3, padding=1), activation(act)]
            c = channels
        layers += [nn.Conv2d(c, oc, 3, padding=1),
                   activation(out_act, "network 'conv': out_activation")]
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y)


def conv(*, in_shape: Sequence[int], out_shape: Sequence[int], channels: int = 32,
         depth: int = 2, activation: str = "relu",
         out_activation: str = "identity") -> nn.Module:
    """A small conv net: image → vector/scalar, vector → image, or image → image."""
    at_least("channels", channels, 1, who="network 'conv'")
    at_least("depth", depth, 0, who="network 'conv'")
    if len(in_shape) == 3 and len(out_shape) == 3:
        return ConvTranslator(in_shape, out_shape, channels, depth, activation, out_activation)
    if len(in_shape) == 3:
        enc = ConvEncoder(in_shape, out_shape, channels, depth, activation)
        return enc if out_activation == "identity" else nn.Sequential(
            enc, _out(out_activation))
    if len(out_shape) == 3:
        return ConvDecoder(in_shape, out_shape, channels, depth, activation, out_activation)
    raise ConfigError(f"network 'conv': needs an image shape (C, H, W) on one side, got "
                      f"in_shape {tuple(in_shape)} and out_shape {tuple(out_shape)}; use 'mlp' "
                      f"for vectors")


def _out(name: str) -> nn.Module:
    from .layers import activation as act

    return act(name, "network 'conv': out_activation")
