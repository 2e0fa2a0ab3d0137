"""2-D toy densities with known log-densities, for likelihood checks of energy models.

Each toy is a sampling process written out in torch, together with the density of exactly
that process, so a model's learned density can be scored against the truth:

| name | process | log-density |
|---|---|---|
| ``eight-gaussians`` | equal mixture of 8 isotropic Gaussians (σ 0.25) on a circle of radius 2√2 | closed form |
| ``rings`` | 3 concentric rings, radii 1, 2, 3, weights ∝ radius, radial noise σ 0.1 | closed form |
| ``checkerboard`` | uniform on the 8 "black" 2×2 squares of [-4, 4)² | closed form (−log 32 or −inf) |
| ``moons`` | scikit-learn's two half circles, scaled ×2 and centred, + isotropic noise σ 0.2 | quadrature |
| ``swiss-roll`` | spiral t·(cos t, sin t)/4, t ∈ [1.5π, 4.5π], + isotropic noise σ 0.2 | quadrature |

The curve toys have density p(y) = Σ_k w_k ∫₀¹ N(y; c_k(u), σ²I) du, which has no closed
form; it is evaluated by the midpoint rule (4,096 nodes for moons, 8,192 for the longer swiss
roll), accurate to ~1e-4 in log-density wherever the density is not negligible (measured
against 65,536 nodes: ≤ 6e-5 on samples, ≤ 2e-4 where log p > −10). Far out in the tails the
error grows, to ~5e-3 in the corners of the bounding box, many σ from any curve.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, UnknownNameError
from .base import TensorData

__all__ = ["TOYS", "ToyData", "toy"]

Bounds = tuple[tuple[float, float], tuple[float, float]]
_LOG_2PI = math.log(2 * math.pi)
_CHUNK_ELEMENTS = 1 << 21  # rows × nodes per quadrature chunk: ~8 MB per float32 temporary
_DEFAULT_N = {"train": 10_000, "test": 2_000}


# ------------------------------------------------------------------------- densities
class _Density:
    """A sampling process and its log-density (internal; wrapped by ToyData)."""

    bounds: Bounds = ((-4.0, 4.0), (-4.0, 4.0))
    exact: bool = True

    def sample(self, n: int, gen: torch.Generator) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def log_prob(self, y: Tensor, nodes: int | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class _EightGaussians(_Density):
    radius: float = 2 * math.sqrt(2)
    sigma: float = 0.25

    def _centres(self, like: Tensor) -> Tensor:
        angle = torch.arange(8, device=like.device, dtype=like.dtype) * (math.pi / 4)
        return self.radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # [8, 2]

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        k = torch.randint(0, 8, (n,), generator=gen)
        noise = torch.randn(n, 2, generator=gen)
        return self._centres(noise)[k] + self.sigma * noise

    def log_prob(self, y: Tensor, nodes: int | None) -> Tensor:
        d2 = (y[:, None, :] - self._centres(y)[None]).square().sum(-1)  # [B, 8]
        log_norm = math.log(8) + _LOG_2PI + 2 * math.log(self.sigma)
        return torch.logsumexp(-0.5 * d2 / self.sigma**2, dim=1) - log_norm


@dataclass(frozen=True)
class _Rings(_Density):
    radii: tuple[float, ...] = (1.0, 2.0, 3.0)
    sigma: float = 0.1

    def _log_weights(self, like: Tensor) -> Tensor:
        r = torch.tensor(self.radii, device=like.device, dtype=like.dtype)
        return (r / r.sum()).log()

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        weights = torch.tensor(self.radii) / sum(self.radii)
        k = torch.multinomial(weights, n, replacement=True, generator=gen)
        r = torch.tensor(self.radii)[k] + self.sigma * torch.randn(n, generator=gen)
        theta = 2 * math.pi * torch.rand(n, generator=gen)
        return r[:, None] * torch.stack([theta.cos(), theta.sin()], dim=1)

    def log_prob(self, y: Tensor, nodes: int | None) -> Tensor:
        # ρ = |y| has density Σ w_k [N(ρ; r_k, σ) + N(−ρ; r_k, σ)] (a negative radius draw
        # lands at angle θ+π), and the uniform angle spreads it over a circle of length 2πρ.
        # At ρ = 0 the density is singular (integrable); clamping keeps the log finite.
        rho = torch.linalg.vector_norm(y, dim=1).clamp_min(torch.finfo(y.dtype).tiny)
        r = torch.tensor(self.radii, device=y.device, dtype=y.dtype)
        z = torch.stack([rho[:, None] - r, rho[:, None] + r], dim=-1) / self.sigma  # [B,K,2]
        log_n = -0.5 * z.square() - math.log(self.sigma) - 0.5 * _LOG_2PI
        log_n = log_n + self._log_weights(y)[:, None]
        return torch.logsumexp(log_n.flatten(1), dim=1) - _LOG_2PI - rho.log()


@dataclass(frozen=True)
class _Checkerboard(_Density):
    # Squares are 2×2 cells (i, j) = floor(y / 2) of [-4, 4)²; "black" when i + j is even.
    # floor(y / 2) is exact in binary floating point (y + 4 would round near the edges),
    # so sample and log_prob always agree on the cell.

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        x1 = -4 + 8 * torch.rand(n, generator=gen)
        x1 = torch.minimum(x1, torch.nextafter(torch.tensor(4.0), torch.tensor(0.0)))
        col = torch.floor(x1 / 2)  # -2 .. 1
        # the two black rows of this column: same parity as the column
        row = 2 * torch.randint(0, 2, (n,), generator=gen) - 2 + col.remainder(2)
        lo = 2 * row
        x2 = lo + 2 * torch.rand(n, generator=gen)
        x2 = torch.minimum(x2, torch.nextafter(lo + 2, lo))  # rounding must not leave the cell
        return torch.stack([x1, x2], dim=1)

    def log_prob(self, y: Tensor, nodes: int | None) -> Tensor:
        inside = ((y >= -4) & (y < 4)).all(dim=1)
        black = torch.floor(y / 2).sum(dim=1).remainder(2) == 0
        out = torch.full_like(y[:, 0], -math.log(32.0))  # 8 squares of area 4
        return out.masked_fill(~(inside & black), -math.inf)


@dataclass(frozen=True)
class _NoisyCurves(_Density):
    """Equal mixture over ``curves`` of c_k(u), u ~ U[0, 1], plus N(0, σ²I) noise."""

    curves: tuple[Callable[[Tensor], Tensor], ...]
    sigma: float
    bounds: Bounds = ((-4.0, 4.0), (-4.0, 4.0))
    nodes: int = 4096  # default midpoint-rule nodes, all curves together
    exact: bool = False

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        k = torch.randint(0, len(self.curves), (n,), generator=gen)
        u = torch.rand(n, generator=gen)
        points = torch.stack([c(u) for c in self.curves])  # [K, n, 2]
        on_curve = points[k, torch.arange(n)]
        return on_curve + self.sigma * torch.randn(n, 2, generator=gen)

    def log_prob(self, y: Tensor, nodes: int | None) -> Tensor:
        per_curve = max(1, (nodes or self.nodes) // len(self.curves))
        u = (torch.arange(per_curve, device=y.device, dtype=y.dtype) + 0.5) / per_curve
        c = torch.cat([curve(u) for curve in self.curves])  # [M, 2], equal weights
        # mean of the Gaussian over nodes = logsumexp − log M
        log_norm = math.log(len(c)) + _LOG_2PI + 2 * math.log(self.sigma)
        scale = -0.5 / self.sigma**2
        rows = max(1, _CHUNK_ELEMENTS // len(c))
        out = []
        for chunk in y.split(rows):
            # explicit differences, not |y|²−2y·c+|c|², which cancels badly in float32
            d2 = (chunk[:, :1] - c[:, 0]).square_() + (chunk[:, 1:] - c[:, 1]).square_()
            out.append(torch.logsumexp(d2.mul_(scale), dim=1))
        return torch.cat(out) - log_norm


def _moon_outer(u: Tensor) -> Tensor:
    t = math.pi * u  # scikit-learn's make_moons, centred on (0.5, 0.25) and scaled ×2
    return 2 * torch.stack([t.cos() - 0.5, t.sin() - 0.25], dim=-1)


def _moon_inner(u: Tensor) -> Tensor:
    t = math.pi * u
    return 2 * torch.stack([0.5 - t.cos(), 0.25 - t.sin()], dim=-1)


def _swiss_roll(u: Tensor) -> Tensor:
    t = 1.5 * math.pi * (1 + 2 * u)  # as scikit-learn's make_swiss_roll, scaled by 1/4
    return 0.25 * t[..., None] * torch.stack([t.cos(), t.sin()], dim=-1)


_DENSITIES: dict[str, _Density] = {
    "moons": _NoisyCurves((_moon_outer, _moon_inner), sigma=0.2),
    "rings": _Rings(),
    "eight-gaussians": _EightGaussians(),
    # the roll is ~1.8× longer than the moons together: twice the nodes for the same accuracy
    "swiss-roll": _NoisyCurves(
        (_swiss_roll,), sigma=0.2, bounds=((-4.5, 4.5), (-4.5, 4.5)), nodes=8192
    ),
    "checkerboard": _Checkerboard(),
}

TOYS: tuple[str, ...] = tuple(_DENSITIES)
"""Names accepted by [`toy`][ebmkit.data.toys.toy]."""


# ----------------------------------------------------------------------------- data
class ToyData(TensorData):
    """A 2-D toy dataset that also knows its true log-density.

    Attributes:
        bounds: ``((x1_lo, x1_hi), (x2_lo, x2_hi))``, a box holding essentially all the
            mass (for plots and grid integration).
        exact: Whether [`log_prob`][ebmkit.data.toys.ToyData.log_prob] is closed form
            (``False`` for the quadrature toys ``moons`` and ``swiss-roll``).
    """

    def __init__(
        self,
        tensors: dict[str, Tensor],
        *,
        name: str,
        split: str,
        density: _Density,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(tensors, name=name, split=split, meta=meta)
        self._density = density

    @property
    def bounds(self) -> Bounds:
        """A box ``((x1_lo, x1_hi), (x2_lo, x2_hi))`` holding essentially all the mass."""
        return self._density.bounds

    @property
    def exact(self) -> bool:
        """``True`` for closed-form log-densities, ``False`` for quadrature."""
        return self._density.exact

    def log_prob(self, y: Tensor, *, quadrature_points: int | None = None) -> Tensor:
        """The true log-density of the sampling process at each point.

        Args:
            y: Points, shape ``[B, 2]``, floating point, on any device.
            quadrature_points: Midpoint-rule nodes for ``moons`` / ``swiss-roll`` (shared
                equally between their curves; default 4,096 for moons, 8,192 for the
                longer swiss roll); ignored by the exact toys. The error falls as 1/nodes².

        Returns:
            ``[B]`` on ``y``'s device and dtype (half precisions are computed in float32).
            ``-inf`` where the density is zero (off the checkerboard's black squares).

        Raises:
            ConfigError: ``y`` is not a floating ``[B, 2]`` tensor, or
                ``quadrature_points`` is not a positive integer.
        """
        if not isinstance(y, Tensor) or y.dim() != 2 or y.shape[1] != 2:
            got = f"shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
            raise ConfigError(f"{self.name}.log_prob expects y of shape [B, 2], got {got}.")
        if not y.is_floating_point():
            raise ConfigError(
                f"{self.name}.log_prob expects floating-point y, got {y.dtype}; "
                f"convert with y.float()."
            )
        if quadrature_points is not None and (
            isinstance(quadrature_points, bool)
            or not isinstance(quadrature_points, int)
            or quadrature_points < 1
        ):
            raise ConfigError(
                f"quadrature_points must be a positive integer, got {quadrature_points!r}."
            )
        work = y if y.dtype in (torch.float32, torch.float64) else y.float()
        return self._density.log_prob(work, quadrature_points).to(y.dtype)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` fresh points ``[n, 2]`` (float32, CPU) from the same process."""
        _check_n(n)
        gen = generator if generator is not None else torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, ()).item())  # follow torch's global seed
        )
        return self._density.sample(n, gen)


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"n must be a positive integer number of points, got {n!r}.")


def _derived_seed(name: str, split: str, seed: int) -> int:
    """A stable 63-bit seed per (name, split, seed): splits differ, reruns agree."""
    digest = hashlib.sha256(f"ebmkit.toy|{name}|{split}|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def toy(name: str, split: str = "train", n: int | None = None, seed: int = 0) -> ToyData:
    """Sample a 2-D toy dataset whose true density is known.

    The train and test splits are drawn from generators seeded from ``(name, split, seed)``,
    so they differ, and the same arguments always give identical data.

    Args:
        name: One of [`TOYS`][ebmkit.data.toys.TOYS]: ``moons``, ``rings``,
            ``eight-gaussians``, ``swiss-roll``, ``checkerboard``.
        split: ``"train"`` or ``"test"``.
        n: Number of points; default 10,000 for train and 2,000 for test.
        seed: Base seed.

    Returns:
        ToyData with ``y`` float32 ``[n, 2]`` (all inside roughly [-4, 4]²), plus
        ``log_prob``, ``bounds`` and ``exact``.

    Raises:
        UnknownNameError: ``name`` is not a toy.
        ConfigError: ``split`` is not ``"train"``/``"test"``, or ``n`` ≤ 0.

    Examples:
        >>> from ebmkit.data import toy
        >>> data = toy("eight-gaussians", n=100)
        >>> data.log_prob(data.y).shape
        torch.Size([100])
    """
    if name not in _DENSITIES:
        raise UnknownNameError("dataset", name, TOYS)
    if split not in _DEFAULT_N:
        raise ConfigError(f"toy split must be 'train' or 'test'; got {split!r}.")
    n = _DEFAULT_N[split] if n is None else n
    _check_n(n)
    density = _DENSITIES[name]
    gen = torch.Generator().manual_seed(_derived_seed(name, split, seed))
    y = density.sample(n, gen).to(torch.float32).contiguous()
    return ToyData({"y": y}, name=name, split=split, density=density, meta={"seed": seed})
