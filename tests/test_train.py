"""The Trainer: learning, history and run files, evaluation, exact resume, the divergence guard,
gradient clipping, data kinds and bad input."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import ebmkit as ek
from ebmkit.data import TensorData
from ebmkit.errors import ConfigError
from ebmkit.strategies import StepOutput
from ebmkit.train import DivergenceError, Trainer

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = ("time_s", "samples_per_s")


# ------------------------------------------------------------------------------ fixtures
class MeanEnergy:
    """Minimise the batch's mean energy; logs it (the simplest architectural strategy)."""

    def __call__(self, model, batch):
        e = model.energy(batch["y"])
        return StepOutput(e.mean(), {"e_pos": e.detach().mean()})


class NoisyCounting:
    """Uses the global RNG (noise on y) and keeps state that must survive a checkpoint."""

    def __init__(self) -> None:
        self.calls = torch.zeros((), dtype=torch.int64)

    def __call__(self, model, batch):
        y = batch["y"] + 0.05 * torch.randn_like(batch["y"])
        self.calls += 1
        e = model.energy(y)
        return StepOutput(e.mean(), {"e_pos": e.detach().mean()})

    def state_dict(self):
        return {"calls": self.calls.clone()}

    def load_state_dict(self, state):
        self.calls = state["calls"].clone()


class MLPAutoencoder(ek.EnergyModel):
    """E(y) = ||y - dec(enc(y))||²; a default strategy so ``strategy=None`` works."""

    name = "test.mlp-ae"

    def __init__(self, dim: int = 8, hidden: int = 4) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh())
        self.dec = nn.Linear(hidden, dim)

    def energy(self, y, x=None, z=None):
        return (y - self.dec(self.enc(y))).square().sum(dim=1)

    def reconstruct(self, y):
        return self.dec(self.enc(y))

    def default_strategy(self):
        return MeanEnergy()

    def config(self):
        return {"dim": self.dim, "hidden": self.hidden}


class Quadratic(ek.EnergyModel):
    """E(y) = ||y - mu||² / 2, NaN once any |mu| exceeds ``limit`` (a model that can blow up)."""

    name = "test.quadratic"

    def __init__(self, dim: int = 2, limit: float = math.inf, always_nan: bool = False) -> None:
        super().__init__()
        self.dim, self.limit, self.always_nan = dim, limit, always_nan
        self.mu = nn.Parameter(torch.zeros(dim))

    def energy(self, y, x=None, z=None):
        e = 0.5 * (y - self.mu).square().sum(dim=1)
        if self.always_nan:
            return e * torch.nan
        # No host sync: the blow-up is a tensor condition.
        return torch.where(self.mu.abs().max() > self.limit, torch.full_like(e, torch.nan), e)

    def default_strategy(self):
        return MeanEnergy()

    def config(self):
        return {"dim": self.dim, "limit": self.limit, "always_nan": self.always_nan}


def blob(n: int = 128, dim: int = 8, seed: int = 0,
         device: str | torch.device = "cpu") -> TensorData:
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n, dim, generator=g)
    labels = torch.arange(n) % 3
    return TensorData({"y": y.to(device), "label": labels.to(device)}, name="blob", split="train")


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]


# ------------------------------------------------------------------------------ learning
def test_trainer_learns_on_every_device(device: torch.device) -> None:
    torch.manual_seed(0)
    model = MLPAutoencoder()
    data = blob(device=device)
    trainer = Trainer(model, lr=1e-2, epochs=6, batch_size=32, device=device, progress=False)
    history = trainer.fit(data)
    assert [r["epoch"] for r in history] == list(range(1, 7))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["step"] == 6 * 4
    assert all(p.device.type == device.type for p in model.parameters())
    # The quadratic's optimum is the data mean: the trainer finds it.
    q = Quadratic(dim=8)
    Trainer(q, lr=0.1, epochs=20, batch_size=64, device=device, optimizer="sgd",
            progress=False).fit(data)
    assert torch.allclose(q.mu, data.y.mean(0), atol=0.05)


def test_history_and_run_files(tmp_path: Path) -> None:
    model = MLPAutoencoder()
    data, val = blob(), blob(n=40, seed=1)
    trainer = Trainer(model, lr=1e-2, epochs=3, batch_size=32, device="cpu",
                      checkpoint_dir=tmp_path / "run", progress=False)
    history = trainer.fit(data, val=val)
    assert len(history) == 3
    rec = history[-1]
    for key in ("epoch", "step", "loss", "e_pos", "lr", "time_s", "samples_per_s", "retries",
                "val_free_energy"):
        assert key in rec, key
    assert rec["loss"] == pytest.approx(rec["e_pos"], rel=1e-6)  # same quantity, logged twice
    assert rec["samples_per_s"] == pytest.approx(128 / rec["time_s"])
    assert rec["val_free_energy"] == pytest.approx(trainer.evaluate(val)["free_energy"], rel=1e-6)

    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json", "metrics.jsonl", "model.json", "model.safetensors", "trainer.pt"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines == history
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"name": "test.mlp-ae", "config": {"dim": 8, "hidden": 4}}
    assert config["trainer"]["lr"] == 1e-2 and config["trainer"]["optimizer"] == "adam"
    assert config["trainer"]["device"] == "cpu" and config["trainer"]["amp"] == "off"
    assert config["data"] == {"name": "blob", "split": "train", "size": 128}
    state = torch.load(run / "trainer.pt", weights_only=True)  # no arbitrary pickle inside
    assert state["epoch"] == 3 and state["step"] == 12 and state["history"] == history
    assert set(state["rng"]) >= {"torch", "data", "python", "numpy"}


def test_evaluate_metrics_and_adapter() -> None:
    import torchmetrics

    from ebmkit.metrics import Adapter, FreeEnergyMean

    class WithMSE(MLPAutoencoder):
        def metrics(self):
            return {**super().metrics(),
                    "mse": Adapter(torchmetrics.MeanSquaredError(),
                                   lambda m, b: (m.reconstruct(b["y"]), b["y"]))}

    torch.manual_seed(0)
    model = WithMSE()
    data = blob(n=50)
    report = Trainer(model, batch_size=16, device="cpu", progress=False).evaluate(data)
    with torch.no_grad():
        assert report["free_energy"] == pytest.approx(model.energy(data.y).mean().item(), rel=1e-5)
        mse = (model.reconstruct(data.y) - data.y).square().mean().item()
    assert report["mse"] == pytest.approx(mse, rel=1e-5)
    assert model.training  # evaluate restores the mode
    metric = FreeEnergyMean()
    metric.update(model, {"y": data.y})
    assert float(metric.compute()) == pytest.approx(report["free_energy"], rel=1e-5)
    with pytest.raises(ConfigError, match="'y'"):
        metric.update(model, {"x": data.y})


def test_model_import_does_not_import_torchmetrics() -> None:
    code = ("import sys, ebmkit.model, ebmkit.train, ebmkit.checkpoint; "
            "assert 'torchmetrics' not in sys.modules, 'torchmetrics imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------------------ resume
class PairDataset(torch.utils.data.Dataset):
    """A generic map-style dataset yielding (y, label) tuples: the DataLoader path."""

    def __init__(self, data: TensorData) -> None:
        self.y, self.label = data.y, data.labels

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.y[i], self.label[i]


@pytest.mark.parametrize("kind", ["tensordata", "dataset"])
def test_resume_is_bit_exact(tmp_path: Path, kind: str) -> None:
    data = blob(n=72) if kind == "tensordata" else PairDataset(blob(n=72))

    def run(epochs: int, directory: Path, resume: bool = False, init: dict | None = None):
        model = MLPAutoencoder()
        if init is not None:
            model.load_state_dict(init)
        strategy = NoisyCounting()
        trainer = Trainer(model, strategy, lr=1e-2, epochs=epochs, batch_size=16, device="cpu",
                          checkpoint_dir=directory, resume=resume, seed=7, progress=False)
        return model, strategy, trainer.fit(data)

    torch.manual_seed(3)
    init = MLPAutoencoder().state_dict()
    straight, s_straight, h_straight = run(4, tmp_path / "a", init=init)
    run(2, tmp_path / "b", init=init)
    torch.manual_seed(999)  # the resumed run must not depend on the caller's RNG
    resumed, s_resumed, h_resumed = run(4, tmp_path / "b", resume=True)  # fresh random init
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    assert int(s_resumed.calls) == int(s_straight.calls) == 4 * 5
    assert without_timing(h_resumed) == without_timing(h_straight)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_resume_after_the_last_epoch_trains_nothing(tmp_path: Path) -> None:
    model = Quadratic()
    Trainer(model, epochs=1, batch_size=64, device="cpu", checkpoint_dir=tmp_path,
            progress=False).fit(blob(dim=2))
    again = Quadratic()
    history = Trainer(again, epochs=1, batch_size=64, device="cpu", checkpoint_dir=tmp_path,
                      resume=True, progress=False).fit(blob(dim=2))
    assert len(history) == 1 and torch.equal(again.mu, model.mu)


def test_reproducible_with_a_seed() -> None:
    def once(seed: int) -> torch.Tensor:
        torch.manual_seed(0)
        model = MLPAutoencoder()
        Trainer(model, NoisyCounting(), epochs=2, batch_size=16, device="cpu", seed=seed,
                progress=False).fit(PairDataset(blob(n=48)))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(once(1), once(1))
    assert not torch.equal(once(1), once(2))


# ------------------------------------------------------------------------------ divergence
def constant_data(n: int = 64, dim: int = 2, value: float = 1.0) -> TensorData:
    return TensorData({"y": torch.full((n, dim), value)}, name="ones", split="train")


def test_divergence_guard_recovers_with_a_lower_lr(caplog: pytest.LogCaptureFixture) -> None:
    # SGD on E = ||y - mu||²/2 from mu = 0 towards 1: lr 2.5 jumps to mu = 2.5 > limit, so the
    # next energy is NaN; lr 1.25 converges without crossing the limit.
    model = Quadratic(limit=1.5)
    trainer = Trainer(model, lr=2.5, epochs=2, batch_size=8, device="cpu", optimizer="sgd",
                      lr_backoff=0.5, check_every=3, progress=False)
    with caplog.at_level(logging.WARNING, logger="ebmkit.train"):
        history = trainer.fit(constant_data())
    assert history[0]["retries"] == 1 and history[1]["retries"] == 0
    assert history[0]["lr"] == history[1]["lr"] == 1.25
    assert history[0]["step"] == 8  # the failed attempt's steps are not counted
    assert all(math.isfinite(r["loss"]) for r in history)
    assert torch.isfinite(model.mu).all() and torch.allclose(model.mu, torch.ones(2), atol=0.1)
    assert "epoch 1 diverged at step 2" in caplog.text


def test_divergence_error_names_epoch_and_step() -> None:
    model = Quadratic(always_nan=True)
    trainer = Trainer(model, lr=0.1, epochs=3, batch_size=8, device="cpu", max_retries=2,
                      progress=False)
    with pytest.raises(DivergenceError, match=r"epoch 1\b.*step 1\b") as info:
        trainer.fit(constant_data())
    assert info.value.epoch == 1 and info.value.steps == [1, 1, 1]
    assert info.value.lr == pytest.approx(0.1 * 0.25)


def test_divergence_mid_run_and_in_logs() -> None:
    class NaNLogLater:
        """A finite loss, but a logged energy that turns NaN at the 11th call."""

        calls = 0

        def __call__(self, model, batch):
            self.calls += 1
            e = model.energy(batch["y"])
            bad = torch.tensor(math.nan if self.calls >= 11 else 0.0)
            return StepOutput(e.mean(), {"e_neg": e.detach().mean() + bad})

    trainer = Trainer(Quadratic(), NaNLogLater(), epochs=3, batch_size=8, device="cpu",
                      max_retries=0, check_every=4, progress=False)
    with pytest.raises(DivergenceError, match=r"epoch 2\b.*step 11\b") as info:
        trainer.fit(constant_data())  # 8 steps per epoch: step 11 is the 3rd of epoch 2
    assert info.value.epoch == 2 and info.value.step == 11
    assert len(trainer.history) == 1


def test_a_bad_last_update_is_caught_in_its_own_epoch() -> None:
    class OverflowOnLastStep:
        """A finite loss whose gradient overflows the parameters at the 8th step."""

        calls = 0

        def __call__(self, model, batch):
            self.calls += 1
            scale = 3e38 if self.calls == 8 else 1.0
            return StepOutput((model.mu * scale).sum() + model.energy(batch["y"]).mean())

    trainer = Trainer(Quadratic(), OverflowOnLastStep(), lr=10.0, epochs=2, batch_size=8,
                      device="cpu", optimizer="sgd", max_retries=0, progress=False)
    with pytest.raises(DivergenceError, match=r"epoch 1\b.*step 8\b"):
        trainer.fit(constant_data())


# ------------------------------------------------------------------------------ options
def test_grad_clipping_bounds_the_update() -> None:
    model = Quadratic(dim=4)
    data = constant_data(n=16, dim=4, value=100.0)  # gradient norm 200
    history = Trainer(model, lr=1.0, epochs=1, batch_size=16, device="cpu", optimizer="sgd",
                      grad_clip=0.5, progress=False).fit(data)
    assert model.mu.norm().item() == pytest.approx(0.5, rel=1e-5)
    assert history[0]["grad_norm"] == pytest.approx(200.0, rel=1e-5)  # before clipping


def test_optimizers_and_amp_on_cpu() -> None:
    for name in ("sgd", "adamw", "ADAM"):
        Trainer(Quadratic(), optimizer=name, epochs=1, batch_size=32, device="cpu",
                progress=False).fit(constant_data())
    made = []

    def factory(params):
        made.append(torch.optim.SGD(params, lr=0.5))
        return made[-1]

    model = Quadratic()
    Trainer(model, optimizer=factory, epochs=1, batch_size=64, device="cpu",
            progress=False).fit(constant_data())
    assert made and torch.allclose(model.mu, torch.full((2,), 0.5))
    with pytest.warns(UserWarning, match="amp=True has no effect on cpu"):
        Trainer(Quadratic(), amp=True, device="cpu", progress=False)
    history = Trainer(MLPAutoencoder(), amp="bf16", epochs=1, batch_size=32, device="cpu",
                      progress=False).fit(blob())
    assert math.isfinite(history[0]["loss"])


def test_data_kinds() -> None:
    data = blob(n=40)
    kinds = {
        "tensordata": data,
        "dataset of tuples": PairDataset(data),
        "tensordataset": torch.utils.data.TensorDataset(data.y),
        "dataloader": torch.utils.data.DataLoader(data, batch_size=10),
    }
    for name, d in kinds.items():
        history = Trainer(MLPAutoencoder(), epochs=1, batch_size=10, device="cpu",
                          progress=False).fit(d)
        assert history[0]["step"] == 4, name


def test_overwriting_a_run_warns(tmp_path: Path) -> None:
    Trainer(Quadratic(), epochs=1, device="cpu", checkpoint_dir=tmp_path,
            progress=False).fit(constant_data())
    with pytest.warns(UserWarning, match="already holds a checkpoint"):
        Trainer(Quadratic(), epochs=1, device="cpu", checkpoint_dir=tmp_path,
                progress=False).fit(constant_data())


# ------------------------------------------------------------------------------ bad input
def test_bad_strategy_outputs() -> None:
    data = constant_data()

    def returns_tensor(model, batch):
        return model.energy(batch["y"]).mean()

    def returns_vector(model, batch):
        return StepOutput(model.energy(batch["y"]))

    def returns_detached(model, batch):
        return StepOutput(model.energy(batch["y"]).mean().detach())

    def logs_vector(model, batch):
        e = model.energy(batch["y"])
        return StepOutput(e.mean(), {"e": e.detach()})

    cases = [(returns_tensor, r"returned a Tensor; expected ek.StepOutput"),
             (returns_vector, r"loss of shape \[8\]; expected a scalar"),
             (returns_detached, "does not require grad"),
             (logs_vector, "logged 'e' as something other than a scalar")]
    for strategy, message in cases:
        with pytest.raises(ConfigError, match=message):
            Trainer(Quadratic(), strategy, batch_size=8, epochs=1, device="cpu",
                    progress=False).fit(data)


def test_bad_data() -> None:
    class NoY(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"x": torch.zeros(2)}

    trainer = Trainer(Quadratic(), epochs=1, batch_size=2, device="cpu", progress=False)
    with pytest.raises(ConfigError, match=r"must hold 'y'.*\['x'\]"):
        trainer.fit(NoY())
    with pytest.raises(ConfigError, match="expected the data as"):
        trainer.fit(42)


def test_bad_options(tmp_path: Path) -> None:
    model = Quadratic()
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adamm'.*'adam', 'adamw', 'sgd'"):
        Trainer(model, optimizer="adamm")
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ConfigError, match="is a file; expected a directory"):
        Trainer(model, checkpoint_dir=a_file)
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(model, checkpoint_dir=tmp_path / "empty", resume=True,
                progress=False).fit(constant_data())
    with pytest.raises(ConfigError, match="resume=True needs checkpoint_dir"):
        Trainer(model, resume=True)
    for kwargs, message in [({"lr": -1}, "lr must be a number > 0"),
                            ({"batch_size": 0}, "batch_size must be an integer >= 1"),
                            ({"lr_backoff": 1.5}, "lr_backoff must be a number > 0 and < 1"),
                            ({"grad_clip": 0}, "grad_clip must be a number > 0"),
                            ({"device": "tpu:9"}, "device must be"),
                            ({"amp": "fp8"}, "amp must be")]:
        with pytest.raises(ConfigError, match=message):
            Trainer(model, **kwargs)
    with pytest.raises(ConfigError, match="needs an ek.EnergyModel"):
        Trainer(nn.Linear(2, 2))

    class NoStrategy(ek.EnergyModel):
        name = "no-strategy"

        def energy(self, y, x=None, z=None):
            return y.sum(1)

    with pytest.raises(ConfigError, match="has no default strategy"):
        Trainer(NoStrategy())


def test_resume_with_another_model_config_is_refused(tmp_path: Path) -> None:
    Trainer(MLPAutoencoder(hidden=4), epochs=1, device="cpu", checkpoint_dir=tmp_path,
            progress=False).fit(blob())
    with pytest.raises(ConfigError, match=r"config \{'dim': 8, 'hidden': 4\}.*'hidden': 5"):
        Trainer(MLPAutoencoder(hidden=5), epochs=2, device="cpu", checkpoint_dir=tmp_path,
                resume=True, progress=False).fit(blob())


def test_nan_data_is_refused_up_front() -> None:
    y = torch.rand(40, 8)
    y[7, 3] = float("nan")
    data = ek.data.TensorData({"y": y}, name="bad", split="train")
    with pytest.raises(ConfigError, match=r"'y' contains NaN or infinite values \(1 rows, first \[7\]\)"):
        Trainer(MLPAutoencoder(), epochs=1, device="cpu", progress=False).fit(data)


def test_nan_written_into_data_after_a_fit_is_still_caught() -> None:
    # the finite check is cached per tensor version: an in-place write must invalidate it
    data = ek.data.TensorData({"y": torch.rand(40, 8)}, name="later", split="train")
    Trainer(MLPAutoencoder(), epochs=1, device="cpu", progress=False).fit(data)
    data.tensors["y"][11, 2] = float("inf")
    with pytest.raises(ConfigError, match=r"contains NaN or infinite values \(1 rows, first \[11\]\)"):
        Trainer(MLPAutoencoder(), epochs=1, device="cpu", progress=False).fit(data)


def test_named_optimizers_are_fused_and_resume_keeps_this_devices_choice(tmp_path, monkeypatch):
    from ebmkit.train import options

    first = Trainer(MLPAutoencoder(), epochs=1, device="cpu", checkpoint_dir=tmp_path,
                    progress=False)
    first.fit(blob())
    assert first.optimizer.param_groups[0]["fused"] is True  # PyTorch has a CPU kernel

    class NoFusedKernel(torch.optim.Adam):  # a device without one, as MPS may be
        def __init__(self, params, **kwargs):
            if kwargs.get("fused"):
                raise RuntimeError("no fused kernel for this device")
            super().__init__(params, **kwargs)

    monkeypatch.setitem(options.OPTIMIZERS, "adam", NoFusedKernel)
    resumed = Trainer(MLPAutoencoder(), epochs=2, device="cpu", checkpoint_dir=tmp_path,
                      resume=True, progress=False)
    history = resumed.fit(blob())
    assert not resumed.optimizer.param_groups[0]["fused"]  # not the checkpoint's True
    assert len(history) == 2 and math.isfinite(history[-1]["loss"])


# ------------------------------------------------------------------------ divergence guard
def test_guard_snapshots_only_when_a_retry_is_allowed(monkeypatch) -> None:
    from ebmkit.train import guard

    taken = []
    original = guard.snapshot
    monkeypatch.setattr(guard, "snapshot", lambda t: taken.append(original(t)) or taken[-1])
    Trainer(Quadratic(), epochs=2, batch_size=8, device="cpu", max_retries=0,
            progress=False).fit(constant_data())
    assert taken == [None, None]  # no copy of weights, optimizer state or buffers at all
    Trainer(Quadratic(), epochs=1, batch_size=8, device="cpu", max_retries=1,
            progress=False).fit(constant_data())
    assert taken[-1] is not None and taken[-1]["tensors"][0].device.type == "cpu"


def test_guard_keeps_the_snapshot_off_a_full_accelerator(monkeypatch) -> None:
    from types import SimpleNamespace

    from ebmkit.train import guard

    fake = SimpleNamespace(device=torch.device("cuda", 0), _state=[torch.zeros(1000)])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10_000, 10**9))
    assert guard.snapshot_device(fake).type == "cpu"  # 12 kB of state, 10 kB free
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**9, 10**9))
    assert guard.snapshot_device(fake) == torch.device("cuda", 0)


def test_the_last_good_weights_are_back_when_the_guard_gives_up() -> None:
    # lr 2.5 overshoots past the limit; a backoff of 0.9 keeps overshooting: it gives up.
    model = Quadratic(limit=1.5)
    trainer = Trainer(model, lr=2.5, epochs=2, batch_size=8, device="cpu", optimizer="sgd",
                      lr_backoff=0.9, max_retries=1, check_every=3, progress=False)
    with pytest.raises(DivergenceError) as info:
        trainer.fit(constant_data())
    assert info.value.restored
    assert torch.equal(model.mu.detach(), torch.zeros(2))  # the start of the epoch, not NaN


def test_without_retries_the_checkpoint_weights_are_restored(tmp_path: Path) -> None:
    class NaNAtCall:
        """NaN gradients at the 11th step (epoch 2): the parameters become NaN."""

        calls = 0

        def __call__(self, model, batch):
            self.calls += 1
            bad = math.nan if self.calls == 11 else 1.0
            return StepOutput(model.energy(batch["y"]).mean() * bad)

    model = Quadratic()
    trainer = Trainer(model, NaNAtCall(), lr=0.1, epochs=3, batch_size=8, device="cpu",
                      optimizer="sgd", max_retries=0, check_every=2, progress=False,
                      checkpoint_dir=tmp_path / "run")
    with pytest.raises(DivergenceError, match="checkpoint") as info:
        trainer.fit(constant_data())
    assert info.value.restored and info.value.epoch == 2
    saved = ek.checkpoint.read_weights(tmp_path / "run" / "model.safetensors")[0]["mu"]
    assert torch.isfinite(model.mu).all() and torch.equal(model.mu.detach(), saved)


# --------------------------------------------------------------------------- wrapped models
def test_compiled_and_ddp_wrapped_models_are_accepted(tmp_path: Path) -> None:
    import torch.distributed as dist

    model = MLPAutoencoder()
    compiled = torch.compile(model, backend="eager")  # an OptimizedModule, not an EnergyModel
    trainer = Trainer(compiled, epochs=1, batch_size=32, device="cpu", progress=False)
    assert trainer.model is model  # saved, evaluated and optimised as the model itself
    before = model.dec.weight.detach().clone()
    trainer.fit(blob())
    assert not torch.equal(model.dec.weight, before)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0,
                            world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(MLPAutoencoder())
        trainer = Trainer(wrapped, epochs=1, batch_size=32, device="cpu", progress=False)
        assert trainer.model is wrapped.module
        assert math.isfinite(trainer.fit(blob())[-1]["loss"])
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------ ema_
def test_ema_averages_parameters_and_copies_buffers() -> None:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).requires_grad_(False)
    online(torch.randn(8, 3))  # moves the online running statistics
    before = [p.clone() for p in target.parameters()]
    ek.train.ema_(target, online, 0.9)
    for p_t, p_0, p_o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(p_t, 0.9 * p_0 + 0.1 * p_o)
    for b_t, b_o in zip(target.buffers(), online.buffers()):
        assert torch.equal(b_t, b_o)
    with pytest.raises(ConfigError, match="target has 4 parameters and online 2"):
        ek.train.ema_(target, nn.Linear(3, 4), 0.9)
