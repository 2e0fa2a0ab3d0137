"""Sparse coding and group sparse coding: E(y, z) = ½‖y − W z‖² + λ·Ω(z).

Built from core terms: ``0.5 * Reconstruction(W) + lam * L1()`` (``sparse.coding``) or
``+ lam * GroupL1(group_size)`` (``sparse.group``). Inference is ISTA/FISTA from the core,
which takes the exact fast path for the linear decoder (no autograd). The dictionary W
(``[D, M]``, M atoms) keeps unit-norm columns by construction (a parametrisation of the
decoder's weight), so dictionary learning alternates inference (ž by FISTA) and a gradient
step on W under ``ek.Trainer`` with the regularised strategy's energy at ž.

Axis letters in shape comments: B samples, D features, M atoms, G groups, S group size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

import ebmkit as ek
from ebmkit.config import at_least, number, one_of
from ebmkit.errors import ConfigError
from ebmkit.model import check_input


class UnitColumns(nn.Module):
    """Parametrisation W = V / ‖V‖ column-wise: every atom has unit norm."""

    def forward(self, v: Tensor) -> Tensor:
        return v / v.norm(dim=0, keepdim=True).clamp_min(1e-8)


def unit_norm_decoder(dim: int, atoms: int, generator: torch.Generator | None = None) -> nn.Linear:
    """A bias-free linear decoder z ↦ W z with unit-norm random columns."""
    dec = nn.Linear(atoms, dim, bias=False)
    with torch.no_grad():
        dec.weight.copy_(torch.randn(dim, atoms, generator=generator))
    parametrize.register_parametrization(dec, "weight", UnitColumns())
    return dec


def set_dictionary(dec: nn.Linear, w: Tensor) -> None:
    """Set the atoms (columns of ``w`` ``[D, M]``; normalised to unit norm)."""
    with torch.no_grad():
        dec.parametrizations.weight.original.copy_(w)


@dataclass
class SparseCodingConfig:
    """Sparse coding: E(y, z) = ½‖y − W z‖² + lam·|z|₁ with unit-norm atoms."""

    dim: int = 64
    atoms: int = 128
    lam: float = 0.5
    solver: str = "fista"  # "fista" or "ista"
    steps: int = 100  # solver iterations per inference
    seed: int = 0  # initial dictionary


@dataclass
class GroupSparseCodingConfig(SparseCodingConfig):
    """Group sparse coding: E(y, z) = ½‖y − W z‖² + lam·Σ_g ‖z_g‖₂."""

    group_size: int = 4


def check_common(name: str, cfg: Any, ints: tuple[str, ...] = ("dim", "atoms", "steps")) -> None:
    """Positive sizes and λ ≥ 0, with errors that name the option."""
    for key in ints:
        at_least(key, getattr(cfg, key), who=name)
    number("lam (λ, the sparsity weight)", cfg.lam, low=0.0, who=name)


class SparseCoding(ek.EnergyModel):
    """Sparse coding with a learned dictionary (Olshausen & Field 1996)."""

    name = "sparse.coding"
    config_class: type = SparseCodingConfig

    def __init__(self, cfg: SparseCodingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        check_common(self.name, cfg)
        one_of("solver", cfg.solver, ("fista", "ista"), who=self.name)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.decoder = unit_norm_decoder(cfg.dim, cfg.atoms, gen)
        self.penalty = self._penalty()
        self.term = 0.5 * ek.energies.Reconstruction(self.decoder) + cfg.lam * self.penalty
        self.solver = self.make_solver(cfg.steps)

    def _penalty(self) -> ek.energies.Energy:
        return ek.energies.L1()

    def make_solver(self, steps: int, momentum: bool | None = None) -> Any:
        """An ISTA/FISTA solver for this energy with ``steps`` iterations."""
        fista = self.cfg.solver == "fista" if momentum is None else momentum
        cls = ek.latent.FISTA if fista else ek.latent.ISTA
        return cls(dim=self.cfg.atoms, steps=steps)

    @property
    def dictionary(self) -> Tensor:
        """W ``[D, M]``: unit-norm atoms as columns."""
        return self.decoder.weight

    def set_dictionary(self, w: Tensor) -> None:
        """Replace the atoms (columns of ``w`` ``[D, M]``, normalised to unit norm)."""
        check_input(w, "dictionary", shape=(self.cfg.dim, self.cfg.atoms))
        set_dictionary(self.decoder, w.to(self.decoder.weight))

    def _check_y(self, y: Tensor) -> Tensor:
        check_input(y, "y", shape=(None, self.cfg.dim), device=self.device,
                    finite="auto")
        return y

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, z) = ½‖y − W z‖² + λ·Ω(z), ``[B]``."""
        self._check_y(y)
        if z is None:
            raise ConfigError(f"{self.name}.energy needs z [B, {self.cfg.atoms}]; use "
                              f"free_energy(y) to minimise over it")
        check_input(z, f"{self.name}.energy: z", shape=(y.shape[0], self.cfg.atoms),
                    device=self.device, finite="auto")
        return self.term(y, z=z)

    def terms(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> dict[str, Tensor]:
        """Per-term energies (reconstruction, penalty), summing to ``energy``."""
        return self.term.terms(y, z=z)

    def infer(self, y: Tensor, x: Tensor | None = None, steps: int | None = None) -> Tensor:
        """ž = argmin_z E(y, z) by ISTA/FISTA, ``[B, M]`` (detached)."""
        self._check_y(y)
        solver = self.solver if steps is None else self.make_solver(steps)
        with torch.no_grad():
            return solver(self.term, y.detach())

    def encode(self, y: Tensor) -> Tensor:
        """The sparse code ž."""
        return self.infer(y)

    def decode(self, z: Tensor) -> Tensor:
        """W z."""
        check_input(z, f"{self.name}.decode: z", shape=(None, self.cfg.atoms),
                    device=self.device, finite="auto")
        return self.decoder(z)

    def reconstruct(self, y: Tensor) -> Tensor:
        """W ž."""
        return self.decoder(self.infer(y))

    def regularizer(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """λ·Ω(z): the penalty part of the energy (for ``Regularized``)."""
        return self.cfg.lam * self.penalty(y, z=z)

    def default_strategy(self) -> Any:
        # Dictionary learning: ž by FISTA (no graph), then a gradient step on W of
        # E(y, ž) = ½‖y − Wž‖² + λΩ(ž); the penalty does not depend on W, so the
        # regulariser only shows in the logs.
        return ek.strategies.Architectural()

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        from ebmkit.metrics import Adapter

        metrics = super().metrics()
        metrics["reconstruction_mse"] = Adapter(
            torchmetrics.MeanSquaredError(),
            lambda model, batch: (model.reconstruct(batch["y"]), batch["y"]))
        metrics["zero_fraction"] = Adapter(
            torchmetrics.MeanMetric(), lambda model, batch: (model.infer(batch["y"]) == 0).float())
        return metrics


class GroupSparseCoding(SparseCoding):
    """Group sparse coding: the penalty Σ_g ‖z_g‖₂ switches whole groups on or off, and the
    pooled magnitudes ‖z_g‖₂ are features invariant to what varies inside a group."""

    name = "sparse.group"
    config_class = GroupSparseCodingConfig

    def __init__(self, cfg: GroupSparseCodingConfig) -> None:
        if not isinstance(cfg.group_size, int) or cfg.group_size <= 0 or cfg.atoms % cfg.group_size:
            raise ConfigError(f"sparse.group: group_size must be a positive int dividing atoms="
                              f"{cfg.atoms}, got {cfg.group_size!r}")
        super().__init__(cfg)

    def _penalty(self) -> ek.energies.Energy:
        return ek.energies.GroupL1(self.cfg.group_size)

    def pooled(self, y: Tensor) -> Tensor:
        """Group magnitudes ‖ž_g‖₂, ``[B, G]``: the invariant features."""
        return self.penalty.group_norms(self.infer(y))


def shift_image(y: Tensor, dx: int, image_shape: tuple[int, int] = (8, 8)) -> Tensor:
    """Images ``[B, H·W]`` shifted ``dx`` pixels to the right (left when negative), zero-filled."""
    h, w = image_shape
    im = y.reshape(-1, h, w)
    out = torch.zeros_like(im)
    if dx > 0:
        out[:, :, dx:] = im[:, :, :-dx]
    elif dx < 0:
        out[:, :, :dx] = im[:, :, -dx:]
    else:
        out = im.clone()
    return out.reshape(y.shape)


def shift_group_dictionary(patterns: Tensor, shifts: tuple[int, ...] = (-1, 0, 1, 2),
                           image_shape: tuple[int, int] = (8, 8)) -> Tensor:
    """A group-structured dictionary ``[D, P·S]``: group p holds pattern p at each shift.

    With ``group_size=len(shifts)``, a shifted input moves activity between the units of a
    group, so the group magnitudes ‖z_g‖₂ barely change: shift-invariant pooled features.
    """
    atoms = torch.stack([shift_image(patterns, s, image_shape) for s in shifts], dim=1)  # [P, S, D]
    return atoms.reshape(-1, patterns.shape[1]).t().contiguous()
