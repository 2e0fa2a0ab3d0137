"""World Models: the agent in the real environment's loop, and M's dream, on CartPole.

1. **Acting for real**: 16 CartPole environments stepped in lockstep for a fixed number of
   steps with the agent in the loop (render, crop and average the frames, V's encoder, M's
   step, C), against gymnasium alone doing the same steps and renders (the nearest outside
   reference: the cost no agent can avoid). The ratio is the agent's overhead. Target ≤ 2×.
2. **Dreaming**: the same number of steps inside M's dream (256 rollouts in one batch, no
   rendering) against the real environment's steps with renders. Target ≤ 0.1×.

The agent has random weights (speed does not depend on them); episodes that end are
restarted so every lockstep does the same work.
"""

from __future__ import annotations

import os

from .harness import Result, interleaved_times


def run(smoke: bool) -> list[Result]:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import numpy as np
    import torch

    import ebmkit as ek
    from ebmkit_worldmodels.controller import Agent, dream_returns
    from ebmkit_worldmodels.env import FrameSpec, make_env

    n_env, locksteps = 16, (5 if smoke else 60)
    torch.manual_seed(0)
    model = ek.get_model("worldmodels", crop=[150, 342, 12, 588]).eval()
    model.controller.set_flat(torch.randn(model.controller.size).numpy())
    spec = FrameSpec(64, (150, 342, 12, 588))
    envs = [make_env("CartPole-v1") for _ in range(n_env)]
    rng = np.random.default_rng(0)

    def lockstep(agent: Agent | None) -> None:
        for e, env in enumerate(envs):
            env.reset(seed=e)
        for _ in range(locksteps):
            frames = [env.render() for env in envs]
            if agent is None:
                acts = rng.integers(2, size=n_env)
            else:
                acts = agent(spec(frames), list(range(n_env))).numpy()
            for env, a in zip(envs, acts):
                _, _, term, trunc, _ = env.step(int(a))
                if term or trunc:
                    env.reset()

    def with_agent() -> None:
        lockstep(Agent(model.vision, model.memory, model.controller, n_env))

    agent_s, env_s = interleaved_times([with_agent, lambda: lockstep(None)],
                                       1 if smoke else 3)
    steps = n_env * locksteps
    results = [Result(
        name=f"worldmodels: {steps} CartPole steps, agent in the loop", ebmkit_s=agent_s,
        reference_s=env_s, reference="gymnasium step + render alone", target=2.0,
        notes=f"{n_env} envs in lockstep; {steps / agent_s:.0f} steps/s with the agent, "
              f"{steps / env_s:.0f} without",
        extra={"agent_steps_per_s": steps / agent_s, "env_steps_per_s": steps / env_s})]

    rollouts, horizon = 256, (10 if smoke else 100)
    c = model.controller
    w, b = c.unflatten(torch.randn(rollouts, c.size))
    with torch.no_grad():
        model.memory.head.bias[-1] = -30.0  # never ends: every rollout runs the horizon
    starts = torch.randn(rollouts, model.cfg.code)
    g = torch.Generator().manual_seed(0)
    (dream_s,) = interleaved_times(
        [lambda: dream_returns(model.memory, c, starts, w, b, max_steps=horizon, generator=g)],
        1 if smoke else 3)
    dream_steps = rollouts * horizon
    per_dream, per_env = dream_s / dream_steps, env_s / steps
    results.append(Result(
        name="worldmodels: one dreamed step vs one real step", ebmkit_s=per_dream,
        reference_s=per_env, reference="gymnasium step + render", target=0.1,
        notes=f"{rollouts} dreamed rollouts × {horizon} steps in one batch: "
              f"{1 / per_dream:.0f} dream steps/s vs {1 / per_env:.0f} env steps/s",
        extra={"dream_steps_per_s": 1 / per_dream}))
    for env in envs:
        env.close()
    return results
