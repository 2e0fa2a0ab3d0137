"""Predictive sparse decomposition (PSD; Kavukcuoglu, Ranzato & LeCun 2008): the sparse
autoencoder of the energy-based lecture, ``autoencoder.sparse``'s default (``kind="psd"``).

The code z is a latent variable of one energy that holds the sparsity penalty *and* the
encoder:

    E(y, z) = ½‖y − W z‖² + λ|z|₁ + ½α‖z − Enc(y)‖²,

with W ``[D, K]`` a linear dictionary of unit-norm atoms and Enc a small network. This is
the paper's ‖y − Wz‖² + λ'|z|₁ + α'‖z − Enc(y)‖² divided by two (λ' = 2λ, α' = α), the
convention of ``sparse.coding`` and of scikit-learn, so λ means the same thing there.

- **Inference** is a true minimisation: ž = argmin_z E(y, z) by the core's
  ``ek.latent.FISTA`` (with adaptive restart; or ``ISTA``), started at the encoder's guess
  Enc(y), on E written as core terms (``objective``). The smooth part is the quadratic
  ½zᵀ(WᵀW + αI)z − zᵀ(Wᵀy + α Enc(y)) + const, so every step is one matrix product and the
  step 1/L uses its exact Lipschitz constant L = ‖W‖₂² + α. ``F(y) = E(y, ž)`` (the
  minimum, up to the solver's tolerance) is the energy, ``score`` and ``free_energy``.
- **Enc(y)** is the *amortised* guess of ž (``encode``): fast, differentiable, and an upper
  bound E(y, Enc(y)) ≥ E(y, ž); their difference is the ``amortisation_gap`` metric.
- **Training** alternates, per batch: ž by FISTA with the parameters fixed, then one
  gradient step on E(y, ž) in the parameters — the decoder learns to reconstruct from ž
  (its atoms kept at unit norm by a parametrisation W = V / ‖V‖ column-wise) and the
  encoder regresses ž (the gradient of ½α‖ž − Enc(y)‖²).

Simpler than the paper on one point, said here: Enc is the family's MLP (``depth`` hidden
layers, identity output), not the paper's G·tanh(W_e y + b) with a diagonal gain G.

Axis letters in shape comments: B batch, D features, K code size (atoms).
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

from .models import FamilyBase, LeanArchitectural, SparseAutoencoder, SparseConfig, \
    build_encoder, check_net_config
from .nets import activation

__all__ = ["PredictiveSparseDecomposition", "sparse_autoencoder"]


class UnitAtoms(nn.Module):
    """Parametrisation W = V / ‖V‖ column-wise: every atom (column) has unit norm."""

    def forward(self, v: Tensor) -> Tensor:
        return v / v.norm(dim=0, keepdim=True).clamp_min(1e-8)


def sparse_autoencoder(**options: Any) -> ek.EnergyModel:
    """``autoencoder.sparse``: PSD (``kind="psd"``, the default) or Ng's firing-rate
    sparse autoencoder (``kind="ng"``), both configured by ``SparseConfig``."""
    kind = options.get("kind", "psd")
    one_of("kind", kind, ("psd", "ng"), who="autoencoder.sparse")
    cls = PredictiveSparseDecomposition if kind == "psd" else SparseAutoencoder
    return cls.from_options(**options)


class PredictiveSparseDecomposition(FamilyBase):
    """PSD: E(y, z) = ½‖y − W z‖² + λ|z|₁ + ½α‖z − Enc(y)‖², ž by FISTA from Enc(y).

    See the module docstring for the maths; ``encode`` is the amortised guess, ``infer``
    the minimiser.
    """

    name = "autoencoder.sparse"
    config_class = SparseConfig
    slots = {"encoder": "autoencoder.mlp_encoder (arch='conv': autoencoder.conv_encoder), "
                        "data shape → (code,): the amortised guess of ž; the dictionary W "
                        "stays linear"}
    cfg: SparseConfig
    bce = False  # the cost is ½‖y − Wz‖²: any real data

    def __init__(self, cfg: SparseConfig) -> None:
        super().__init__()
        who = f"{self.name} (kind='psd')"
        one_of("kind", cfg.kind, ("psd",), who=who)
        check_net_config(cfg, who)
        if cfg.code_activation == "auto":
            cfg.code_activation = "identity"
        activation(cfg.code_activation, f"{who}: code_activation")
        number("lam (λ, the sparsity weight)", cfg.lam, low=0.0, who=who)
        number("alpha (α, the weight of ‖z − Enc(y)‖²)", cfg.alpha, low=0.0, who=who)
        at_least("steps", cfg.steps, who=who)
        one_of("solver", cfg.solver, ("fista", "ista"), who=who)
        if cfg.tied:
            raise ConfigError(f"{who}: tied=True is for kind='ng'; PSD's decoder is a "
                              f"dictionary of unit-norm atoms, not the encoder's transpose")
        if cfg.cost not in ("auto", "mse"):
            raise ConfigError(f"{who}: PSD's reconstruction cost is ½‖y − Wz‖² (cost='mse'); "
                              f"got cost={cfg.cost!r} (the bce cost is for kind='ng')")
        if cfg.decoder is not None:
            raise ConfigError(f"{who}: PSD's decoder is its dictionary W of unit-norm atoms "
                              f"(linear, z ↦ Wz), not a slot; leave decoder=None, got "
                              f"{ek.networks.slot_record(cfg.decoder)!r}")
        self.cfg = cfg
        self.encoder = build_encoder(cfg, cfg.code, cfg.code_activation, who)
        self.decoder = nn.Linear(cfg.code, cfg.dim, bias=False)  # z ↦ W z
        parametrize.register_parametrization(self.decoder, "weight", UnitAtoms())
        self._probe = (next(self.encoder.parameters()),)

    # -- the energy ----------------------------------------------------------------------
    @property
    def dictionary(self) -> Tensor:
        """W ``[D, K]``: the unit-norm atoms as columns."""
        return self.decoder.weight

    def encode(self, y: Tensor) -> Tensor:
        """Enc(y), ``[B, K]``: the encoder's *amortised guess* of ž (not a minimiser)."""
        return self.enc(self.flat(y))

    def decode(self, z: Tensor) -> Tensor:
        """W z, flat ``[B, D]``."""
        check_input(z, "z", shape=(None, self.cfg.code), device=self.device,
                    finite="auto")
        return self.decoder(z)

    def _check_z(self, z: Any, batch: int) -> Tensor:
        if not isinstance(z, Tensor) or z.shape != (batch, self.cfg.code):
            got = list(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ConfigError(f"{self.name}: z must have shape [{batch}, {self.cfg.code}], "
                              f"got {got}")
        return z

    def terms(self, y: Tensor, x: Tensor | None = None,
              z: Tensor | None = None) -> dict[str, Tensor]:
        """The three terms of E(y, z), each ``[B]``: ``reconstruction`` ½‖y − Wz‖²,
        ``sparsity`` λ|z|₁ and ``prediction`` ½α‖z − Enc(y)‖² (z = ž when not given)."""
        y = self.flat(y)
        z = self.infer(y) if z is None else self._check_z(z, y.shape[0])
        return {
            "reconstruction": 0.5 * (y - self.decoder(z)).square().sum(dim=1),
            "sparsity": self.cfg.lam * z.abs().sum(dim=1),
            "prediction": 0.5 * self.cfg.alpha * (z - self.enc(y)).square().sum(dim=1),
        }

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, z), ``[B]``; z = ž (the minimiser, by FISTA) when not given. Differentiable
        in the parameters (what training descends at z = ž)."""
        return sum(self.terms(y, z=z).values())  # type: ignore[return-value]

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F(y) = min_z E(y, z) = E(y, ž), ``[B]`` (up to the solver's ``steps``)."""
        return self.energy(y)

    # -- inference -----------------------------------------------------------------------
    def infer(self, y: Tensor, x: Tensor | None = None, steps: int | None = None,
              init: Tensor | None = None) -> Tensor:
        """ž = argmin_z E(y, z) by FISTA/ISTA from ``init`` (default: the encoder's guess
        Enc(y)), ``[B, K]``, detached.

        Args:
            y: ``[B, D]`` (or images ``[B, C, H, W]``).
            steps: Solver iterations (default ``cfg.steps``).
            init: Where to start (default Enc(y); ``torch.zeros`` for a cold start).
        """
        y = self.flat(y)
        steps = self.cfg.steps if steps is None else at_least("steps", steps, who=self.name)
        with torch.no_grad():
            init = self.enc(y) if init is None else self._check_z(init, y.shape[0])
        # The core's proximal solver on E written in its terms: every smooth term is
        # quadratic in z (a linear decoder, the prediction), so each step is one matrix
        # product with the exact step 1/L, L = ‖W‖₂² + α, and no autograd.
        solver = (ek.latent.FISTA if self.cfg.solver == "fista" else ek.latent.ISTA)(
            steps=steps)
        return solver(self.objective(), y, init=init)

    def objective(self) -> ek.energies.Energy:
        """E(y, z) as a composition of core terms, for the solvers:
        ``0.5·Reconstruction(W) + λ·L1(z) + 0.5·α·LatentPrediction(Enc)``. Built per call
        (a few small modules) so that the networks are not registered twice."""
        energies, cfg = ek.energies, self.cfg
        return (0.5 * energies.Reconstruction(self.decoder) + cfg.lam * energies.L1()
                + 0.5 * cfg.alpha * energies.LatentPrediction(self.enc))

    def reconstruct(self, y: Tensor) -> Tensor:
        """W ž, shaped like ``y``; no gradients."""
        with torch.no_grad():
            return self.decoder(self.infer(y)).reshape(y.shape)

    # -- diagnostics ---------------------------------------------------------------------
    def zero_fraction(self, y: Tensor) -> float:
        """The fraction of exactly-zero entries of ž over ``y`` (the sparsity)."""
        return float((self.infer(y) == 0).float().mean())

    def amortisation_gap(self, y: Tensor) -> Tensor:
        """E(y, Enc(y)) − E(y, ž) per sample, ``[B]``: how much energy the encoder's
        guess leaves above the minimiser (≥ 0 up to the solver's tolerance)."""
        with torch.no_grad():
            return self.energy(y, z=self.encode(y)) - self.energy(y)

    def default_strategy(self) -> Any:
        """Alternating: ž by FISTA (no graph), then a gradient step on E(y, ž) in W and Enc
        (the mean of ``free_energy``, logged as ``e_pos``)."""
        return LeanArchitectural()

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        from ebmkit.metrics import Adapter

        out = super().metrics()
        out["zero_fraction"] = Adapter(
            torchmetrics.MeanMetric(), lambda m, b: (m.infer(b["y"]) == 0).float().mean(dim=1))
        out["amortisation_gap"] = Adapter(
            torchmetrics.MeanMetric(), lambda m, b: m.amortisation_gap(b["y"]))
        return out


#: ``ebmkit models -v``: the slots of ``autoencoder.sparse`` (a function factory).
sparse_autoencoder.slots = {  # type: ignore[attr-defined]
    "encoder": PredictiveSparseDecomposition.slots["encoder"],
    "decoder": "kind='ng' only (PSD's dictionary stays linear): autoencoder.mlp_decoder",
}
