"""AMP that holds: every registered family's default strategy trains under bf16 autocast on
the CPU (and on CUDA where there is one; inner solvers and samplers run in float32
inside), and lands near its float32 run.

Written over ``ek.list_models()``, so a family that registers later is covered without an
edit here: it trains on 64 samples of its recipe's dataset with its recipe's options."""

from __future__ import annotations

import math

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import DatasetUnavailableError
from ebmkit.plugins import get_entry

pytestmark = pytest.mark.usefixtures("one_thread")

#: Options that keep a family's check cheap where its recipe is large (merged over it).
SMALL: dict[str, dict] = {}
#: Families with no cheap configuration for this check, and why.
NOT_CHEAP: dict[str, str] = {
    "worldmodels": "trains three models from a simulated environment; no 64-sample recipe",
}


def _names() -> list[str]:
    return ek.list_models()


def _subset(data, n: int = 64):
    tensors = getattr(data, "tensors", None)
    if tensors is None:
        return None
    return ek.data.TensorData({k: v[:n] for k, v in tensors.items()},
                              name=getattr(data, "name", "subset"), split="train")


def _run(name: str, amp: str | bool, device: torch.device):
    entry = get_entry("models", name)
    demo = dict(entry.demo or {})
    options = {**demo.get("options", {}), **SMALL.get(name, {})}
    torch.manual_seed(0)
    model = ek.get_model(name, **options)
    data = _subset(ek.get_dataset(demo["data"]))
    trainer = ek.Trainer(model, lr=demo.get("lr", 1e-3), epochs=1,
                         batch_size=min(demo.get("batch_size", 32), 32), device=device,
                         amp=amp, seed=0, progress=False, max_retries=0)
    return trainer.fit(data)[-1]["loss"], model


@pytest.mark.parametrize("name", _names())
def test_default_strategy_trains_under_bf16_autocast(name: str, device: torch.device) -> None:
    if name in NOT_CHEAP:
        pytest.skip(NOT_CHEAP[name])
    entry = get_entry("models", name)
    if not entry.demo:
        pytest.skip(f"{name} registers no recipe (demo=): no data to train it on")
    try:
        data = ek.get_dataset(entry.demo["data"])
    except DatasetUnavailableError as exc:
        pytest.skip(str(exc))
    if _subset(data) is None:
        pytest.skip(f"{entry.demo['data']} is not a TensorData")
    loss32, _ = _run(name, False, device)
    loss16, model = _run(name, "bf16", device)
    assert math.isfinite(loss16), f"{name}: bf16 loss {loss16}"
    assert all(torch.isfinite(p).all() for p in model.parameters()), name
    # bf16 rounds activations to 3 significant digits: one epoch lands near float32's
    assert loss16 == pytest.approx(loss32, rel=0.15, abs=0.05), (name, loss32, loss16)


def test_losses_are_formed_in_float32_from_half_energies() -> None:
    """Energies computed under autocast arrive in bf16/fp16: every loss upcasts them before
    its squares, exponentials and log-sum-exps, so it equals the loss of the float32 copies
    exactly (a bf16 square or exp would not)."""
    import ebmkit as ek

    g = torch.Generator().manual_seed(0)
    for half in (torch.bfloat16, torch.float16):
        e_pos = (3 * torch.randn(64, generator=g)).to(half)
        e_neg = (3 * torch.randn(64, 5, generator=g)).to(half)
        for name, fn in ek.losses.LOSSES.items():
            got, want = fn(e_pos, e_neg), fn(e_pos.float(), e_neg.float())
            assert got.dtype == torch.float32, (name, half)
            assert torch.equal(got, want), (name, half)


def test_denoising_score_matching_takes_its_inner_gradient_in_float32_under_fp16() -> None:
    """Under fp16 autocast DSM's input gradient runs in float32: the loss equals the float32
    step's (same noise) to float32 rounding; bf16 autocast stays in effect."""
    from torch import nn

    import ebmkit as ek

    class Quad(ek.EnergyModel):
        name = "test.amp-quad"

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(16, 16)

        def energy(self, y, x=None, z=None):
            return 0.5 * self.lin(y).square().sum(dim=1)

    torch.manual_seed(0)
    model, y = Quad(), torch.randn(32, 16)
    dsm = ek.strategies.DenoisingScoreMatching(sigma=0.1)
    losses = {}
    for amp in (None, torch.float16, torch.bfloat16):
        torch.manual_seed(1)
        if amp is None:
            losses[amp] = dsm(model, {"y": y}).loss
        else:
            with torch.autocast("cpu", dtype=amp):
                losses[amp] = dsm(model, {"y": y}).loss
    assert losses[torch.float16].dtype == torch.float32
    assert torch.allclose(losses[torch.float16], losses[None], rtol=1e-6)
    assert not torch.equal(losses[torch.bfloat16], losses[None])  # bf16: autocast on


def test_trainer_gpu_switches() -> None:
    """tf32 sets both TF32 flags (None leaves them); deterministic turns cuDNN benchmarking
    off and deterministic algorithms on; channels_last converts a conv model's weights."""
    from torch import nn

    import ebmkit as ek

    class Conv(ek.EnergyModel):
        name = "test.amp-conv"

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def energy(self, y, x=None, z=None):
            return self.conv(y).square().flatten(1).sum(dim=1)

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        model = Conv()
        assert not model.conv.weight.is_contiguous(memory_format=torch.channels_last)
        arch = ek.strategies.Architectural()
        ek.Trainer(model, arch, device="cpu", progress=False)  # the defaults change nothing
        assert not torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.benchmark
        ek.Trainer(model, arch, device="cpu", progress=False, tf32=True, channels_last=True,
                   deterministic=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
        assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.backends.cudnn.benchmark = saved[2]
        torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])
