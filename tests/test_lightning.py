"""The Lightning bridge: one epoch under ``lightning.Trainer`` gives the weights ``ek.Trainer``
gives with the same seed and the same batches, bit for bit (an autoencoder, and contrastive
divergence whose replay buffer and Langevin noise draw from the global RNG); the strategy's
state rides in Lightning's checkpoint."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import ebmkit as ek
from ebmkit.errors import ConfigError

L = pytest.importorskip("lightning")

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
              pytest.mark.filterwarnings("ignore:.*treespec.*")]

CASES = {
    "autoencoder": ({"hidden": 8, "code": 2}, "digits"),
    "neural.mlp": ({"hidden": 16, "langevin_steps": 5, "buffer_size": 256}, "rings"),
}


def lightning_trainer() -> Any:
    return L.Trainer(accelerator="cpu", max_epochs=1, deterministic=True, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)


def both(name: str) -> tuple[Any, Any, Any]:
    options, data = CASES[name]
    loader = DataLoader(TensorDataset(ek.get_dataset(data).y[:384]), batch_size=64)
    torch.manual_seed(0)
    ours = ek.get_model(name, **options)
    ek.Trainer(ours, epochs=1, device="cpu", progress=False, seed=0, lr=2e-3).fit(loader)
    torch.manual_seed(0)
    theirs = ek.get_model(name, **options)
    L.seed_everything(0, verbose=False)
    module = ek.lightning.EnergyModule(theirs, lr=2e-3)
    lightning_trainer().fit(module, loader)
    return ours, theirs, module


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_epoch_under_lightning_equals_ek_trainer(name: str) -> None:
    ours, theirs, _ = both(name)
    torch.manual_seed(0)
    start = ek.get_model(name, **CASES[name][0]).state_dict()
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys()
    assert any(not torch.equal(start[k], a[k]) for k in a)  # it trained
    assert all(torch.equal(a[k], b[k]) for k in a), name


def test_strategy_state_rides_in_the_checkpoint() -> None:
    _, _, module = both("neural.mlp")
    checkpoint: dict[str, Any] = {}
    module.on_save_checkpoint(checkpoint)
    buffer = module.strategy.buffer
    assert torch.equal(checkpoint["ebmkit_strategy"]["buffer"]["storage"], buffer.storage)
    fresh = ek.lightning.EnergyModule(ek.get_model("neural.mlp", **CASES["neural.mlp"][0]))
    fresh.on_load_checkpoint(checkpoint)
    assert torch.equal(fresh.strategy.buffer.storage, buffer.storage)


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="needs an ek.EnergyModel, got Linear"):
        ek.lightning.EnergyModule(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="lr must be a number > 0"):
        ek.lightning.EnergyModule(ek.get_model("autoencoder"), lr=0)
