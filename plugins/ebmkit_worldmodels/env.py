"""The real environment: gymnasium, rendered off-screen, frames cropped and downscaled.

A frame is gymnasium's ``rgb_array`` render, ``uint8 [H, W, 3]``. The agent sees it through
[`FrameSpec`][ebmkit_worldmodels.env.FrameSpec]: an optional crop, grey levels inverted so
that the background is 0 and drawn shapes are bright, then an area-average down to
``size × size``. For CartPole the crop keeps the band where the cart and pole are (rows
150–341, columns 12–587 of the 400 × 600 render), so a 64 × 64 frame is an exact 3 × 9
block mean and the pole's angle survives as grey levels below one pixel.

Collection steps a list of environments in lockstep (what gymnasium's ``SyncVectorEnv``
does, without its automatic resets), so the networks see one batch per step.

Axis letters in shape comments: N frames, E environments, H height, W width.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from ebmkit.errors import ConfigError

__all__ = ["CROPS", "ENVIRONMENTS", "EnvSettings", "Episode", "FrameSpec", "collect",
           "env_settings", "make_env", "require", "resolve_crop", "run_episodes",
           "stack_frames"]


@dataclass(frozen=True)
class EnvSettings:
    """What the recipe knows about an environment beyond gymnasium's spaces."""

    crop: tuple[int, int, int, int] | None  # (top, bottom, left, right); None: the whole render
    survival: bool  # reward +1 per step until the episode ends (what M's dream counts)
    note: str = ""


#: Environments with known render settings. A dreamed return counts steps survived (M has no
#: reward head), so ``dream`` is accepted only where ``survival`` holds.
ENVIRONMENTS: dict[str, EnvSettings] = {
    "CartPole-v1": EnvSettings((150, 342, 12, 588), True, "400×600 render; the cart's band"),
    "CartPole-v0": EnvSettings((150, 342, 12, 588), True, "400×600 render; the cart's band"),
    "Acrobot-v1": EnvSettings(None, False, "500×500 render, whole; reward −1 per step"),
    "MountainCar-v0": EnvSettings(None, False, "400×600 render, whole; reward −1 per step"),
}

#: Known crops (top, bottom, left, right) of the default render, per environment id.
CROPS: dict[str, tuple[int, int, int, int]] = {k: v.crop for k, v in ENVIRONMENTS.items()
                                                if v.crop is not None}


def env_settings(env_id: str) -> EnvSettings:
    """The known settings of ``env_id``.

    Raises:
        ConfigError: no settings are known for it (naming the known ids and how to go on).
    """
    if env_id not in ENVIRONMENTS:
        raise ConfigError(f"worldmodels: no render settings are known for {env_id!r} (known: "
                          f"{', '.join(sorted(ENVIRONMENTS))}); pass crop=[top, bottom, left, "
                          "right] in pixels of its rgb_array render, or crop='full' for the "
                          "whole frame (CLI: --crop)")
    return ENVIRONMENTS[env_id]


def resolve_crop(env_id: str, crop: Any) -> tuple[int, int, int, int] | None:
    """``"auto"`` → the known crop of ``env_id``; ``"full"`` or ``None`` → the whole frame;
    ``[top, bottom, left, right]`` → itself, checked."""
    if crop == "auto":
        return env_settings(env_id).crop
    if crop is None or crop == "full":
        return None
    if (not isinstance(crop, (list, tuple)) or len(crop) != 4
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in crop)
            or crop[0] >= crop[1] or crop[2] >= crop[3]):
        raise ConfigError(f"worldmodels: crop must be 'auto', 'full' or [top, bottom, left, "
                          f"right] pixels with top < bottom and left < right, got {crop!r}")
    return tuple(crop)

EXTRA = "pip install 'torch-ebmkit[worldmodels]'"


def require() -> tuple[Any, Any]:
    """Import ``gymnasium`` and ``cma``; a ConfigError naming the extra when one is missing."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    missing = []
    try:
        import gymnasium
    except ImportError:
        missing.append("gymnasium[classic-control]")
    try:
        import cma
    except ImportError:
        missing.append("cma")
    if not missing:
        try:
            import pygame  # noqa: F401  (gymnasium's classic-control renderer)
        except ImportError:
            missing.append("pygame (gymnasium[classic-control])")
    if missing:
        raise ConfigError(f"worldmodels needs {', '.join(missing)}, which is not installed; "
                          f"install the optional extra: {EXTRA}")
    return gymnasium, cma


def make_env(env_id: str) -> Any:
    """``gymnasium.make(env_id, render_mode="rgb_array")`` with clear errors.

    Raises:
        ConfigError: an unknown id (with close names), or an action space C does not support
            (the linear controller picks one of n discrete actions).
    """
    gym, _ = require()
    try:
        env = gym.make(env_id, render_mode="rgb_array")
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"worldmodels: {env_id} needs a package that is not installed: "
                          f"{exc}") from None
    except gym.error.Error as exc:  # NameNotFound, VersionNotFound, NamespaceNotFound ...
        close = [k for k in gym.envs.registry if k.split("-")[0].lower() in env_id.lower()
                 or env_id.split("-")[0].lower() in k.lower()][:8]
        hint = f"; close: {', '.join(close)}" if close else "; e.g. 'CartPole-v1'"
        raise ConfigError(f"worldmodels: unknown environment id {env_id!r} ({exc}){hint}") from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        env.close()
        raise ConfigError(f"worldmodels: {env_id} has a {type(space).__name__} action space "
                          f"{space}; the controller C supports only Discrete action spaces "
                          "(a linear map to n action scores, argmax)")
    return env


@dataclass
class FrameSpec:
    """How a rendered frame becomes the agent's input: crop, grey, invert, area-average."""

    size: int = 64
    crop: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) in pixels

    @classmethod
    def for_env(cls, env_id: str, size: int = 64, crop: Any = "auto") -> FrameSpec:
        """The spec of ``env_id``: its known crop (``crop="auto"``, an error where none is
        known), the whole frame (``"full"``) or the given ``[top, bottom, left, right]``."""
        return cls(size=size, crop=resolve_crop(env_id, crop))

    def __call__(self, frames: np.ndarray | Tensor | Sequence[np.ndarray],
                 device: torch.device | str | None = None) -> Tensor:
        """``uint8 [N, H, W, 3]`` (or one ``[H, W, 3]``) → ``float [N, size²]`` in [0, 1].

        When the (cropped) frame divides into ``size × size`` blocks, the block sums are
        taken on the CPU in integers (crop first, then one pass); otherwise an area
        interpolation (``adaptive_avg_pool2d``) on the device.
        """
        if isinstance(frames, Tensor):
            frames = frames.cpu().numpy()
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            frames = [frames]
        for f in frames:
            if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[-1] != 3 \
                    or f.dtype != np.uint8:
                got = (f"{f.dtype} {list(f.shape)}" if isinstance(f, np.ndarray)
                       else type(f).__name__)
                raise ConfigError(f"frame: expected uint8 [H, W, 3] (gymnasium rgb_array) or "
                                  f"[N, H, W, 3], got {got}")
        top, bottom, left, right = self.crop or (0, frames[0].shape[0], 0, frames[0].shape[1])
        if frames[0].shape[0] < bottom or frames[0].shape[1] < right:
            raise ConfigError(f"frame: the crop {self.crop} needs at least {bottom}×{right} "
                              f"pixels, got {frames[0].shape[0]}×{frames[0].shape[1]}")
        arr = np.stack([f[top:bottom, left:right] for f in frames])  # uint8 [N, h, w, 3]
        n, h, w, _ = arr.shape
        s = self.size
        if h % s == 0 and w % s == 0:  # exact block means, summed in integers
            sums = arr.reshape(n, s, h // s, s, 3 * (w // s)).sum(axis=(2, 4), dtype=np.uint32)
            grey = torch.from_numpy(sums.astype(np.float32)).to(device)  # [N, s, s]
            return 1.0 - grey.flatten(1) / (255.0 * 3 * (h // s) * (w // s))
        t = torch.from_numpy(arr).to(device)
        grey = 1.0 - t.float().mean(dim=-1, keepdim=True).movedim(-1, 1) / 255.0  # [N, 1, h, w]
        return nnf.adaptive_avg_pool2d(grey, s).flatten(1)  # [N, size²]


@dataclass
class Episode:
    """One real episode: its frames (as the agent sees them), actions and outcome."""

    frames: Tensor  # uint8 [T + 1, size²]: the frame before each action and the last one
    actions: Tensor  # int64 [T]
    terminated: bool  # ended by the environment's terminal condition (not by truncation)

    @property
    def steps(self) -> int:
        return int(self.actions.numel())


# Chooses actions for the environments still running: (frames [E, D] float, alive ids) -> [E]
Chooser = Callable[[Tensor, list[int]], Tensor]


def run_episodes(env_id: str, seeds: Sequence[int], spec: FrameSpec, choose: Chooser | None,
                 *, max_steps: int | None = None, keep: bool = False,
                 device: torch.device | str | None = None, epsilon: float = 0.0,
                 rng: np.random.Generator | None = None, envs: list[Any] | None = None,
                 on_step: Callable[[int], None] | None = None,
                 clock: dict[str, float] | None = None,
                 ) -> tuple[np.ndarray, list[Episode]]:
    """Run one episode per seed, all in lockstep; return the returns ``[len(seeds)]``.

    Args:
        choose: Picks the actions of the live environments from their frames; ``None``
            draws uniformly random actions (seeded by ``rng``).
        max_steps: Stop an episode after this many steps (default: the env's own limit).
        keep: Also return the episodes' frames (as ``uint8`` after ``spec``) and actions.
        epsilon: Probability of replacing a chosen action by a random one (exploration).
        envs: Environments to reuse (as many as seeds); made with ``make_env`` otherwise.
        on_step: Called with the number of env steps taken at each lockstep.
        clock: Accumulates seconds under ``"env"`` (stepping, rendering, preprocessing) and
            ``"agent"`` (``choose``).
    """
    rng = rng if rng is not None else np.random.default_rng(int(seeds[0]) if len(seeds) else 0)
    own = envs is None
    envs = envs if envs is not None else [make_env(env_id) for _ in seeds]
    n_actions = int(envs[0].action_space.n)
    returns = np.zeros(len(seeds))
    alive = list(range(len(seeds)))
    steps = np.zeros(len(seeds), dtype=np.int64)
    frames: list[list[Tensor]] = [[] for _ in seeds]
    actions: list[list[int]] = [[] for _ in seeds]
    terminated = [False] * len(seeds)
    for env, s in zip(envs, seeds):
        env.reset(seed=int(s))
    clock = clock if clock is not None else {}
    clock.setdefault("env", 0.0)
    clock.setdefault("agent", 0.0)
    try:
        while alive:
            tic = time.perf_counter()
            x = spec([envs[i].render() for i in alive], device=device)  # [E, D]
            if keep:
                q = (x * 255).round().to("cpu", torch.uint8)
                for j, i in enumerate(alive):
                    frames[i].append(q[j])
            if choose is None:
                act = rng.integers(n_actions, size=len(alive))
            else:
                toc = time.perf_counter()
                clock["env"] += toc - tic
                act = choose(x, alive).cpu().numpy()
                tic = time.perf_counter()
                clock["agent"] += tic - toc
                if epsilon > 0:
                    flip = rng.random(len(alive)) < epsilon
                    act = np.where(flip, rng.integers(n_actions, size=len(alive)), act)
            still = []
            for j, i in enumerate(alive):
                _, r, term, trunc, _ = envs[i].step(int(act[j]))
                returns[i] += float(r)
                steps[i] += 1
                actions[i].append(int(act[j]))
                if term or trunc or (max_steps is not None and steps[i] >= max_steps):
                    terminated[i] = bool(term)
                    if keep:  # the frame after the last action (M learns the end from it)
                        last = spec(envs[i].render())
                        frames[i].append((last[0] * 255).round().to(torch.uint8))
                else:
                    still.append(i)
            clock["env"] += time.perf_counter() - tic
            if on_step is not None:
                on_step(len(alive))
            alive = still
    finally:
        if own:
            for env in envs:
                env.close()
    episodes = []
    if keep:
        episodes = [Episode(torch.stack(f), torch.tensor(a, dtype=torch.int64), t)
                    for f, a, t in zip(frames, actions, terminated)]
    return returns, episodes


def collect(env_id: str, seeds: Sequence[int], spec: FrameSpec,
            make_choose: Callable[[int], Chooser] | None = None,
            *, batch: int = 16, epsilon: float = 0.0, seed: int = 0,
            device: torch.device | str | None = None, progress: bool = False,
            desc: str = "collect", clock: dict[str, float] | None = None) -> list[Episode]:
    """Seeded rollouts, ``batch`` environments at a time, with a progress bar over steps.

    ``make_choose(n)`` gives a fresh chooser for a batch of n environments (an agent with its
    own memory state); ``None`` acts uniformly at random.
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    envs = [make_env(env_id) for _ in range(min(batch, len(seeds)))]
    out: list[Episode] = []
    bar = tqdm(desc=desc, unit="step", disable=not progress, leave=False)
    try:
        for start in range(0, len(seeds), batch):
            part = list(seeds[start:start + batch])
            choose = make_choose(len(part)) if make_choose is not None else None
            _, eps = run_episodes(env_id, part, spec, choose, keep=True, device=device,
                                  epsilon=epsilon, rng=rng, envs=envs[:len(part)],
                                  on_step=bar.update, clock=clock)
            out += eps
    finally:
        bar.close()
        for env in envs:
            env.close()
    return out


def stack_frames(episodes: Sequence[Episode]) -> Tensor:
    """Every frame of the episodes, ``uint8 [N, D]``."""
    return torch.cat([e.frames for e in episodes])

