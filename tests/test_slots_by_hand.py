"""Replacing a built model's network by hand is refused with a clear error (issue 20 §2):
it used to half-work (SimCLR's weight average failed on the architecture mismatch, and a
patched run could not be reloaded). Networks go in through the slots."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import ebmkit as ek
from ebmkit.errors import ConfigError


class _FlatEncoder(nn.Module):
    """A user's encoder: [B, 1, 8, 8] (or [B, 64]) → [B, d]."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(64, d)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.lin(y.flatten(1))


@pytest.mark.parametrize("family", ["ssl.simclr", "autoencoder"])
def test_assigning_a_slot_by_hand_is_refused_and_names_the_slot_way(family):
    model = ek.get_model(family)
    before = model.encoder
    d = model.cfg.rep_dim if family.startswith("ssl") else model.cfg.code
    with pytest.raises(ConfigError, match=rf"model\.encoder \(slot 'encoder'\) cannot be "
                                          rf"replaced.*ek\.get_model\('{family}', encoder="):
        model.encoder = _FlatEncoder(d)
    with pytest.raises(ConfigError, match="cannot be replaced"):
        del model.encoder
    assert model.encoder is before  # nothing half-done


def test_the_slot_way_trains_saves_and_loads(tmp_path):
    """What the error points to works end to end on the same network."""
    torch.manual_seed(0)
    model = ek.get_model("ssl.simclr", encoder=_FlatEncoder(32))
    data = ek.data.TensorData({"y": ek.get_dataset("digits").y[:64]}, name="digits",
                              split="train")
    ek.Trainer(model, epochs=1, batch_size=32, device="cpu", progress=False).fit(data)
    model.save(tmp_path / "m")
    with pytest.raises(ConfigError, match="encoder"):
        ek.load(tmp_path / "m")
    again = ek.load(tmp_path / "m", encoder=_FlatEncoder(32))
    y = data.y[:5]
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model.encode(y), again.encode(y))


class _Base(ek.EnergyModel):
    name = "test.by_hand"

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.norm = nn.BatchNorm1d(4)

    def energy(self, y, x=None, z=None):
        return self.net(self.norm(y)).squeeze(1)


class _Child(_Base):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 1, bias=False)  # still building: a subclass may replace


def test_construction_may_replace_and_a_built_model_may_not():
    model = _Child()
    assert model.net.bias is None
    with pytest.raises(ConfigError, match=r"model\.net \(a submodule\)"):
        model.net = nn.Linear(4, 1)
    model.net = model.net  # the same module: nothing changes
    model.steps_seen = 3  # plain attributes stay free
    model.norm = nn.BatchNorm1d(4)  # a norm for a norm (what global batch norm does)
    twin = copy.deepcopy(model)
    with pytest.raises(ConfigError, match="cannot be replaced"):
        twin.net = nn.Linear(4, 1)
