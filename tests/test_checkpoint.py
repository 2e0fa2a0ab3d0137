"""Persistence: model save/load through the registry, atomic writes, crash-safe trainer
checkpoints, no pickle, and clear errors."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from torch import nn

import ebmkit as ek
from ebmkit import checkpoint as ckpt
from ebmkit.checkpoint import CheckpointError, CheckpointNotFoundError
from ebmkit.data import TensorData
from ebmkit.errors import ConfigError, UnknownNameError
from ebmkit.strategies import StepOutput


def saved_hello(tmp_path: Path, **config) -> tuple[ek.EnergyModel, Path]:
    model = ek.get_model("hello", **{"dim": 3, "scale": 2.0, **config})
    with torch.no_grad():
        model.mu.copy_(torch.tensor([1.0, -2.0, 0.5])[: model.dim])
    prefix = tmp_path / "runs" / "hello" / "model"
    model.save(prefix)
    return model, prefix


# ------------------------------------------------------------------ model round trip
def test_save_load_round_trip_through_the_registry(tmp_path: Path, device: torch.device) -> None:
    model, prefix = saved_hello(tmp_path)
    files = sorted(p.name for p in prefix.parent.iterdir())
    assert files == ["model.json", "model.safetensors"]  # nothing else, no temporaries
    header = json.loads(prefix.with_suffix(".json").read_text())
    assert header == {"format": "ebmkit.model/1", "name": "hello",
                      "config": {"dim": 3, "scale": 2.0}, "ebmkit_version": ek.__version__}
    loaded = ek.load(prefix, map_location=device)
    assert type(loaded).__name__ == "HelloEnergy" and loaded.config() == model.config()
    assert loaded.mu.device.type == device.type and not loaded.training
    assert torch.equal(loaded.mu.cpu(), model.mu.detach())
    # The same model from the .safetensors / .json names and from the run directory.
    for alias in (prefix.with_suffix(".safetensors"), prefix.with_suffix(".json"), prefix.parent):
        assert torch.equal(ek.load(alias).mu, model.mu.detach())


def test_load_uses_no_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, prefix = saved_hello(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a model")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert torch.equal(ek.load(prefix).mu, torch.tensor([1.0, -2.0, 0.5]))


class Tied(ek.EnergyModel):
    """Two linear maps sharing one weight (tied), plus a buffer."""

    name = "test.tied"

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.dim = dim
        self.a = nn.Linear(dim, dim)
        self.b = nn.Linear(dim, dim)
        self.b.weight = self.a.weight
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def energy(self, y, x=None, z=None):
        return self.b(self.a(y)).square().sum(1)

    def config(self):
        return {"dim": self.dim}


class TiedPlugin:
    @ek.hookimpl
    def register_models(self, register):
        register("test.tied", Tied, summary="tied weights")


def test_tied_weights_are_stored_once_and_restored(tmp_path: Path, fresh_plugins) -> None:
    fresh_plugins.register_plugin(TiedPlugin(), name="test-tied")
    model = Tied()
    with torch.no_grad():
        model.a.weight.normal_()
        model.count.fill_(7)
    model.save(tmp_path / "tied")
    with safe_open(str(tmp_path / "tied.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert keys == {"a.weight", "a.bias", "b.bias", "count"}
    loaded = ek.load(tmp_path / "tied")
    assert loaded.a.weight is loaded.b.weight  # tied again, by the model's own constructor
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


# ------------------------------------------------------------------ errors
def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"missing model header .*nothing\.json"):
        ek.load(tmp_path / "nothing")
    _, prefix = saved_hello(tmp_path)
    prefix.with_suffix(".safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing weights file .*model\.safetensors"):
        ek.load(prefix)


def test_malformed_headers(tmp_path: Path) -> None:
    _, prefix = saved_hello(tmp_path)
    meta = prefix.with_suffix(".json")
    meta.write_text(json.dumps({"format": "ebmkit.model/1", "name": "hello"}))
    with pytest.raises(CheckpointError, match=r"missing 'config'"):
        ek.load(prefix)
    meta.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ek.load(prefix)
    meta.write_text(json.dumps({"format": "other/1", "name": "hello", "config": {}}))
    with pytest.raises(CheckpointError, match="not an ebmkit model"):
        ek.load(prefix)


def test_unknown_model_name_lists_the_registered_ones(tmp_path: Path) -> None:
    _, prefix = saved_hello(tmp_path)
    meta = prefix.with_suffix(".json")
    header = json.loads(meta.read_text())
    meta.write_text(json.dumps({**header, "name": "helo"}))
    with pytest.raises(UnknownNameError, match=r"cannot load .*model\.json.*'helo'.*'hello'"):
        ek.load(prefix)


def test_weights_that_do_not_fit_are_named(tmp_path: Path) -> None:
    _, prefix = saved_hello(tmp_path)
    meta = prefix.with_suffix(".json")
    header = json.loads(meta.read_text())
    meta.write_text(json.dumps({**header, "config": {"dim": 4, "scale": 2.0}}))
    with pytest.raises(CheckpointError, match=r"shape mismatch: 'mu': file \[3\], model \[4\]"):
        ek.load(prefix)
    meta.write_text(json.dumps(header))
    safetensors.torch.save_file({"nu": torch.zeros(3)}, str(prefix.with_suffix(".safetensors")))
    with pytest.raises(CheckpointError,
                       match=r"missing from the file: 'mu'; not in the model: 'nu'"):
        ek.load(prefix)
    meta.write_text(json.dumps({**header, "config": {"dim": 3, "colour": "red"}}))
    with pytest.raises(ConfigError, match="colour"):
        ek.load(prefix)


def test_unsaveable_models_fail_before_writing(tmp_path: Path) -> None:
    class NoName(ek.EnergyModel):
        def config(self):
            return {}

    class BadConfig(ek.EnergyModel):
        name = "bad"

        def config(self):
            return {"t": torch.zeros(1)}

    with pytest.raises(ConfigError, match="no registry name"):
        NoName().save(tmp_path / "a")
    with pytest.raises(ConfigError, match="must be JSON-able"):
        BadConfig().save(tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ atomic writes
def test_atomic_writes_leave_the_old_file_on_failure(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.json"
    ckpt.atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), ckpt.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert json.loads(target.read_text()) == {"v": 1}

    def failing_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"):
        ckpt.atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporaries left


def test_model_save_crash_keeps_the_previous_model(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model, prefix = saved_hello(tmp_path)

    def broken_writer(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_writer)
    with torch.no_grad():
        model.mu.zero_()
    with pytest.raises(OSError, match="no space"):
        model.save(prefix)
    assert torch.equal(ek.load(prefix).mu, torch.tensor([1.0, -2.0, 0.5]))
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["model.json", "model.safetensors"]


def test_commit_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def writers(v: str):
        return {name: (lambda p, name=name: p.write_text(f"{name}={v}")) for name in "abc"}

    def contents():
        return {p.name: p.read_text() for p in sorted(tmp_path.iterdir())}

    ckpt.commit(tmp_path, writers("old"))
    old = contents()
    real = os.replace
    for n in range(1, 5):  # the journal's rename, then the three files'
        calls = 0

        def flaky(src, dst):
            nonlocal calls
            calls += 1
            if calls == n:
                raise OSError("crash")
            return real(src, dst)

        monkeypatch.setattr(os, "replace", flaky)
        with pytest.raises(OSError):
            ckpt.commit(tmp_path, writers(f"new{n}"))
        monkeypatch.setattr(os, "replace", real)
        ckpt.recover(tmp_path)
        after = contents()
        # Before the journal: the old files. After it: rolled forward to the new ones.
        expected = old if n == 1 else {k: v.replace("old", f"new{n}") for k, v in old.items()}
        assert after == expected, n
        ckpt.commit(tmp_path, writers("old"))


# ------------------------------------------------------------------ crash-safe trainer
class Quadratic(ek.EnergyModel):
    name = "test.quadratic"

    def __init__(self, dim: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.mu = nn.Parameter(torch.zeros(dim))

    def energy(self, y, x=None, z=None):
        return 0.5 * (y - self.mu).square().sum(1)

    def default_strategy(self):
        return lambda m, b: StepOutput(m.energy(b["y"] + 0.1 * torch.randn_like(b["y"])).mean())

    def config(self):
        return {"dim": self.dim}


def _train(directory: Path, epochs: int, resume: bool) -> Quadratic:
    model = Quadratic()
    data = TensorData({"y": torch.arange(60.0).reshape(20, 3) / 60}, name="r", split="train")
    ek.Trainer(model, lr=0.05, epochs=epochs, batch_size=4, device="cpu", checkpoint_dir=directory,
               resume=resume, progress=False).fit(data)
    return model


@pytest.mark.parametrize("fail", ["replace", "weights"])
def test_crash_while_checkpointing_keeps_a_consistent_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    reference = _train(tmp_path / "straight", epochs=3, resume=False)
    real_replace, real_save = os.replace, safetensors.torch.save_file
    # A checkpoint makes 6 renames (journal + 5 files) and one weights write.
    points = range(1, 7) if fail == "replace" else [1]
    for n in points:
        run = tmp_path / f"{fail}{n}"
        _train(run, epochs=1, resume=False)
        calls = 0

        def crash(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == n:
                raise OSError(f"simulated crash at call {n}")
            return (real_replace if fail == "replace" else real_save)(*args, **kwargs)

        if fail == "replace":
            monkeypatch.setattr(os, "replace", crash)
        else:
            monkeypatch.setattr(safetensors.torch, "save_file", crash)
        with pytest.raises(OSError, match="simulated crash"):
            _train(run, epochs=2, resume=True)  # crashes while saving epoch 2
        monkeypatch.setattr(os, "replace", real_replace)
        monkeypatch.setattr(safetensors.torch, "save_file", real_save)

        # Whatever the crash point, the directory resumes and ends bit-identical to a run
        # that never crashed: the commit is either not there at all, or complete.
        resumed = _train(run, epochs=3, resume=True)
        assert torch.equal(resumed.mu, reference.mu), n
        state = torch.load(run / "trainer.pt", weights_only=True)
        assert state["epoch"] == 3 and len(state["history"]) == 3
        assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


def test_weights_and_header_of_a_save_change_together(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the two files of one save (weights written, header not) leaves the
    previous pair: never the new weights with the old header."""
    model, prefix = saved_hello(tmp_path)
    old = (prefix.parent / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("killed while writing the header")

    monkeypatch.setattr(ckpt, "json_text", crash)
    with torch.no_grad():
        model.mu.zero_()
    with pytest.raises(OSError, match="killed"):
        model.save(prefix)
    monkeypatch.undo()
    assert (prefix.parent / "model.safetensors").read_bytes() == old
    assert torch.equal(ek.load(prefix).mu, torch.tensor([1.0, -2.0, 0.5]))
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["model.json", "model.safetensors"]
