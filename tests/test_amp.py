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
