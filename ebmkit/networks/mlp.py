"""``mlp``: a multi-layer perceptron from any shape to any shape (inputs are flattened)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ..config import at_least
from .layers import Readout, activation

__all__ = ["MLP", "mlp"]


class MLP(nn.Module):
    """``[B, *in_shape] -> [B, *out_shape]``: flatten, ``depth`` hidden layers of width
    ``hidden`` with ``activation``, a linear read-out, then ``out_activation``.

    With ``depth=0`` it is one linear map (an affine encoder or decoder).
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], hidden: int = 256,
                 depth: int = 2, activation: str = "relu",
                 out_activation: str = "identity") -> None:
        super().__init__()
        at_least("hidden", hidden, 1, who="network 'mlp'")
        at_least("depth", depth, 0, who="network 'mlp'")
        width = math.prod(in_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), _act(activation)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = Readout(width, out_shape)
        self.out_act = _act(out_activation, "out_activation")

    def forward(self, y: Tensor) -> Tensor:
        return self.out_act(self.head(self.body(y)))


def _act(name: str, what: str = "activation") -> nn.Module:
    return activation(name, f"network 'mlp': {what}")


def mlp(*, in_shape: Sequence[int], out_shape: Sequence[int], hidden: int = 256, depth: int = 2,
        activation: str = "relu", out_activation: str = "identity") -> MLP:
    """A multi-layer perceptron; any shapes (inputs flattened, outputs reshaped)."""
    return MLP(in_shape, out_shape, hidden, depth, activation, out_activation)
