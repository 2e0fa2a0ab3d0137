"""Encoders and decoders shared by the autoencoder family: MLP (optionally tied) and conv.

Every network reads and writes *flat* tensors ``[B, D]`` (D = C·H·W for images); the conv
networks reshape internally, so the models, costs and metrics handle one layout.

Axis letters in shape comments: B batch, D features, K code size, C channels, H height,
W width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as nnf
from einops import rearrange
from torch import Tensor, nn

from ebmkit.errors import ConfigError

__all__ = ["ACTIVATIONS", "ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder",
           "TiedDecoder", "activation"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}


def activation(name: str, what: str = "activation") -> nn.Module:
    """The activation module called ``name`` (error lists the choices)."""
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ConfigError(f"{what}: expected one of {', '.join(map(repr, ACTIVATIONS))}, "
                          f"got {name!r}") from None


def _widths(dim: int, hidden: int, depth: int, code: int) -> list[int]:
    """Layer widths of the encoder: D, hidden × depth, K."""
    return [dim, *([hidden] * depth), code]


class MLPEncoder(nn.Module):
    """h = f_K(W_K … f(W_1 y + b_1) … + b_K): ``depth`` hidden layers of width ``hidden``.

    With ``depth=0`` this is the one-layer encoder h = f(W y + b).
    """

    def __init__(self, dim: int, code: int, hidden: int, depth: int, act: str,
                 code_act: str) -> None:
        super().__init__()
        widths = _widths(dim, hidden, depth, code)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        layers: list[nn.Module] = []
        for i, lin in enumerate(self.linears):
            last = i == len(self.linears) - 1
            layers += [lin, activation(code_act if last else act,
                                       "code_activation" if last else "activation")]
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y)  # [B, D] -> [B, K]


class MLPDecoder(nn.Module):
    """ŷ (pre-output-activation) = W'_1 g(… g(W'_K h + b'_K) …) + b'_1, mirroring the encoder."""

    def __init__(self, dim: int, code: int, hidden: int, depth: int, act: str) -> None:
        super().__init__()
        widths = _widths(dim, hidden, depth, code)[::-1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(activation(act))
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)  # [B, K] -> [B, D]


class TiedDecoder(nn.Module):
    """The decoder with W'_i = W_iᵀ: it reuses the encoder's weights (own biases only)."""

    def __init__(self, encoder: MLPEncoder, act: str) -> None:
        super().__init__()
        self._encoder = [encoder]  # a list: not registered twice as a submodule
        self.biases = nn.ParameterList(
            nn.Parameter(lin.weight.new_zeros(lin.in_features)) for lin in encoder.linears[::-1])
        self.act = activation(act)

    def forward(self, h: Tensor) -> Tensor:
        linears = self._encoder[0].linears
        n = len(linears)
        for i, (lin, bias) in enumerate(zip(reversed(linears), self.biases)):
            h = nnf.linear(h, lin.weight.t(), bias)  # [B, out] -> [B, in] with W_iᵀ
            if i < n - 1:
                h = self.act(h)
        return h


def _down(n: int) -> int:
    """Output size of a 3×3, stride-2, padding-1 convolution."""
    return (n - 1) // 2 + 1


class ConvEncoder(nn.Module):
    """Two stride-2 3×3 convolutions (``channels``, then twice that), then a linear map to K."""

    def __init__(self, image_shape: Sequence[int], code: int, channels: int, act: str,
                 code_act: str) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = (c, h, w)
        h2, w2 = _down(_down(h)), _down(_down(w))
        self.conv = nn.Sequential(
            nn.Conv2d(c, channels, 3, stride=2, padding=1), activation(act),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), activation(act))
        self.head = nn.Sequential(nn.Linear(2 * channels * h2 * w2, code),
                                  activation(code_act, "code_activation"))

    def forward(self, y: Tensor) -> Tensor:
        c, h, w = self.image_shape
        img = rearrange(y, "b (c h w) -> b c h w", c=c, h=h, w=w)
        return self.head(self.conv(img).flatten(1))  # [B, D] -> [B, K]


class ConvDecoder(nn.Module):
    """A linear map from K, then two stride-2 transposed convolutions back to ``[C, H, W]``."""

    def __init__(self, image_shape: Sequence[int], code: int, channels: int, act: str) -> None:
        super().__init__()
        c, h, w = image_shape
        h1, w1 = _down(h), _down(w)
        h2, w2 = _down(h1), _down(w1)
        self.grid = (2 * channels, h2, w2)
        self.head = nn.Sequential(nn.Linear(code, math.prod(self.grid)), activation(act))
        # transposed 3×3 stride-2 padding-1 gives 2n − 1 + output_padding: pad to hit n exactly
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 3, stride=2, padding=1,
                               output_padding=(h1 - (2 * h2 - 1), w1 - (2 * w2 - 1))),
            activation(act),
            nn.ConvTranspose2d(channels, c, 3, stride=2, padding=1,
                               output_padding=(h - (2 * h1 - 1), w - (2 * w1 - 1))))

    def forward(self, h: Tensor) -> Tensor:
        ch, gh, gw = self.grid
        grid = rearrange(self.head(h), "b (c h w) -> b c h w", c=ch, h=gh, w=gw)
        return self.deconv(grid).flatten(1)  # [B, K] -> [B, D]
