"""Free energy F(x, y): the energy with the latent variable eliminated.

- Zero temperature: F∞(x, y) = min_z E(x, y, z) = E(x, y, ž).
- Temperature 1/β: F_β(x, y) = −1/β · log Σ_z exp(−β E(x, y, z)), a soft minimum over a
  discrete set of latents. F_β ≤ F∞, and F_β → F∞ as β → ∞.

``predict`` is inference over y instead: ŷ = argmin_y F(x, y).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .errors import ConfigError
from .latent import Exhaustive, GradientDescent, Solver

__all__ = ["FreeEnergy", "predict"]


class FreeEnergy(nn.Module):
    """F(x, y) of an energy E(x, y, z) under a latent solver.

    Args:
        energy: An ``ek.energies.Energy`` (or any ``energy(y, x=None, z=None) -> [B]``).
        solver: How to find ž, e.g. ``ek.latent.FISTA(dim=16)`` or ``ek.latent.Exhaustive(codes)``.
        beta: ``None`` for F∞ (min); a positive inverse temperature for the soft-min F_β,
            which needs a discrete solver (``Exhaustive``).

    Examples:
        >>> import torch, ebmkit as ek
        >>> codes = torch.eye(3)                              # z is one-hot over 3 prototypes
        >>> E = ek.energies.Reconstruction(torch.nn.Linear(3, 2))
        >>> F = ek.FreeEnergy(E, ek.latent.Exhaustive(codes))
        >>> F(torch.randn(5, 2)).shape
        torch.Size([5])
    """

    def __init__(self, energy: Callable[..., Tensor], solver: Solver, beta: float | None = None) -> None:
        super().__init__()
        if not callable(energy):
            raise ConfigError(f"FreeEnergy(energy): expected an energy, got {type(energy).__name__}")
        if not isinstance(solver, Solver):
            raise ConfigError(f"FreeEnergy(solver): expected an ek.latent solver (GradientDescent, "
                              f"ISTA, FISTA, Exhaustive, Amortized), got {type(solver).__name__}")
        if beta is not None:
            if not isinstance(beta, (int, float)) or beta <= 0:
                raise ConfigError(f"beta: expected a positive number or None, got {beta!r}")
            if not isinstance(solver, Exhaustive):
                raise ConfigError("a soft-min free energy (beta=...) sums over a discrete set of "
                                  f"latents: use ek.latent.Exhaustive, not {type(solver).__name__}")
        self.energy, self.solver, self.beta = energy, solver, beta

    def infer(self, y: Tensor, x: Tensor | None = None, init: Tensor | None = None) -> Tensor:
        """ž = argmin_z E(x, y, z)."""
        return self.solver(self.energy, y, x=x, init=init)

    def forward(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F(x, y), shape ``[B]``; differentiable with respect to the energy's parameters."""
        if self.beta is not None:
            return self.solver.soft_min(self.energy, y, x=x, beta=self.beta)  # type: ignore[attr-defined]
        return self.energy(y, x=x, z=self.infer(y, x))

    def extra_repr(self) -> str:
        return f"solver={self.solver!r}, beta={self.beta}"


def predict(energy: Callable[..., Tensor], x: Tensor | None, init: Tensor,
            solver: Solver | None = None) -> Tensor:
    """ŷ = argmin_y E(x, y), starting from ``init``.

    Args:
        energy: ``energy(y, x=None, z=None) -> [B]``; a ``FreeEnergy`` works too (its latent
            is then eliminated at every step).
        x: The observed input (``None`` for unconditional energies).
        init: Starting y, ``[B, ...]``.
        solver: Defaults to ``GradientDescent(steps=100, lr=0.1)``.
    """
    solver = solver or GradientDescent(steps=100, lr=0.1)
    if isinstance(energy, FreeEnergy):
        inner = energy
        energy = lambda y, x=None, z=None: inner(y, x=x)  # noqa: E731
    return solver.minimize(energy, "y", {"x": x}, init)
