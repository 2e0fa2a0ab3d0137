"""World Models (``worldmodels``): M's maths, the policy contract, bad input, the pipeline.

Fast tests check the mixture NLL against a hand computation, its stability, the end head,
the policy's determinism and save/load, and the clear errors. The slow tests run the whole
pipeline on a tiny budget, and the default recipe on seed 0 with its quality bars (V+M ≥ 195
over 20 seeded real episodes, above V-only and random; V beats the mean frame; M beats "the
latent stays the same"; trained within 15 CPU-minutes). The by-hand test runs issue 21's
protocol: seeds 0, 1, 2, each judged over 100 evaluation episodes, ≥ 195 on two of them.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ebmkit as ek
from ebmkit.errors import ConfigError

pytest.importorskip("gymnasium")
pytest.importorskip("cma")

from ebmkit_worldmodels.controller import Agent, LinearController, dream_returns  # noqa: E402
from ebmkit_worldmodels.env import FrameSpec, make_env, require, run_episodes  # noqa: E402
from ebmkit_worldmodels.mdnrnn import (  # noqa: E402
    MDNRNN,
    Mixture,
    mixture_nll,
    sample_mixture,
    train_memory,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(**options):
    opts = {"frame_size": 16, "code": 3, "channels": 4, "hidden": 8, "mixtures": 2,
            "crop": [150, 342, 12, 588], **options}
    return ek.get_model("worldmodels", **opts)


# -- M's maths -----------------------------------------------------------------------------
def test_mixture_nll_matches_a_hand_computation():
    z = torch.tensor([[0.3, -1.0]])  # [B=1, K=2]
    logit_pi = torch.tensor([[[0.0, math.log(3.0)], [1.0, 1.0]]])  # weights (1/4, 3/4), (½, ½)
    mu = torch.tensor([[[0.0, 1.0], [-1.0, 2.0]]])
    sigma = torch.tensor([[[1.0, 0.5], [2.0, 1.0]]])
    mix = Mixture(logit_pi, mu, sigma.log(), torch.zeros(1))

    def normal(x, m, s):
        return math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    p0 = 0.25 * normal(0.3, 0.0, 1.0) + 0.75 * normal(0.3, 1.0, 0.5)
    p1 = 0.5 * normal(-1.0, -1.0, 2.0) + 0.5 * normal(-1.0, 2.0, 1.0)
    expected = -(math.log(p0) + math.log(p1))
    assert mixture_nll(z, mix).item() == pytest.approx(expected, rel=1e-5)


def test_mixture_nll_is_stable_far_from_every_component():
    # densities underflow to 0 in float32 (exp(-5e5)); log-sum-exp keeps a finite energy
    z = torch.full((4, 3), 1000.0)
    mix = Mixture(torch.tensor([-1e4, 0.0, 1e4]).expand(4, 3, 3).clone(), torch.zeros(4, 3, 3),
                  torch.full((4, 3, 3), math.log(1.0)), torch.zeros(4))
    e = mixture_nll(z, mix)
    assert e.shape == (4,) and torch.isfinite(e).all()
    exact = 3 * (0.5 * 1000.0**2 + 0.5 * math.log(2 * math.pi))  # the dominant component
    assert e[0].item() == pytest.approx(exact, rel=1e-6)
    z.requires_grad_(True)
    mixture_nll(z, mix).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_sampling_temperature():
    g = torch.Generator().manual_seed(0)
    mix = Mixture(torch.tensor([[0.0, 2.0]]).expand(20000, 1, 2), torch.tensor([[-3.0, 3.0]])
                  .expand(20000, 1, 2), torch.zeros(20000, 1, 2), torch.zeros(20000))
    z = sample_mixture(mix, 1.0, g)[:, 0]
    share = (z > 0).float().mean().item()
    assert share == pytest.approx(math.exp(2) / (1 + math.exp(2)), abs=0.02)
    assert sample_mixture(mix, 0.0)[:, 0].eq(3.0).all()  # τ = 0: the likeliest mean
    cold = sample_mixture(mix, 0.1, g)[:, 0]
    assert (cold > 0).float().mean().item() > 0.99  # logits / τ sharpen the choice
    assert cold[cold > 0].std().item() == pytest.approx(math.sqrt(0.1), rel=0.1)


def test_done_head_learns_where_episodes_end():
    torch.manual_seed(0)
    lat = [torch.linspace(0, 1, 9)[:, None] for _ in range(32)]  # z_t rises, ends at 1
    acts = [torch.randint(2, (8,)) for _ in range(32)]
    mdn = MDNRNN(1, 2, hidden=8, mixtures=2)
    hist = train_memory(mdn, lat, acts, [True] * 32, epochs=150, batch=8, lr=1e-2)
    assert hist.nll[-1] < hist.nll[0]
    with torch.no_grad():
        mix, _ = mdn(lat[0][None, :-1], acts[0][None])
        p = torch.sigmoid(mix.done_logit[0])
    assert p[-1] > 0.5 and p[:4].max() < 0.05, p  # base rate: 1/8 per step


def test_energy_is_the_sum_of_transition_energies():
    model = _tiny()
    y = torch.randn(5, 7, 3)
    a = torch.randint(2, (5, 6))
    e = model.energy(y, a)
    assert e.shape == (5,) and torch.isfinite(e).all()
    per_step = model.memory.transition_energy(y[:, :-1], a, y[:, 1:])
    torch.testing.assert_close(e, per_step.sum(1))
    with pytest.raises(ConfigError, match="actions"):
        model.energy(y, a[:, :-1])


# -- the policy ------------------------------------------------------------------------------
def _frames(n=30, seed=0):
    env = make_env("CartPole-v1")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(env.render())
        _, _, term, trunc, _ = env.step(int(rng.integers(2)))
        if term or trunc:
            env.reset(seed=seed + 1)
    env.close()
    return out


def _standardise(model, frames):
    """Random C weights on standardised z, small ones on h: an untrained agent that still
    uses both actions."""
    with torch.no_grad():
        z = model.vision.encode(model.frames(np.stack(frames)))
        k = z.shape[1]
        model.controller.mean[:k] = z.mean(0)
        model.controller.proj[:k, :k] = torch.diag(1 / (z.std(0) + 1e-6))
    flat = torch.randn(model.controller.size)
    flat[k:] = 0.01 * flat[k:]  # h's weights and the bias
    model.controller.set_flat(flat.numpy())


def test_policy_is_deterministic_without_autograd_and_survives_save(tmp_path):
    torch.manual_seed(0)
    model = _tiny()
    frames = _frames()
    _standardise(model, frames)
    grad_seen = []
    model.vision.encoder.register_forward_hook(
        lambda *_: grad_seen.append(torch.is_grad_enabled()))
    policy = model.policy()
    runs = []
    for _ in range(2):
        policy.reset()
        runs.append([policy(f) for f in frames])
    assert runs[0] == runs[1] and all(isinstance(a, int) and a in (0, 1) for a in runs[0])
    assert len(set(runs[0])) == 2  # random weights still use both actions
    assert not any(grad_seen)
    model.save(tmp_path / "model")
    loaded = ek.load(tmp_path / "model").policy()
    loaded.reset()
    assert [loaded(f) for f in frames] == runs[0]
    header = json.loads((tmp_path / "model.json").read_text())
    assert header["name"] == "worldmodels" and "vision.encoder.conv.0.weight" in \
        __import__("safetensors.torch", fromlist=["load_file"]).load_file(
            tmp_path / "model.safetensors")
    with pytest.raises(ConfigError, match=r"uint8 \[H, W, 3\]"):
        policy(frames[0].astype(np.float32))


def test_batched_agent_matches_the_policy():
    torch.manual_seed(1)
    model = _tiny()
    _standardise(model, _frames())
    spec = model.frames
    rets, eps = run_episodes("CartPole-v1", [3, 4], spec,
                             Agent(model.vision, model.memory, model.controller, 2), keep=True,
                             max_steps=40)
    policy = model.policy()
    env = make_env("CartPole-v1")
    for seed, ret in zip([3, 4], rets):
        env.reset(seed=seed)
        policy.reset()
        total = 0
        for _ in range(40):
            _, r, term, trunc, _ = env.step(policy(env.render()))
            total += r
            if term or trunc:
                break
        assert total == ret
    env.close()
    assert rets.shape == (2,) and [e.steps for e in eps] == rets.tolist()


def test_dream_rollouts_end_and_count_steps():
    torch.manual_seed(0)
    mdn = MDNRNN(3, 2, hidden=8, mixtures=2)
    with torch.no_grad():
        mdn.head.bias[-1] = 10.0  # the end head says "done" at once
    c = LinearController(3 + 8, 2)
    w, b = c.unflatten(torch.zeros(4, c.size))
    rets = dream_returns(mdn, c, torch.zeros(4, 3), w, b, max_steps=20)
    assert rets.tolist() == [1.0] * 4
    with torch.no_grad():
        mdn.head.bias[-1] = -30.0  # never done: capped by max_steps
    assert dream_returns(mdn, c, torch.zeros(4, 3), w, b, max_steps=20).tolist() == [20.0] * 4


# -- bad input ------------------------------------------------------------------------------
def test_unknown_environment_id():
    with pytest.raises(ConfigError, match="unknown environment id 'CartPoel-v1'"):
        make_env("CartPoel-v1")


def test_continuous_action_space_is_refused():
    with pytest.raises(ConfigError, match="Discrete action spaces"):
        make_env("MountainCarContinuous-v0")


def test_missing_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cma", None)  # import cma -> ImportError
    with pytest.raises(ConfigError, match=r"torch-ebmkit\[worldmodels\]"):
        require()


def test_run_directory_of_another_model_is_refused(tmp_path):
    from ebmkit_worldmodels.pipeline import RunConfig, run

    ek.get_model("kmeans", k=2, dim=2).save(tmp_path / "model")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ConfigError, match="holds a saved 'kmeans' model"):
        run(RunConfig(episodes=2), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bad_options():
    with pytest.raises(ConfigError, match="frame_size"):
        _tiny(frame_size=4)
    with pytest.raises(ConfigError, match="crop"):
        _tiny(crop=[1, 2])
    with pytest.raises(ConfigError, match="no option 'colour'"):
        ek.get_model("worldmodels", colour=True)
    with pytest.raises(ConfigError, match="uint8"):
        FrameSpec(16)(np.zeros((4, 4), np.uint8))


def test_energy_refuses_bad_actions_and_latents():
    model = _tiny()
    y, a = torch.randn(2, 4, 3), torch.randint(2, (2, 3))
    with pytest.raises(ConfigError, match=r"action ids in \[0, 1\], got values in \[5, 6\]"):
        model.energy(y, a + 5)
    with pytest.raises(ConfigError, match="integer action ids, got torch.float32"):
        model.energy(y, a.float())
    with pytest.raises(ConfigError, match="NaN or infinite"):
        model.energy(y * float("nan"), a)
    with pytest.raises(ConfigError, match="at least one sample"):
        model.energy(y[:0], a[:0])


# -- other environments ---------------------------------------------------------------------
def test_render_settings_per_environment():
    from ebmkit_worldmodels.env import ENVIRONMENTS
    from ebmkit_worldmodels.pipeline import RunConfig

    with pytest.raises(ConfigError, match="no render settings are known for 'Pendulum-v1'.*"
                                          "crop='full'"):
        RunConfig(env="Pendulum-v1").check()
    RunConfig(env="Pendulum-v1", crop="full").check()  # the whole frame, by choice
    for env_id, known in ENVIRONMENTS.items():  # every known crop fits its render
        env = make_env(env_id)
        env.reset(seed=0)
        x = FrameSpec.for_env(env_id, 16)(env.render())
        env.close()
        assert x.shape == (1, 256) and 0 <= x.min() and x.max() <= 1 and x.std() > 0, env_id
        model = _tiny(env=env_id, crop="auto")
        assert model.cfg.crop == (list(known.crop) if known.crop else None)


def test_dream_is_refused_where_the_reward_is_not_one_per_step():
    """M has no reward head: a dreamed return counts steps survived, which on Acrobot or
    MountainCar (−1 per step until the goal) would reward never reaching the goal."""
    from ebmkit_worldmodels.pipeline import RunConfig

    RunConfig(env="CartPole-v1", dream=True).check()
    for env_id in ("Acrobot-v1", "MountainCar-v0"):
        with pytest.raises(ConfigError, match=f"{env_id} is not a survival task.*without --dream"):
            RunConfig(env=env_id, dream=True).check()
    with pytest.raises(ConfigError, match="not known to be \\+1 per step"):
        RunConfig(env="Pendulum-v1", crop="full", dream=True).check()


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
def test_what_the_vision_decoder_integrates_to(likelihood):
    """What the docs say F_V bounds. With every pixel's decoder output set to η,
    log p(t·1 | z) = D · log p₁(t), and p₁ integrated over t ∈ [0, 1] is 1 for the continuous
    Bernoulli (a density on grey frames), below 1 for V's default Bernoulli (exp(−BCE), a
    sub-normalised density: 0.38 at η = 2), and below 1 for the Gaussian (its mass outside
    [0, 1] is not counted here; it is a density on the reals)."""
    class Constant(torch.nn.Module):  # V's decoder slot: η at every pixel
        eta = 0.0

        def forward(self, z):
            return torch.full((z.shape[0], 1, 8, 8), self.eta, dtype=torch.float64)

    opts = {"likelihood": likelihood, **({"std": 0.5} if likelihood == "gaussian" else {})}
    decoder = Constant()
    model = _tiny(frame_size=8, vae=opts, decoder=decoder)
    assert model.vision.likelihood == likelihood
    if likelihood == "bernoulli":
        assert _tiny().vision.likelihood == "bernoulli"  # V's default: the measured recipe's
    vision, d = model.vision, 64
    t = torch.linspace(0, 1, 20001, dtype=torch.float64)[:, None].expand(-1, d)
    for eta in (-3.0, 0.0, 2.0):
        decoder.eta = eta
        log_p1 = vision.log_px(t, torch.zeros(len(t), 3, dtype=torch.float64)) / d
        total = torch.trapezoid(log_p1.exp(), dx=1 / 20000).item()
        if likelihood == "continuous_bernoulli":
            assert total == pytest.approx(1.0, abs=1e-4), (eta, total)
        else:
            assert total < 0.999, (eta, total)


def test_agent_moves_frames_to_its_device():
    """Frames from the real environment come as CPU tensors; the agent runs V, M and C where
    they live (on a GPU with --device auto)."""
    model = _tiny()
    agent = Agent(model.vision, model.memory, model.controller, 2)
    assert agent.device == model.controller.weight.device
    frames = FrameSpec(16, (150, 342, 12, 588))(np.stack(_frames(2)))
    seen = []
    model.vision.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].device))
    agent(frames, [0, 1])
    assert seen == [agent.device]


def test_agent_steps_without_a_value_check(monkeypatch):
    """The agent's frames hold by construction (FrameSpec: finite, in [0, 1]), so its step
    skips V's value check, a host sync per step on an accelerator; V's public calls keep it."""
    model = _tiny()
    frames = FrameSpec(16, (150, 342, 12, 588))(np.stack(_frames(2)))
    calls = []
    real = torch.aminmax
    monkeypatch.setattr(torch, "aminmax", lambda *a, **k: calls.append(1) or real(*a, **k))
    Agent(model.vision, model.memory, model.controller, 2)(frames, [0, 1])
    assert calls == []
    model.vision.encode(frames)
    assert calls == [1]
    with pytest.raises(ConfigError, match="NaN or infinite"):
        model.vision.encode(frames * float("nan"))


@pytest.mark.byhand
def test_the_bernoulli_decoder_keeps_the_pole_angle_best():
    """The docs' decoder table (about 8 CPU-minutes): V trained as the recipe trains it on the
    frames of 300 seeded random episodes, then the state read out of z by least squares on a
    held-out fifth. The Bernoulli default keeps the pole's angle best."""
    from ebmkit_worldmodels.pipeline import RunConfig, train_vision

    spec, rng = FrameSpec(64, (150, 342, 12, 588)), np.random.default_rng(0)
    frames, states = [], []
    env = make_env("CartPole-v1")
    for ep in range(300):
        s, _ = env.reset(seed=ep)
        while True:
            frames.append(env.render())
            states.append(s)
            s, _, term, trunc, _ = env.step(int(rng.integers(2)))
            if term or trunc:
                break
    env.close()
    x = (spec(np.stack(frames)) * 255).round().to(torch.uint8)
    st = torch.tensor(np.array(states), dtype=torch.float64)
    cut = int(0.8 * len(x))
    angle = {}
    for name, vae in {"bernoulli": {"likelihood": "bernoulli"},
                      "continuous_bernoulli": {"likelihood": "continuous_bernoulli"},
                      "gaussian": {"likelihood": "gaussian", "std": 0.1}}.items():
        torch.manual_seed(0)
        model = ek.get_model("worldmodels", vae=vae)
        train_vision(model, x[:cut], RunConfig(), 8, False)
        with torch.no_grad():
            z = model.vision.encode(x.float() / 255).double()
        a = torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64)], 1)
        w = torch.linalg.lstsq(a[:cut], st[:cut]).solution
        err = (a[cut:] @ w - st[cut:]).square().sum(0)
        r2 = 1 - err / (st[cut:] - st[cut:].mean(0)).square().sum(0)
        angle[name] = r2[2].item()
        print(name, [round(v, 3) for v in r2.tolist()])
    assert angle["bernoulli"] >= 0.9
    assert angle["bernoulli"] > max(angle["continuous_bernoulli"], angle["gaussian"])


def test_worldmodels_modules_import_no_circle(no_import_circle):
    """No import circle inside the plugin (imports in functions and under TYPE_CHECKING count:
    ``pipeline`` and ``report`` share ``result``, neither imports the other's module)."""
    import ast
    from pathlib import Path

    import ebmkit_worldmodels

    graph = {}
    for path in Path(ebmkit_worldmodels.__file__).parent.glob("*.py"):
        graph[path.stem] = {node.module.split(".")[0]
                            for node in ast.walk(ast.parse(path.read_text()))
                            if isinstance(node, ast.ImportFrom) and node.level == 1
                            and node.module}
    assert "pipeline" in graph["cli"] and "result" in graph["report"]

    no_import_circle(graph)


# -- the pipeline ---------------------------------------------------------------------------
@pytest.mark.slow
def test_pipeline_end_to_end_on_a_tiny_budget(tmp_path):
    from ebmkit_worldmodels.cli import BUDGETS
    from ebmkit_worldmodels.pipeline import RunConfig, run

    cfg = RunConfig(**{**BUDGETS["tiny"], "minutes": None})
    model, result = run(cfg, tmp_path)
    for name in ("model.json", "model.safetensors", "report.md", "result.json", "frames.png",
                 "dream.png", "learning_curve.png"):
        assert (tmp_path / name).exists(), name
    report = (tmp_path / "report.md").read_text()
    for who in ("V+M", "V-only", "random"):
        assert f"{who}: mean return" in report and f"over {cfg.eval_episodes} episodes" in report
    assert len(result.returns["V+M"]) == cfg.eval_episodes
    hist = result.searches["V+M round 0"]
    assert len(hist["best"]) == cfg.generations
    assert max(hist["mean"][1:]) > hist["mean"][0]  # C improves over its first generation
    policy = ek.load(tmp_path / "model").policy()
    policy.reset()
    assert policy(_frames(1)[0]) in (0, 1)
    assert model.controller.weight.shape == (2, cfg.code + cfg.hidden)


@pytest.mark.slow
def test_pipeline_dream_and_iterative_collection(tmp_path):
    from ebmkit_worldmodels.cli import BUDGETS
    from ebmkit_worldmodels.pipeline import RunConfig, run

    cfg = RunConfig(**{**BUDGETS["tiny"], "generations": 2, "rounds": 1, "round_episodes": 4,
                       "dream": True, "dream_generations": 2, "ablation": False})
    _, result = run(cfg, tmp_path)
    assert set(result.searches) == {"V+M round 0", "V+M round 1"}
    assert "V-only" not in result.returns and len(result.returns["random"]) == 4
    assert result.episodes_collected == cfg.episodes + cfg.round_episodes
    assert result.speed["dream_steps"] > 0 and result.speed["dream_steps_per_s"] > 0
    assert math.isfinite(result.dream_return)
    assert "dream steps/s" in (tmp_path / "report.md").read_text()


def test_the_default_budget_is_a_fixed_amount_of_work():
    """No wall-clock cap by default: the result must not depend on the machine's speed."""
    from ebmkit_worldmodels.cli import BUDGETS
    from ebmkit_worldmodels.pipeline import RunConfig

    cfg = RunConfig(**BUDGETS["default"])
    assert cfg.minutes is None and cfg.generations > 0 and cfg.stop_at is not None
    for bad in ({"stop_at": 0.0}, {"dream_rollouts": 0}, {"minutes": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            RunConfig(**bad).check()


@pytest.mark.slow
def test_demo_shows_the_short_run(tmp_path, fresh_plugins, monkeypatch):
    """`ebmkit demo` runs `ebmkit worldmodels --budget tiny` and shows its report."""
    import dataclasses

    from ebmkit.demo import run_demo

    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    for kind in ("models", "commands"):  # only the world-models section here
        registry = fresh_plugins.host().registries[kind]
        for name, entry in list(registry._entries.items()):
            if name != "worldmodels":
                registry._entries[name] = dataclasses.replace(entry, demo=None)
    report = run_demo(tmp_path, plots=True).read_text()
    assert "### `ebmkit worldmodels --budget tiny`" in report
    for who in ("V+M", "V-only", "random"):
        assert f"- {who}: mean return" in report
    assert "![frames.png](worldmodels/frames.png)" in report
    assert (tmp_path / "worldmodels" / "frames.png").stat().st_size > 1000


@pytest.mark.slow
def test_default_recipe_quality(tmp_path):
    """The default command's recipe, seed 0, on CI's budget: V+M ≥ 195 over its 20 seeded
    episodes, above V-only and random, trained within 15 CPU-minutes (one thread).

    The cheaper half of issue 21's protocol (one seed, 20 episodes, about 10 CPU-minutes with
    the ablation); the whole protocol, 3 seeds × 100 episodes, is the by-hand test below.
    """
    from ebmkit_worldmodels.pipeline import RunConfig, run

    _, result = run(RunConfig(device="cpu"), tmp_path)
    print(*(f"{k}: {np.mean(v):.1f}" for k, v in result.returns.items()), result.seconds)
    assert len(result.returns["V+M"]) == 20
    assert result.mean("V+M") >= 195
    assert result.mean("V+M") > result.mean("V-only") > result.mean("random")
    assert 15 <= result.mean("random") <= 30  # ≈ 20 with these seeds
    assert result.vision_test["mse"] < result.vision_test["mse_mean_frame"]
    assert result.memory_test["nll"] < result.memory_test["nll_same_latent"]
    # CPU time, not the wall clock (which other jobs on the machine inflate)
    assert result.seconds["cpu_train"] <= 15 * 60


@pytest.mark.byhand
def test_default_recipe_solves_cartpole_on_two_of_three_seeds():
    """Issue 21's protocol: the default command, seeds 0, 1, 2, each judged over 100
    evaluation episodes (seeds no training step uses), mean return ≥ 195 on at least two,
    each trained within 15 CPU-minutes on one thread (``python -m bench quality
    worldmodels`` runs the same row; about 20 CPU-minutes in all)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ at the repo root
    from bench.quality_worldmodels import BAR, CPU_BUDGET_S, EPISODES, row_worldmodels

    row = row_worldmodels((0, 1, 2))
    print(row.figures, row.notes)
    means, cpu = row.figures["V+M mean return"], row.figures["training CPU s"]
    assert len(means) == 3 and EPISODES == 100
    assert sum(m >= BAR and c <= CPU_BUDGET_S for m, c in zip(means, cpu)) >= 2, row.notes
    assert row.met
