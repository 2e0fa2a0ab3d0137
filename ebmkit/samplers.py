"""MCMC samplers for p(y) ∝ exp(−E(y)) and a replay buffer for persistent chains.

An *energy* given to a sampler is any callable ``energy(y) -> [B]`` (or ``energy(y, x=x)``
when ``x`` is given): an ``ek.energies.Energy``, an ``ek.EnergyModel`` (its ``__call__`` is
the free energy F(x, y)) or a plain function. Samplers differentiate with respect to ``y``
only (``torch.autograd.grad``), so they never leave gradients in the energy's parameters,
and they work under ``torch.no_grad()``. They return detached samples.

::

    sampler = ek.samplers.Langevin(steps=60, step_size=10.0, noise=0.005)  # JEM short-run
    y_neg = sampler.sample(model, init=torch.rand_like(y))

Nothing in the inner loops reads a value back to the host, so sampling on CUDA runs
without device syncs. Chains run in float32 with autocast switched off, whatever the
trainer's AMP setting: a bf16/fp16 chain would accumulate rounding error every step, and
fp16 gradients of the energy with respect to y are not scaled by the trainer's grad scaler.

``compile=True`` runs the inner loop under ``torch.compile`` (inductor on the CPU, CUDA
graphs on a GPU): the gradient is taken with ``torch.func.grad`` and twenty steps are
traced as one inference graph (no autograd record is kept). It pays off where Python and
autograd overhead dominate (few chains, small energies): 0.6× the eager loop's CPU time at 64
chains of a 64→256→256→1 MLP on one CPU thread (``bench/bench_langevin.py``). The first call
compiles (about 10 s of CPU), and each new batch shape compiles again.
The energy must then be functional in y: no ``.item()``, no in-place updates of buffers
(a BatchNorm in training mode), no data-dependent Python control flow.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError

__all__ = ["HMC", "Langevin", "ReplayBuffer"]

EnergyFn = Callable[..., Tensor]


def _check_init(init: Any, who: str) -> Tensor:
    if not isinstance(init, Tensor):
        raise ConfigError(f"{who}.sample: init must be a torch.Tensor [B, ...], got "
                          f"{type(init).__name__}")
    if not init.is_floating_point():
        raise ConfigError(f"{who}.sample: init must be a floating-point tensor, got {init.dtype}")
    if init.dim() == 0:
        raise ConfigError(f"{who}.sample: init must have a batch axis, shape [B, ...], got a "
                          f"scalar")
    return init


def _bind(energy: EnergyFn, x: Tensor | None, who: str) -> Callable[[Tensor], Tensor]:
    """``energy`` as a function of ``y`` alone (``x`` bound when given)."""
    if not callable(energy):
        raise ConfigError(f"{who}.sample: energy must be callable as energy(y) -> [B], got "
                          f"{type(energy).__name__}")
    if x is None:
        return energy
    return lambda y: energy(y, x=x)


def _energy_and_grad(fn: Callable[[Tensor], Tensor], y: Tensor, who: str) -> tuple[Tensor, Tensor]:
    """E(y) ``[B]`` (detached) and ∇_y Σ E(y), without touching any parameter's ``.grad``."""
    y = y.detach().requires_grad_(True)
    e = fn(y)
    if not isinstance(e, Tensor) or e.shape != y.shape[:1]:
        got = list(e.shape) if isinstance(e, Tensor) else type(e).__name__
        raise ConfigError(f"{who}: the energy must return one value per sample, shape "
                          f"[{y.shape[0]}], got {got}")
    (g,) = torch.autograd.grad(e.sum(), y)
    return e.detach(), g


_HALF = (torch.float16, torch.bfloat16)
_CHUNK = 20  # Langevin steps traced into one compiled graph (10: ~4% slower, 60: 3× the compile)


@contextlib.contextmanager
def _float32_chains(init: Tensor) -> Iterator[Tensor]:
    """Gradients w.r.t. y even under no_grad()/inference_mode(), autocast off, and the
    chains in float32 when ``init`` is half precision."""
    kind = init.device.type
    with torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast(kind, enabled=False):
        yield init.float() if init.dtype in _HALF else init


def _energy_of(energy: EnergyFn, x: Tensor | None) -> Callable[[Tensor], Tensor]:
    return (lambda v: energy(v)) if x is None else (lambda v: energy(v, x=x))


def _langevin_chunk(energy: EnergyFn, x: Tensor | None, y: Tensor, noise: Tensor,
                    eta: Tensor | float, sigma: Tensor | float, clip: float | None,
                    lo: float | None, hi: float | None) -> Tensor:
    """``noise.shape[0]`` Langevin steps, functional (what ``torch.compile`` traces; the
    step size and noise scale come as 0-d tensors there, so changing them compiles
    nothing new; ``noise`` is ``[k, 0]`` for noiseless chains)."""
    fn = _energy_of(energy, x)
    grad = torch.func.grad(lambda v: fn(v).sum())
    for i in range(noise.shape[0]):
        g = grad(y)
        if clip is not None:
            g = _clip_norm(g, clip)
        y = y - eta * g
        if noise.dim() > 2:
            y = y + sigma * noise[i]
        if lo is not None:
            y = y.clamp(lo, hi)
    return y


def _leapfrog(energy: EnergyFn, x: Tensor | None, y: Tensor, p: Tensor, g: Tensor, eps: float,
              m: float, steps: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One HMC trajectory of ``steps`` leapfrog steps, functional: ``(y', p', E(y'), ∇E(y'))``."""
    fn = _energy_of(energy, x)
    grad_and_value = torch.func.grad_and_value(lambda v: (lambda e: (e.sum(), e))(fn(v)),
                                               has_aux=True)
    p = p - 0.5 * eps * g
    e = g.new_zeros(y.shape[0])
    for i in range(steps):
        y = y + (eps / m) * p
        g, (_, e) = grad_and_value(y)
        p = p - (eps if i < steps - 1 else 0.5 * eps) * g
    return y, p, e.detach(), g


def _compiled(cache: dict[tuple[str, str], Callable[..., Any]], name: str,
              fn: Callable[..., Any], device: torch.device) -> Callable[..., Any]:
    """``torch.compile(fn)``, once per sampler (``cache`` is the sampler's own, so two
    samplers on different energies do not evict each other's graphs), function and device
    type. On CUDA: CUDA graphs, and each call marks a new step
    (``torch.compiler.cudagraph_mark_step_begin``) so the previous call's outputs, already
    consumed, may be overwritten."""
    key = (name, device.type)
    if key not in cache:
        if device.type == "cuda":
            graphed = torch.compile(fn, mode="reduce-overhead", dynamic=None)

            def stepped(*args: Any) -> Any:
                torch.compiler.cudagraph_mark_step_begin()
                return graphed(*args)

            cache[key] = stepped
        else:
            # dynamic=None: a second batch size recompiles once with the batch symbolic,
            # then every batch size reuses that graph
            cache[key] = torch.compile(fn, dynamic=None)
    return cache[key]


def _clip_norm(g: Tensor, max_norm: float) -> Tensor:
    """Scale each sample's gradient so that ‖g_b‖₂ ≤ max_norm (no host sync)."""
    norm = g.reshape(g.shape[0], -1).norm(dim=1).clamp_min(1e-12)
    scale = (max_norm / norm).clamp(max=1.0)
    return g * scale.reshape((-1,) + (1,) * (g.dim() - 1))


class Langevin:
    r"""Unadjusted Langevin dynamics (SGLD) on an energy.

    Each of ``steps`` updates is

    $$ y \leftarrow y - \eta\,\nabla_y E(y) + \sigma\,\varepsilon, \qquad
       \varepsilon \sim \mathcal N(0, I), $$

    with step size $\eta$ = ``step_size`` and noise scale $\sigma$ = ``noise``. With
    ``noise=None`` (the default), $\sigma = \sqrt{2\eta}$: the Euler discretisation of the
    Langevin diffusion, whose stationary law is $p(y) \propto \exp(-E(y))$ (up to an
    $O(\eta)$ bias). The defaults (``step_size=0.01``, so $\sigma \approx 0.14$) sample;
    they are not tuned for any energy's scale. Larger steps with tiny noise (e.g.
    ``step_size=10.0, noise=0.005``, the IGEBM/JEM choice) give short-run, nearly
    deterministic chains that train EBMs well but do not sample $\exp(-E)$: the noise is
    then a regulariser, not the diffusion's.

    Args:
        steps: Number of updates.
        step_size: $\eta$.
        noise: $\sigma$; ``None`` for the exact $\sqrt{2\eta}$.
        grad_clip: If set, each sample's gradient is rescaled so its L2 norm (over all of the
            sample's features) is at most ``grad_clip`` (norm clipping, per sample).
        clamp: ``(lo, hi)``: clamp y to this box after every step (e.g. ``(0.0, 1.0)`` for
            images).
        compile: Run the loop under ``torch.compile`` (see the module docstring). The noise
            is drawn outside the compiled graph, so a seed gives the same chains either way
            up to floating-point rounding.
        autocast: Evaluate the energy and its gradient under autocast: ``True`` for bf16
            (``torch.bfloat16`` or ``torch.float16`` to choose). The chains stay in float32
            (each step's gradient is cast up before the update), so only the energy's
            matmuls and convolutions run in low precision. Not with ``compile`` yet.
    """

    def __init__(self, steps: int = 60, step_size: float = 0.01, noise: float | None = None,
                 grad_clip: float | None = None, clamp: tuple[float, float] | None = None,
                 compile: bool = False, autocast: bool | torch.dtype = False) -> None:
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ConfigError(f"Langevin: steps must be an int >= 0, got {steps!r}")
        if autocast not in (False, True, torch.bfloat16, torch.float16):
            raise ConfigError(f"Langevin: autocast must be False, True (bf16), torch.bfloat16 "
                              f"or torch.float16, got {autocast!r}")
        if autocast is not False and compile:
            raise ConfigError("Langevin: autocast=... with compile=True is not supported; "
                              "pass one of them")
        self.autocast: torch.dtype | None = (None if autocast is False else torch.bfloat16
                                             if autocast is True else autocast)
        if not step_size > 0:
            raise ConfigError(f"Langevin: step_size must be > 0, got {step_size!r}")
        if noise is not None and not noise >= 0:
            raise ConfigError(f"Langevin: noise must be >= 0 or None, got {noise!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ConfigError(f"Langevin: grad_clip must be > 0 or None, got {grad_clip!r}")
        if clamp is not None and (len(clamp) != 2 or not clamp[0] < clamp[1]):
            raise ConfigError(f"Langevin: clamp must be (lo, hi) with lo < hi, got {clamp!r}")
        self.steps, self.step_size, self.grad_clip = steps, float(step_size), grad_clip
        self.noise = math.sqrt(2.0 * step_size) if noise is None else float(noise)
        self.clamp = None if clamp is None else (float(clamp[0]), float(clamp[1]))
        self.compile = bool(compile)
        self._graphs: dict[tuple[str, str], Callable[..., Any]] = {}  # compiled loops

    def sample(self, energy: EnergyFn, init: Tensor, x: Tensor | None = None) -> Tensor:
        """Run the chains from ``init`` (``[B, ...]``, not modified) and return them, detached
        (in ``init``'s dtype; the chains themselves run in float32 when it is half)."""
        fn = _bind(energy, x, "Langevin")
        init = _check_init(init, "Langevin")
        if self.compile:
            return self._sample_compiled(energy, init, x)
        eta, sigma, clip, box = self.step_size, self.noise, self.grad_clip, self.clamp
        amp = self.autocast
        with _float32_chains(init) as start:
            y = start.detach().clone().requires_grad_(True)
            for _ in range(self.steps):
                if amp is None:
                    e = fn(y)
                else:  # low-precision energy; the gradient w.r.t. the float32 leaf is float32
                    with torch.autocast(y.device.type, dtype=amp):
                        e = fn(y)
                    e = e.float()
                if e.shape != y.shape[:1]:
                    raise ConfigError(f"Langevin: the energy must return one value per sample, "
                                      f"shape [{y.shape[0]}], got {list(e.shape)}")
                (g,) = torch.autograd.grad(e.sum(), y)
                if clip is not None:
                    g = _clip_norm(g, clip)
                # In-place on the leaf's data: the graph is gone, and a fresh leaf per step
                # would cost an allocation and a requires_grad_ call for nothing.
                d = y.detach()
                d.add_(g, alpha=-eta)
                if sigma:
                    d.add_(torch.randn_like(d), alpha=sigma)
                if box is not None:
                    d.clamp_(*box)
        return y.detach().to(init.dtype)

    def _sample_compiled(self, energy: EnergyFn, init: Tensor, x: Tensor | None) -> Tensor:
        with _float32_chains(init) as start, torch.no_grad():
            y = start.detach().clone()
            e = energy(y) if x is None else energy(y, x=x)  # one eager check of the shape
            if not isinstance(e, Tensor) or e.shape != y.shape[:1]:
                got = list(e.shape) if isinstance(e, Tensor) else type(e).__name__
                raise ConfigError(f"Langevin: the energy must return one value per sample, "
                                  f"shape [{y.shape[0]}], got {got}")
        lo, hi = self.clamp if self.clamp is not None else (None, None)
        # step size and noise as 0-d tensors (fills, no copy): new values compile nothing
        args = (torch.full((), self.step_size, device=y.device, dtype=y.dtype),
                torch.full((), self.noise, device=y.device, dtype=y.dtype),
                self.grad_clip, lo, hi)
        chunk = _compiled(self._graphs, "langevin", _langevin_chunk, y.device)
        done = 0
        # no_grad: torch.func.grad still differentiates w.r.t. y inside the graph, but the
        # energy's parameters (requires_grad) would otherwise make AOTAutograd compile a
        # training graph that saves activations for a backward that never runs (and
        # recompile once y's requires_grad flips): ~35% slower at 64 chains.
        with torch.inference_mode(False), torch.no_grad(), \
                torch.autocast(y.device.type, enabled=False):
            while done < self.steps:
                k = _CHUNK if self.steps - done >= _CHUNK else 1
                noise = (torch.randn((k, *y.shape), device=y.device, dtype=y.dtype)
                         if self.noise else y.new_zeros((k, 0)))
                y = chunk(energy, x, y, noise, *args)  # k = 1 for the remainder's steps
                done += k
        return y.detach().clone().to(init.dtype)  # clone: a CUDA graph reuses its output

    def __repr__(self) -> str:
        return (f"Langevin(steps={self.steps}, step_size={self.step_size:g}, noise={self.noise:g}, "
                f"grad_clip={self.grad_clip}, clamp={self.clamp}"
                f"{', compile=True' if self.compile else ''}"
                f"{f', autocast={self.autocast}' if self.autocast is not None else ''})")


class HMC:
    r"""Hamiltonian Monte Carlo with a leapfrog integrator and per-sample Metropolis tests.

    With momentum $p \sim \mathcal N(0, mI)$ and Hamiltonian
    $H(y, p) = E(y) + \tfrac{1}{2m}\lVert p\rVert^2$, each of ``steps`` iterations integrates
    $L$ = ``leapfrog_steps`` leapfrog steps of size $\epsilon$,

    $$ p \leftarrow p - \tfrac{\epsilon}{2}\nabla E(y),\quad
       y \leftarrow y + \epsilon\, p / m,\quad
       p \leftarrow p - \tfrac{\epsilon}{2}\nabla E(y), $$

    and accepts the proposal $(y', p')$ for each chain with probability
    $\min(1, \exp(H(y, p) - H(y', p')))$. The chains leave $p(y) \propto \exp(-E(y))$
    exactly invariant.

    Attributes:
        acceptance_rate: After ``sample``, the mean acceptance over chains and iterations
            (a 0-dim tensor on the samples' device; ``None`` before the first call).

    Args:
        steps: Metropolis iterations.
        step_size: $\epsilon$.
        leapfrog_steps: $L$.
        mass: $m$, a scalar.
        compile: Run each leapfrog trajectory as one ``torch.compile``d graph (see the
            module docstring); the Metropolis test stays eager.
    """

    def __init__(self, steps: int = 100, step_size: float = 0.1, leapfrog_steps: int = 10,
                 mass: float = 1.0, compile: bool = False) -> None:
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ConfigError(f"HMC: steps must be an int >= 1, got {steps!r}")
        if not isinstance(leapfrog_steps, int) or leapfrog_steps < 1:
            raise ConfigError(f"HMC: leapfrog_steps must be an int >= 1, got {leapfrog_steps!r}")
        if not step_size > 0:
            raise ConfigError(f"HMC: step_size must be > 0, got {step_size!r}")
        if not mass > 0:
            raise ConfigError(f"HMC: mass must be > 0, got {mass!r}")
        self.steps, self.step_size = steps, float(step_size)
        self.leapfrog_steps, self.mass = leapfrog_steps, float(mass)
        self.compile = bool(compile)
        self._graphs: dict[tuple[str, str], Callable[..., Any]] = {}  # compiled loops
        self.acceptance_rate: Tensor | None = None

    def sample(self, energy: EnergyFn, init: Tensor, x: Tensor | None = None) -> Tensor:
        """Run the chains from ``init`` (``[B, ...]``, not modified) and return them, detached."""
        fn = _bind(energy, x, "HMC")
        init = _check_init(init, "HMC")
        eps, m = self.step_size, self.mass
        view = (-1,) + (1,) * (init.dim() - 1)

        def kinetic(p: Tensor) -> Tensor:
            return p.reshape(p.shape[0], -1).square().sum(dim=1) / (2.0 * m)

        trajectory = (_compiled(self._graphs, "leapfrog", _leapfrog, init.device)
                      if self.compile else None)
        with _float32_chains(init) as start:
            y = start.detach().clone()
            accepted = torch.zeros((), device=y.device, dtype=torch.float32)
            e, g = _energy_and_grad(fn, y, "HMC")
            for _ in range(self.steps):
                p = torch.randn_like(y) * math.sqrt(m)
                if trajectory is not None:
                    with torch.no_grad():  # an inference graph (see Langevin._sample_compiled)
                        y_new, p_new, e_new, g_new = trajectory(energy, x, y, p, g, eps, m,
                                                                self.leapfrog_steps)
                else:
                    y_new, g_new = y, g
                    p_new = p - 0.5 * eps * g
                    for i in range(self.leapfrog_steps):
                        y_new = y_new + (eps / m) * p_new
                        e_new, g_new = _energy_and_grad(fn, y_new, "HMC")
                        # Full momentum steps in between, a half step at the end.
                        p_new = p_new - (eps if i < self.leapfrog_steps - 1 else 0.5 * eps) * g_new
                log_ratio = (e + kinetic(p)) - (e_new + kinetic(p_new))
                # A NaN ratio (diverged proposal) compares False: rejected.
                accept = torch.rand_like(log_ratio).log() < log_ratio
                mask = accept.reshape(view)
                y = torch.where(mask, y_new.detach(), y)
                g = torch.where(mask, g_new, g)
                e = torch.where(accept, e_new, e)
                accepted = accepted + accept.float().mean()
        self.acceptance_rate = accepted / self.steps
        return y.detach().to(init.dtype)

    def __repr__(self) -> str:
        return (f"HMC(steps={self.steps}, step_size={self.step_size:g}, "
                f"leapfrog_steps={self.leapfrog_steps}, mass={self.mass:g}"
                f"{', compile=True' if self.compile else ''})")


class ReplayBuffer:
    """Device-resident storage of past samples, for persistent contrastive divergence.

    The buffer has ``capacity`` slots. ``sample(n, init_fn)`` picks n slots uniformly at
    random and returns their samples with the slot indices; slots never written yet yield
    fresh ``init_fn`` draws (so an empty buffer behaves like one filled with ``init_fn``
    noise, as in JEM), and each drawn sample is independently replaced by a fresh draw with
    probability ``reinit``, which keeps the chains from collapsing. After running the
    sampler, ``push(samples, idx)`` writes the chains back to their slots.

    Storage is allocated on the device, dtype and per-sample shape of the first tensors it
    sees (pushed or drawn from ``init_fn``); ``to(device)`` moves it. ``state_dict()`` holds
    tensors only, so a checkpoint loads with ``torch.load(..., weights_only=True)``.

    Args:
        capacity: Number of slots.
        reinit: Probability that a drawn sample is replaced by a fresh ``init_fn`` draw.
    """

    def __init__(self, capacity: int = 10_000, reinit: float = 0.05) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ConfigError(f"ReplayBuffer: capacity must be an int >= 1, got {capacity!r}")
        if not 0.0 <= reinit <= 1.0:
            raise ConfigError(f"ReplayBuffer: reinit must be in [0, 1], got {reinit!r}")
        self.capacity, self.reinit = capacity, float(reinit)
        self.storage: Tensor | None = None   # [capacity, ...]
        self.filled: Tensor | None = None    # [capacity] bool: slot written at least once
        self._next = 0                       # round-robin write position for push(idx=None)
        self._device: torch.device | None = None

    # -- storage ---------------------------------------------------------------------------
    def _allocate(self, like: Tensor) -> None:
        device = self._device or like.device
        shape = (self.capacity, *like.shape[1:])
        self.storage = torch.zeros(shape, dtype=like.dtype, device=device)
        self.filled = torch.zeros(self.capacity, dtype=torch.bool, device=device)

    def _check(self, t: Tensor, what: str) -> None:
        assert self.storage is not None
        if t.shape[1:] != self.storage.shape[1:]:
            raise ConfigError(f"ReplayBuffer: {what} must be shaped [n, "
                              f"{', '.join(map(str, self.storage.shape[1:]))}] like the buffer, "
                              f"got {list(t.shape)}")
        if t.device != self.storage.device:
            raise ConfigError(f"ReplayBuffer: {what} is on {t.device} but the buffer is on "
                              f"{self.storage.device}; move it with buffer.to({str(t.device)!r})")

    def __len__(self) -> int:
        """Number of slots written at least once (one host sync: keep it out of loops)."""
        return 0 if self.filled is None else int(self.filled.sum())

    @property
    def device(self) -> torch.device | None:
        return None if self.storage is None else self.storage.device

    def to(self, device: torch.device | str) -> ReplayBuffer:
        """Move the storage (now or when it is allocated) to ``device``; returns ``self``."""
        self._device = torch.device(device)
        if self.storage is not None:
            self.storage = self.storage.to(self._device)
            self.filled = self.filled.to(self._device)
        return self

    # -- sampling --------------------------------------------------------------------------
    def sample(self, n: int, init_fn: Callable[[int], Tensor]) -> tuple[Tensor, Tensor]:
        """Draw ``n`` samples and their slot indices.

        Args:
            n: How many.
            init_fn: ``init_fn(n) -> [n, ...]`` fresh chain starts (e.g. uniform noise).

        Returns:
            ``(samples [n, ...], idx [n])``: pass ``idx`` back to ``push`` after sampling.
        """
        fresh = init_fn(n)
        if not isinstance(fresh, Tensor) or fresh.dim() == 0 or fresh.shape[0] != n:
            got = list(fresh.shape) if isinstance(fresh, Tensor) else type(fresh).__name__
            raise ConfigError(f"ReplayBuffer.sample: init_fn({n}) must return a tensor [{n}, ...], "
                              f"got {got}")
        if self.storage is None:
            self._allocate(fresh)
        fresh = fresh.to(dtype=self.storage.dtype)
        self._check(fresh, f"init_fn({n})")
        # Distinct slots (without replacement): duplicate writes of push's index_put would
        # land in an undefined order on CUDA and break bit-identical runs. More chains than
        # slots must share some: then with replacement.
        device = self.storage.device
        idx = (torch.randperm(self.capacity, device=device)[:n] if n <= self.capacity
               else torch.randint(self.capacity, (n,), device=device))
        # Keep a stored sample only if its slot was written and its coin says "keep".
        keep = self.filled[idx]
        if self.reinit > 0:
            keep = keep & (torch.rand(n, device=idx.device) >= self.reinit)
        keep = keep.reshape((-1,) + (1,) * (fresh.dim() - 1))
        return torch.where(keep, self.storage[idx], fresh), idx

    def push(self, samples: Tensor, idx: Tensor | None = None) -> None:
        """Write ``samples`` ``[n, ...]`` back (detached) at ``idx``, or round-robin if None."""
        if not isinstance(samples, Tensor) or samples.dim() == 0:
            got = "a scalar" if isinstance(samples, Tensor) else type(samples).__name__
            raise ConfigError(f"ReplayBuffer.push: samples must be a tensor [n, ...], got {got}")
        samples = samples.detach()
        if self.storage is None:
            self._allocate(samples)
        self._check(samples, "samples")
        n = samples.shape[0]
        if idx is None:
            idx = (torch.arange(n, device=samples.device) + self._next) % self.capacity
            self._next = (self._next + n) % self.capacity
            if n > self.capacity:  # only the last `capacity` samples survive a wrap-around
                idx, samples = idx[-self.capacity:], samples[-self.capacity:]
        elif not isinstance(idx, Tensor) or idx.shape != (n,):
            got = list(idx.shape) if isinstance(idx, Tensor) else type(idx).__name__
            raise ConfigError(f"ReplayBuffer.push: idx must be a tensor [{n}], got {got}")
        idx = idx.to(self.storage.device)
        self.storage[idx] = samples.to(self.storage.dtype)
        self.filled[idx] = True

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only: ``storage``, ``filled`` (when allocated) and ``next``."""
        state = {"next": torch.tensor(self._next, dtype=torch.int64)}
        if self.storage is not None:
            state["storage"], state["filled"] = self.storage, self.filled
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "next" not in state:
            raise ConfigError(f"ReplayBuffer.load_state_dict: expected keys 'next' (and "
                              f"'storage', 'filled'), got {sorted(state)}")
        if "storage" in state:
            storage, filled = state["storage"], state["filled"]
            if storage.shape[0] != self.capacity or filled.shape != (self.capacity,):
                raise ConfigError(f"ReplayBuffer.load_state_dict: the checkpoint holds "
                                  f"{storage.shape[0]} slots, this buffer has capacity "
                                  f"{self.capacity}; build it with capacity={storage.shape[0]}")
            device = self._device or storage.device
            self.storage = storage.to(device).clone()
            self.filled = filled.to(device, torch.bool).clone()
        else:
            self.storage = self.filled = None
        self._next = int(state["next"]) % self.capacity

    def __repr__(self) -> str:
        where = "unallocated" if self.storage is None else f"{self.storage.device}"
        return f"ReplayBuffer(capacity={self.capacity}, reinit={self.reinit:g}, {where})"
