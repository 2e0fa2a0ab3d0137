"""``hopfield.classical``: the binary Hopfield network (Hopfield 1982), the baseline.

Patterns are ±1 vectors s. Storing N of them builds symmetric weights with a zero diagonal,

    Hebbian:     W = (1/N) Σ_μ x_μ x_μᵀ
    covariance:  W = (1/N) Σ_μ (x_μ − m)(x_μ − m)ᵀ,   m the mean pattern,

and the energy of a state is E(s) = −½ sᵀ W s. Asynchronous updates visit the units one at
a time (a random order per sweep) and set s_i ← sign(Σ_j W_ij s_j); with W symmetric and
its diagonal zero, no such flip raises E (Hopfield 1982). A query entry of 0 means
"unknown": it contributes nothing to the fields until its unit is visited.

Capacity is the point of this baseline: about 0.14·D random patterns for D units, far fewer
for correlated ones such as digits, where the states fall into spurious mixtures. The modern
network (``hopfield``) stores exponentially many.

Axis letters in shape comments: B queries, N stored patterns, D units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import ebmkit as ek
from ebmkit.errors import ConfigError

from .hopfield import _StoreStrategy, _check_memory_options

__all__ = ["ClassicalHopfield", "ClassicalHopfieldConfig"]

RULES = ("hebbian", "covariance")


@dataclass
class ClassicalHopfieldConfig:
    """The binary Hopfield network's options. Data that is not ±1 (e.g. pixels in [0, 1]) is
    binarised at ``threshold``: +1 where y ≥ threshold, else −1."""

    dim: int = 64
    rule: str = "hebbian"
    steps: int = 10  # asynchronous sweeps (each visits every unit once) of retrieve()
    threshold: float = 0.5
    hidden: float = 0.5  # fraction of entries the retrieval metric hides
    seed: int = 0  # the update order and the metric's masks
    stored: int = 0  # N, kept up to date by store(): how a saved memory is rebuilt before loading


class ClassicalHopfield(ek.EnergyModel):
    """The binary Hopfield network: Hebbian (or covariance) weights, E(s) = −½ sᵀWs,
    asynchronous sign updates.

    Example:
        >>> import torch, ebmkit as ek
        >>> X = torch.tensor([[1., 1, -1, -1, 1, -1], [-1., 1, 1, -1, -1, 1]])
        >>> net = ek.get_model("hopfield.classical", dim=6).store(X)
        >>> net.retrieve(torch.tensor([[1., 1, 0, 0, 0, 0]]))
        tensor([[ 1.,  1., -1., -1.,  1., -1.]])
    """

    name = "hopfield.classical"
    config_class = ClassicalHopfieldConfig

    def __init__(self, cfg: ClassicalHopfieldConfig) -> None:
        super().__init__()
        who = "hopfield.classical"
        ek.config.one_of("rule", cfg.rule, RULES, who=who)
        ek.config.number("threshold", cfg.threshold, who=who)
        _check_memory_options(cfg, who)
        self.cfg = cfg
        self.register_buffer("patterns", torch.zeros(cfg.stored, cfg.dim))  # X [N, D], ±1
        self.register_buffer("weight", torch.zeros(cfg.dim, cfg.dim))  # W [D, D]

    @property
    def size(self) -> int:
        """N, the number of stored patterns."""
        return int(self.patterns.shape[0])

    def binarize(self, y: Tensor) -> Tensor:
        """±1 patterns from data: +1 where y ≥ threshold, else −1 (±1 input is unchanged)."""
        return torch.where(y >= self.cfg.threshold, 1.0, -1.0).to(y.dtype)

    def _check(self, y: Any, who: str, finite: bool = True) -> Tensor:
        """``y`` checked: a tensor ``[B, dim]``, B ≥ 1, on the memory's device."""
        return ek.model.check_input(y, f"hopfield.classical.{who}", shape=(None, self.cfg.dim),
                                    device=self.weight.device, finite=finite)

    @torch.no_grad()
    def store(self, X: Any) -> ClassicalHopfield:
        """Replace the memory with the ±1 rows of ``X`` ``[N, D]`` and rebuild W. Returns self.

        Raises:
            ConfigError: X is not ``[N, dim]`` with N ≥ 1, or has entries other than ±1.
        """
        X = torch.as_tensor(X)
        if X.dim() != 2 or X.shape[1] != self.cfg.dim or X.shape[0] == 0:
            raise ConfigError(f"hopfield.classical.store: expected ±1 patterns of shape "
                              f"[N, {self.cfg.dim}] with N ≥ 1, got {list(X.shape)}")
        ek.model.check_input(X, "hopfield.classical.store: X", floating=False, finite=False)
        if not bool(((X == 1) | (X == -1)).all()):
            got = ("NaN or infinite values" if X.is_floating_point()
                   and not bool(torch.isfinite(X).all()) else "other values")
            raise ConfigError(f"hopfield.classical.store: expected entries that are all +1 or "
                              f"-1 (binarize(y) maps data to ±1), got {got}")
        X = X.to(self.weight.device, self.weight.dtype)
        self.patterns = X.clone()
        self.cfg.stored = self.size
        self._rebuild()
        return self

    def _rebuild(self) -> None:
        X = self.patterns
        if self.cfg.rule == "covariance":
            X = X - X.mean(dim=0)
        w = X.t() @ X / X.shape[0]  # [D, D]
        w.fill_diagonal_(0.0)
        self.weight.copy_(w)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(s) = −½ sᵀ W s, ``[B]``."""
        s = self._check(y, "energy")
        w = self.weight.to(s.dtype)
        return -0.5 * torch.einsum("bd,de,be->b", s, w, s)

    @torch.no_grad()
    def retrieve(self, y: Tensor, steps: int | None = None, *, trace: bool = False
                 ) -> Tensor | tuple[Tensor, Tensor]:
        """Asynchronous updates from ``y`` (±1, 0 = unknown) for ``steps`` sweeps.

        Returns:
            The states ``[B, D]``, and with ``trace`` also the energy after each sweep
            ``[steps + 1, B]`` (never rising).
        """
        s = self._check(y, "retrieve").clone()
        if self.size == 0:
            raise ConfigError("hopfield.classical: the memory is empty; call store(X) first")
        steps = self.cfg.steps if steps is None else ek.config.at_least(
            "steps", steps, 1, who="hopfield.classical.retrieve")
        w = self.weight.to(s.dtype)
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        energies = [self.energy(s)] if trace else []
        for _ in range(steps):
            for i in torch.randperm(self.cfg.dim, generator=gen).tolist():
                h = s @ w[:, i]  # [B]: the field on unit i
                s[:, i] = torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, s[:, i]))
            if trace:
                energies.append(self.energy(s))
        return (s, torch.stack(energies)) if trace else s

    # ------------------------------------------------------------------ the metric's interface
    def mask(self, y: Tensor, hidden: float | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """``binarize(y)`` with ``hidden`` of each row's entries set to NaN (drawn on the
        generator's device, else on y's)."""
        hidden = self.cfg.hidden if hidden is None else hidden
        s = self.binarize(y)
        device = generator.device if generator is not None else s.device
        order = torch.rand(s.shape, generator=generator, device=device).to(s.device).argsort(dim=1)
        s.scatter_(1, order[:, : round(hidden * s.shape[1])], float("nan"))
        return s

    @torch.no_grad()
    def predict(self, x: Tensor, steps: int | None = None) -> Tensor:
        """Complete ±1 patterns with NaN (or 0) where unknown."""
        x = self._check(x, "predict", finite=False)
        if bool(torch.isinf(x).any()):
            raise ConfigError("hopfield.classical.predict: x contains infinite values; expected "
                              "±1, with NaN or 0 where an entry is unknown")
        return self.retrieve(torch.nan_to_num(x, nan=0.0), steps)

    @torch.no_grad()
    def reconstruct(self, y: Tensor) -> Tensor:
        """The retrieval from ``binarize(y)`` with ``hidden`` of each row unknown, mapped back
        to [0, 1] (−1 → 0): the pictures of ``ebmkit train`` / ``ebmkit sample``."""
        self._check(y, "reconstruct")
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        return (self.predict(self.mask(y, generator=gen)) + 1) / 2

    def nearest(self, y: Tensor) -> Tensor:
        """Index of the stored pattern nearest in Hamming distance to ``binarize(y)``, ``[B]``."""
        return (self.binarize(y) @ self.patterns.to(y.dtype).t()).argmax(dim=1)

    def plots(self, data: Any, out: Any) -> list[Any]:
        """The family's pictures of this model on ``data`` into directory ``out`` (what
        ``ebmkit train`` and ``ebmkit sample`` write): see ``ebmkit_attention.plots``."""
        from .plots import plots

        return plots(self, data, out)

    def default_strategy(self) -> Any:
        return HebbianStore()

    def metrics(self) -> dict[str, Any]:
        from .metrics import RetrievalAccuracy

        out = super().metrics()
        out["retrieval_accuracy"] = RetrievalAccuracy()
        return out


class HebbianStore(_StoreStrategy):
    """Training by storing (binarised) data: the first batch of a fit replaces the memory,
    later ones are appended (rows already stored are skipped) and W is rebuilt."""

    def __call__(self, model: ClassicalHopfield, batch: dict[str, Tensor]) -> ek.StepOutput:
        # distributed: every rank stores the union of the ranks' batches (one memory)
        s = model.binarize(ek.train.distributed.all_gather_cat(batch["y"].detach(),
                                                               ragged=True))
        if self.started and model.size:
            new = torch.cdist(s, model.patterns.to(s.dtype)).amin(dim=1) > 0
            s = torch.cat([model.patterns.to(s.dtype), s[new]])
        model.store(s)
        self.started = True
        e = model.energy(model.binarize(batch["y"])).mean()
        return ek.StepOutput(e, {"e_pos": e})
