"""Samplers, replay buffer and negative generators: they sample the right distribution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ebmkit.errors import ConfigError
from ebmkit.negatives import (
    FromSampler,
    GaussianNoise,
    Masking,
    NegativeGenerator,
    Shuffle,
    Uniform,
)
from ebmkit.samplers import HMC, Langevin, ReplayBuffer

MU = [1.0, -1.0]
SIGMA = [[1.0, 0.8], [0.8, 1.0]]  # correlated: eigenvalues 1.8 and 0.2


pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian(device: torch.device):
    """E(y) = ½ (y − μ)ᵀ Σ⁻¹ (y − μ), so exp(−E) ∝ N(μ, Σ)."""
    mu = torch.tensor(MU, device=device)
    sigma = torch.tensor(SIGMA, device=device)
    precision = torch.linalg.inv(sigma)

    def energy(y: torch.Tensor) -> torch.Tensor:
        d = y - mu
        return 0.5 * ((d @ precision) * d).sum(dim=1)

    return energy, mu, sigma


def moments_error(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[float, float]:
    return float((y.mean(0) - mu).abs().max()), float((torch.cov(y.T) - sigma).abs().max())


# -- Langevin ---------------------------------------------------------------------------------

def test_langevin_samples_correlated_gaussian(device):
    torch.manual_seed(0)
    energy, mu, sigma = gaussian(device)
    # Exact-noise SGLD, small step (O(η) bias ≈ 1% of the smallest variance); 1500 steps is
    # ~8 relaxation times of the slowest direction (rate η·λ_min ≈ 0.0028 per step).
    init = torch.randn(6000, 2, device=device)
    y = Langevin(steps=1500, step_size=0.005).sample(energy, init)
    mean_err, cov_err = moments_error(y, mu, sigma)
    # Standard errors are ≈0.017 (mean) and ≈0.03 (cov); halving the noise would halve Σ.
    assert mean_err < 0.06, mean_err
    assert cov_err < 0.1, cov_err
    assert y.device.type == device.type and not y.requires_grad


def test_langevin_wrong_noise_is_detected(device):
    """The moment check has teeth: noise √η instead of √(2η) samples Σ/2."""
    torch.manual_seed(0)
    energy, mu, sigma = gaussian(device)
    y = Langevin(steps=1500, step_size=0.005, noise=0.005 ** 0.5).sample(
        energy, torch.randn(6000, 2, device=device))
    assert moments_error(y, mu, sigma)[1] > 0.3


def test_langevin_leaves_no_grads_and_works_under_no_grad(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, 1)).to(device)

    def energy(y: torch.Tensor) -> torch.Tensor:
        return net(y).squeeze(-1)

    init = torch.rand(8, 4, device=device)
    before = init.clone()
    with torch.no_grad():
        y = Langevin(steps=5, step_size=0.1, noise=0.01).sample(energy, init)
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(init, before), "init must not be modified"
    assert not y.requires_grad and not torch.allclose(y, init)
    with torch.inference_mode():
        y = Langevin(steps=2, step_size=0.1).sample(energy, torch.rand(8, 4, device=device))
        h = HMC(steps=2, leapfrog_steps=2)
        assert h.sample(energy, torch.rand(8, 4, device=device)).shape == (8, 4)
    assert y.shape == (8, 4) and bool(torch.isfinite(y).all())
    # Without noise, one step is exactly y − η∇E.
    init.requires_grad_(True)
    (g,) = torch.autograd.grad(energy(init).sum(), init)
    y1 = Langevin(steps=1, step_size=0.1, noise=0.0).sample(energy, init)
    torch.testing.assert_close(y1, (init - 0.1 * g).detach())
    assert all(p.grad is None for p in net.parameters())


def test_langevin_clamp_clip_and_conditioning(device):
    torch.manual_seed(0)
    energy, _, _ = gaussian(device)
    y = Langevin(steps=20, step_size=0.5, clamp=(-0.5, 0.25)).sample(
        energy, torch.rand(64, 2, device=device))
    assert float(y.min()) >= -0.5 and float(y.max()) <= 0.25
    # Norm clipping bounds each sample's move (noise off) by step_size · grad_clip.
    far = torch.full((16, 2), 50.0, device=device)
    y = Langevin(steps=1, step_size=0.1, noise=0.0, grad_clip=1.0).sample(energy, far)
    moved = (y - far).norm(dim=1)
    torch.testing.assert_close(moved, torch.full_like(moved, 0.1))
    # x is passed through as energy(y, x=x).
    x = torch.full((16, 2), 3.0, device=device)
    y = Langevin(steps=200, step_size=0.1, noise=0.0).sample(
        lambda y, x: 0.5 * (y - x).square().sum(1), torch.zeros(16, 2, device=device), x=x)
    torch.testing.assert_close(y, x, atol=1e-3, rtol=0)


def test_langevin_rejects_bad_input():
    with pytest.raises(ConfigError, match="step_size"):
        Langevin(step_size=0.0)
    with pytest.raises(ConfigError, match="clamp"):
        Langevin(clamp=(1.0, 0.0))
    with pytest.raises(ConfigError, match=r"one value per sample, shape \[4\], got \[4, 2\]"):
        Langevin(steps=1).sample(lambda y: y.square(), torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="floating-point"):
        Langevin(steps=1).sample(lambda y: y.sum(1), torch.zeros(4, 2, dtype=torch.long))


# -- HMC --------------------------------------------------------------------------------------

def test_hmc_samples_correlated_gaussian(device):
    torch.manual_seed(0)
    energy, mu, sigma = gaussian(device)
    hmc = HMC(steps=60, step_size=0.25, leapfrog_steps=8)
    y = hmc.sample(energy, torch.randn(3000, 2, device=device))
    mean_err, cov_err = moments_error(y, mu, sigma)
    assert mean_err < 0.08, mean_err
    assert cov_err < 0.12, cov_err
    rate = float(hmc.acceptance_rate)
    assert 0.7 < rate < 1.0, rate
    assert hmc.acceptance_rate.device.type == device.type
    # ε·√λ_max = 1.5·√5 > 2: leapfrog is unstable and nearly every proposal is rejected.
    big = HMC(steps=10, step_size=1.5, leapfrog_steps=8)
    big.sample(energy, torch.randn(500, 2, device=device))
    assert float(big.acceptance_rate) < 0.2 < rate


# -- ReplayBuffer -----------------------------------------------------------------------------

def test_buffer_reinit_fraction_and_round_trip(device):
    torch.manual_seed(0)
    buf = ReplayBuffer(capacity=200, reinit=0.2)
    assert len(buf) == 0
    zeros = lambda n: torch.zeros(n, 3, device=device)  # noqa: E731 (fresh draws are 0)
    # An empty buffer yields fresh draws only, with valid slot indices.
    y, idx = buf.sample(50, zeros)
    assert y.shape == (50, 3) and bool((y == 0).all())
    assert idx.shape == (50,) and int(idx.min()) >= 0 and int(idx.max()) < 200
    # Fill every slot with its own index (round-robin push), then sample many times.
    buf.push(torch.arange(200, device=device, dtype=torch.float32).unsqueeze(1).expand(200, 3) + 1)
    assert len(buf) == 200 and buf.device.type == device.type
    fresh = total = 0
    for _ in range(100):
        y, idx = buf.sample(100, zeros)
        kept = y[:, 0] != 0
        # Kept samples are exactly the stored ones at the returned indices.
        assert torch.equal(y[kept, 0], idx[kept].float() + 1)
        fresh += int((~kept).sum())
        total += 100
    assert abs(fresh / total - 0.2) < 0.02, fresh / total
    # push at idx writes back where the samples came from.
    y, idx = buf.sample(10, zeros)
    buf.push(torch.full((10, 3), -7.0, device=device), idx)
    assert bool((buf.storage[idx] == -7.0).all())


def test_buffer_partly_filled_draws_fresh_for_the_rest(device):
    torch.manual_seed(0)
    buf = ReplayBuffer(capacity=100, reinit=0.0)
    buf.push(torch.ones(40, 2, device=device))
    assert len(buf) == 40
    zeros = lambda n: torch.zeros(n, 2, device=device)  # noqa: E731
    frac = sum(float((buf.sample(100, zeros)[0] == 0).float().mean()) for _ in range(50)) / 50
    assert abs(frac - 0.6) < 0.05, frac


def test_buffer_state_dict_loads_with_weights_only(tmp_path, device):
    torch.manual_seed(0)
    buf = ReplayBuffer(capacity=30, reinit=0.1)
    buf.push(torch.randn(25, 2, 2, device=device))
    path = tmp_path / "buffer.pt"
    torch.save(buf.state_dict(), path)
    state = torch.load(path, weights_only=True, map_location=device)
    other = ReplayBuffer(capacity=30, reinit=0.1)
    other.load_state_dict(state)
    assert len(other) == 25 and torch.equal(other.storage, buf.storage)
    init = lambda n: torch.zeros(n, 2, 2, device=device)  # noqa: E731
    torch.manual_seed(1)
    a = buf.sample(16, init)
    torch.manual_seed(1)
    b = other.sample(16, init)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # The round-robin position survives too.
    buf.push(torch.ones(1, 2, 2, device=device))
    other.push(torch.ones(1, 2, 2, device=device))
    assert torch.equal(buf.storage, other.storage)
    with pytest.raises(ConfigError, match="capacity"):
        ReplayBuffer(capacity=10).load_state_dict(state)
    with pytest.raises(ConfigError, match=r"shaped \[n, 2, 2\]"):
        buf.push(torch.ones(3, 4, device=device))


# -- negatives --------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3])
def test_negative_shapes(device, k):
    torch.manual_seed(0)
    y = torch.rand(8, 5, device=device)
    want = (8, 5) if k == 1 else (8, k, 5)
    for gen in (GaussianNoise(0.3, k=k, clamp=(0.0, 1.0)), Uniform(-1.0, 2.0, k=k),
                Masking(0.5, k=k), Shuffle(k=k)):
        assert isinstance(gen, NegativeGenerator) and gen.k == k
        out = gen(y)
        assert out.shape == want and out.device.type == device.type and out.dtype == y.dtype
    u = Uniform(-1.0, 2.0, k=k)(y)
    assert float(u.min()) >= -1.0 and float(u.max()) < 2.0
    g = GaussianNoise(0.3, k=k, clamp=(0.0, 1.0))(y)
    assert float(g.min()) >= 0.0 and float(g.max()) <= 1.0


def test_masking_drops_fraction_p(device):
    torch.manual_seed(0)
    y = torch.ones(200, 100, device=device)
    out = Masking(p=0.3, value=-1.0, k=2)(y)
    assert abs(float((out == -1.0).float().mean()) - 0.3) < 0.01
    assert bool(((out == 1.0) | (out == -1.0)).all())


def test_gaussian_noise_std(device):
    torch.manual_seed(0)
    y = torch.zeros(400, 50, device=device)
    assert abs(float(GaussianNoise(0.3)(y).std()) - 0.3) < 0.01


def test_shuffle_has_no_fixed_points(device):
    torch.manual_seed(0)
    for b in (2, 3, 16):
        y = torch.arange(b, device=device, dtype=torch.float32).unsqueeze(1)  # distinct rows
        for k in (1, 3, 20):
            for _ in range(10):
                out = Shuffle(k=k)(y)
                out = out if k > 1 else out.unsqueeze(1)
                assert not bool((out == y.unsqueeze(1)).any()), (b, k)
                if k <= b - 1:  # distinct offsets: the K negatives of a sample all differ
                    assert len(set(out[0, :, 0].tolist())) == k
    with pytest.raises(ConfigError, match="at least 2"):
        Shuffle()(torch.zeros(1, 3))


def test_from_sampler_uses_and_feeds_buffer(device):
    torch.manual_seed(0)
    energy, mu, _ = gaussian(device)
    buf = ReplayBuffer(capacity=64, reinit=0.0)
    gen = FromSampler(Langevin(steps=50, step_size=0.1), buffer=buf)
    y = torch.randn(32, 2, device=device)
    for _ in range(6):
        out = gen(y, energy)
    assert out.shape == y.shape and len(buf) > 32
    # Persistent chains have moved towards the mode from uniform starts in y's range.
    assert float((buf.storage[buf.filled].mean(0) - mu).abs().max()) < 0.5
    plain = FromSampler(Langevin(steps=1, step_size=0.1))(y, energy)
    assert plain.shape == y.shape
    with pytest.raises(ConfigError, match="needs the model"):
        gen(y)


# -- defaults, AMP, compiled loops -------------------------------------------------------------

def test_langevin_defaults_sample_rather_than_add_noise():
    """Langevin() uses σ = √(2η) with a small η, so its chains sample exp(−E); the old
    defaults (η = 10, σ = √20) blew up on any energy of unit curvature."""
    torch.manual_seed(0)
    sampler = Langevin()
    assert sampler.noise == pytest.approx((2 * sampler.step_size) ** 0.5)
    sampler.steps = 600  # η = 0.01: ~6 relaxation times of a unit-curvature energy
    y = sampler.sample(lambda y: 0.5 * y.square().sum(1), torch.zeros(4000, 2))
    assert torch.isfinite(y).all()
    assert float((y.var(0) - 1).abs().max()) < 0.1  # N(0, I) up to the O(η) bias


def test_samplers_run_float32_chains_under_bf16_autocast():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))

    def energy(y):
        return net(y).squeeze(-1)

    init = torch.randn(32, 2)
    for sampler in (Langevin(steps=20, step_size=0.01), HMC(steps=3, step_size=0.05,
                                                             leapfrog_steps=3)):
        torch.manual_seed(1)
        plain = sampler.sample(energy, init)
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            amp = sampler.sample(energy, init)
        # bf16 steps would differ by ~1e-2 after 20 updates; float32 chains are identical
        assert amp.dtype == torch.float32 and torch.equal(amp, plain), type(sampler).__name__


@pytest.mark.slow  # three torch.compile runs: ~25 s of CPU on 2 cores, minutes under load
def test_compiled_samplers_match_the_eager_loops():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))

    def energy(y):
        return net(y).squeeze(-1)

    init = torch.randn(16, 2)
    # 41 steps: two 20-step graphs and a 1-step remainder
    kwargs = {"steps": 41, "step_size": 0.05, "noise": 0.1, "grad_clip": 0.5, "clamp": (-1.0, 1.0)}
    torch.manual_seed(1)
    eager = Langevin(**kwargs).sample(energy, init)
    torch.manual_seed(1)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled = Langevin(compile=True, **kwargs).sample(energy, init)
    # one graph per chunk length: the loop runs as an inference graph, so the chunk's output
    # (y) does not require grad and the second chunk does not recompile for it
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 2
    # the same noise draws (made outside the graph), the same maths up to rounding
    assert torch.allclose(eager, compiled, atol=1e-5)
    # one shape family: a second batch size recompiles each chunk length once with the
    # batch symbolic (the step size a tensor); a third batch size and step size, nothing
    counters = torch._dynamo.utils.counters["stats"]
    graphs = counters["unique_graphs"]
    Langevin(compile=True, **{**kwargs, "step_size": 0.04}).sample(energy, torch.randn(32, 2))
    assert counters["unique_graphs"] - graphs <= 2
    graphs = counters["unique_graphs"]
    again = Langevin(compile=True, **{**kwargs, "step_size": 0.03})
    torch.manual_seed(3)
    out = again.sample(energy, torch.randn(48, 2))
    assert counters["unique_graphs"] == graphs
    torch.manual_seed(3)
    assert torch.allclose(out, Langevin(**{**kwargs, "step_size": 0.03}).sample(
        energy, torch.randn(48, 2)), atol=1e-5)
    torch.manual_seed(2)
    hmc = HMC(steps=2, step_size=0.05, leapfrog_steps=3)
    eager = hmc.sample(energy, init)
    torch.manual_seed(2)
    chmc = HMC(steps=2, step_size=0.05, leapfrog_steps=3, compile=True)
    assert torch.allclose(chmc.sample(energy, init), eager, atol=1e-5)
    assert torch.allclose(chmc.acceptance_rate, hmc.acceptance_rate)
    assert all(p.grad is None for p in net.parameters())


def test_langevin_bf16_autocast_chains_track_float32_ones() -> None:
    """Langevin(autocast=True): the energy runs in bf16 (CPU autocast), the chains in
    float32. Over 40 steps the chains move ~0.27 per coordinate on average; the bf16 chains
    stay within 1e-2 (max) and 1e-3 (mean) of the float32 ones, and differ from them at all
    (autocast was in effect)."""
    from torch import nn

    import ebmkit as ek

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(),
                        nn.Linear(64, 1))

    def energy(y: torch.Tensor) -> torch.Tensor:
        return net(y).squeeze(1) + 0.5 * y.square().sum(1)

    init = torch.randn(256, 16)
    chains = {}
    for amp in (False, True):
        torch.manual_seed(1)  # the same noise
        chains[amp] = ek.samplers.Langevin(steps=40, step_size=0.01, noise=0.01,
                                           autocast=amp).sample(energy, init)
    assert chains[True].dtype == torch.float32
    gap = (chains[True] - chains[False]).abs()
    moved = (chains[False] - init).abs().mean()
    assert gap.max() < 1e-2 and gap.mean() < 1e-3, (gap.max(), gap.mean())
    assert gap.max() > 0 and moved > 0.1
    with pytest.raises(ek.errors.ConfigError, match="autocast"):
        ek.samplers.Langevin(autocast="fp8")


def test_buffer_draws_distinct_slots(device):
    """Slots are drawn without replacement (duplicate index_put writes land in an undefined
    order on CUDA); every slot is reachable; more chains than slots share some."""
    buf = ReplayBuffer(capacity=50, reinit=0.0)
    seen = set()
    for _ in range(20):
        _, idx = buf.sample(40, lambda n: torch.zeros(n, 2, device=device))
        assert idx.unique().numel() == 40
        seen |= set(idx.tolist())
    assert seen == set(range(50))
    _, idx = buf.sample(70, lambda n: torch.zeros(n, 2, device=device))
    assert idx.shape == (70,) and int(idx.max()) < 50
