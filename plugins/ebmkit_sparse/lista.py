"""LISTA (Gregor & LeCun 2010) and DrSAE (Rolfe & LeCun 2013): learned, unrolled encoders.

ISTA for E(y, z) = ½‖y − W z‖² + λ|z|₁ iterates z ← h_{λ/L}(z + (1/L) Wᵀ(y − W z)), i.e.

    z_{t+1} = h_θ(W_e y + S z_t),   W_e = Wᵀ/L,   S = I − WᵀW/L,   θ = λ/L,

with h the soft threshold. LISTA unrolls T such steps and *learns* W_e, S and θ (one θ per
unit; S shared across layers or one per layer), initialised at ISTA's values so that the
untrained encoder is ISTA stopped after T steps. DrSAE runs the same recurrence with ReLU
units, z_{t+1} = ReLU(E y + S z_t − b), decodes with a linear dictionary and classifies
from the final code, trained on reconstruction + sparsity + classification.

Axis letters in shape comments: B samples, D features, M code units, T layers, C classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from einops import repeat
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.config import at_least, number, one_of
from ebmkit.errors import ConfigError
from ebmkit.model import check_input

from .coding import check_common, unit_norm_decoder


def soft_threshold(v: Tensor, theta: Tensor) -> Tensor:
    """h_θ(v) = sign(v)·max(|v| − θ, 0)."""
    return v.sign() * nnf.relu(v.abs() - theta)


class LISTAEncoder(nn.Module):
    """T unrolled ISTA steps — exactly T shrinkages — with learned W_e ``[M, D]``, S and
    thresholds θ: z_1 = h_θ₁(W_e y), z_{t+1} = h_θ_{t+1}(W_e y + S_t z_t) for t < T.

    Tied: one S ``[1, M, M]`` and one θ ``[1, M]`` shared by every layer. Untied: S
    ``[T − 1, M, M]`` (the first layer has no S) and θ ``[T, M]``. Every parameter is used
    (for T = 1, S is empty).
    Usable as ``ek.latent.Amortized``.
    """

    def __init__(self, dim: int, atoms: int, layers: int, tied: bool = True) -> None:
        super().__init__()
        self.layers, self.tied = layers, tied
        self.w_e = nn.Parameter(torch.zeros(atoms, dim))
        n_s = min(1, layers - 1) if tied else layers - 1  # T = 1: no recurrence, no S
        self.s = nn.Parameter(torch.zeros(n_s, atoms, atoms))
        self.theta = nn.Parameter(torch.zeros(1 if tied else layers, atoms))

    @torch.no_grad()
    def init_from_dictionary(self, w: Tensor, lam: float) -> None:
        """Start at ISTA: W_e = Wᵀ/L, S = I − WᵀW/L, θ = λ/L with L = ‖W‖₂² (½ scaling).

        The untrained encoder is then ISTA from z_0 = 0 stopped after T iterations."""
        lip = torch.linalg.matrix_norm(w, ord=2).square()
        m = w.shape[1]
        self.w_e.copy_(w.t() / lip)
        self.s.copy_(repeat(torch.eye(m, dtype=w.dtype, device=w.device) - w.t() @ w / lip,
                            "m n -> t m n", t=self.s.shape[0]))
        self.theta.fill_(lam / float(lip))

    def forward(self, y: Tensor) -> Tensor:
        b = y @ self.w_e.t()  # [B, M]
        z = soft_threshold(b, self.theta[0])  # layer 1: ISTA's first step from z_0 = 0
        for t in range(1, self.layers):  # layers 2 … T
            s = self.s[0 if self.tied else t - 1]
            z = soft_threshold(b + z @ s.t(), self.theta[0 if self.tied else t])
        return z


@dataclass
class LISTAConfig:
    """LISTA: a learned T-layer encoder for the sparse-coding energy."""

    dim: int = 64
    atoms: int = 128
    lam: float = 0.5
    layers: int = 5
    tied: bool = True  # one S and θ shared by all layers (False: one per layer)
    target: str = "codes"  # "codes": regress FISTA's optimal codes; "energy": end to end
    fista_steps: int = 300  # iterations of the FISTA teacher (target="codes")
    learn_dictionary: bool = False  # target="energy": also learn W
    seed: int = 0


class LISTA(ek.EnergyModel):
    """The sparse-coding energy with a LISTA encoder as its (amortised) inference.

    ``free_energy(y)`` = E(y, LISTA(y)) is the energy at the encoder's code, an upper bound
    of F∞(y) = min_z E(y, z) (``optimal_codes`` runs FISTA for the minimiser itself)."""

    name = "sparse.lista"
    config_class = LISTAConfig
    cfg: LISTAConfig

    def __init__(self, cfg: LISTAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        check_common(self.name, cfg, ("dim", "atoms", "fista_steps"))
        check_common(self.name, cfg, ("layers",))
        one_of("target", cfg.target, ("codes", "energy"), who=self.name)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.decoder = unit_norm_decoder(cfg.dim, cfg.atoms, gen)
        self.decoder.parametrizations.weight.original.requires_grad_(
            cfg.target == "energy" and cfg.learn_dictionary)
        self.term = 0.5 * ek.energies.Reconstruction(self.decoder) + cfg.lam * ek.energies.L1()
        self.encoder = LISTAEncoder(cfg.dim, cfg.atoms, cfg.layers, cfg.tied)
        self.encoder.init_from_dictionary(self.decoder.weight.detach(), cfg.lam)
        self.teacher = ek.latent.FISTA(dim=cfg.atoms, steps=cfg.fista_steps)

    def set_dictionary(self, w: Tensor) -> None:
        """Use the atoms ``w`` ``[D, M]`` (e.g. from a trained ``sparse.coding``) and restart
        the encoder at ISTA for them."""
        check_input(w, "dictionary", shape=(self.cfg.dim, self.cfg.atoms))
        with torch.no_grad():
            self.decoder.parametrizations.weight.original.copy_(w)
        self.encoder.init_from_dictionary(self.decoder.weight.detach(), self.cfg.lam)

    def solver(self) -> ek.latent.Amortized:
        """The encoder as a core latent solver: ``ek.FreeEnergy(model.term, model.solver())``."""
        return ek.latent.Amortized(self.encoder)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, z) = ½‖y − W z‖² + λ|z|₁, ``[B]``."""
        check_input(y, "y", shape=(None, self.cfg.dim), device=self.device,
                    finite="auto")
        if z is None:
            raise ConfigError("sparse.lista.energy needs z; use free_energy(y)")
        check_input(z, "sparse.lista.energy: z", shape=(y.shape[0], self.cfg.atoms),
                    device=self.device, finite="auto")
        return self.term(y, z=z)

    def infer(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """ž ≈ LISTA(y), ``[B, M]`` (differentiable: the encoder is what is learned)."""
        check_input(y, "y", shape=(None, self.cfg.dim), device=self.device,
                    finite="auto")
        return self.encoder(y)

    encode = infer

    @torch.no_grad()
    def optimal_codes(self, y: Tensor) -> Tensor:
        """The FISTA teacher's codes (``fista_steps`` iterations), ``[B, M]``."""
        return self.teacher(self.term, y)

    def with_targets(self, data: Any) -> Any:
        """``data`` (a ``TensorData``) with the teacher's optimal codes added as ``"z_star"``,
        computed once, so that training regresses them without re-running FISTA."""
        tensors = {"y": data.y, "z_star": self.optimal_codes(data.y.to(self.device)).cpu()}
        if getattr(data, "labels", None) is not None:
            tensors["label"] = data.labels
        return ek.data.TensorData(tensors, name=getattr(data, "name", "data"),
                          split=getattr(data, "split", "train"),
                          image_shape=getattr(data, "image_shape", None))

    def reconstruct(self, y: Tensor) -> Tensor:
        return self.decoder(self.infer(y))

    def default_strategy(self) -> Any:
        return CodeRegression() if self.cfg.target == "codes" else ek.strategies.Architectural()

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        from ebmkit.metrics import Adapter

        metrics = super().metrics()
        metrics["code_mse"] = Adapter(
            torchmetrics.MeanSquaredError(),
            lambda model, batch: (model.infer(batch["y"]), model.optimal_codes(batch["y"])))
        return metrics


class CodeRegression(ek.strategies.Strategy):
    """Train an encoder to predict the optimal codes: L = mean_b ‖f(y_b) − z*(y_b)‖² with
    z* from the batch's ``"z_star"`` when the data carries precomputed codes (fast: see
    ``LISTA.with_targets``), else from the model's FISTA teacher (Gregor & LeCun's first
    training mode)."""

    def __call__(self, model: LISTA, batch: dict[str, Tensor]) -> ek.StepOutput:
        y = batch["y"]
        target = batch.get("z_star")
        if target is None:
            target = model.optimal_codes(y)
        err = (model.infer(y) - target).square().sum(dim=1)
        return ek.StepOutput(err.mean(), {"code_error": err.detach().mean()})

    def __repr__(self) -> str:
        return "CodeRegression()"


# ---------------------------------------------------------------------------------- DrSAE
@dataclass
class DrSAEConfig:
    """DrSAE: recurrent ReLU encoder, linear decoder, classifier on the codes."""

    dim: int = 64
    atoms: int = 256
    lam: float = 0.1  # weight of |z|₁
    layers: int = 5  # recurrent iterations T
    num_classes: int = 10
    classification: float = 1.0  # weight of the cross-entropy
    seed: int = 0


class DrSAE(ek.EnergyModel):
    """Discriminative recurrent sparse autoencoder (Rolfe & LeCun 2013), simplified.

    z_0 = ReLU(E y − b), z_{t+1} = ReLU(E y + S z_t − b) for T steps; the energy of the
    code is E(y, z) = ½‖y − D z‖² + λ|z|₁ with unit-norm decoder columns, and a linear
    classifier reads z_T. Training minimises E(y, z_T) + ``classification``·CE.

    Where this departs from the paper (kept simpler on purpose, and measured as such):

    - the classifier reads the raw code z_T; the paper's logistic regression reads the
      L2-normalised code z_T / ‖z_T‖;
    - reconstruction, sparsity and classification are trained jointly from the first step;
      the paper first trains the unsupervised part alone, then adds the discriminative
      loss;
    - the bias b is a free parameter; the paper keeps the thresholds non-negative;
    - F(y) = E(y, z_T) is the energy at the encoder's code: an upper bound of
      min_z E(y, z), not the minimum (amortised inference).
    """

    name = "sparse.drsae"
    config_class = DrSAEConfig
    cfg: DrSAEConfig

    def __init__(self, cfg: DrSAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        check_common(self.name, cfg, ("dim", "atoms", "layers"))
        at_least("num_classes", cfg.num_classes, 2, who=self.name)
        number("classification (the weight of the cross-entropy)", cfg.classification, low=0.0,
               who=self.name)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.decoder = unit_norm_decoder(cfg.dim, cfg.atoms, gen)
        w = self.decoder.weight.detach()
        lip = float(torch.linalg.matrix_norm(w, ord=2).square())
        self.encoder = nn.Linear(cfg.dim, cfg.atoms)  # E y − b
        self.s = nn.Parameter(torch.eye(cfg.atoms) - w.t() @ w / lip)  # [M, M]
        with torch.no_grad():
            self.encoder.weight.copy_(w.t() / lip)
            self.encoder.bias.fill_(-cfg.lam / lip)
        self.term = 0.5 * ek.energies.Reconstruction(self.decoder) + cfg.lam * ek.energies.L1()
        self.classifier = nn.Linear(cfg.atoms, cfg.num_classes)

    def _check_y(self, y: Tensor) -> Tensor:
        return check_input(y, "y", shape=(None, self.cfg.dim), device=self.device,
                    finite="auto")

    def infer(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """z_T: the recurrent encoder's code, ``[B, M]`` (non-negative, sparse)."""
        b = self.encoder(self._check_y(y))  # [B, M]
        z = nnf.relu(b)
        for _ in range(self.cfg.layers):
            z = nnf.relu(b + z @ self.s.t())
        return z

    encode = infer

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, z) = ½‖y − D z‖² + λ|z|₁, ``[B]``."""
        self._check_y(y)
        if z is None:
            raise ConfigError("sparse.drsae.energy needs z; use free_energy(y)")
        check_input(z, "sparse.drsae.energy: z", shape=(y.shape[0], self.cfg.atoms),
                    device=self.device, finite="auto")
        return self.term(y, z=z)

    def logits(self, y: Tensor) -> Tensor:
        """Class scores from the code, ``[B, C]``."""
        return self.classifier(self.infer(y))

    @torch.no_grad()
    def predict(self, y: Tensor) -> Tensor:
        """Predicted class, ``[B]``."""
        return self.logits(y).argmax(dim=1)

    def reconstruct(self, y: Tensor) -> Tensor:
        return self.decoder(self.infer(y))

    def default_strategy(self) -> Any:
        return DrSAEStrategy(self.cfg.classification)

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        from ebmkit.metrics import Adapter

        metrics = super().metrics()
        metrics["accuracy"] = Adapter(
            torchmetrics.Accuracy(task="multiclass", num_classes=self.cfg.num_classes),
            lambda model, batch: (model.predict(batch["y"]), batch["label"]))
        metrics["zero_fraction"] = Adapter(
            torchmetrics.MeanMetric(), lambda model, batch: (model.infer(batch["y"]) == 0).float())
        return metrics


class DrSAEStrategy(ek.strategies.Strategy):
    """L = mean_b [½‖y − D z_T‖² + λ|z_T|₁] + w · CE(classifier(z_T), label)."""

    def __init__(self, classification: float = 1.0) -> None:
        self.classification = float(classification)

    def __call__(self, model: DrSAE, batch: dict[str, Tensor]) -> ek.StepOutput:
        y, label = batch["y"], batch.get("label")
        if label is None and self.classification > 0:
            raise ConfigError("sparse.drsae trains on labelled data: the batch has no 'label' "
                              "(use a labelled dataset such as digits, or classification=0)")
        z = model.infer(y)
        e = model.energy(y, z=z)
        loss = e.mean()
        logs = {"e_pos": e.detach().mean()}
        if self.classification > 0:
            ce = nnf.cross_entropy(model.classifier(z), label)
            loss = loss + self.classification * ce
            logs["cross_entropy"] = ce.detach()
        return ek.StepOutput(loss, logs)

    def __repr__(self) -> str:
        return f"DrSAEStrategy(classification={self.classification:g})"
