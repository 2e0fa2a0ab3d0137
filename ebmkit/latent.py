"""Latent inference: ž = argmin_z E(x, y, z), batched, on any device.

Every solver is called as ``solver(energy, y, x=None, init=None) -> z`` and minimises over z;
``solver.minimize(energy, var, inputs, init)`` minimises over any variable (``predict`` uses
it for argmin over y). Each sample's problem is independent; solvers run them as one batch.

- [`GradientDescent`][ebmkit.latent.GradientDescent]: SGD, Adam or L-BFGS on the energy,
  optionally unrolled so the result stays differentiable.
- [`ISTA`][ebmkit.latent.ISTA] / [`FISTA`][ebmkit.latent.FISTA]: a gradient step on the
  smooth terms, a proximal step on the term that has a ``prox`` (``L1``, ``GroupL1``).
- [`Exhaustive`][ebmkit.latent.Exhaustive]: every candidate of a discrete set, in chunks, so
  memory stays bounded however many candidates there are; also the soft-min (F_β).
- [`Amortized`][ebmkit.latent.Amortized]: an encoder predicts z, optionally refined.

Solutions are returned detached unless the solver unrolls: by the envelope theorem the
gradient of min_z E with respect to the energy's parameters is ∂E/∂θ at ž, so the free
energy needs no gradient through the solver.

Solvers are ``nn.Module``s: an ``Amortized`` encoder's parameters are the solver's, so a
model (or ``FreeEnergy``) holding the solver trains, moves and saves them; ``Exhaustive``'s
candidates are a (non-persistent) buffer that moves with ``.to()``. Every ``minimize`` runs
with autocast switched off and half-precision inputs cast to float32: iterations and
eigenvalues never run in bf16/fp16, whatever the trainer's AMP setting (a subclass's own
``minimize`` gets the same guard).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .energy import L2, Energy
from .errors import ConfigError

__all__ = ["FISTA", "ISTA", "Amortized", "Exhaustive", "GradientDescent", "Solver"]

Inputs = dict[str, "Tensor | None"]



def _largest_eigenvalue(gram: Tensor, iters: int = 64, margin: float = 1.05) -> Tensor:
    """λ_max of a symmetric positive semi-definite ``gram`` ``[K, K]``, as a 0-d tensor.

    Exact (``eigvalsh``) where reading back costs nothing (CPU). On an accelerator
    ``eigvalsh`` checks its convergence on the host, one sync per solve, so there the value is
    the Rayleigh quotient after ``iters`` power iterations (a lower bound that converges
    quadratically in the vector's error) times ``margin``: an upper bound in practice, so the
    step 1/L stays safe, at the cost of ≤ 5% slower progress per step.
    """
    if _reads_are_free(gram):
        return torch.linalg.eigvalsh(gram)[-1]
    u = torch.linspace(1.0, 2.0, gram.shape[0], device=gram.device, dtype=gram.dtype)
    for _ in range(iters):
        u = gram @ u
        u = u / u.norm().clamp_min(1e-30)
    return margin * (u @ (gram @ u))


def _reads_are_free(t: Tensor) -> bool:
    """Whether reading a value of ``t`` back to Python costs no device sync (CPU tensors):
    solvers stop early there and run their fixed number of trials elsewhere."""
    return t.device.type == "cpu"

def _call(energy: Callable[..., Tensor], var: str, v: Tensor, inputs: Inputs) -> Tensor:
    return energy(**{**inputs, var: v})


def _positive(name: str, value: Any, kind: type = int) -> Any:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name}: expected a positive {kind.__name__}, got {value!r}")
    return kind(value)


_HALF = (torch.float16, torch.bfloat16)


def full_precision(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run a solver's ``minimize(energy, var, inputs, init)`` outside autocast, in float32.

    Under an active autocast region (the trainer's AMP), half-precision inputs and init are
    cast to float32 and autocast is switched off for the solve; without autocast this adds
    one check and nothing else.
    """

    @functools.wraps(fn)
    def minimize(self: Solver, energy: Callable[..., Tensor], var: str, inputs: Inputs,
                 init: Tensor | None = None) -> Tensor:
        ref = init if isinstance(init, Tensor) else next(
            (t for t in inputs.values() if isinstance(t, Tensor)), None)
        kind = ref.device.type if ref is not None else "cpu"
        if not torch.is_autocast_enabled(kind):
            return fn(self, energy, var, inputs, init)

        def up(t: Any) -> Any:
            return t.float() if isinstance(t, Tensor) and t.dtype in _HALF else t

        with torch.autocast(kind, enabled=False):
            return fn(self, energy, var, {k: up(v) for k, v in inputs.items()}, up(init))

    minimize.__ebmkit_full_precision__ = True  # type: ignore[attr-defined]
    return minimize


class Solver(nn.Module):
    """Base class: minimise an energy over one variable, batched.

    A solver is an ``nn.Module`` (its learned parts, e.g. an amortised encoder, are its
    parameters) called as ``solver(energy, y, x=None, init=None) -> ž``. Subclasses
    implement ``minimize(energy, var, inputs, init)``; it runs in float32 with autocast off.

    Args:
        dim: Size of z, used to start from zeros when no ``init`` is given.
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = None if dim is None else _positive("dim", dim)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("minimize")
        if own is not None and not getattr(own, "__ebmkit_full_precision__", False):
            cls.minimize = full_precision(own)  # type: ignore[method-assign]

    def forward(self, energy: Callable[..., Tensor], y: Tensor, x: Tensor | None = None,
                init: Tensor | None = None) -> Tensor:
        """ž = argmin_z E(y, x, z)."""
        return self.minimize(energy, "z", {"y": y, "x": x}, init)

    def minimize(self, energy: Callable[..., Tensor], var: str, inputs: Inputs,
                 init: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def _init(self, var: str, inputs: Inputs, init: Tensor | None) -> Tensor:
        if init is not None:
            if not isinstance(init, Tensor):
                raise ConfigError(f"init: expected a tensor, got {type(init).__name__}")
            return init
        y = inputs.get("y")
        if var != "z" or self.dim is None or y is None:
            raise ConfigError(f"{type(self).__name__} needs init= (a starting {var}) or, for z, "
                              f"dim= so that it can start from zeros")
        return torch.zeros(y.shape[0], self.dim, device=y.device, dtype=y.dtype)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if not k.startswith("_") and k != "training")
        mods = "".join(f", {k}={type(m).__name__}" for k, m in self._modules.items())
        return f"{type(self).__name__}({fields}{mods})"


class GradientDescent(Solver):
    """Minimise by gradient descent: ``optimizer`` = ``"sgd"``, ``"adam"`` or ``"lbfgs"``.

    Args:
        dim: Size of z (to start from zeros when no ``init``).
        steps: Iterations.
        lr: Step size (L-BFGS: its learning rate, 1 is usual).
        optimizer: ``"sgd"``, ``"adam"`` or ``"lbfgs"``. L-BFGS is batched per sample: each
            problem keeps its own curvature pairs and its own backtracking (Armijo) line
            search, as if solved alone; the line search reads one flag back per trial step.
        unroll: Keep the whole descent in the autograd graph (plain gradient steps), so the
            result is differentiable with respect to the energy's parameters and the init.
    """

    OPTIMIZERS = ("sgd", "adam", "lbfgs")

    def __init__(self, dim: int | None = None, steps: int = 100, lr: float = 0.1,
                 optimizer: str = "sgd", unroll: bool = False) -> None:
        super().__init__(dim)
        if optimizer not in self.OPTIMIZERS:
            raise ConfigError(f"optimizer: expected one of {', '.join(self.OPTIMIZERS)}, "
                              f"got {optimizer!r}")
        if unroll and optimizer != "sgd":
            raise ConfigError("unroll=True runs plain gradient steps: use optimizer='sgd'")
        self.steps, self.lr = _positive("steps", steps), _positive("lr", lr, float)
        self.optimizer, self.unroll = optimizer, unroll

    def minimize(self, energy: Callable[..., Tensor], var: str, inputs: Inputs,
                 init: Tensor | None = None) -> Tensor:
        v0 = self._init(var, inputs, init)
        with torch.enable_grad():
            if self.unroll:
                v = v0 if v0.requires_grad else v0.clone().requires_grad_(True)
                for _ in range(self.steps):
                    (g,) = torch.autograd.grad(_call(energy, var, v, inputs).sum(), v,
                                               create_graph=True)
                    v = v - self.lr * g
                return v
            v = v0.detach().clone().requires_grad_(True)

            def closure() -> Tensor:
                e = _call(energy, var, v, inputs).sum()
                (v.grad,) = torch.autograd.grad(e, v)  # never touches the energy's parameters
                return e

            if self.optimizer == "lbfgs":
                return _batched_lbfgs(lambda u: _call(energy, var, u, inputs), v0.detach(),
                                      self.steps, self.lr)
            else:
                cls = torch.optim.SGD if self.optimizer == "sgd" else torch.optim.Adam
                opt = cls([v], lr=self.lr)
                for _ in range(self.steps):
                    closure()
                    opt.step()
        return v.detach()


class ISTA(Solver):
    """Proximal gradient descent: z ← prox_{η·g}(z − η∇f(z)), with E = f + g.

    ``f`` is the sum of the smooth terms; ``g`` the one non-smooth term with a ``prox``
    (``L1``, ``GroupL1``) on the variable being solved for. The step η = 1/L comes from the
    Lipschitz constant L of ∇f: exact for a linear decoder with squared error (largest
    eigenvalue of 2WᵀW), else estimated per sample by power iteration on Hessian-vector
    products (``lipschitz="power"``, the default for other energies) or given as a number.

    Args:
        dim: Size of z (to start from zeros when no ``init``).
        steps: Iterations.
        lipschitz: ``"auto"``, ``"power"`` or a number.
        safety: Multiplier on estimated (not exact) Lipschitz constants.
        dtype: Iterate in this floating dtype and return the input's (e.g. ``torch.float32``
            for float64 data: about twice as fast on a CPU, and the objective still reaches
            ~1e-7 relative). Only on the exact quadratic path (a linear decoder with
            squared error, plus ``L2``), where the iteration is matrix products.
    """

    momentum = False
    restart = False

    def __init__(self, dim: int | None = None, steps: int = 100, lipschitz: str | float = "auto",
                 safety: float = 1.5, dtype: torch.dtype | None = None) -> None:
        super().__init__(dim)
        self.steps = _positive("steps", steps)
        if not (lipschitz in ("auto", "power") or isinstance(lipschitz, (int, float))):
            raise ConfigError(f"lipschitz: expected 'auto', 'power' or a number, got {lipschitz!r}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ConfigError(f"dtype: expected a floating torch.dtype or None, got {dtype!r}")
        self.lipschitz, self.safety, self.dtype = lipschitz, float(safety), dtype

    # -- splitting the energy into smooth and proximal parts ------------------------------
    @staticmethod
    def _split(energy: Energy, var: str) -> tuple[list[tuple[float, Energy]], tuple[float, Energy] | None]:
        if not isinstance(energy, Energy):
            raise ConfigError(f"ISTA/FISTA need an ek.energies.Energy (to find the terms with a "
                              f"prox), got {type(energy).__name__}; use GradientDescent for "
                              f"plain functions")
        smooth, prox = [], []
        for w, term in energy.weighted_terms():
            if getattr(term, "on", None) not in (None, var):
                continue  # a penalty on another variable is constant here
            if term.smooth:
                smooth.append((w, term))
            elif hasattr(term, "prox"):
                if w < 0:
                    raise ConfigError(f"term {term.name!r} has a negative weight {w}: its prox "
                                      f"is undefined (the problem is not convex)")
                prox.append((w, term))
            else:
                raise ConfigError(f"term {term.name!r} is not smooth and has no prox; ISTA/FISTA "
                                  f"cannot minimise it — use GradientDescent")
        if len(prox) > 1:
            names = ", ".join(t.name for _, t in prox)
            raise ConfigError(f"ISTA/FISTA handle one proximal term, got several ({names}); "
                              f"merge them into one term with a joint prox")
        return smooth, (prox[0] if prox else None)

    @staticmethod
    def _quadratic(smooth: list[tuple[float, Energy]], var: str, inputs: Inputs):
        """(G, c) with f(z) = zᵀGz − 2cᵀz + const when every smooth term is quadratic in z."""
        if var != "z" or inputs.get("y") is None:
            return None
        gram, lin = None, None
        for w, term in smooth:
            # Terms that say they are quadratic in z: zᵀGz − 2cᵀz + const (Reconstruction
            # with a linear decoder, LatentPrediction)
            quadratic = getattr(term, "quadratic", None)
            if callable(quadratic) and (q := quadratic(inputs["y"])) is not None:
                g, c = w * q[0], w * q[1]
            elif isinstance(term, L2) and term.on == var:
                g, c = None, None  # w‖z‖² → adds w·I, applied below
            else:
                return None
            if g is not None:
                gram = g if gram is None else gram + g
                lin = c if lin is None else lin + c
        if gram is None:
            return None
        ridge = sum(w for w, t in smooth if isinstance(t, L2))
        if ridge:
            gram = gram + ridge * torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
        return gram, lin

    def minimize(self, energy: Callable[..., Tensor], var: str, inputs: Inputs,
                 init: Tensor | None = None) -> Tensor:
        smooth_terms, prox = self._split(energy, var)  # type: ignore[arg-type]
        v = self._init(var, inputs, init).detach()
        # "power" asks for the estimate even where the exact quadratic path exists
        quad = None if self.lipschitz == "power" else self._quadratic(smooth_terms, var, inputs)
        out_dtype, work = v.dtype, self.dtype or v.dtype
        if work != out_dtype and quad is None:
            raise ConfigError(f"{type(self).__name__}(dtype={work}) iterates in another dtype "
                              f"only on the exact quadratic path (a linear decoder with "
                              f"squared error); this energy needs autograd in {out_dtype}: "
                              f"drop dtype=, or cast the energy and the data")
        with torch.no_grad():
            if quad is not None:  # exact gradients and Lipschitz constant, no autograd
                gram, lin = (t.detach() for t in quad)
                lip = 2 * _largest_eigenvalue(gram).clamp_min(1e-12)
                gram, lin, v = gram.to(work), lin.to(work), v.to(work)
            else:
                smooth = lambda z: sum(w * t(**{**inputs, var: z}) for w, t in smooth_terms)  # noqa: E731
                lip = self._estimate(smooth, v)
            if isinstance(self.lipschitz, (int, float)) and not isinstance(self.lipschitz, bool):
                lip = torch.as_tensor(float(self.lipschitz), device=v.device, dtype=v.dtype)
            step = 1.0 / lip
            if quad is not None:
                # u − η∇f(u) = u(I − 2ηG) + 2ηc: the whole gradient step is one addmm
                eye = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
                descend_matrix, descend_offset = eye - 2 * step * gram, 2 * step * lin
                descend = lambda u: torch.addmm(descend_offset, u, descend_matrix)  # noqa: E731
            else:
                if step.dim() == 1:  # per-sample steps broadcast over z's features
                    step = step.reshape(-1, *([1] * (v.dim() - 1)))
                descend = lambda u: u - step * _grad(smooth, u)  # noqa: E731
            if prox is None:
                prox_step = lambda z: z  # noqa: E731
            else:
                weight, term = prox
                # a tensor threshold: no host read of the step (L1 shrinks in three kernels)
                threshold = weight * step
                prox_step = lambda z: term.prox(z, threshold).to(work)  # noqa: E731
            return self._iterate(v, descend, prox_step).to(out_dtype)

    def _iterate(self, v: Tensor, descend: Callable[[Tensor], Tensor],
                 prox: Callable[[Tensor], Tensor]) -> Tensor:
        if not self.momentum:
            for _ in range(self.steps):
                v = prox(descend(v))
            return v
        # FISTA (Beck & Teboulle 2009): the gradient is taken at an extrapolated point.
        if not self.restart:
            u, t = v, 1.0
            for _ in range(self.steps):
                v_next = prox(descend(u))
                t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
                u = v_next + ((t - 1) / t_next) * (v_next - v)
                v, t = v_next, t_next
            return v
        # With adaptive restart (O'Donoghue & Candès 2015): a sample whose momentum points
        # uphill, ⟨u − v⁺, v⁺ − v⟩ > 0, restarts it (t = 1). Per sample and without a host
        # sync; it turns FISTA's O(1/k²) into fast linear convergence on well-conditioned
        # problems such as sparse coding with a fixed dictionary.
        u = v
        t = torch.ones((v.shape[0],) + (1,) * (v.dim() - 1), device=v.device, dtype=v.dtype)
        for _ in range(self.steps):
            v_next = prox(descend(u))
            moved = v_next - v
            uphill = torch.linalg.vecdot((u - v_next).flatten(1), moved.flatten(1)) > 0
            t = torch.where(uphill.reshape(t.shape), 1.0, t)
            t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
            u = torch.addcmul(v_next, (t - 1) / t_next, moved)
            v, t = v_next, t_next
        return v

    def _estimate(self, smooth: Callable[[Tensor], Tensor], v: Tensor, iters: int = 20) -> Tensor:
        """Per-sample largest Hessian eigenvalue by power iteration on Hessian-vector products."""
        u = torch.randn(v.shape, device=v.device, dtype=v.dtype, generator=None)
        with torch.enable_grad():
            z = v.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(smooth(z).sum(), z, create_graph=True)
            lam = torch.ones(v.shape[0], device=v.device, dtype=v.dtype)
            for _ in range(iters):
                u = u / u.reshape(u.shape[0], -1).norm(dim=1).clamp_min(1e-12).reshape(-1, *[1] * (u.dim() - 1))
                (hu,) = torch.autograd.grad(g, z, grad_outputs=u, retain_graph=True)
                lam = hu.reshape(hu.shape[0], -1).norm(dim=1)
                u = hu.detach()
        return (self.safety * lam).clamp_min(1e-6).detach()


def _batched_lbfgs(fn: Callable[[Tensor], Tensor], v0: Tensor, steps: int, lr: float,
                   history: int = 10, max_trials: int = 30) -> Tensor:
    """L-BFGS on ``B`` independent problems at once: ``fn(v) -> [B]``, ``v0 [B, ...]``.

    Each sample keeps its own curvature pairs (s, y), its own two-loop recursion and its own
    backtracking line search (Armijo, c₁ = 1e-4, halving from ``lr``), so one problem's
    scale never sets another's step, unlike ``torch.optim.LBFGS`` on the summed energy.
    """
    shape, b = v0.shape, v0.shape[0]

    def value(x: Tensor) -> Tensor:
        return fn(x.reshape(shape))

    def value_and_grad(x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            e = value(x)
            (g,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), g

    def dot(a: Tensor, c: Tensor) -> Tensor:
        return (a * c).sum(dim=1)

    x = v0.reshape(b, -1).clone()
    f, g = value_and_grad(x)
    pairs: list[tuple[Tensor, Tensor, Tensor]] = []  # (s, y, ρ), each per sample
    tiny = torch.finfo(x.dtype).tiny
    for k in range(steps):
        # Two-loop recursion: d = −H g with every sample's own history.
        q, alphas = g.clone(), []
        for s, y, rho in reversed(pairs):
            a = rho * dot(s, q)
            alphas.append(a)
            q = q - a.unsqueeze(1) * y
        if pairs:
            s, y, _ = pairs[-1]
            yy = dot(y, y)
            gamma = torch.where(yy > 0, dot(s, y) / yy.clamp_min(tiny), torch.ones_like(yy))
            q = gamma.unsqueeze(1) * q
        for (s, y, rho), a in zip(pairs, reversed(alphas)):
            q = q + (a - rho * dot(y, q)).unsqueeze(1) * s
        d = -q
        gd = dot(g, d)
        uphill = gd >= 0  # a curvature pair gone bad: fall back to steepest descent
        d = torch.where(uphill.unsqueeze(1), -g, d)
        gd = torch.where(uphill, -dot(g, g), gd)
        done = gd.abs() <= 1e-30  # converged (zero gradient): stay
        t = torch.full_like(f, lr)
        if k == 0:  # first step: scaled like torch.optim.LBFGS's
            t = t * (1.0 / g.abs().sum(dim=1).clamp_min(tiny)).clamp(max=1.0)
        t = torch.where(done, torch.zeros_like(t), t)
        with torch.no_grad():
            for _ in range(max_trials):
                f_new = value(x + t.unsqueeze(1) * d)
                ok = (f_new <= f + 1e-4 * t * gd) | done
                # Stopping early is only a saving: once every sample is ok, further trials
                # change nothing. On an accelerator the check would be a host sync per
                # trial, so there every trial runs (same result, no sync).
                if _reads_are_free(x) and bool(ok.all()):
                    break
                t = torch.where(ok, t, 0.5 * t)
            else:  # no decrease found: that sample stays where it is this step
                t = torch.where(ok, t, torch.zeros_like(t))
        x_new = x + t.unsqueeze(1) * d
        f_new, g_new = value_and_grad(x_new)
        s, y = x_new - x, g_new - g
        sy = dot(s, y)
        good = (sy > 1e-10 * dot(y, y).sqrt() * dot(s, s).sqrt()) & (sy > 0)
        keep = good.unsqueeze(1)
        pairs.append((torch.where(keep, s, 0.0), torch.where(keep, y, 0.0),
                      torch.where(good, 1.0 / sy.clamp_min(tiny), torch.zeros_like(sy))))
        if len(pairs) > history:
            pairs.pop(0)
        x, f, g = x_new, f_new, g_new
    return x.reshape(shape).detach()


def _grad(fn: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(z).sum(), z)
    return g


class FISTA(ISTA):
    """ISTA with Nesterov momentum: O(1/k²) instead of O(1/k) (Beck & Teboulle, 2009).

    Args:
        dim: Size of z (to start from zeros when no ``init``).
        steps: Iterations.
        lipschitz: ``"auto"``, ``"power"`` or a number.
        safety: Multiplier on estimated (not exact) Lipschitz constants.
        restart: Adaptive restart per sample (O'Donoghue & Candès, 2015): the momentum is
            reset whenever it points uphill, which converges much faster in practice.
        dtype: Iterate in this dtype (see [`ISTA`][ebmkit.latent.ISTA]).
    """

    momentum = True

    def __init__(self, dim: int | None = None, steps: int = 100, lipschitz: str | float = "auto",
                 safety: float = 1.5, restart: bool = True, dtype: torch.dtype | None = None
                 ) -> None:
        super().__init__(dim, steps, lipschitz, safety, dtype)
        self.restart = bool(restart)


class Exhaustive(Solver):
    """Search a discrete candidate set: ž = the candidate of lowest energy.

    Candidates are scored in chunks of ``chunk_size``, keeping only a running minimum (and a
    running log-sum-exp for the soft-min), so memory is O(B · chunk_size) however many
    candidates there are.

    Args:
        candidates: ``[K, ...]`` every value z may take (e.g. one-hot codes ``torch.eye(K)``).
        chunk_size: Candidates scored at once.
    """

    def __init__(self, candidates: Tensor, chunk_size: int = 1024) -> None:
        if not isinstance(candidates, Tensor) or candidates.dim() < 1 or len(candidates) == 0:
            raise ConfigError("Exhaustive(candidates): expected a non-empty tensor [K, ...] of "
                              f"candidate latents, got {getattr(candidates, 'shape', type(candidates).__name__)}")
        super().__init__(None)
        # A buffer: moves with .to() (never copied per call); not saved, as the model that
        # builds the solver rebuilds its candidates from its config.
        self.register_buffer("candidates", candidates, persistent=False)
        self.chunk_size = _positive("chunk_size", chunk_size)

    def minimize(self, energy: Callable[..., Tensor], var: str, inputs: Inputs,
                 init: Tensor | None = None) -> Tensor:
        best, _, _ = self.search(energy, var, inputs)
        return best

    def _scores(self, energy: Callable[..., Tensor], var: str, inputs: Inputs):
        """Yield (offset, energies [B, c]) chunk by chunk."""
        ref = next(t for t in inputs.values() if t is not None)
        batch = ref.shape[0]
        cands = self.candidates.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point()
                                   else self.candidates.dtype)
        for start in range(0, len(cands), self.chunk_size):
            chunk = cands[start:start + self.chunk_size]  # [c, ...]
            c = len(chunk)
            # every (sample, candidate) pair as one flat batch of B·c
            rep = {k: None if t is None else t.repeat_interleave(c, dim=0) for k, t in inputs.items()}
            flat = chunk.repeat(batch, *([1] * (chunk.dim() - 1)))
            yield start, _call(energy, var, flat, rep).reshape(batch, c)

    @torch.no_grad()
    def search(self, energy: Callable[..., Tensor], var: str, inputs: Inputs
               ) -> tuple[Tensor, Tensor, Tensor]:
        """``(ž [B, ...], min energy [B], index [B])`` over all candidates."""
        best_e = best_i = None
        for start, e in self._scores(energy, var, inputs):
            e_min, i_min = e.min(dim=1)
            if best_e is None:
                best_e, best_i = e_min, i_min + start
            else:
                better = e_min < best_e
                best_e = torch.where(better, e_min, best_e)
                best_i = torch.where(better, i_min + start, best_i)
        return self.candidates.to(best_i.device)[best_i], best_e, best_i

    def soft_min(self, energy: Callable[..., Tensor], y: Tensor, x: Tensor | None = None,
                 beta: float = 1.0) -> Tensor:
        """F_β = −1/β · log Σ_k exp(−β E(y, x, z_k)), shape ``[B]`` (differentiable)."""
        acc = None
        for _, e in self._scores(energy, "z", {"y": y, "x": x}):
            part = torch.logsumexp(-beta * e, dim=1)
            acc = part if acc is None else torch.logaddexp(acc, part)
        return -acc / beta

    def energies(self, energy: Callable[..., Tensor], y: Tensor, x: Tensor | None = None) -> Tensor:
        """All energies ``[B, K]`` (materialised: for small K, e.g. K-means' transform)."""
        return torch.cat([e for _, e in self._scores(energy, "z", {"y": y, "x": x})], dim=1)

    def __repr__(self) -> str:
        return f"Exhaustive(candidates=[{', '.join(map(str, self.candidates.shape))}], chunk_size={self.chunk_size})"


class Amortized(Solver):
    """An encoder predicts ž in one pass; optionally refined by gradient descent.

    Args:
        encoder: Maps y (or ``(y, x)`` concatenated when ``use_x``) to z.
        refine_steps: Gradient steps on the energy from the encoder's guess (0 = none).
        lr: Step size of the refinement.
        use_x: Feed x to the encoder too.
    """

    def __init__(self, encoder: nn.Module | Callable[[Tensor], Tensor], refine_steps: int = 0,
                 lr: float = 0.1, use_x: bool = False) -> None:
        super().__init__(None)
        if not callable(encoder):
            raise ConfigError(f"Amortized(encoder): expected a callable, got {type(encoder).__name__}")
        if refine_steps < 0:
            raise ConfigError(f"refine_steps: expected ≥ 0, got {refine_steps}")
        self.encoder = encoder  # an nn.Module becomes a submodule: it trains, moves and saves
        self.refine_steps, self.lr, self.use_x = refine_steps, lr, use_x

    def minimize(self, energy: Callable[..., Tensor], var: str, inputs: Inputs,
                 init: Tensor | None = None) -> Tensor:
        if var != "z":
            raise ConfigError("Amortized predicts z only; use GradientDescent to minimise over y")
        y, x = inputs["y"], inputs.get("x")
        z = self.encoder(torch.cat([y, x], dim=-1) if self.use_x and x is not None else y)
        if self.refine_steps:
            z = GradientDescent(steps=self.refine_steps, lr=self.lr).minimize(energy, var, inputs, z)
        return z
