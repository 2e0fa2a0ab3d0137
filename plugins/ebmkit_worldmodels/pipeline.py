"""collect → V → M → C → evaluate → report: the whole World Models recipe in one call.

1. Collect seeded random rollouts from the real environment's pixels.
2. Train V (``autoencoder.variational``, conv) on their frames: minimise the free energy
   F(y) = −ELBO(y) per frame.
3. Encode every frame to V's mean code z and train M on the latent sequences: minimise the
   transition energies (mixture NLL) plus the end head's cross-entropy.
4. Train C by CMA-ES on the mean return of several rollouts per candidate, in the real
   environment (default) or, with ``dream=True``, first inside M's dream at temperature τ.
5. Optionally (``rounds``) collect again with the current controller (ε-greedy), fine-tune V
   and M on everything collected, and search C again from its last mean.
6. Evaluate V+M, the V-only ablation (a controller on z alone, same search budget) and the
   random policy on the same seeded real episodes; write the report.

Timings are split between the environment (stepping, rendering, frame preprocessing), V, M
and C (CMA-ES, controller and dream arithmetic).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebmkit.config import at_least, number
from ebmkit.errors import ConfigError

from .controller import Agent, CMAHistory, LinearController, cma_search, dream_returns
from .env import (
    ENVIRONMENTS,
    Episode,
    FrameSpec,
    collect,
    make_env,
    require,
    resolve_crop,
    run_episodes,
    stack_frames,
)
from .mdnrnn import mixture_nll, same_latent_nll, train_memory
from .model import WorldModel, WorldModelConfig
from .result import Result

__all__ = ["Result", "RunConfig", "run", "evaluate_policy"]

EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED + i, never seen in training


@dataclass
class RunConfig:
    """Every knob of the recipe; the defaults are the recipe of ``ebmkit worldmodels``."""

    env: str = "CartPole-v1"
    # [top, bottom, left, right] of the render, "full" (the whole frame) or "auto" (the
    # env's known crop; an error where none is known: env.ENVIRONMENTS)
    crop: list[int] | str | None = "auto"
    seed: int = 0
    device: str = "auto"
    frame_size: int = 64
    code: int = 8  # K
    channels: int = 16
    hidden: int = 32  # H
    mixtures: int = 5
    episodes: int = 300  # random rollouts collected first
    vae_epochs: int = 8
    vae_lr: float = 2e-3
    vae_batch: int = 64
    mdn_epochs: int = 30
    mdn_lr: float = 3e-3
    popsize: int = 16
    rollouts: int = 3  # real episodes averaged per candidate
    generations: int = 40  # CMA-ES generations per real search (at most: see stop_at)
    stop_at: float | None = 0.95  # a search stops once a generation's mean ≥ this × max_steps
    sigma0: float = 0.5
    whiten: bool = True  # C's features whitened on the collected steps (else standardised)
    max_steps: int = 200  # cap of one search episode (finalists and evaluation: the env's)
    rounds: int = 0  # iterative collection rounds after the first search
    round_episodes: int = 40  # episodes collected with the controller per round
    epsilon: float = 0.1  # random-action probability while collecting with the controller
    dream: bool = False  # search C in M's dream first, then in the real environment
    dream_generations: int = 40
    dream_rollouts: int = 8  # dreamed episodes averaged per candidate
    temperature: float = 1.0  # τ of dreamed rollouts
    eval_episodes: int = 20
    ablation: bool = True  # also train and evaluate the V-only controller
    minutes: float | None = None  # optional wall-clock cap on C's searches (machine-dependent)

    def check(self) -> None:
        for key in ("frame_size", "code", "channels", "hidden", "mixtures", "episodes",
                    "vae_epochs", "vae_batch", "mdn_epochs", "popsize", "rollouts",
                    "max_steps", "round_episodes", "eval_episodes", "dream_rollouts"):
            at_least(key, getattr(self, key), 2 if key == "popsize" else 1, who="worldmodels")
        for key in ("generations", "rounds", "dream_generations"):
            at_least(key, getattr(self, key), 0, who="worldmodels")
        number("epsilon", self.epsilon, low=0.0, high=1.0, who="worldmodels")
        number("temperature", self.temperature, low=0.0, who="worldmodels")
        number("sigma0", self.sigma0, low=0.0, low_open=True, who="worldmodels")
        if self.stop_at is not None:
            number("stop_at", self.stop_at, low=0.0, low_open=True, who="worldmodels")
        if self.minutes is not None:
            number("minutes", self.minutes, low=0.0, low_open=True, who="worldmodels")
        resolve_crop(self.env, self.crop)
        known = ENVIRONMENTS.get(self.env)
        if self.dream and (known is None or not known.survival):
            what = ("its reward is not +1 per step" if known is not None
                    else "its reward is not known to be +1 per step")
            raise ConfigError(
                f"worldmodels: dream=True (--dream) scores a controller by the steps it survives "
                f"in M's dream (M has no reward head), but {self.env} is not a survival task: "
                f"{what}; the dream would optimise the wrong thing. Run without --dream (C is "
                f"then searched in the real environment); the dream is accepted on "
                f"{', '.join(k for k, v in sorted(ENVIRONMENTS.items()) if v.survival)}")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}") \
            from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available here; use --device cpu")
    return dev


class Timer:
    """Seconds per part (env, V, M, C), wall clock."""

    def __init__(self) -> None:
        self.parts = {"env": 0.0, "V": 0.0, "M": 0.0, "C": 0.0}
        self.env_steps = {"collect": 0, "control": 0}
        self.seconds = {"collect": 0.0, "control": 0.0, "dream": 0.0}
        self.dream_steps = 0

    def add(self, part: str, seconds: float) -> None:
        self.parts[part] += seconds


def _check_out(out: Path) -> None:
    """Refuse a run directory that holds another model (or is a file)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: expected a directory, found a file")
    header = out / "model.json"
    if header.exists():
        try:
            name = json.loads(header.read_text()).get("name")
        except (OSError, ValueError, AttributeError):
            name = None
        if name != WorldModel.name:
            raise ConfigError(f"--out {out}: holds a saved {name!r} model, not a worldmodels "
                              "run; choose another directory")


# -- V -----------------------------------------------------------------------------------
def train_vision(model: WorldModel, frames: torch.Tensor, cfg: RunConfig, epochs: int,
                 progress: bool) -> list[float]:
    """Adam on the mean free energy (−ELBO) of uint8 frames ``[N, D]``; per-epoch means."""
    from tqdm.auto import tqdm

    vision, dev = model.vision, model.device
    opt = torch.optim.Adam(vision.parameters(), lr=cfg.vae_lr)
    g = torch.Generator().manual_seed(cfg.seed)
    losses = []
    vision.train()
    for _ in tqdm(range(epochs), desc="V", disable=not progress, leave=False):
        perm = torch.randperm(len(frames), generator=g)
        total = torch.zeros((), device=dev)
        for i in range(0, len(frames), cfg.vae_batch):
            y = frames[perm[i:i + cfg.vae_batch]].to(dev).float() / 255  # [B, D]
            loss = vision.free_energy(y).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(y)
        losses.append(float(total) / len(frames))
    vision.eval()
    return losses


@torch.no_grad()
def encode(model: WorldModel, episodes: list[Episode]) -> list[torch.Tensor]:
    """V's mean code of every frame, per episode ``[T + 1, K]``."""
    frames = stack_frames(episodes).to(model.device).float() / 255
    z = torch.cat([model.vision.encode(frames[i:i + 1024]) for i in range(0, len(frames), 1024)])
    return list(z.split([len(e.frames) for e in episodes]))


@torch.no_grad()
def features(model: WorldModel, latents: list[torch.Tensor],
             episodes: list[Episode]) -> torch.Tensor:
    """C's features [z_t, h_t] at every collected step, ``[N, K + H]``."""
    feats = []
    for z, e in zip(latents, episodes):
        _, hs = model.memory(z[None, :-1], e.actions[None].to(z.device))  # [1, T, H]
        h = torch.cat([torch.zeros_like(hs[0, :1]), hs[0]])  # h_t before each step
        feats.append(torch.cat([z, h], dim=1))
    return torch.cat(feats)


# -- C -----------------------------------------------------------------------------------
def _search(model: WorldModel, controller: LinearController, cfg: RunConfig, *, memory: bool,
            generations: int, timer: Timer, deadline: float | None, x0: np.ndarray | None,
            seed_base: int, progress: bool, desc: str) -> tuple[np.ndarray, CMAHistory]:
    """CMA-ES of C in the real environment; the finalist with the best fresh-seed return.

    Search episodes stop after ``cfg.max_steps``; the search stops early once a generation's
    mean return reaches ``cfg.stop_at × cfg.max_steps``. The finalists are then compared on
    fresh seeds over whole episodes (to the environment's own limit).
    """
    spec = model.frames
    r = cfg.rollouts

    def evaluate(cands: np.ndarray, gen: int, max_steps: int | None = None) -> np.ndarray:
        if x0 is not None:
            cands = cands + x0
        w, b = controller.unflatten(torch.as_tensor(cands, dtype=torch.float32,
                                                    device=model.device))
        agent = Agent(model.vision, model.memory, controller, len(cands) * r,
                      use_memory=memory, w=w.repeat_interleave(r, 0),
                      b=b.repeat_interleave(r, 0))
        seeds = [seed_base + gen * r + k for k in range(r)] * len(cands)
        rets = _real(agent, seeds, spec, cfg, timer, max_steps=max_steps or cfg.max_steps)
        return rets.reshape(len(cands), r).mean(1)

    target = cfg.stop_at * cfg.max_steps if cfg.stop_at is not None else None
    finalists, hist = cma_search(evaluate, controller.size, generations=generations,
                                 popsize=cfg.popsize, sigma0=cfg.sigma0, seed=cfg.seed,
                                 deadline=deadline, target=target, progress=progress, desc=desc)
    if x0 is not None:
        finalists = [f + x0 for f in finalists]
    # pick among the finalists on fresh seeds (the search's returns are optimistic)
    flat = np.stack(finalists)
    scores = evaluate(flat - (x0 if x0 is not None else 0), generations + 1000, 10**9)
    return flat[int(np.argmax(scores))], hist


def _real(agent: Agent | None, seeds: list[int], spec: FrameSpec, cfg: RunConfig,
          timer: Timer, rng: np.random.Generator | None = None,
          max_steps: int | None = None) -> np.ndarray:
    """Returns of one real episode per seed (``max_steps=None``: the environment's limit)."""
    clock: dict[str, float] = {}
    steps = [0]
    start = time.perf_counter()
    rets, _ = run_episodes(cfg.env, seeds, spec, agent, max_steps=max_steps, clock=clock,
                           rng=rng, on_step=lambda n: steps.__setitem__(0, steps[0] + n),
                           device=agent.device if agent is not None else None)
    timer.add("env", clock["env"])
    timer.add("C", time.perf_counter() - start - clock["env"])  # V, M, C acting, batched
    timer.env_steps["control"] += steps[0]
    timer.seconds["control"] += time.perf_counter() - start
    return rets


def evaluate_policy(model: WorldModel, controller: LinearController | None, memory: bool,
                    cfg: RunConfig, timer: Timer) -> np.ndarray:
    """Returns of ``eval_episodes`` seeded real episodes (``controller=None``: random)."""
    seeds = [EVAL_SEED + cfg.seed * 1000 + i for i in range(cfg.eval_episodes)]
    agent = None
    if controller is not None:
        agent = Agent(model.vision, model.memory, controller, len(seeds), use_memory=memory)
    rng = np.random.default_rng(EVAL_SEED + cfg.seed)
    return _real(agent, seeds, model.frames, cfg, timer, rng=rng)  # to the env's own limit


def _dream_search(model: WorldModel, controller: LinearController, cfg: RunConfig,
                  starts: torch.Tensor, timer: Timer, progress: bool,
                  memory: bool = True) -> tuple[np.ndarray, CMAHistory]:
    """CMA-ES of C inside M's dream: the distribution's final mean, and the history.

    ``memory=False`` searches the V-only controller (on z alone) in the same dream.
    """
    r = cfg.dream_rollouts
    g = torch.Generator(device=model.device).manual_seed(cfg.seed)

    def evaluate(cands: np.ndarray, gen: int) -> np.ndarray:
        w, b = controller.unflatten(torch.as_tensor(cands, dtype=torch.float32,
                                                    device=model.device))
        idx = torch.randint(len(starts), (r,), generator=g, device=model.device)
        z0 = starts[idx].repeat(len(cands), 1)  # same starts for every candidate
        tic = time.perf_counter()
        rets = dream_returns(model.memory, controller, z0, w.repeat_interleave(r, 0),
                             b.repeat_interleave(r, 0), max_steps=cfg.max_steps,
                             tau=cfg.temperature, use_memory=memory, generator=g)
        out = rets.reshape(len(cands), r).mean(1).cpu().numpy()
        timer.seconds["dream"] += time.perf_counter() - tic
        timer.dream_steps += int(rets.sum())
        return out

    finalists, hist = cma_search(evaluate, controller.size, generations=cfg.dream_generations,
                                 popsize=cfg.popsize, sigma0=cfg.sigma0, seed=cfg.seed,
                                 progress=progress,
                                 desc="C (dream)" if memory else "C (V only, dream)")
    return finalists[2], hist


def dream_mean_return(model: WorldModel, controller: LinearController, starts: torch.Tensor,
                      cfg: RunConfig, episodes: int) -> float:
    """Mean dreamed return of one controller over ``episodes`` dreamed starts."""
    g = torch.Generator(device=model.device).manual_seed(cfg.seed + 7)
    idx = torch.randint(len(starts), (episodes,), generator=g, device=model.device)
    w = controller.weight.expand(episodes, -1, -1)
    b = controller.bias.expand(episodes, -1)
    rets = dream_returns(model.memory, controller, starts[idx], w, b, max_steps=500,
                         tau=cfg.temperature, use_memory=model.cfg.memory, generator=g)
    return float(rets.mean())


# -- the whole recipe ----------------------------------------------------------------------
def _held_out_scores(model: WorldModel, test: list[Episode], train_frames: torch.Tensor,
                     result: Result) -> None:
    """V vs the mean frame, M vs "the latent stays the same", on held-out episodes."""
    dev = model.device
    with torch.no_grad():
        y = stack_frames(test).to(dev).float() / 255
        mean_frame = (train_frames.float() / 255).mean(0).to(dev)
        recon = model.vision.decode(model.vision.encode(y))
        result.vision_test = {
            "free_energy": float(model.vision.free_energy(y).mean()),
            "mse": float((recon - y).square().sum(1).mean()),
            "mse_mean_frame": float((mean_frame - y).square().sum(1).mean()),
            "pixels": y.shape[1],  # the squared errors are summed over a frame's pixels
            "train_frames": len(train_frames),
        }
        lat = encode(model, test)
        nll = base = 0.0
        steps = 0
        train_diff = torch.cat([z[1:] - z[:-1] for z in lat])
        var = train_diff.square().mean(0).clamp_min(1e-6)
        for z, e in zip(lat, test):
            mix, _ = model.memory(z[None, :-1], e.actions[None].to(dev))
            nll += float(mixture_nll(z[None, 1:], mix).sum())
            base += float(same_latent_nll(z[:-1], z[1:], var).sum())
            steps += e.steps
        result.memory_test = {"nll": nll / steps, "nll_same_latent": base / steps}


def run(cfg: RunConfig, out: str | Path | None = None, *, progress: bool = False,
        log: Any = None) -> tuple[WorldModel, Result]:
    """Collect, train V, M and C, evaluate, and (with ``out``) save the model and the report.

    Args:
        cfg: The recipe.
        out: Run directory: ``model.safetensors`` + ``model.json``, ``report.md``, PNGs,
            ``result.json``. Refused if it holds another model.
        progress: tqdm bars.
        log: Called with one-line progress messages (e.g. ``print``).

    Returns:
        The trained model (C reads [z, h]) and the measurements.
    """
    say = log or (lambda _msg: None)
    cfg.check()
    require()
    out = Path(out) if out is not None else None
    if out is not None:
        _check_out(out)
    probe = make_env(cfg.env)  # errors on an unknown id or a continuous action space
    n_actions = int(probe.action_space.n)
    probe.close()
    dev = _device(cfg.device)
    t_start, cpu_start = time.monotonic(), time.process_time()
    deadline = t_start + 60 * cfg.minutes if cfg.minutes is not None else None
    torch.manual_seed(cfg.seed)
    spec = FrameSpec.for_env(cfg.env, cfg.frame_size, cfg.crop)
    model = WorldModel(WorldModelConfig(
        env=cfg.env, frame_size=cfg.frame_size, crop=list(spec.crop) if spec.crop else None,
        code=cfg.code, channels=cfg.channels, hidden=cfg.hidden, mixtures=cfg.mixtures,
        actions=n_actions, temperature=cfg.temperature)).to(dev)
    result = Result(config=asdict(cfg))
    timer = Timer()
    v_only = LinearController(cfg.code, n_actions).to(dev)  # the V-only ablation

    def gather(seeds: list[int], make_choose: Any, desc: str) -> list[Episode]:
        clock: dict[str, float] = {}
        tic = time.perf_counter()
        eps = collect(cfg.env, seeds, spec, make_choose,
                      epsilon=cfg.epsilon if make_choose else 0.0,
                      seed=cfg.seed + len(seeds), device=dev, progress=progress, desc=desc,
                      clock=clock)
        timer.add("env", clock["env"])
        timer.add("C", clock["agent"])
        timer.seconds["collect"] += time.perf_counter() - tic
        timer.env_steps["collect"] += sum(e.steps for e in eps)
        return eps

    # 1. random rollouts (a held-out tenth scores V and M)
    base = cfg.seed * 100_000
    episodes = gather(list(range(base, base + cfg.episodes)), None, "collect (random)")
    n_test = max(1, cfg.episodes // 10)
    test, episodes = episodes[:n_test], episodes[n_test:]
    say(f"collected {len(episodes)} + {n_test} held-out random episodes "
        f"({sum(e.steps for e in episodes)} steps)")

    def fit_vm(epochs_v: int, epochs_m: int, refit: bool = True) -> list[torch.Tensor]:
        tic = time.perf_counter()
        frames = stack_frames(episodes)
        result.vision_losses += train_vision(model, frames, cfg, epochs_v, progress)
        timer.add("V", time.perf_counter() - tic)
        tic = time.perf_counter()
        latents = encode(model, episodes)
        hist = train_memory(model.memory, latents, [e.actions for e in episodes],
                            [e.terminated for e in episodes], epochs=epochs_m, lr=cfg.mdn_lr,
                            seed=cfg.seed, progress=progress)
        for k, v in asdict(hist).items():
            result.memory_history.setdefault(k, []).extend(v)
        if refit:  # later rounds keep C's coordinates, so its search can continue
            feats = features(model, latents, episodes)
            model.controller.fit_features(feats, cfg.whiten)
            v_only.fit_features(feats[:, :cfg.code], cfg.whiten)
        timer.add("M", time.perf_counter() - tic)
        return latents

    latents = fit_vm(cfg.vae_epochs, cfg.mdn_epochs)
    starts = torch.stack([z[0] for z in latents])  # real first frames, for the dream
    say(f"V: free energy {result.vision_losses[-1]:.1f} nats/frame; "
        f"M: NLL {result.memory_history['nll'][-1]:.2f} nats/step")

    # 2. C: optional dream search, then real searches with iterative collection between them
    def remaining_deadline(share: float) -> float | None:
        if deadline is None:
            return None
        now = time.monotonic()
        return now + share * max(0.0, deadline - now)

    x0 = None
    if cfg.dream and cfg.dream_generations > 0:
        tic = time.perf_counter()
        x0, d_hist = _dream_search(model, model.controller, cfg, starts, timer, progress)
        model.controller.set_flat(x0)
        result.dream_searches["V+M"] = asdict(d_hist)
        timer.add("C", time.perf_counter() - tic)
        say(f"C in the dream: {timer.dream_steps} dreamed steps")
    searches = cfg.rounds + 1
    best = x0
    for r in range(searches):
        # the V-only ablation and the evaluations also need time: keep a quarter back
        budget_share = 0.75 / (searches - r) if cfg.ablation else 0.9 / (searches - r)
        best, hist = _search(model, model.controller, cfg, memory=True,
                             generations=cfg.generations, timer=timer,
                             deadline=remaining_deadline(budget_share), x0=best,
                             seed_base=(cfg.seed + 1) * 1_000_000 + r * 10_000,
                             progress=progress, desc=f"C (real, round {r})")
        model.controller.set_flat(best)
        result.searches[f"V+M round {r}"] = asdict(hist)
        say(f"C round {r}: best {hist.best[-1]:.0f}, mean {hist.mean[-1]:.0f} after "
            f"{len(hist.best)} generations")
        if r < searches - 1:
            first = base + 50_000 + r * 1000
            episodes += gather(list(range(first, first + cfg.round_episodes)),
                               lambda n: Agent(model.vision, model.memory, model.controller, n),
                               f"collect (round {r + 1})")
            latents = fit_vm(max(1, cfg.vae_epochs // 2), max(1, cfg.mdn_epochs // 2),
                             refit=False)
            starts = torch.stack([z[0] for z in latents])
    cpu_trained = time.process_time() - cpu_start  # V, M and C trained: what a user waits for
    result.episodes_collected = len(episodes) + n_test
    result.frames_collected = int(sum(len(e.frames) for e in episodes) + sum(
        len(e.frames) for e in test))

    # 3. V+M on the seeded evaluation episodes (said at once: the ablation takes a while)
    result.returns["V+M"] = evaluate_policy(model, model.controller, True, cfg, timer).tolist()
    say(f"V+M: mean return {result.mean('V+M'):.1f} over {cfg.eval_episodes} episodes")

    # 4. the V-only ablation: a controller on z alone, same search budget
    if cfg.ablation:
        v_x0 = None
        if cfg.dream and cfg.dream_generations > 0:  # the same budget: dream, then real
            tic = time.perf_counter()
            v_x0, d_hist = _dream_search(model, v_only, cfg, starts, timer, progress,
                                         memory=False)
            result.dream_searches["V-only"] = asdict(d_hist)
            timer.add("C", time.perf_counter() - tic)
        v_best, v_hist = _search(model, v_only, cfg, memory=False, generations=cfg.generations,
                                 timer=timer, deadline=remaining_deadline(0.5), x0=v_x0,
                                 seed_base=(cfg.seed + 1) * 1_000_000 + 900_000,
                                 progress=progress, desc="C (V only)")
        v_only.set_flat(v_best)
        result.searches["V-only"] = asdict(v_hist)

    # 5. the others on the same seeded real episodes
    if cfg.ablation:
        result.returns["V-only"] = evaluate_policy(model, v_only, False, cfg, timer).tolist()
    result.returns["random"] = evaluate_policy(model, None, False, cfg, timer).tolist()
    if ENVIRONMENTS[cfg.env].survival if cfg.env in ENVIRONMENTS else False:
        tic = time.perf_counter()  # a dreamed return counts steps survived: survival tasks only
        result.dream_return = dream_mean_return(model, model.controller, starts, cfg, 64)
        timer.add("C", time.perf_counter() - tic)
    _held_out_scores(model, test, stack_frames(episodes), result)
    say(f"V+M {result.mean('V+M'):.1f}, V-only {result.mean('V-only'):.1f}, random "
        f"{result.mean('random'):.1f} (mean return over {cfg.eval_episodes} episodes)")

    total = time.monotonic() - t_start
    result.seconds = {**{k: round(v, 2) for k, v in timer.parts.items()}, "total": round(total, 2),
                      "cpu_total": round(time.process_time() - cpu_start, 2),
                      "cpu_train": round(cpu_trained, 2)}
    result.speed = {
        "collect_steps_per_s": timer.env_steps["collect"] / max(timer.seconds["collect"], 1e-9),
        "control_steps_per_s": timer.env_steps["control"] / max(timer.seconds["control"], 1e-9),
        "dream_steps_per_s": (timer.dream_steps / timer.seconds["dream"]
                              if timer.seconds["dream"] > 0 else math.nan),
        "env_steps": timer.env_steps["collect"] + timer.env_steps["control"],
        "dream_steps": timer.dream_steps,
    }
    if out is not None:
        from .report import write_report

        out.mkdir(parents=True, exist_ok=True)
        model.to("cpu").save(out / "model")
        model.to(dev)
        write_report(out, model, result, test)
    return model, result
