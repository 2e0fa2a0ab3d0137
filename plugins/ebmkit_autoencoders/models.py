"""Autoencoders as energy-based models: plain (tied or not), denoising, sparse, contractive.

The energy of an autoencoder is its reconstruction cost,

    E(y) = C(y, Dec(Enc(y))),   h = Enc(y) = f(W_x y + b_x),   ŷ = Dec(h) = g(W_h h + b_h),

with C, summed over features, either the binary cross-entropy *minus its floor* (sigmoid
output, data in [0, 1]) or ½‖y − ŷ‖² (identity output, real data). On grey-level data the
cross-entropy −Σ[y log ŷ + (1 − y) log(1 − ŷ)] is at least the entropy H(y) of the target
itself, reached at ŷ = y; that floor says how grey y is, not how well it is reconstructed,
so the energy subtracts it:

    C(y, ŷ) = BCE(y, ŷ) − H(y) = Σ_i KL(Bern(y_i) ‖ Bern(ŷ_i)) ≥ 0,   = 0 iff ŷ = y.

The gradients in the parameters are the BCE's (H(y) does not depend on them); on binary
data H(y) = 0 and C is the BCE. The code h is the latent z, inferred by the encoder
(amortised inference): ž = Enc(y), and F(y) = E(y, Enc(y)) is an upper bound of
min_z E(y, z), not the minimum itself.

Axis letters in shape comments: B batch, D features, K code size.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor

import ebmkit as ek
from ebmkit.config import at_least, one_of
from ebmkit.errors import ConfigError
from ebmkit.model import check_input
from ebmkit.strategies import StepOutput, Strategy

from .corruption import CORRUPTIONS, corruption
from .netconfig import (  # noqa: F401 (re-exported: `models` keeps every name it had)
    SLOTS, AutoencoderConfig, NetConfig, build_decoder, build_encoder, check_net_config,
    data_shape)
from .nets import MLPEncoder, TiedDecoder, activation

__all__ = [
    "Autoencoder",
    "AutoencoderConfig",
    "ContractiveAutoencoder",
    "ContractiveConfig",
    "Denoising",
    "DenoisingAutoencoder",
    "DenoisingConfig",
    "SparseAutoencoder",
    "SparseConfig",
]


def _minus_entropy(y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
    """−H(y) = Σ_i [y_i log y_i + (1 − y_i) log(1 − y_i)] (0 log 0 = 0), ``[B]``: minus the
    floor of the binary cross-entropy against the target y."""
    return (torch.special.xlogy(y, y) + torch.special.xlogy(1 - y, 1 - y)).sum(dim=1)


class LeanArchitectural(ek.strategies.Architectural):
    r"""``ek.strategies.Architectural`` ($L = \frac1B\sum_b F(y_b)$, logs ``e_pos``) for
    models that check their own input: the batch goes straight to ``model.free_energy``
    (whose ``flat`` checks shape, dtype, range and device) and the mean is taken once."""

    def __call__(self, model: Any, batch: dict[str, Tensor]) -> StepOutput:
        if not isinstance(batch, dict) or "y" not in batch:
            raise ConfigError(f"Architectural: expected a batch dict with 'y', got "
                              f"{type(batch).__name__}")
        loss = model.free_energy(batch["y"]).mean()
        return StepOutput(loss, {"e_pos": loss.detach()})


class FamilyBase(ek.EnergyModel):
    """What every model of the family shares: input checks, reconstruct, score, metrics."""

    cfg: NetConfig
    config_class: type[NetConfig] = NetConfig
    slots = SLOTS
    bce: bool = True  # whether y must lie in [0, 1]

    # -- the slots' networks on flat tensors ------------------------------------------------
    def enc(self, y: Tensor) -> Tensor:
        """The encoder on flat ``y`` ``[B, D]`` (reshaped to the data's shape), ``[B, K]``."""
        return self.encoder(y.reshape(y.shape[0], *data_shape(self.cfg)))

    def dec(self, h: Tensor) -> Tensor:
        """The decoder, its output flattened: ``[B, K] -> [B, D]`` (before the output
        activation)."""
        return self.decoder(h).flatten(1)

    # -- inputs --------------------------------------------------------------------------
    _check_values = True  # False inside `trusted_input()`

    @contextlib.contextmanager
    def trusted_input(self) -> Iterator[None]:
        """Inside the block, public calls skip the value check of their input (finite; in
        [0, 1] for BCE): for a caller whose inputs hold by construction and who calls once
        per step, e.g. World Models' agent on preprocessed frames, which saves a host sync
        per step on an accelerator. Shape, dtype and device are still checked."""
        was = self._check_values
        self._check_values = False
        try:
            yield
        finally:
            self._check_values = was

    def flat(self, y: Tensor, what: str = "y") -> Tensor:
        """``y`` as ``[B, D]`` (images ``[B, C, H, W]`` are flattened), checked.

        Raises:
            ConfigError: wrong width or shape, not floating-point, or (BCE cost) values
                outside [0, 1].
        """
        d = self.cfg.dim
        if isinstance(y, Tensor) and y.dim() == 2 and y.shape[1] == d:
            pass  # the common case first
        elif isinstance(y, Tensor) and y.dim() == 4 and self.cfg.image_shape is not None:
            check_input(y, what, shape=(None, *self.cfg.image_shape), finite=False)
            y = y.flatten(1)
        elif not isinstance(y, Tensor) or y.dim() != 2 or y.shape[1] != d:
            image = (f" or [B, {', '.join(map(str, self.cfg.image_shape))}]"
                     if self.cfg.image_shape else "")
            got = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ConfigError(f"{self.name}: {what} must have shape [B, {d}]{image}, got {got}")
        if not y.is_floating_point():
            raise ConfigError(f"{self.name}: {what} must be a floating-point tensor, got {y.dtype}")
        if y.device != self._probe[0].device:
            raise ConfigError(f"{self.name}: {what} is on {y.device} but the model is on "
                              f"{self._probe[0].device}; move one of them")
        if y.shape[0] == 0:
            raise ConfigError(f"{self.name}: {what} is an empty batch (shape {list(y.shape)}); "
                              f"expected at least one sample")
        # Values (finite; in [0, 1] for BCE): one fused pass per public call. On CPU reading
        # the result is free; on an accelerator it is a host sync, so a training step (training
        # mode, autograd on) skips it there: the Trainer's guard catches non-finite losses.
        if self._check_values and (y.device.type == "cpu"
                                   or not (self.training and torch.is_grad_enabled())):
            lo, hi = (t.item() for t in torch.aminmax(y))  # NaN propagates to both
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ConfigError(f"{self.name}: {what} contains NaN or infinite values "
                                  f"(min {lo}, max {hi}); expected finite values")
            if self.bce and (lo < 0 or hi > 1):
                raise ConfigError(
                    f"{self.name}: the binary cross-entropy cost needs {what} in [0, 1], got "
                    f"values in [{float(lo):.4g}, {float(hi):.4g}]; rescale the data to [0, 1] "
                    f"or build the model with cost='mse' (likelihood='gaussian' for the VAE)")
        return y

    # -- the shared interface ------------------------------------------------------------
    def encode(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def reconstruct(self, y: Tensor) -> Tensor:
        """Dec(Enc(y)) in data space, shaped like ``y``; no gradients (use ``decode(encode(y))``
        to train through it)."""
        with torch.no_grad():
            return self.decode(self.encode(y)).reshape(y.shape)

    def score(self, y: Tensor) -> Tensor:
        """Anomaly score: the free energy F(y), ``[B]`` (high = unlike the training data)."""
        with torch.no_grad():
            return self.free_energy(y)

    def metrics(self) -> dict[str, Any]:
        from .metrics import family_metrics

        return {**super().metrics(), **family_metrics(self)}


class Autoencoder(FamilyBase):
    """E(y) = C(y, Dec(Enc(y))): MLP or conv, under- or over-complete, optionally tied."""

    name = "autoencoder"
    config_class: type[NetConfig] = AutoencoderConfig
    cfg: AutoencoderConfig

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        who = self.name
        check_net_config(cfg, who)
        activation(cfg.code_activation, f"{who}: code_activation")
        if cfg.cost not in ("auto", "bce", "mse"):
            raise ConfigError(f"{who}: cost must be 'bce', 'mse' or 'auto', got {cfg.cost!r}")
        in_unit_box = cfg.low >= 0 and cfg.high <= 1
        if cfg.cost == "bce" and not in_unit_box:
            raise ConfigError(f"{who}: cost='bce' needs data in [0, 1], but low={cfg.low}, "
                              f"high={cfg.high}; use cost='mse' for real-valued data")
        self.cost = cfg.cost if cfg.cost != "auto" else ("bce" if in_unit_box else "mse")
        self.bce = self.cost == "bce"
        if cfg.tied and cfg.arch != "mlp":
            raise ConfigError(f"{who}: tied=True needs arch='mlp' (W_h = W_xᵀ), got "
                              f"arch={cfg.arch!r}")
        if cfg.tied and cfg.decoder is not None:
            raise ConfigError(f"{who}: tied=True makes the decoder the encoder's transpose; "
                              f"leave decoder=None, got {ek.networks.slot_record(cfg.decoder)!r}")
        self.cfg = cfg
        self.encoder = build_encoder(cfg, cfg.code, cfg.code_activation, who)
        if cfg.tied and not isinstance(self.encoder, MLPEncoder):
            raise ConfigError(f"{who}: tied=True needs the default MLP encoder (its layers are "
                              f"transposed), got a {type(self.encoder).__name__}")
        self.decoder = (TiedDecoder(self.encoder, cfg.activation) if cfg.tied
                        else build_decoder(cfg, who))
        self._probe = (next(self.encoder.parameters()),)  # .to() moves it in place
        # The energy as an `ek.energies` term, for composing (e.g. `+ 0.1 * L1()`): BCE on
        # logits, or ½‖y − ŷ‖² with the identity output. Kept out of the module tree (a
        # tuple), so the decoder's weights are saved once.
        rec = ek.energies.Reconstruction(self.decoder, self.cost)
        if self.bce:  # BCE − H(y): the cross-entropy minus its floor (see the module docstring)
            rec = rec + ek.energies.Lambda(_minus_entropy, "entropy")
        self._term = (rec if self.bce else 0.5 * rec,)

    @property
    def reconstruction(self) -> Any:
        """E(y, z) = C(y, Dec(z)) as an ``ek.energies`` term (composable, with ``terms()``)."""
        return self._term[0]

    def encode(self, y: Tensor) -> Tensor:
        """h = Enc(y), ``[B, K]`` (y flat ``[B, D]`` or images ``[B, C, H, W]``)."""
        return self.enc(self.flat(y))

    def decode(self, h: Tensor) -> Tensor:
        """ŷ = Dec(h) in data space (sigmoid output for BCE), flat ``[B, D]``."""
        check_input(h, "h", shape=(None, self.cfg.code), device=self.device,
                    finite="auto")
        out = self.dec(h)
        return torch.sigmoid(out) if self.bce else out

    def infer(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """ž = Enc(y): the encoder is the (amortised) inference of the code."""
        return self.encode(y)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, z) = C(y, Dec(z)) with z = Enc(y) by default; ``[B]``. For the ``bce`` cost
        C = BCE(y, ŷ) − H(y), zero at a perfect reconstruction."""
        y = self.flat(y)
        if z is None:
            z = self.enc(y)
        elif not isinstance(z, Tensor) or z.shape != (y.shape[0], self.cfg.code):
            got = list(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ConfigError(f"{self.name}: z must have shape [{y.shape[0]}, {self.cfg.code}], "
                              f"got {got}")
        out = self.dec(z)  # [B, D], before the output activation
        # the same numbers as `self.reconstruction(y, z=z)`, without its re-checks (hot loop)
        if self.bce:  # Σ KL(Bern(y_i) ‖ Bern(ŷ_i)) = BCE − H(y)
            bce = nnf.binary_cross_entropy_with_logits(out, y, reduction="none").sum(dim=1)
            return bce + _minus_entropy(y)
        return 0.5 * (y - out).square().sum(dim=1)  # [B]

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F(y) = C(y, Dec(Enc(y))), ``[B]`` (the input is checked once).

        Amortised: the encoder's code, not a minimisation over z, so F(y) ≥ min_z E(y, z)
        (an upper bound; ``ek.FreeEnergy(model.reconstruction, ek.latent.GradientDescent(...))``
        minimises over z).
        """
        return self.energy(y)

    def default_strategy(self) -> Any:
        """Architectural: the bottleneck (or an explicit regulariser in the subclasses)
        limits the volume of low energy."""
        return LeanArchitectural()


# ---------------------------------------------------------------------------- denoising
@dataclass
class DenoisingConfig(AutoencoderConfig):
    """A denoising autoencoder: trained to map ỹ ~ p(ỹ | y) back to y."""

    corruption: str = "masking"  # "gaussian", "masking" or "salt-and-pepper"
    level: float = 0.5  # σ for gaussian, the fraction of features hit for the others


class Denoising(Strategy):
    r"""The denoising criterion: $L = \frac1B\sum_b C(y_b, \mathrm{Dec}(\mathrm{Enc}(\tilde y_b)))$.

    ỹ = ``corruption(y)``; the cost is against the *clean* y, through the model's
    ``energy(y, z=Enc(ỹ))``. Logs ``e_pos``, that cost (the energy of the clean data,
    ``F(y)``, is the validation ``free_energy`` metric).

    Args:
        corruption: A negative generator with ``k == 1`` (e.g. from
            [`corruption`][ebmkit_autoencoders.corruption.corruption]).
    """

    def __init__(self, corruption: Any) -> None:
        if not callable(corruption) or getattr(corruption, "k", 1) != 1:
            raise ConfigError(f"Denoising: corruption must be a negative generator with k=1, got "
                              f"{corruption!r}")
        self.corruption = corruption

    def __call__(self, model: Any, batch: dict[str, Tensor]) -> StepOutput:
        if not isinstance(batch, dict) or "y" not in batch:
            raise ConfigError(f"Denoising: expected a batch dict with 'y', got "
                              f"{type(batch).__name__}")
        y = model.flat(batch["y"])
        y_tilde = self.corruption(y, model)
        e = model.energy(y, z=model.enc(y_tilde))  # C(y, Dec(Enc(ỹ))), [B]
        return StepOutput(e.mean(), {"e_pos": e.detach().mean()})

    def __repr__(self) -> str:
        return f"Denoising({self.corruption!r})"


class DenoisingAutoencoder(Autoencoder):
    """E(y) = C(y, Dec(Enc(y))), trained on corrupted inputs: the reconstruction maps points
    near the data manifold back onto it."""

    name = "autoencoder.denoising"
    config_class = DenoisingConfig
    cfg: DenoisingConfig

    def __init__(self, cfg: DenoisingConfig) -> None:
        if cfg.corruption not in CORRUPTIONS:
            raise ConfigError(f"{self.name}: unknown corruption {cfg.corruption!r}; expected one "
                              f"of {', '.join(map(repr, CORRUPTIONS))}")
        super().__init__(cfg)
        self.corruption = corruption(cfg.corruption, cfg.level, low=cfg.low, high=cfg.high)

    def corrupt(self, y: Tensor) -> Tensor:
        """ỹ ~ p(ỹ | y), shaped like ``y``."""
        return self.corruption(y, self)

    def negatives(self, k: int = 1) -> Any:
        """The corruption as an ``ek.negatives`` generator with ``k`` copies per sample, for
        ``ek.strategies.Contrastive``."""
        return corruption(self.cfg.corruption, self.cfg.level, low=self.cfg.low,
                          high=self.cfg.high, k=k)

    def default_strategy(self) -> Any:
        """[`Denoising`][ebmkit_autoencoders.models.Denoising] with this model's corruption."""
        return Denoising(self.corruption)


# ------------------------------------------------------------------------------- sparse
@dataclass
class SparseConfig(AutoencoderConfig):
    """``autoencoder.sparse``: PSD (``kind="psd"``, the lecture's) or Ng's (``kind="ng"``).

    ``lam``, ``alpha``, ``steps`` and ``solver`` are PSD's; ``penalty``, ``weight``, ``rho``,
    ``tied`` and ``cost`` are Ng's. ``code_activation="auto"`` is ``identity`` for PSD (signed
    codes) and ``sigmoid`` for Ng's (firing rates).
    """

    kind: str = "psd"  # "psd": E = ½‖y − Wz‖² + λ|z|₁ + ½α‖z − Enc(y)‖²; "ng": KL firing rates
    code: int = 64
    code_activation: str = "auto"
    lam: float = 0.2  # psd: λ, the weight of |z|₁
    alpha: float = 1.0  # psd: α, the weight of ½‖z − Enc(y)‖²
    steps: int = 30  # psd: solver iterations per inference, started at Enc(y)
    solver: str = "fista"  # psd: "fista" or "ista"
    penalty: str = "kl"  # ng: "kl": KL(ρ ‖ ρ̂_j) to a target rate; "l1": λ Σ|h_i|
    weight: float = 0.1  # ng: λ
    rho: float = 0.05  # ng: target rate ρ (kl)


class SparseAutoencoder(Autoencoder):
    """Ng's sparse autoencoder (``kind="ng"``): C(y, Dec(Enc(y))), trained with λ·Ω(h):
    Σ_i |h_i| or Σ_j KL(ρ ‖ ρ̂_j).

    Kept as an option of ``autoencoder.sparse``, whose default is the lecture's predictive
    sparse decomposition (PSD, Kavukcuoglu, Ranzato & LeCun 2008; see
    [`PredictiveSparseDecomposition`][ebmkit_autoencoders.psd.PredictiveSparseDecomposition]):
    there the penalty is *inside* the energy and z is inferred by minimising it. Here the
    penalty is a training regulariser outside the energy — ``energy``/``free_energy``/
    ``score`` are the reconstruction cost alone — z = Enc(y) is amortised, and ``active``
    counts a sigmoid unit as active when h > ½ (a firing-rate reading, not exact zeros).
    """

    name = "autoencoder.sparse"
    config_class = SparseConfig
    cfg: SparseConfig

    def __init__(self, cfg: SparseConfig) -> None:
        who = self.name
        one_of("kind", cfg.kind, ("ng",), who=f"{who} (SparseAutoencoder)")
        if cfg.code_activation == "auto":
            cfg.code_activation = "sigmoid"
        if cfg.penalty not in ("kl", "l1"):
            raise ConfigError(f"{who}: penalty must be 'kl' or 'l1', got {cfg.penalty!r}")
        if not cfg.weight >= 0:
            raise ConfigError(f"{who}: weight must be >= 0, got {cfg.weight!r}")
        if cfg.penalty == "kl":
            if not 0 < cfg.rho < 1:
                raise ConfigError(f"{who}: rho must be in (0, 1), got {cfg.rho!r}")
            if cfg.code_activation != "sigmoid":
                raise ConfigError(f"{who}: penalty='kl' reads the code as firing rates in (0, 1) "
                                  f"and needs code_activation='sigmoid', got "
                                  f"{cfg.code_activation!r}")
        super().__init__(cfg)

    def regularizer(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """Ω(h) per sample, ``[B]``: |h|₁, or (kl) the batch's Σ_j KL(ρ ‖ ρ̂_j) with ρ̂_j the
        mean activation of unit j over the batch, given to every sample."""
        h = self.encode(y) if z is None else z
        if self.cfg.penalty == "l1":
            return h.abs().sum(dim=1)
        rho = self.cfg.rho
        rate = h.mean(dim=0).clamp(1e-6, 1 - 1e-6)  # ρ̂, [K]
        kl = (rho * torch.log(rho / rate)
              + (1 - rho) * torch.log((1 - rho) / (1 - rate))).sum()
        return kl.expand(h.shape[0])

    def active(self, y: Tensor) -> Tensor:
        """Which code units are active, ``[B, K]`` booleans: h > ½ for a sigmoid code,
        |h| > 10⁻³ otherwise."""
        with torch.no_grad():
            h = self.encode(y)
        if self.cfg.code_activation == "sigmoid":
            return h > 0.5
        return h.abs() > 1e-3

    def active_fraction(self, y: Tensor) -> float:
        """The mean fraction of active code units over ``y``."""
        return float(self.active(y).float().mean())

    def default_strategy(self) -> Any:
        """Regularized with weight λ and this model's ``regularizer``."""
        return ek.strategies.Regularized(weight=self.cfg.weight)

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        from ebmkit.metrics import Adapter

        out = super().metrics()
        out["active_fraction"] = Adapter(
            torchmetrics.MeanMetric(), lambda m, b: m.active(b["y"]).float().mean(dim=1))
        return out


# --------------------------------------------------------------------------- contractive
@dataclass
class ContractiveConfig(AutoencoderConfig):
    """A contractive autoencoder: a penalty on the encoder's Jacobian ‖∂h/∂y‖²_F."""

    depth: int = 0
    code_activation: str = "sigmoid"
    weight: float = 0.1  # λ
    jacobian: str = "auto"  # "closed", "exact" (jacrev), "jvp" (random projections), "auto"
    projections: int = 4  # jvp: random directions per sample


class ContractiveAutoencoder(Autoencoder):
    """C(y, Dec(Enc(y))), trained with λ‖∂h/∂y‖²_F."""

    name = "autoencoder.contractive"
    config_class = ContractiveConfig
    cfg: ContractiveConfig

    def __init__(self, cfg: ContractiveConfig) -> None:
        who = self.name
        if cfg.jacobian not in ("auto", "closed", "exact", "jvp"):
            raise ConfigError(f"{who}: jacobian must be 'auto', 'closed', 'exact' or 'jvp', got "
                              f"{cfg.jacobian!r}")
        if not cfg.weight >= 0:
            raise ConfigError(f"{who}: weight must be >= 0, got {cfg.weight!r}")
        at_least("projections", cfg.projections, who=who)
        closed_ok = (cfg.arch == "mlp" and cfg.depth == 0 and cfg.code_activation == "sigmoid"
                     and cfg.encoder is None)
        if cfg.jacobian == "closed" and not closed_ok:
            raise ConfigError(f"{who}: jacobian='closed' is for the default encoder with one "
                              f"sigmoid layer (arch='mlp', depth=0, code_activation='sigmoid', "
                              f"encoder=None); use 'exact' or 'jvp'")
        super().__init__(cfg)
        self.method = cfg.jacobian if cfg.jacobian != "auto" else ("closed" if closed_ok
                                                                   else "exact")

    def jacobian_penalty(self, y: Tensor, h: Tensor | None = None,
                         method: str | None = None) -> Tensor:
        """‖∂h/∂y‖²_F per sample, ``[B]``, differentiable in the parameters.

        ``closed``: for h = σ(Wy + b), ∂h_j/∂y_i = h_j(1 − h_j) W_ji, so
        ‖J‖²_F = Σ_j (h_j(1 − h_j))² Σ_i W_ji². ``exact``: the full Jacobian by
        ``torch.func.jacrev``. ``jvp``: E_v ‖J v‖² = ‖J‖²_F for v ~ N(0, I), estimated with
        ``projections`` forward-mode products (``torch.func.jvp``) — cheap when K is large.
        """
        y = self.flat(y)
        method = method or self.method
        if method == "closed":
            if h is None:
                h = self.enc(y)
            w = self.encoder.linears[0].weight  # [K, D]
            return (h * (1 - h)).square() @ w.square().sum(dim=1)  # [B]
        from torch import func

        if method == "exact":
            def one(v: Tensor) -> Tensor:
                return self.enc(v.unsqueeze(0)).squeeze(0)  # [D] -> [K]

            jac = func.vmap(func.jacrev(one))(y)  # [B, K, D]
            return jac.square().sum(dim=(1, 2))
        p = self.cfg.projections
        rep = y.repeat_interleave(p, dim=0)  # [B·P, D]
        _, jv = func.jvp(self.enc, (rep,), (torch.randn_like(rep),))  # [B·P, K]
        return jv.square().sum(dim=1).reshape(y.shape[0], p).mean(dim=1)

    def regularizer(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """λ's term: ‖∂h/∂y‖²_F, ``[B]``."""
        return self.jacobian_penalty(y, z)

    def jacobian_norm(self, y: Tensor) -> Tensor:
        """‖∂h/∂y‖_F per sample, ``[B]`` (exact, no gradients)."""
        with torch.no_grad():
            return self.jacobian_penalty(y, method="exact").sqrt()

    def default_strategy(self) -> Any:
        """Regularized with weight λ and this model's ``regularizer``."""
        return ek.strategies.Regularized(weight=self.cfg.weight)

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        from ebmkit.metrics import Adapter

        out = super().metrics()
        out["jacobian_norm"] = Adapter(torchmetrics.MeanMetric(),
                                       lambda m, b: m.jacobian_norm(b["y"]))
        return out
