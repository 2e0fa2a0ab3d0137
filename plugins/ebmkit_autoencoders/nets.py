"""Encoders and decoders shared by the autoencoder family: MLP (optionally tied) and conv.

They are the family's default networks, registered as ``autoencoder.mlp_encoder``,
``autoencoder.mlp_decoder``, ``autoencoder.conv_encoder`` and ``autoencoder.conv_decoder``
(the factories at the end take a slot's ``in_shape``/``out_shape``). Encoders read
``[B, *in_shape]`` (flat ``[B, D]`` or images ``[B, C, H, W]``: both are accepted) and
decoders write ``[B, *out_shape]``; the models flatten around them, so their costs and
metrics handle one layout.

Axis letters in shape comments: B batch, D features, K code size, C channels, H height,
W width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.errors import ConfigError

__all__ = ["ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder",
           "TiedDecoder", "activation", "conv_decoder", "conv_encoder", "mlp_decoder",
           "mlp_encoder"]

#: Activations by name (relu, silu, gelu, elu, tanh, sigmoid, softplus, leaky_relu, identity):
#: the networks registry's, so every family's networks take the same names.
activation = ek.networks.activation


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
        return self.net(y.flatten(1))  # [B, D] or [B, C, H, W] -> [B, K]


class MLPDecoder(nn.Module):
    """ŷ (pre-output-activation) = W'_1 g(… g(W'_K h + b'_K) …) + b'_1, mirroring the encoder."""

    def __init__(self, dim: int, code: int, hidden: int, depth: int, act: str,
                 out_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape) if out_shape is not None else (dim,)
        widths = _widths(dim, hidden, depth, code)[::-1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(activation(act))
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h).reshape(h.shape[0], *self.out_shape)  # [B, K] -> [B, *out_shape]


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
        img = y.reshape(y.shape[0], *self.image_shape)  # [B, D] or [B, C, H, W]
        return self.head(self.conv(img).flatten(1))  # -> [B, K]


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
        grid = self.head(h).reshape(h.shape[0], *self.grid)
        return self.deconv(grid)  # [B, K] -> [B, C, H, W]


# -- the registered factories: a slot's shapes plus the family's options -------------------
def _vector(shape: Sequence[int], what: str) -> int:
    if len(shape) != 1:
        raise ConfigError(f"{what}: expected a vector shape (K,), got {tuple(shape)}")
    return int(shape[0])


def mlp_encoder(*, in_shape: Sequence[int], out_shape: Sequence[int], hidden: int = 128,
                depth: int = 1, activation: str = "relu",
                code_activation: str = "identity") -> MLPEncoder:
    """The autoencoders' MLP encoder: any input (flattened) → (K,), with a code activation."""
    k = _vector(out_shape, "network 'autoencoder.mlp_encoder': out_shape")
    return MLPEncoder(math.prod(in_shape), k, hidden, depth, activation, code_activation)


def mlp_decoder(*, in_shape: Sequence[int], out_shape: Sequence[int], hidden: int = 128,
                depth: int = 1, activation: str = "relu") -> MLPDecoder:
    """The autoencoders' MLP decoder: (K,) → any output shape, mirroring the encoder."""
    k = _vector(in_shape, "network 'autoencoder.mlp_decoder': in_shape")
    return MLPDecoder(math.prod(out_shape), k, hidden, depth, activation, out_shape)


def conv_encoder(*, in_shape: Sequence[int], out_shape: Sequence[int], channels: int = 16,
                 activation: str = "relu", code_activation: str = "identity") -> ConvEncoder:
    """The autoencoders' conv encoder: (C, H, W) → (K,), two stride-2 3×3 convolutions."""
    k = _vector(out_shape, "network 'autoencoder.conv_encoder': out_shape")
    return ConvEncoder(_image(in_shape, "conv_encoder"), k, channels, activation, code_activation)


def conv_decoder(*, in_shape: Sequence[int], out_shape: Sequence[int], channels: int = 16,
                 activation: str = "relu") -> ConvDecoder:
    """The autoencoders' conv decoder: (K,) → (C, H, W), two stride-2 transposed convolutions."""
    k = _vector(in_shape, "network 'autoencoder.conv_decoder': in_shape")
    return ConvDecoder(_image(out_shape, "conv_decoder"), k, channels, activation)


def _image(shape: Sequence[int], name: str) -> Any:
    if len(shape) != 3:
        raise ConfigError(f"network 'autoencoder.{name}': expected an image shape (C, H, W), "
                          f"got {tuple(shape)}; use the mlp networks for vectors")
    return tuple(shape)
