"""The claims of docs/coming-from.md ("Coming from another library"), checked against ebmkit.

Each behaviour the page says users of TorchEBM or ``ebm`` trip over, and ebmkit handles, is
asserted here. The statements about the other libraries are checked too, when they are
installed (``pip install 'torch-ebmkit[others]'``); otherwise those tests skip.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import ebmkit as ek
from ebmkit.data import TensorData
from ebmkit.errors import ConfigError
from ebmkit.train import DivergenceError

pytestmark = pytest.mark.usefixtures("one_thread")


class Flat(nn.Module):
    """A plain nn.Module energy: [B, 2] -> [B]."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y).squeeze(-1)


class MLPEnergy(ek.EnergyModel):
    """The few lines that make a plain network trainable by ek.Trainer."""

    name = "test.mlp"

    def __init__(self, net: nn.Module, strategy: object) -> None:
        super().__init__()
        self.net, self.strategy = net, strategy

    def energy(self, y, x=None, z=None):  # noqa: ANN001, ANN201
        return self.net(y).squeeze(-1)

    def default_strategy(self):  # noqa: ANN201
        return self.strategy


def _cd(buffer: bool = True) -> ek.strategies.ContrastiveDivergence:
    return ek.strategies.ContrastiveDivergence(
        ek.samplers.Langevin(steps=5, step_size=0.05, noise=0.01),
        buffer=ek.samplers.ReplayBuffer(capacity=512) if buffer else None)


def test_plain_module_energy_is_accepted(device: torch.device) -> None:
    torch.manual_seed(0)
    flat = Flat().to(device)
    init = torch.randn(32, 2, device=device)
    out = ek.samplers.Langevin(steps=20, step_size=0.05, noise=0.01).sample(flat, init)
    assert out.shape == init.shape and out.device == init.device
    assert flat(out).mean() < flat(init).mean()  # it descended the plain module's energy
    assert all(p.grad is None for p in flat.parameters())  # and left its gradients alone

    raw = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1)).to(device)  # [B, 1]
    with pytest.raises(ConfigError, match=r"one value per sample.*\[32, 1\]"):
        ek.samplers.Langevin(steps=2).sample(raw, init)  # a clear error, not a silent broadcast
    wrapped = ek.energies.Network(raw)  # [B, 1] read as [B], and it composes
    e = (wrapped + 0.1 * ek.energies.L2(on="y"))(init)
    assert e.shape == (32,)
    assert ek.samplers.Langevin(steps=2).sample(wrapped, init).shape == init.shape


def test_plain_network_trains_through_a_small_energy_model() -> None:
    torch.manual_seed(0)
    y = torch.randn(512, 2) * 0.3 + torch.tensor([2.0, -1.0])
    model = MLPEnergy(nn.Sequential(nn.Linear(2, 32), nn.SiLU(), nn.Linear(32, 1)), _cd())
    before = model(y).mean() - model(torch.randn(512, 2) * 3).mean()
    ek.Trainer(model, epochs=3, batch_size=64, lr=1e-2, progress=False, device="cpu").fit(
        TensorData({"y": y}, name="blob", split="train"))
    after = model(y).mean() - model(torch.randn(512, 2) * 3).mean()
    assert after < before - 0.5, (before, after)  # data now lower in energy than noise


def test_nonfinite_loss_is_an_error_not_replaced() -> None:
    class Exploding(MLPEnergy):
        def energy(self, y, x=None, z=None):  # noqa: ANN001, ANN201
            return super().energy(y) * float("nan")

    model = Exploding(Flat().net, _cd(buffer=False))
    before = [p.detach().clone() for p in model.parameters()]
    trainer = ek.Trainer(model, epochs=1, batch_size=32, progress=False, device="cpu",
                         max_retries=1)  # one retry at a lower lr, then the error
    with pytest.raises(DivergenceError, match="non-finite") as info:
        trainer.fit(TensorData({"y": torch.randn(64, 2)}, name="x", split="train"))
    assert info.value.restored and len(info.value.steps) == 2
    # the weights are the last good ones, not NaN
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fresh_chains_are_really_redrawn() -> None:
    buf = ek.samplers.ReplayBuffer(capacity=4096, reinit=1.0)
    buf.push(torch.full((4096, 2), 100.0))  # every stored chain far away
    fresh = lambda n: torch.randn(n, 2)  # noqa: E731
    starts, _ = buf.sample(1024, fresh)
    assert starts.abs().max() < 10  # all re-drawn from init, none a perturbed old chain

    buf = ek.samplers.ReplayBuffer(capacity=4096, reinit=0.05)
    buf.push(torch.full((4096, 2), 100.0))
    torch.manual_seed(0)
    starts, _ = buf.sample(20_000, fresh)
    share = (starts.abs().max(dim=1).values < 10).float().mean().item()
    assert abs(share - 0.05) < 0.01, share  # 5 % fresh draws, the rest kept exactly
    kept = starts[starts.abs().max(dim=1).values >= 10]
    assert torch.equal(kept, torch.full_like(kept, 100.0))


def _settings() -> dict[str, object]:
    return {
        "default_dtype": torch.get_default_dtype(),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "num_threads": torch.get_num_threads(),
        "grad_enabled": torch.is_grad_enabled(),
        "anomaly": torch.is_anomaly_enabled(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cuda_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "sparse_checks": torch.sparse.check_sparse_tensor_invariants.is_enabled(),
        "default_device": str(torch.get_default_device()),
    }


def test_global_pytorch_settings_untouched() -> None:
    import importlib
    import pkgutil

    before = _settings()
    for m in pkgutil.iter_modules(ek.__path__):  # every public module of the core
        if not m.name.startswith("_"):
            importlib.import_module(f"ebmkit.{m.name}")
    rng = torch.get_rng_state()
    model = MLPEnergy(Flat().net, _cd())
    trainer = ek.Trainer(model, epochs=1, batch_size=64, progress=False, device="cpu", seed=None)
    trainer.fit(TensorData({"y": torch.randn(128, 2)}, name="x", split="train"))
    trainer.evaluate(TensorData({"y": torch.randn(64, 2)}, name="x", split="val"))
    assert _settings() == before
    assert not torch.equal(torch.get_rng_state(), rng)  # seed=None draws, never reseeds ...
    torch.manual_seed(5)
    expect = torch.rand(3)
    torch.manual_seed(5)
    ek.Trainer(model, epochs=1, batch_size=64, progress=False, device="cpu", seed=None)
    assert torch.equal(torch.rand(3), expect)  # ... and building a trainer draws nothing


# -- what the page says about the other libraries (installed versions only) ---------------
def test_torchebm_behaviours_the_page_describes() -> None:
    pytest.importorskip("torchebm")
    from torchebm.core import BaseModel
    from torchebm.losses import ContrastiveDivergence
    from torchebm.samplers import LangevinDynamics

    with pytest.raises(AttributeError, match="gradient"):  # a plain module is refused
        LangevinDynamics(Flat(), step_size=0.01).sample(x=torch.randn(4, 2), n_steps=2)

    class Nan(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(-1) * self.w * float("nan")

    m = Nan()
    loss, _ = ContrastiveDivergence(model=m, sampler=LangevinDynamics(m, step_size=0.01),
                                    k_steps=1)(torch.randn(8, 2))
    assert math.isclose(loss.item(), 0.1, rel_tol=1e-6)  # NaN silently replaced by 0.1

    pcd = ContrastiveDivergence(model=m, sampler=LangevinDynamics(m, step_size=0.01),
                                k_steps=1, persistent=True, buffer_size=64, new_sample_ratio=1.0)
    pcd.initialize_buffer((2,))
    pcd.replay_buffer[:] = 100.0
    assert pcd.get_start_points(torch.randn(64, 2)).abs().min() > 99  # "new" = old + 0.01 noise

    before = torch.get_float32_matmul_precision()
    try:
        import torchebm.core.base_trainer  # noqa: F401

        changed = torch.get_float32_matmul_precision()
    finally:
        torch.set_float32_matmul_precision(before)
    assert before == "highest" and changed == "high"  # importing its trainer sets it


def test_ebm_behaviours_the_page_describes() -> None:
    ebm = pytest.importorskip("ebm")
    if not hasattr(ebm, "ContrastiveDivergence"):
        pytest.skip("an unrelated module named ebm")
    flat = Flat()
    cd = ebm.ContrastiveDivergence(ebm.LangevinDynamics(step_size=0.01, steps=2))
    out = cd(flat, torch.randn(8, 2))  # plain callables are fine in ebm too
    assert out.loss.shape == ()

    class Nan(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = Flat()

        def forward(self, y: torch.Tensor) -> torch.Tensor:
            return self.net(y) * float("nan")

    net = Nan()
    trainer = ebm.Trainer(net, ebm.ContrastiveDivergence(ebm.LangevinDynamics(steps=2)),
                          device="cpu")
    trainer.fit(torch.randn(64, 2), steps=2, batch_size=16, verbose=False)  # no error ...
    assert all(torch.isnan(p).all() for p in net.parameters())  # ... and NaN weights
