"""Corruptions ỹ ~ p(ỹ | y) for denoising autoencoders, as ``ek.negatives`` generators.

Each corruption follows [`NegativeGenerator`][ebmkit.negatives.NegativeGenerator]: called as
``corrupt(y, model=None, x=None)`` it returns ``[B, ...]`` (``k == 1``) or ``[B, K, ...]``.
A denoising autoencoder learns to map ỹ back to y; read contrastively, the corrupted points
are negatives whose energy goes up, so the same object also plugs into
``ek.strategies.Contrastive(negatives=corruption("masking", 0.5))``.

| name | ỹ | ``level`` |
|---|---|---|
| ``"gaussian"`` | y + σε, clamped to [low, high] | σ |
| ``"masking"`` | each feature set to ``low`` with probability p | p |
| ``"salt-and-pepper"`` | each feature set to ``low`` or ``high`` (½ each) with probability p | p |
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import ebmkit as ek
from ebmkit.errors import ConfigError

__all__ = ["CORRUPTIONS", "SaltAndPepper", "corruption"]

CORRUPTIONS = ("gaussian", "masking", "salt-and-pepper")


class SaltAndPepper:
    """y with a random fraction p of features set to ``low`` or ``high`` (half each).

    Args:
        p: Probability that a feature is replaced.
        low: The "pepper" value.
        high: The "salt" value.
        k: Negatives per sample.
    """

    def __init__(self, p: float = 0.2, low: float = 0.0, high: float = 1.0, k: int = 1) -> None:
        p = ek.config.number("p", p, low=0.0, low_open=True, high=1.0, who="SaltAndPepper")
        k = ek.config.at_least("k", k, who="SaltAndPepper")
        self.p, self.low, self.high, self.k = p, float(low), float(high), k

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        if not isinstance(y, Tensor) or y.dim() == 0:
            raise ConfigError(f"SaltAndPepper: y must be a tensor [B, ...], got "
                              f"{type(y).__name__}")
        y = y.detach()
        if self.k > 1:
            y = y.unsqueeze(1).expand(y.shape[0], self.k, *y.shape[1:])
        u = torch.rand(y.shape, device=y.device)
        out = torch.where(u < self.p / 2, torch.full_like(y, self.low), y)  # pepper
        return torch.where((u >= self.p / 2) & (u < self.p), torch.full_like(y, self.high), out)

    def __repr__(self) -> str:
        return f"SaltAndPepper(p={self.p:g}, low={self.low:g}, high={self.high:g}, k={self.k})"


def corruption(name: str, level: float, *, low: float = 0.0, high: float = 1.0,
               k: int = 1) -> Any:
    """The corruption called ``name`` as a negative generator.

    Args:
        name: ``"gaussian"``, ``"masking"`` or ``"salt-and-pepper"``.
        level: σ for ``"gaussian"``, the fraction p of features hit for the others.
        low: Lower end of the data's range (masked and "pepper" value; Gaussian clamp).
        high: Upper end (the "salt" value; Gaussian clamp).
        k: Corrupted copies per sample.

    Raises:
        ConfigError: an unknown name or a level out of range.
    """
    if name == "gaussian":
        return ek.negatives.GaussianNoise(std=level, k=k, clamp=(low, high))
    if name == "masking":
        return ek.negatives.Masking(p=level, value=low, k=k)
    if name == "salt-and-pepper":
        return SaltAndPepper(p=level, low=low, high=high, k=k)
    raise ConfigError(f"unknown corruption {name!r}; expected one of "
                      f"{', '.join(map(repr, CORRUPTIONS))}")
