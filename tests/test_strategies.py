"""Strategies: each one shapes a tiny learnable energy the way it should."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ebmkit.energy import L1
from ebmkit.errors import ConfigError, UnknownNameError
from ebmkit.model import EnergyModel
from ebmkit.negatives import GaussianNoise, Shuffle
from ebmkit.samplers import Langevin, ReplayBuffer
from ebmkit.strategies import (
    Architectural,
    Contrastive,
    ContrastiveDivergence,
    DenoisingScoreMatching,
    Regularized,
    StepOutput,
)

TRUE_MEAN = [2.0, -1.0]
TRUE_STD = 0.5


pytestmark = pytest.mark.usefixtures("one_thread")


class Quadratic(EnergyModel):
    """E(y) = ½ ‖(y − μ) / s‖²: exp(−E) is N(μ, diag(s²)); μ and log s are learnt."""

    name = "test.quadratic"

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(dim))
        self.log_s = nn.Parameter(torch.zeros(dim))

    def energy(self, y, x=None, z=None):
        return 0.5 * ((y - self.mu) * torch.exp(-self.log_s)).square().sum(-1)

    def config(self):
        return {"dim": self.mu.shape[0]}

    def default_strategy(self):
        return Architectural()


class LinearCode(EnergyModel):
    """E(y, z) = ‖y − Wz‖² with z = y Aᵀ from an encoder, and optionally a regulariser."""

    name = "test.linear_code"

    def __init__(self, with_regularizer: bool = False) -> None:
        super().__init__()
        self.dec = nn.Linear(3, 4, bias=False)
        self.enc = nn.Linear(4, 3, bias=False)
        if with_regularizer:
            self.regularizer = lambda y, x=None, z=None: z.square().sum(-1)

    def infer(self, y, x=None):
        return self.enc(y)

    def energy(self, y, x=None, z=None):
        return (y - self.dec(z)).square().sum(-1)

    def terms(self, y, x=None, z=None):
        return {"reconstruction": self.energy(y, x, z)}


def data(n: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(TRUE_MEAN, device=device) + TRUE_STD * torch.randn(n, 2, device=device)


def train(model, strategy, device, steps: int, lr: float = 0.05, batch: int = 256) -> StepOutput:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # Linear decay to 0: the last iterates average out the minibatch noise.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / steps)
    for _ in range(steps):
        out = strategy(model, {"y": data(batch, device)})
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        sched.step()
    return out


def assert_logs_detached(out: StepOutput, *keys: str) -> None:
    for key in keys:
        v = out.logs[key]
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad, key


def test_architectural_is_mean_free_energy(device):
    torch.manual_seed(0)
    model = Quadratic().to(device)
    y = data(32, device)
    out = Architectural()(model, {"y": y})
    torch.testing.assert_close(out.loss, model(y).mean())
    assert out.loss.requires_grad
    assert_logs_detached(out, "e_pos")


def test_a_batch_on_another_device_is_explained():
    model = Quadratic()
    y = data(8, "cpu")
    Architectural()(model, {"y": y})
    model.to("meta")
    with pytest.raises(ConfigError, match=r"batch\['y'\] is on cpu but the model is on meta"):
        Architectural()(model, {"y": y})


def test_regularized_adds_weighted_l1_by_hand(device):
    torch.manual_seed(0)
    model = LinearCode().to(device)
    y = torch.randn(16, 4, device=device)
    out = Regularized(weight=0.3, regularizer=L1())(model, {"y": y})
    z = model.enc(y)
    want = (y - model.dec(z)).square().sum(-1).mean() + 0.3 * z.abs().sum(-1).mean()
    torch.testing.assert_close(out.loss, want)
    assert_logs_detached(out, "e_pos", "regularizer", "energy/reconstruction")
    out.loss.backward()
    assert model.enc.weight.grad is not None and model.dec.weight.grad is not None
    # Without a regularizer argument the model's own is used ...
    model = LinearCode(with_regularizer=True).to(device)
    out = Regularized(weight=2.0)(model, {"y": y})
    z = model.enc(y)
    want = model.energy(y, z=z).mean() + 2.0 * z.square().sum(-1).mean()
    torch.testing.assert_close(out.loss, want)
    # ... and a model without one is a clear error.
    with pytest.raises(ConfigError, match="no regularizer"):
        Regularized()(LinearCode().to(device), {"y": y})


def test_contrastive_hinge_separates_positives_from_negatives(device):
    torch.manual_seed(0)
    model = Quadratic().to(device)
    strategy = Contrastive(negatives=GaussianNoise(1.0, k=4), loss="hinge", margin=1.0)
    y = data(512, device)
    first = strategy(model, {"y": y})
    assert float(first.logs["e_pos"]) > float(first.logs["e_neg"]) - 1.0  # not separated yet
    train(model, strategy, device, steps=150)
    torch.manual_seed(1)
    with torch.no_grad():
        e_pos = model(y)
        e_neg = model(GaussianNoise(1.0, k=4)(y).reshape(-1, 2)).reshape(-1, 4)
    assert float(e_pos.mean()) < float(e_neg.mean()) - 1.0
    assert float((e_pos < e_neg.mean(1) - 1.0).float().mean()) > 0.6
    assert float((model.mu.detach().cpu() - torch.tensor(TRUE_MEAN)).abs().max()) < 0.2


def test_contrastive_k_negatives_repeat_x(device):
    """[B, K, ...] negatives are scored as [B·K] with x repeated per negative."""
    torch.manual_seed(0)
    seen = {}

    class Conditional(EnergyModel):
        name = "test.conditional"

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def energy(self, y, x=None, z=None):
            seen.setdefault("shapes", []).append((tuple(y.shape), tuple(x.shape)))
            return self.w * (y - x).square().sum(-1)

    model = Conditional().to(device)
    x = torch.randn(6, 3, device=device)
    y = x + 0.01 * torch.randn(6, 3, device=device)
    out = Contrastive(Shuffle(k=3), loss="nll", temperature=0.5)(model, {"y": y, "x": x})
    assert seen["shapes"] == [((6, 3), (6, 3)), ((18, 3), (18, 3))]
    # Matched pairs have low energy, shuffled ones high: the InfoNCE loss is small.
    assert float(out.loss.detach()) < 0.1 and float(out.logs["e_neg"]) > float(out.logs["e_pos"])


def test_missing_or_bad_negatives_raise(device):
    with pytest.raises(ConfigError, match="needs negatives"):
        Contrastive()
    with pytest.raises(ConfigError, match="needs negatives"):
        Contrastive(negatives=None, loss="hinge")
    with pytest.raises(ConfigError, match="needs a sampler"):
        ContrastiveDivergence()
    with pytest.raises(ConfigError, match="unknown loss option.*marg"):
        Contrastive(GaussianNoise(), loss="hinge", marg=1.0)
    with pytest.raises(UnknownNameError):
        Contrastive(GaussianNoise(), loss="hingee")
    model = Quadratic().to(device)
    bad = Contrastive(lambda y, model, x: torch.zeros(3, 7, device=y.device))
    with pytest.raises(ConfigError, match=r"negatives must be shaped like y"):
        bad(model, {"y": torch.zeros(4, 2, device=device)})
    with pytest.raises(ConfigError, match="batch dict with 'y'"):
        Architectural()(model, {"x": torch.zeros(4, 2, device=device)})


def test_cd_with_langevin_and_buffer_learns_shifted_gaussian(device, tmp_path):
    torch.manual_seed(0)
    model = Quadratic().to(device)
    buffer = ReplayBuffer(capacity=1024, reinit=0.05)
    strategy = ContrastiveDivergence(Langevin(steps=20, step_size=0.02), buffer=buffer, alpha=0.01)
    out = train(model, strategy, device, steps=150)
    assert_logs_detached(out, "e_pos", "e_neg")
    mu = model.mu.detach().cpu()
    assert float((mu - torch.tensor(TRUE_MEAN)).abs().max()) < 0.2, mu
    assert float((model.log_s.detach().exp().cpu() - TRUE_STD).abs().max()) < 0.15
    assert all(p.grad is not None for p in model.parameters())
    # The persistent chains survive a checkpoint (tensors only).
    torch.save(strategy.state_dict(), tmp_path / "strategy.pt")
    resumed = ContrastiveDivergence(Langevin(steps=1), buffer=ReplayBuffer(capacity=1024))
    resumed.load_state_dict(torch.load(tmp_path / "strategy.pt", weights_only=True))
    assert torch.equal(resumed.buffer.storage, buffer.storage)


def test_cd_k_starts_from_data(device):
    torch.manual_seed(0)
    model = Quadratic().to(device)
    y = data(64, device)
    # Zero steps: the negatives are the data, the two energies cancel.
    out = ContrastiveDivergence(Langevin(steps=0), alpha=0.0)(model, {"y": y})
    torch.testing.assert_close(out.loss, torch.zeros((), device=device))
    out = ContrastiveDivergence(Langevin(steps=0), alpha=0.5,
                                init=lambda y: torch.zeros_like(y))(model, {"y": y})
    e = model(y)
    torch.testing.assert_close(out.loss, e.mean() + 0.5 * e.square().mean())  # E(0) = 0 at μ = 0
    assert ContrastiveDivergence(Langevin()).state_dict() == {}


def test_denoising_score_matching_learns_mean_and_scale(device):
    torch.manual_seed(0)
    model = Quadratic().to(device)
    sigma = 0.1
    out = train(model, DenoisingScoreMatching(sigma=sigma), device, steps=300, batch=512)
    assert_logs_detached(out, "e_pos")
    mu = model.mu.detach().cpu()
    assert float((mu - torch.tensor(TRUE_MEAN)).abs().max()) < 0.1, mu
    # DSM fits the noise-smoothed density: std √(0.5² + σ²) ≈ 0.51.
    s = model.log_s.detach().exp().cpu()
    assert float((s - (TRUE_STD ** 2 + sigma ** 2) ** 0.5).abs().max()) < 0.06, s


def test_dsm_loss_by_hand_and_under_no_grad(device):
    torch.manual_seed(0)
    model = Quadratic().to(device)
    y = data(8, device)
    torch.manual_seed(3)
    out = DenoisingScoreMatching(sigma=0.2)(model, {"y": y})
    torch.manual_seed(3)
    eps = torch.randn_like(y)
    y_noisy = y + 0.2 * eps
    grad = (y_noisy - model.mu) * torch.exp(-2 * model.log_s)  # ∇E of the quadratic
    want = 0.5 * (0.2 * grad - eps).square().sum(-1).mean()
    torch.testing.assert_close(out.loss, want)
    with torch.no_grad():
        assert torch.isfinite(DenoisingScoreMatching()(model, {"y": y}).loss)
    with torch.inference_mode():
        y = data(8, device)
        assert torch.isfinite(DenoisingScoreMatching()(model, {"y": y}).loss)
