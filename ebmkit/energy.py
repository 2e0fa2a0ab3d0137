"""Energies E(x, y, z) that compose like numbers.

An [`Energy`][ebmkit.energy.Energy] is an ``nn.Module`` whose ``forward(y, x=None, z=None)``
returns one energy per sample, shape ``[B]``, never reduced. Energies add, subtract and
scale by numbers; the result is one flat [`Sum`][ebmkit.energy.Sum] of weighted terms (not
a tree of wrappers), whose [`terms`][ebmkit.energy.Energy.terms] are the weighted per-term
energies and add up to the total::

    E = ek.energies.Reconstruction(dec) + 0.1 * ek.energies.L1()
    E(y, z=z)            # [B]
    E.terms(y, z=z)      # {"reconstruction": [B], "l1": [B]}, summing to E(y, z=z)

Terms with a proximal operator (``L1``, ``L2``, ``GroupL1``) expose ``prox`` so that ISTA and
FISTA can take a gradient step on the smooth terms and a proximal step on these.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from .errors import ConfigError

__all__ = [
    "GroupL1",
    "L1",
    "L2",
    "Energy",
    "Lambda",
    "LatentPrediction",
    "Network",
    "Reconstruction",
    "SquaredDistance",
    "Sum",
]

VARIABLES = ("y", "x", "z")


def _check_inputs(name: str, y: Any, x: Any, z: Any) -> None:
    """Cheap structural checks (no device sync): tensors, one batch size, one device."""
    if not isinstance(y, Tensor) or y.dim() == 0:
        raise ConfigError(f"energy {name!r}: y must be a torch.Tensor [B, ...], got "
                          f"{type(y).__name__ if not isinstance(y, Tensor) else 'a scalar'}")
    for var, t in (("x", x), ("z", z)):
        if t is None:
            continue
        if not isinstance(t, Tensor) or t.dim() == 0:
            raise ConfigError(f"energy {name!r}: {var} must be a torch.Tensor [B, ...] or None, "
                              f"got {type(t).__name__ if not isinstance(t, Tensor) else 'a scalar'}")
        if t.shape[0] != y.shape[0]:
            raise ConfigError(f"energy {name!r}: {var} has batch size {t.shape[0]} but y has "
                              f"{y.shape[0]}; expected one {var} per sample")
        if t.device != y.device:
            raise ConfigError(f"energy {name!r}: {var} is on {t.device} but y is on {y.device}; "
                              f"expected both on one device")


def _flat_sum(t: Tensor) -> Tensor:
    """Sum every axis but the batch axis: [B, ...] -> [B]."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


class Energy(nn.Module):
    """Base class: ``forward(y, x=None, z=None) -> [B]``.

    Subclasses implement ``forward``; the base adds composition and ``terms``. A term that
    regularises one variable sets ``on`` (``"z"`` by default) and may define
    ``prox(v, step) -> Tensor``, the proximal operator of ``step * term`` at ``v``.

    Attributes:
        name: The key of this term in ``terms()``.
        smooth: Whether the term is differentiable everywhere (ISTA/FISTA put non-smooth
            terms with a ``prox`` into the proximal step).
    """

    name: str = "energy"
    smooth: bool = True
    on: str | None = None

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(y, x=None, z=None)")

    def __call__(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        _check_inputs(self.name, y, x, z)
        e = super().__call__(y, x=x, z=z)
        batch = y.shape[0]
        if not isinstance(e, Tensor) or e.shape != (batch,):
            got = list(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise ConfigError(f"energy {self.name!r} must return one energy per sample, shape "
                              f"[{batch}], but returned {got}; sum over features, never over "
                              f"the batch")
        return e

    # -- composition: everything becomes one flat Sum -------------------------------------
    def weighted_terms(self) -> list[tuple[float, Energy]]:
        """This energy as ``[(weight, term), ...]``; a plain term is ``[(1.0, self)]``."""
        return [(1.0, self)]

    def __add__(self, other: Any) -> Energy:
        if isinstance(other, numbers.Number) and other == 0:  # sum([...]) starts from 0
            return self
        if not isinstance(other, Energy):
            return NotImplemented
        return Sum(self.weighted_terms() + other.weighted_terms())

    def __radd__(self, other: Any) -> Energy:
        if isinstance(other, numbers.Number) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, weight: Any) -> Energy:
        if isinstance(weight, Tensor) and weight.dim() == 0:
            weight = float(weight)
        if not isinstance(weight, numbers.Real) or isinstance(weight, bool):
            return NotImplemented
        return Sum([(float(weight) * w, t) for w, t in self.weighted_terms()])

    __rmul__ = __mul__

    def __neg__(self) -> Energy:
        return self * -1.0

    def __sub__(self, other: Any) -> Energy:
        if not isinstance(other, Energy):
            return NotImplemented
        return self + (-other)

    def __truediv__(self, weight: Any) -> Energy:
        if not isinstance(weight, numbers.Real):
            return NotImplemented
        return self * (1.0 / float(weight))

    def terms(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> dict[str, Tensor]:
        """Named, weighted per-term energies (each ``[B]``) that add up to ``self(y, x, z)``."""
        out: dict[str, Tensor] = {}
        for weight, term in self.weighted_terms():
            key, n = term.name, 2
            while key in out:
                key, n = f"{term.name}_{n}", n + 1
            out[key] = weight * term(y, x=x, z=z)
        return out


class Sum(Energy):
    """A weighted sum of terms, kept flat: ``Sum(a + b) + c`` has three terms, not two."""

    name = "sum"

    def __init__(self, weighted: Iterable[tuple[float, Energy]]) -> None:
        super().__init__()
        weighted = list(weighted)
        if not weighted:
            raise ConfigError("an energy sum needs at least one term")
        self.weights = [float(w) for w, _ in weighted]
        self.parts = nn.ModuleList([t for _, t in weighted])  # registers their parameters

    @property
    def smooth(self) -> bool:  # type: ignore[override]
        return all(t.smooth for t in self.parts)

    def weighted_terms(self) -> list[tuple[float, Energy]]:
        return list(zip(self.weights, self.parts))

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        total = None
        for w, t in zip(self.weights, self.parts):
            e = t(y, x=x, z=z)
            total = w * e if total is None else total + w * e
        return total

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}·{t.name}" for w, t in zip(self.weights, self.parts))


def _need(value: Tensor | None, var: str, who: str) -> Tensor:
    if value is None:
        raise ConfigError(f"energy {who!r} needs {var}, but {var} was None; pass {var}=...")
    return value


class Reconstruction(Energy):
    """C(y, dec(z)): the cost of reconstructing ``y`` from the latent ``z``.

    ``cost="mse"`` is the squared error ‖y − dec(z)‖² summed over y's features;
    ``cost="bce"`` is the binary cross-entropy summed over features, for y in [0, 1], with
    ``dec`` returning logits (numerically stable; set ``logits=False`` for probabilities).

    Args:
        decoder: Maps z ``[B, d]`` to a reconstruction shaped like y.
        cost: ``"mse"`` or ``"bce"``.
        logits: For ``"bce"``: whether the decoder returns logits.
        source: Which variable the decoder reads: ``"z"`` (default) or ``"x"``.
    """

    name = "reconstruction"

    def __init__(self, decoder: Callable[[Tensor], Tensor], cost: str = "mse", *,
                 logits: bool = True, source: str = "z") -> None:
        super().__init__()
        if cost not in ("mse", "bce"):
            raise ConfigError(f"Reconstruction cost: expected 'mse' or 'bce', got {cost!r}")
        if source not in ("z", "x"):
            raise ConfigError(f"Reconstruction source: expected 'z' or 'x', got {source!r}")
        self.decoder, self.cost, self.logits, self.source = decoder, cost, logits, source

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        code = _need(z if self.source == "z" else x, self.source, self.name)
        if not y.is_floating_point():
            raise ConfigError(f"Reconstruction: y must be floating-point, got {y.dtype}")
        out = self.decoder(code)
        if out.shape != y.shape:
            out = out.reshape(y.shape) if out.numel() == y.numel() else out
            if out.shape != y.shape:
                raise ConfigError(f"Reconstruction: the decoder returned {list(out.shape)}, "
                                  f"expected y's shape {list(y.shape)}")
        if self.cost == "mse":
            return _flat_sum((y - out).square())
        if self.logits:
            return _flat_sum(nnf.binary_cross_entropy_with_logits(out, y, reduction="none"))
        return _flat_sum(nnf.binary_cross_entropy(out.clamp(1e-7, 1 - 1e-7), y, reduction="none"))

    def quadratic(self, y: Tensor) -> tuple[Tensor, Tensor] | None:
        """For a linear decoder with ``mse``: ``(G, c)`` with E = zᵀGz − 2cᵀz + const.

        ``G = WᵀW`` (``[d, d]``) and ``c = (y − b)W`` (``[B, d]``); solvers use it to skip
        autograd. ``None`` when the decoder is not an ``nn.Linear``.
        """
        dec = self.decoder
        if self.cost != "mse" or self.source != "z" or not isinstance(dec, nn.Linear):
            return None
        w = dec.weight  # [D, d]
        target = y.reshape(y.shape[0], -1)
        if dec.bias is not None:
            target = target - dec.bias
        return w.t() @ w, target @ w


class SquaredDistance(Energy):
    """‖y − f(x)‖² summed over features: how far y is from a prediction made from x.

    Args:
        predictor: ``f``; ``None`` compares y with x directly.
    """

    name = "squared_distance"

    def __init__(self, predictor: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        x = _need(x, "x", self.name)
        target = x if self.predictor is None else self.predictor(x)
        return _flat_sum((y - target.reshape(y.shape)).square())


class LatentPrediction(Energy):
    """‖z − P(y)‖² summed over z's features: how far the latent is from a prediction made from
    y, e.g. an encoder's guess (PSD's ½α‖z − Enc(y)‖² is ``0.5 * alpha`` times this term).

    Args:
        predictor: ``P``, mapping y ``[B, ...]`` to ``[B, d]`` (d = z's size).
    """

    name = "latent_prediction"
    on = "z"

    def __init__(self, predictor: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        z = _need(z, "z", self.name)
        guess = self.predictor(y)
        if guess.shape != z.shape:
            raise ConfigError(f"LatentPrediction: the predictor returned {list(guess.shape)}, "
                              f"expected z's shape {list(z.shape)}")
        return _flat_sum((z - guess).square())

    def quadratic(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(G, c)`` with E = zᵀGz − 2cᵀz + const: ``G = I`` (``[d, d]``), ``c = P(y)``."""
        c = self.predictor(y)
        return torch.eye(c.shape[1], device=c.device, dtype=c.dtype), c


class _Penalty(Energy):
    """A penalty on one variable (``on="z"`` by default, or ``"y"``/``"x"``)."""

    def __init__(self, on: str = "z") -> None:
        super().__init__()
        if on not in VARIABLES:
            raise ConfigError(f"{type(self).__name__}(on=...): expected one of y, x, z; got {on!r}")
        self.on = on

    def _var(self, y: Tensor, x: Tensor | None, z: Tensor | None) -> Tensor:
        return _need({"y": y, "x": x, "z": z}[self.on], self.on, self.name)

    def extra_repr(self) -> str:
        return f"on={self.on!r}"


class L1(_Penalty):
    """|v|₁ = Σᵢ |vᵢ| (v = z by default); its prox is soft thresholding."""

    name = "l1"
    smooth = False

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        return _flat_sum(self._var(y, x, z).abs())

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        """argmin_u ½‖u − v‖² + step·|u|₁ = sign(v)·max(|v| − step, 0)."""
        if isinstance(step, float) and step >= 0:
            return nnf.softshrink(v, step)  # one fused kernel
        return v.sign() * (v.abs() - step).clamp_min(0)


class L2(_Penalty):
    """‖v‖² = Σᵢ vᵢ² (v = z by default); smooth, with a closed-form prox."""

    name = "l2"

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        return _flat_sum(self._var(y, x, z).square())

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        """argmin_u ½‖u − v‖² + step·‖u‖² = v / (1 + 2·step)."""
        return v / (1 + 2 * step)


class GroupL1(_Penalty):
    """Σ_g ‖v_g‖₂ over consecutive groups of ``group_size`` units (group sparsity).

    Args:
        group_size: Units per group; the variable's size must be a multiple of it.
        on: The variable penalised.
    """

    name = "group_l1"
    smooth = False

    def __init__(self, group_size: int, on: str = "z") -> None:
        super().__init__(on)
        if not isinstance(group_size, int) or group_size <= 0:
            raise ConfigError(f"GroupL1: group_size must be a positive int, got {group_size!r}")
        self.group_size = group_size

    def _groups(self, v: Tensor) -> Tensor:
        flat = v.reshape(v.shape[0], -1)
        if flat.shape[1] % self.group_size:
            raise ConfigError(f"GroupL1: {self.on} has {flat.shape[1]} units, not a multiple of "
                              f"group_size={self.group_size}")
        return flat.reshape(v.shape[0], -1, self.group_size)  # [B, G, S]

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        return self._groups(self._var(y, x, z)).norm(dim=-1).sum(dim=-1)

    def group_norms(self, v: Tensor) -> Tensor:
        """‖v_g‖₂ per group: ``[B, G]`` (pooled features, invariant within a group)."""
        return self._groups(v).norm(dim=-1)

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        """Block soft thresholding: v_g · max(1 − step/‖v_g‖, 0)."""
        g = self._groups(v)
        norm = g.norm(dim=-1, keepdim=True)
        if isinstance(step, Tensor) and step.dim() > 0:
            step = step.reshape(-1, 1, 1)
        scale = (1 - step / norm.clamp_min(1e-12)).clamp_min(0)
        return (g * scale).reshape(v.shape)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, on={self.on!r}"


class Network(Energy):
    """A network with a scalar output per sample read as the energy.

    Args:
        net: Maps its inputs to ``[B]`` or ``[B, 1]``.
        inputs: Which variables it reads, concatenated along the last axis in this order
            (default ``("y",)``; e.g. ``("x", "y")`` for a conditional energy).
        name: The term's key in ``terms()``.
    """

    def __init__(self, net: nn.Module, inputs: tuple[str, ...] = ("y",), name: str = "network") -> None:
        super().__init__()
        bad = [v for v in inputs if v not in VARIABLES]
        if bad or not inputs:
            raise ConfigError(f"Network inputs: expected a tuple of y, x, z; got {inputs!r}")
        self.net, self.inputs, self.name = net, tuple(inputs), name

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        values = {"y": y, "x": x, "z": z}
        args = [_need(values[v], v, self.name) for v in self.inputs]
        out = self.net(args[0] if len(args) == 1 else torch.cat(args, dim=-1))
        return out.reshape(out.shape[0], -1).squeeze(-1) if out.dim() > 1 else out


class Lambda(Energy):
    """Any function ``fn(y, x, z) -> [B]`` as a named energy term.

    Args:
        fn: Called as ``fn(y, x, z)``.
        name: The term's key in ``terms()``.
        smooth: Whether ``fn`` is differentiable (solvers trust this).
    """

    def __init__(self, fn: Callable[[Tensor, Tensor | None, Tensor | None], Tensor], name: str,
                 smooth: bool = True) -> None:
        super().__init__()
        if not callable(fn):
            raise ConfigError(f"Lambda: expected a callable, got {type(fn).__name__}")
        self.fn, self.name, self.smooth = fn, name, smooth

    def forward(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        return self.fn(y, x, z)
