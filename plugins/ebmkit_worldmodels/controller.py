"""C: a linear controller on [z, h], trained by CMA-ES in the real environment or in M's dream.

The controller scores each of the A discrete actions with a linear map of the standardised
features f = ([z_t, h_t] − m) / s and takes the argmax:

    a_t = argmax_a (W f + b)_a,   W ∈ R^{A×F}, b ∈ R^A.

It has no gradient: CMA-ES (``cma.CMAEvolutionStrategy``, ask/tell) searches the flat
vector [W, b] to maximise the mean return over several rollouts per candidate (the return is
noisy: each generation's candidates share the same rollout seeds, so they are compared on
equal terms). With ``memory=False`` the features are z alone: the V-only ablation.

Axis letters in shape comments: P candidates, E environments (P × rollouts), F features,
A actions, K latent size, H hidden size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .mdnrnn import MDNRNN, sample_mixture

__all__ = ["CMAHistory", "LinearController", "Agent", "cma_search", "dream_returns"]


class LinearController(nn.Module):
    """``a = argmax(W ((f − mean) P) + b)``; W, b and the feature statistics are buffers.

    ``P`` (``proj``, ``[F, F]``) whitens the features collected (their covariance becomes
    the identity, up to a floor on small eigenvalues), so CMA-ES starts from an isotropic
    problem; C stays a linear map of [z, h].
    """

    def __init__(self, features: int, actions: int) -> None:
        super().__init__()
        self.features, self.actions = features, actions
        self.register_buffer("weight", torch.zeros(actions, features))
        self.register_buffer("bias", torch.zeros(actions))
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("proj", torch.eye(features))

    @property
    def size(self) -> int:
        """Number of searched parameters: F + 1 for two actions (only the difference of
        their scores matters), A·(F + 1) otherwise."""
        return self.features + 1 if self.actions == 2 else self.actions * (self.features + 1)

    def unflatten(self, flat: Tensor) -> tuple[Tensor, Tensor]:
        """Searched vectors ``[P, size]`` → W ``[P, A, F]``, b ``[P, A]``."""
        if self.actions == 2:  # action 1 scores v·f + c, action 0 scores 0
            w = torch.stack([torch.zeros_like(flat[:, :-1]), flat[:, :-1]], dim=1)
            b = torch.stack([torch.zeros_like(flat[:, -1]), flat[:, -1]], dim=1)
            return w, b
        w = flat[:, : self.actions * self.features].reshape(-1, self.actions, self.features)
        return w, flat[:, self.actions * self.features:]

    def set_flat(self, flat: np.ndarray | Tensor) -> None:
        flat = torch.as_tensor(np.asarray(flat), dtype=self.weight.dtype,
                               device=self.weight.device).reshape(1, -1)
        w, b = self.unflatten(flat)
        self.weight.copy_(w[0])
        self.bias.copy_(b[0])

    def flat(self) -> np.ndarray:
        """The searched vector of the current W, b (inverse of ``set_flat``)."""
        if self.actions == 2:
            v = torch.cat([self.weight[1] - self.weight[0], self.bias[1:] - self.bias[:1]])
            return v.cpu().double().numpy()
        return torch.cat([self.weight.flatten(), self.bias]).cpu().double().numpy()

    def standardise(self, f: Tensor) -> Tensor:
        return (f - self.mean) @ self.proj

    @torch.no_grad()
    def fit_features(self, f: Tensor, whiten: bool = True) -> None:
        """Set ``mean`` and ``proj`` from features ``[N, F]``: whitening (eigenvalues floored
        at 1% of their mean) or, with ``whiten=False``, per-feature standardisation."""
        self.mean.copy_(f.mean(0))
        if not whiten:
            self.proj.copy_(torch.diag(1.0 / (f.std(0) + 1e-3)))
            return
        cov = torch.cov(f.T.double())
        lam, u = torch.linalg.eigh(cov)
        lam = lam.clamp_min(0) + 0.01 * lam.clamp_min(0).mean() + 1e-12
        self.proj.copy_((u / lam.sqrt()).to(self.proj.dtype))

    def forward(self, f: Tensor) -> Tensor:
        """Actions ``[B]`` (int64) for features ``[B, F]``."""
        return (self.standardise(f) @ self.weight.T + self.bias).argmax(dim=-1)

    def act_many(self, f: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """Each row of ``f [E, F]`` with its own candidate ``w [E, A, F]``, ``b [E, A]``."""
        return (torch.einsum("eaf,ef->ea", w, self.standardise(f)) + b).argmax(dim=-1)


class Agent:
    """V, M and C stepping a batch of real environments: encode, act, update M's state.

    ``choose(frames, alive)`` is what ``env.run_episodes`` calls; ``alive`` are the indices
    (into the batch) of the environments still running. With ``w``/``b`` given, environment
    e acts with its own candidate; otherwise with C's weights.
    """

    def __init__(self, vision: nn.Module, memory: MDNRNN, controller: LinearController,
                 batch: int, use_memory: bool = True, w: Tensor | None = None,
                 b: Tensor | None = None) -> None:
        self.vision, self.memory, self.controller = vision, memory, controller
        self.use_memory = use_memory
        self.device = controller.weight.device  # V, M and C live together
        self.h, self.c = memory.initial(batch, self.device)
        self.w, self.b = w, b

    @torch.no_grad()
    def __call__(self, frames: Tensor, alive: list[int]) -> Tensor:
        idx = torch.tensor(alive, device=self.device)
        with self.vision.trusted_input():  # frames from FrameSpec: finite, in [0, 1]
            z = self.vision.encode(frames.to(self.device))  # [E, K], the posterior mean
        state = (self.h[:, idx], self.c[:, idx])
        f = torch.cat([z, state[0][0]], dim=-1) if self.use_memory else z
        if self.w is None:
            a = self.controller(f)
        else:
            a = self.controller.act_many(f, self.w[idx], self.b[idx])
        if self.use_memory:
            _, (h, c) = self.memory.step(z, a, state)
            self.h[:, idx], self.c[:, idx] = h, c
        return a


@torch.no_grad()
def dream_returns(memory: MDNRNN, controller: LinearController, starts: Tensor, w: Tensor,
                  b: Tensor, *, max_steps: int = 500, tau: float = 1.0, use_memory: bool = True,
                  generator: torch.Generator | None = None) -> Tensor:
    """Returns of rollouts inside M's dream, one per row of ``w [E, A, F]``, ``b [E, A]``.

    Each rollout starts from a latent of ``starts [E, K]`` (real first frames, encoded), then
    C acts on [z, h], M steps, the next z is drawn at temperature τ and the episode ends with
    the probability of M's end head. The reward is +1 per step survived (CartPole's): M has
    no reward head, so the pipeline refuses the dream in environments rewarded otherwise.
    """
    e = starts.shape[0]
    z = starts
    h, c = memory.initial(e, starts.device)
    alive = torch.ones(e, dtype=torch.bool, device=starts.device)
    ret = torch.zeros(e, device=starts.device)
    for t in range(max_steps):
        f = torch.cat([z, h[0]], dim=-1) if use_memory else z
        a = controller.act_many(f, w, b)
        mix, (h, c) = memory.step(z, a, (h, c))
        ret += alive.float()
        u = torch.rand(e, generator=generator, device=starts.device)
        alive &= u >= torch.sigmoid(mix.done_logit)
        z = sample_mixture(mix, tau, generator)
        if t % 50 == 49 and not bool(alive.any()):  # one sync every 50 steps
            break
    return ret


@dataclass
class CMAHistory:
    """Per generation: best and mean candidate return, the CMA mean's step size, time."""

    best: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    sigma: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    evaluations: int = 0


def cma_search(evaluate: Callable[[np.ndarray, int], np.ndarray], dim: int, *,
               generations: int, popsize: int, sigma0: float = 0.5, seed: int = 0,
               deadline: float | None = None, target: float | None = None,
               progress: bool = False, desc: str = "C") -> tuple[list[np.ndarray], CMAHistory]:
    """Maximise ``evaluate(candidates [P, dim], generation) -> mean returns [P]`` with CMA-ES.

    Stops after ``generations``, at ``deadline`` (a ``time.monotonic()`` value) or once a
    generation's *mean* return reaches ``target``. Returns finalists (the last best
    candidate, the best ever, and the distribution's mean) and the history.
    """
    import cma
    from tqdm.auto import tqdm

    es = cma.CMAEvolutionStrategy(np.zeros(dim), sigma0,
                                  {"popsize": popsize, "seed": seed + 1, "verbose": -9})
    hist = CMAHistory()
    best_ever, best_ever_ret, last_best = np.zeros(dim), -np.inf, np.zeros(dim)
    bar = tqdm(range(generations), desc=desc, disable=not progress, leave=False)
    for gen in bar:
        start = time.monotonic()
        cands = es.ask()
        rets = np.asarray(evaluate(np.stack(cands), gen), dtype=float)
        es.tell(cands, (-rets).tolist())
        i = int(np.argmax(rets))
        last_best = np.asarray(cands[i])
        if rets[i] >= best_ever_ret:
            best_ever, best_ever_ret = last_best, float(rets[i])
        hist.best.append(float(rets.max()))
        hist.mean.append(float(rets.mean()))
        hist.sigma.append(float(es.sigma))
        hist.seconds.append(time.monotonic() - start)
        hist.evaluations += len(cands)
        bar.set_postfix(best=f"{rets.max():.0f}", mean=f"{rets.mean():.0f}")
        if deadline is not None and time.monotonic() > deadline:
            break
        if target is not None and rets.mean() >= target:
            break
    bar.close()
    return [last_best, best_ever, np.asarray(es.result.xfavorite)], hist
