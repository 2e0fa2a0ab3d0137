"""Contrastive samples: configurations whose energy training should push up.

A negative generator is any object that follows
[`NegativeGenerator`][ebmkit.negatives.NegativeGenerator]: called as
``gen(y, model=None, x=None)``, it returns negatives shaped like ``y`` (``[B, ...]``, one per
sample) when ``gen.k == 1``, or ``[B, K, ...]`` (K per sample) when ``gen.k == K > 1``.
Negative ``[b, k]`` pairs with the sample's ``x[b]`` when the model is conditional.

::

    ek.negatives.GaussianNoise(std=0.3)(y)               # y + 0.3·ε
    ek.negatives.Shuffle(k=4)(y)                         # [B, 4, ...]: other samples' y
    ek.negatives.FromSampler(ek.samplers.Langevin(steps=20))(y, model)

Everything is created on ``y``'s device and dtype; nothing syncs with the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .errors import ConfigError

if TYPE_CHECKING:
    from .samplers import ReplayBuffer

__all__ = ["FromSampler", "GaussianNoise", "Masking", "NegativeGenerator", "Shuffle", "Uniform",
           "buffer_init", "uniform_like"]


@runtime_checkable
class NegativeGenerator(Protocol):
    """What a contrastive strategy asks of its negatives.

    Attributes:
        k: Negatives per sample. ``1``: the call returns ``[B, ...]``; ``K > 1``: ``[B, K, ...]``.
    """

    k: int

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        """Negatives for the batch ``y`` (``model`` and ``x`` for generators that need them)."""
        ...


def _check_k(k: Any, who: str) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"{who}: k must be an int >= 1, got {k!r}")
    return k


def _check_y(y: Any, who: str) -> Tensor:
    if not isinstance(y, Tensor) or y.dim() == 0:
        got = "a scalar" if isinstance(y, Tensor) else type(y).__name__
        raise ConfigError(f"{who}: y must be a tensor [B, ...], got {got}")
    return y


def _repeat(y: Tensor, k: int) -> Tensor:
    """``y`` for k == 1, else a ``[B, K, ...]`` view (copied by whatever op follows)."""
    return y if k == 1 else y.unsqueeze(1).expand(y.shape[0], k, *y.shape[1:])


def _shape(y: Tensor, k: int) -> tuple[int, ...]:
    return tuple(y.shape) if k == 1 else (y.shape[0], k, *y.shape[1:])


def uniform_like(y: Tensor) -> Tensor:
    """Uniform noise shaped like ``y`` in the batch's range [min y, max y] (no host sync)."""
    lo, hi = y.detach().min(), y.detach().max()
    return lo + (hi - lo) * torch.rand_like(y)


class GaussianNoise:
    """y + σ·ε, ε ~ N(0, I): nearby configurations (denoising-style negatives).

    Args:
        std: σ.
        k: Negatives per sample.
        clamp: ``(lo, hi)`` box to clamp the negatives to, e.g. ``(0.0, 1.0)`` for pixels.
    """

    def __init__(self, std: float = 0.3, k: int = 1,
                 clamp: tuple[float, float] | None = None) -> None:
        if not std > 0:
            raise ConfigError(f"GaussianNoise: std must be > 0, got {std!r}")
        if clamp is not None and (len(clamp) != 2 or not clamp[0] < clamp[1]):
            raise ConfigError(f"GaussianNoise: clamp must be (lo, hi) with lo < hi, got {clamp!r}")
        self.std, self.k, self.clamp = float(std), _check_k(k, "GaussianNoise"), clamp

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        y = _check_y(y, "GaussianNoise").detach()
        out = _repeat(y, self.k) + self.std * torch.randn(_shape(y, self.k), dtype=y.dtype,
                                                          device=y.device)
        return out if self.clamp is None else out.clamp_(*self.clamp)

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std:g}, k={self.k}, clamp={self.clamp})"


class Uniform:
    """Uniform noise in [low, high), shaped like y: configurations far from the data.

    Args:
        low: Lower bound.
        high: Upper bound.
        k: Negatives per sample.
    """

    def __init__(self, low: float = 0.0, high: float = 1.0, k: int = 1) -> None:
        if not low < high:
            raise ConfigError(f"Uniform: expected low < high, got low={low!r}, high={high!r}")
        self.low, self.high, self.k = float(low), float(high), _check_k(k, "Uniform")

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        y = _check_y(y, "Uniform")
        u = torch.rand(_shape(y, self.k), dtype=y.dtype, device=y.device)
        return u.mul_(self.high - self.low).add_(self.low)

    def __repr__(self) -> str:
        return f"Uniform(low={self.low:g}, high={self.high:g}, k={self.k})"


class Masking:
    """y with a random fraction p of its features set to ``value`` (Bernoulli per feature).

    Args:
        p: Probability that a feature is dropped.
        value: What a dropped feature becomes.
        k: Negatives per sample (independent masks).
    """

    def __init__(self, p: float = 0.5, value: float = 0.0, k: int = 1) -> None:
        if not 0.0 < p <= 1.0:
            raise ConfigError(f"Masking: p must be in (0, 1], got {p!r}")
        self.p, self.value, self.k = float(p), float(value), _check_k(k, "Masking")

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        y = _check_y(y, "Masking").detach()
        drop = torch.rand(_shape(y, self.k), device=y.device) < self.p
        return _repeat(y, self.k).masked_fill(drop, self.value)

    def __repr__(self) -> str:
        return f"Masking(p={self.p:g}, value={self.value:g}, k={self.k})"


class Shuffle:
    """The y of other samples in the batch: mismatched (x, y) pairs.

    Negative k of sample b is ``y[(b + r_k) mod B]`` for a random offset r_k ∈ {1, …, B−1}
    (distinct across k while K ≤ B − 1), so no sample ever gets its own y back.

    Args:
        k: Negatives per sample.
    """

    def __init__(self, k: int = 1) -> None:
        self.k = _check_k(k, "Shuffle")

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        y = _check_y(y, "Shuffle").detach()
        b = y.shape[0]
        if b < 2:
            raise ConfigError(f"Shuffle: needs a batch of at least 2 samples to pair each with "
                              f"another's y, got a batch of {b}")
        if self.k <= b - 1:
            offsets = torch.randperm(b - 1, device=y.device)[: self.k] + 1
        else:
            offsets = torch.randint(1, b, (self.k,), device=y.device)
        idx = (torch.arange(b, device=y.device).unsqueeze(1) + offsets) % b   # [B, K]
        return y[idx[:, 0]] if self.k == 1 else y[idx]

    def __repr__(self) -> str:
        return f"Shuffle(k={self.k})"


class FromSampler:
    """Negatives from an MCMC sampler run on the model's free energy.

    Chains start from ``init(y)`` (default: uniform noise in the batch's range) or, with a
    [`ReplayBuffer`][ebmkit.samplers.ReplayBuffer], from stored chains (persistent), and the
    results are pushed back to the buffer. Returns ``[B, ...]`` detached samples (k = 1).

    Args:
        sampler: An object with ``sample(energy, init, x=None)``, e.g. ``ek.samplers.Langevin``.
        buffer: Optional replay buffer for persistent chains.
        init: ``init(y) -> Tensor`` shaped like y: fresh chain starts.
    """

    k = 1

    def __init__(self, sampler: Any, buffer: ReplayBuffer | None = None,
                 init: Callable[[Tensor], Tensor] | None = None) -> None:
        if not callable(getattr(sampler, "sample", None)):
            raise ConfigError(f"FromSampler: sampler must have sample(energy, init, x=None), got "
                              f"{type(sampler).__name__}")
        if init is not None and not callable(init):
            raise ConfigError(f"FromSampler: init must be callable as init(y), got "
                              f"{type(init).__name__}")
        self.sampler, self.buffer, self.init = sampler, buffer, init or uniform_like

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        y = _check_y(y, "FromSampler").detach()
        if model is None:
            raise ConfigError("FromSampler: needs the model whose energy it samples; call it "
                              "as negatives(y, model, x)")
        if self.buffer is None:
            return self.sampler.sample(model, self.init(y), x=x)
        start, idx = self.buffer.sample(y.shape[0], buffer_init(y, self.init))
        out = self.sampler.sample(model, start, x=x)
        self.buffer.push(out, idx)
        return out

    def __repr__(self) -> str:
        return f"FromSampler({self.sampler!r}, buffer={self.buffer!r})"


def buffer_init(y: Tensor, init: Callable[[Tensor], Tensor]) -> Callable[[int], Tensor]:
    """``n -> init(...)`` for a replay buffer: ``init(y)`` when n = B, else on n rows of y."""

    def draw(n: int) -> Tensor:
        if n == y.shape[0]:
            return init(y)
        return init(y[torch.randint(y.shape[0], (n,), device=y.device)])

    return draw
