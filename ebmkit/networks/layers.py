"""Small pieces the built-in networks share: activations by name and the read-out to a shape.

Axis letters in shape comments: B batch, F features, C channels, H height, W width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["ACTIVATIONS", "Readout", "activation", "image_shape"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "elu": nn.ELU, "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid, "softplus": nn.Softplus, "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def activation(name: str, what: str = "activation") -> nn.Module:
    """A new activation module called ``name``; the error lists the choices."""
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ConfigError(f"{what}: expected one of {', '.join(map(repr, ACTIVATIONS))}, "
                          f"got {name!r}") from None


def image_shape(s: Sequence[int], what: str) -> tuple[int, int, int]:
    """``s`` as ``(C, H, W)``; a ConfigError when it is not an image shape."""
    if len(s) != 3:
        raise ConfigError(f"{what}: expected an image shape (C, H, W), got {tuple(s)}; "
                          f"use 'mlp' for vectors")
    return (s[0], s[1], s[2])


class Readout(nn.Module):
    """``[B, F] -> [B, *out_shape]``: one linear map, then a reshape (``()`` gives ``[B]``)."""

    def __init__(self, features: int, out_shape: Sequence[int]) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.linear = nn.Linear(features, math.prod(self.out_shape))

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h).reshape(h.shape[0], *self.out_shape)  # [B, F] -> [B, *out]
