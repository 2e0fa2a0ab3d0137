"""Learning-rate schedules: the factor's shape, the Trainer against a hand-written loop with
PyTorch's own ``LambdaLR``, exact resume, the guard's back-off and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import ebmkit as ek
from ebmkit.data import TensorData
from ebmkit.errors import ConfigError
from ebmkit.strategies import StepOutput
from ebmkit.train import Trainer
from ebmkit.train.schedule import Schedule


class Affine(ek.EnergyModel):
    """E(y) = ||W y + b||² / 2: a model whose SGD trajectory depends on every lr."""

    name = "test.affine"

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.dim = dim
        self.lin = nn.Linear(dim, dim)

    def energy(self, y, x=None, z=None):
        return 0.5 * self.lin(y).square().sum(dim=1)

    def default_strategy(self):
        return lambda model, batch: StepOutput(model.energy(batch["y"]).mean(), {})

    def config(self):
        return {"dim": self.dim}


def data(n: int = 40, dim: int = 4) -> TensorData:
    y = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    return TensorData({"y": y}, name="gauss", split="train")


class Recording(torch.optim.SGD):
    """SGD that records the rate of every step it takes."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.seen: list[float] = []

    def step(self, closure=None):
        self.seen.append(self.param_groups[0]["lr"])
        return super().step(closure)


# ------------------------------------------------------------------------------ the factor
def test_cosine_linear_and_warmup_factors() -> None:
    cos = Schedule("cosine", total=10)
    assert cos(0) == 1.0 and cos(5) == pytest.approx(0.5) and cos(9) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.9)))
    assert all(cos(s) > cos(s + 1) for s in range(9))
    lin = Schedule("linear", warmup=4, total=12)
    assert [lin(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lin(4) == 1.0 and lin(8) == pytest.approx(0.5)
    const = Schedule("constant")
    assert not const.active and const(10**6) == 1.0
    assert Schedule("constant", warmup=2)(0) == 0.5  # no length needed
    # a warm-up longer than the run (a short demo of a recipe with warm-up): all ramp
    assert [Schedule("cosine", warmup=5, total=3)(s) for s in range(3)] == [0.2, 0.4, 0.6]


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "exponential"}, "expected one of constant, cosine, linear, got 'exponential'"),
    ({"name": "cosine", "warmup": -1, "total": 5}, "warmup: expected a number of steps >= 0"),
    ({"name": "cosine"}, "needs the run's number of steps"),
])
def test_bad_schedules_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Schedule(**kwargs)


def test_the_trainer_refuses_a_bad_schedule_at_once() -> None:
    with pytest.raises(ConfigError, match="schedule: expected one of"):
        Trainer(Affine(), schedule="step", device="cpu")


def test_zero_epochs_with_a_schedule_trains_nothing() -> None:
    model = Affine()
    before = [p.clone() for p in model.parameters()]
    assert Trainer(model, schedule="cosine", warmup=10, epochs=0, device="cpu",
                   progress=False).fit(data()) == []
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_a_schedule_needs_data_with_a_length() -> None:
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from ({"y": torch.randn(4)} for _ in range(8))

    loader = torch.utils.data.DataLoader(Stream(), batch_size=4)
    trainer = Trainer(Affine(), schedule="cosine", epochs=1, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="data without a len"):
        trainer.fit(loader)


# ------------------------------------------------------------------------------ the trainer
def test_trainer_matches_a_hand_loop_with_lambdalr() -> None:
    """Same weights as plain SGD + torch.optim.lr_scheduler.LambdaLR written by hand."""
    torch.manual_seed(0)
    init = Affine().state_dict()
    ours = Affine()
    ours.load_state_dict(init)
    trainer = Trainer(ours, lr=0.05, epochs=3, batch_size=8, device="cpu", optimizer="sgd",
                      schedule="cosine", warmup=3, seed=0, progress=False)
    history = trainer.fit(data())

    hand = Affine()
    hand.load_state_dict(init)
    opt = torch.optim.SGD(hand.parameters(), lr=0.05)
    total, warmup = 15, 3  # 3 epochs of 5 batches

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    y = data().y
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        perm = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), 8):
            loss = hand.energy(y[perm[start:start + 8]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    for p, q in zip(ours.parameters(), hand.parameters()):
        torch.testing.assert_close(p, q)
    assert history[-1]["lr"] == pytest.approx(0.05 * factor(14))
    assert trainer.config()["trainer"]["schedule"] == "cosine"


def test_every_step_gets_its_scheduled_rate() -> None:
    opt: list[Recording] = []

    def make(params):
        opt.append(Recording(params, lr=0.1))
        return opt[0]

    Trainer(Affine(), optimizer=make, epochs=2, batch_size=10, device="cpu", schedule="linear",
            progress=False).fit(data())
    expected = [0.1 * (1 - s / 8) for s in range(8)]
    assert opt[0].seen == pytest.approx(expected)


def test_a_constant_schedule_leaves_the_rate_alone() -> None:
    opt: list[Recording] = []

    def make(params):
        opt.append(Recording(params, lr=0.1))
        return opt[0]

    Trainer(Affine(), optimizer=make, epochs=2, batch_size=10, device="cpu",
            progress=False).fit(data())
    assert opt[0].seen == [0.1] * 8


def test_a_resumed_scheduled_run_is_bit_exact(tmp_path: Path) -> None:
    """A 4-epoch cosine run interrupted in epoch 3 and resumed ends where an uninterrupted
    one does (the schedule spans ``epochs``, so the interrupted run must ask for 4 too)."""

    class Interrupt(Exception):
        pass

    class StopAt:
        def __init__(self, step: int | None) -> None:
            self.calls, self.step = 0, step

        def __call__(self, model, batch):
            self.calls += 1
            if self.calls == self.step:
                raise Interrupt
            return StepOutput(model.energy(batch["y"]).mean(), {})

    def run(directory: Path, resume: bool = False, stop_at: int | None = None):
        torch.manual_seed(1)
        model = Affine()
        trainer = Trainer(model, StopAt(stop_at), lr=0.05, epochs=4, batch_size=8,
                          device="cpu", schedule="cosine", warmup=2, checkpoint_dir=directory,
                          resume=resume, seed=3, progress=False)
        return model, trainer.fit(data())

    straight, h_straight = run(tmp_path / "a")
    with pytest.raises(Interrupt):
        run(tmp_path / "b", stop_at=13)  # 5 steps an epoch: dies in epoch 3
    resumed, h_resumed = run(tmp_path / "b", resume=True)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert [r["lr"] for r in h_resumed] == [r["lr"] for r in h_straight]
    assert h_straight[1]["lr"] != h_straight[3]["lr"]  # the schedule did change the rate


def test_the_guard_lowers_the_scheduled_rate() -> None:
    class NaNOnce:
        """The loss is NaN at the 3rd call only: epoch 1 is replayed once."""

        calls = 0

        def __call__(self, model, batch):
            self.calls += 1
            e = model.energy(batch["y"]).mean()
            return StepOutput(e * (math.nan if self.calls == 3 else 1.0), {})

    opt: list[Recording] = []

    def make(params):
        opt.append(Recording(params, lr=0.1))
        return opt[0]

    trainer = Trainer(Affine(), NaNOnce(), optimizer=make, epochs=2, batch_size=10,
                      device="cpu", schedule="linear", lr_backoff=0.5, check_every=1,
                      progress=False)
    history = trainer.fit(data())
    assert history[0]["retries"] == 1
    replay = opt[0].seen[-8:]  # the retried epoch 1, then epoch 2, at half the schedule
    assert replay == pytest.approx([0.05 * (1 - s / 8) for s in range(8)])


# ------------------------------------------------------------------------------ the CLI
def test_cli_train_takes_a_schedule(tmp_path: Path) -> None:
    from ebmkit.cli import main

    out = tmp_path / "run"
    assert main(["train", "hopfield", "--epochs", "1", "--out", str(out), "--no-plots",
                 "--device", "cpu", "--schedule", "cosine", "--warmup", "1"]) == 0
    trainer = json.loads((out / "config.json").read_text())["trainer"]
    assert (trainer["schedule"], trainer["warmup"]) == ("cosine", 1)


def test_cli_refuses_an_unknown_schedule(tmp_path: Path, capsys) -> None:
    from ebmkit.cli import main

    code = main(["train", "hopfield", "--epochs", "1", "--out", str(tmp_path / "r"),
                 "--no-plots", "--device", "cpu", "--schedule", "steps"])
    assert code != 0
    assert "schedule: expected one of constant, cosine, linear, got 'steps'" in (
        capsys.readouterr().err)
