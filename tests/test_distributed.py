"""Distributed training: two CPU processes under torchrun (gloo, loopback only) match one
process with twice the batch, and only rank 0 writes the run directory."""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


REPO = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, os, sys
import torch
from torch import nn
from safetensors.torch import save_file

import ebmkit as ek
from ebmkit.data import TensorData
from ebmkit.strategies import StepOutput


class MLPAutoencoder(ek.EnergyModel):
    name = "test.dist-ae"

    def __init__(self, dim=8, hidden=4):
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh())
        self.dec = nn.Linear(hidden, dim)
        self.unused = nn.Linear(2, 2)  # never in the graph: its gradient stays None

    def energy(self, y, x=None, z=None):
        return (y - self.dec(self.enc(y))).square().sum(dim=1)

    def config(self):
        return {"dim": self.dim, "hidden": self.hidden}


def strategy(model, batch):
    e = model.energy(batch["y"])
    return StepOutput(e.mean(), {"e_pos": e.detach().mean()})


out, batch_size = sys.argv[1], int(sys.argv[2])
rank = int(os.environ.get("RANK", "0"))
torch.manual_seed(100 + rank)  # different initial weights per rank: rank 0's must win
model = MLPAutoencoder()
if rank == 0:
    torch.manual_seed(1)
    model = MLPAutoencoder()
y = torch.rand(96, 8, generator=torch.Generator().manual_seed(5))
data = TensorData({"y": y}, name="rand", split="train")
trainer = ek.Trainer(model, strategy, lr=1e-2, epochs=2, batch_size=batch_size, device="cpu",
                     checkpoint_dir=os.path.join(out, "run"), seed=3, grad_clip=10.0,
                     progress=False)
history = trainer.fit(data)
report = trainer.evaluate(TensorData({"y": y[:91]}, name="rand", split="val"))  # uneven shards
save_file({k: v.contiguous() for k, v in model.state_dict().items()},
          os.path.join(out, f"params{rank}.safetensors"))
with open(os.path.join(out, f"result{rank}.json"), "w") as f:
    json.dump({"history": history, "report": report}, f)
'''


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_with_twice_the_batch(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONWARNINGS": "ignore", "EBMKIT_DISABLE_PLUGINS": "broken"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           str(script), str(tmp_path / "two"), "6"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    # Meanwhile, the single-process reference with batch 12, in this process.
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path / "one"), "12"])
    runpy.run_path(str(script), run_name="__main__")

    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output

    one = load_file(str(tmp_path / "one" / "params0.safetensors"))
    ranks = [load_file(str(tmp_path / "two" / f"params{r}.safetensors")) for r in (0, 1)]
    for name, p in one.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"ranks disagree on {name}"
        assert torch.allclose(ranks[0][name], p, rtol=1e-5, atol=1e-6), name

    single = json.loads((tmp_path / "one" / "result0.json").read_text())
    results = [json.loads((tmp_path / "two" / f"result{r}.json").read_text()) for r in (0, 1)]
    for res in results:
        for a, b in zip(res["history"], single["history"]):
            assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
            assert a["e_pos"] == pytest.approx(b["e_pos"], rel=1e-5)
        assert res["report"]["free_energy"] == pytest.approx(single["report"]["free_energy"],
                                                             rel=1e-5)
    # Rank 0 alone wrote the run directory: one record per epoch, nothing left over.
    run = tmp_path / "two" / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json", "metrics.jsonl", "model.json", "model.safetensors", "trainer.pt"]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    state = torch.load(run / "trainer.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]["torch"]) == 2
    assert json.loads((run / "config.json").read_text())["trainer"]["world_size"] == 2


def _torchrun(script: Path, out: Path, batch: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONWARNINGS": "ignore", "EBMKIT_DISABLE_PLUGINS": "broken"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           str(script), str(out), str(batch)]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_ddp_fsdp_and_explicit_paths_match_one_process(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """SGD with momentum and weight decay, an unused parameter and a BatchNorm buffer: DDP,
    FSDP2 (also resumed) and the explicit path on two processes end where one process with
    twice the batch ends; the unused parameter never moves; buffers agree across ranks;
    seed=None shards are disjoint and cover the data; each rank resumes with its own
    replay buffer; K-means' closed-form Lloyd strategy holds one process's prototypes on
    every rank."""
    script = REPO / "tests" / "dist_scenarios.py"
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    proc = _torchrun(script, tmp_path / "two", 6)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path / "one"), "12"])
    runpy.run_path(str(script), run_name="__main__")
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output

    results = [json.loads((tmp_path / "two" / f"result{r}.json").read_text()) for r in (0, 1)]
    single = json.loads((tmp_path / "one" / "result0.json").read_text())
    assert [r["ddp"]["trainer_mode"] for r in results] == ["ddp", "ddp"]
    assert results[0]["explicit"]["trainer_mode"] == "explicit"
    assert results[0]["fsdp"]["trainer_mode"] == "fsdp"
    for mode in ("ddp", "explicit"):
        one = load_file(str(tmp_path / "one" / f"{mode}0.safetensors"))
        ranks = [load_file(str(tmp_path / "two" / f"{mode}{r}.safetensors")) for r in (0, 1)]
        for name, p in one.items():
            assert torch.equal(ranks[0][name], ranks[1][name]), f"{mode}: ranks disagree on {name}"
            if name.startswith("norm."):
                continue  # rank 0's batch statistics, not the union's (no SyncBatchNorm on CPU)
            assert torch.allclose(ranks[0][name], p, rtol=1e-4, atol=1e-5), f"{mode}: {name}"
        for res in results:
            for a, b in zip(res[mode]["history"], single[mode]["history"]):
                assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    # sync_batchnorm=True: BatchNorm inside the loss normalises by the global batch, so two
    # processes end where one does, running statistics included; accumulate=2 with half the
    # batch per rank takes the same steps as one process's batch (the ddp reference).
    for mode, ref in (("syncbn", "syncbn"), ("acc", "ddp")):
        one = load_file(str(tmp_path / "one" / f"{ref}0.safetensors"))
        ranks = [load_file(str(tmp_path / "two" / f"{mode}{r}.safetensors")) for r in (0, 1)]
        for name, p in one.items():
            if mode == "acc" and name.startswith("norm."):
                continue  # running statistics of micro-batches
            if name.endswith("num_batches_tracked"):
                continue
            assert torch.allclose(ranks[0][name], p, rtol=1e-4, atol=1e-5), f"{mode}: {name}"
            assert torch.allclose(ranks[1][name], p, rtol=1e-4, atol=1e-5), f"{mode}: {name}"
    # The unused parameter kept its initial value everywhere (weight decay never saw it).
    torch.manual_seed(1)
    init = Net().unused.weight.detach()
    for mode in ("ddp", "explicit"):
        assert torch.equal(load_file(str(tmp_path / "two" / f"{mode}0.safetensors"))[
            "unused.weight"], init)
    # FSDP2 (trained 2 epochs, resumed for a 3rd): the full (gathered) weights rank 0 saved
    # match one process's, so the optimizer's momentum came back sharded correctly too.
    assert results[0]["fsdp_resumed"] == pytest.approx(single["fsdp_resumed"], rel=1e-4)
    two = load_file(str(tmp_path / "two" / "run-fsdp" / "model.safetensors"))
    one = load_file(str(tmp_path / "one" / "run-fsdp" / "model.safetensors"))
    for name, p in one.items():
        if not name.startswith("norm."):
            assert torch.allclose(two[name], p, rtol=1e-4, atol=1e-5), f"fsdp: {name}"
    # seed=None: one data order for both ranks, so the shards are disjoint and cover all.
    seen = [set(r["seen"]) for r in results]
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(96))
    # Replay buffers: different per rank, saved per rank, each rank gets its own back.
    assert all(r["buffer_own"] for r in results)
    assert results[0]["buffer_sum"] != results[1]["buffer_sum"]
    # each rank's buffer in its own file (not through rank 0), one per rank: the last step's
    run_cd = tmp_path / "two" / "run-cd"
    state = torch.load(run_cd / "trainer.pt", weights_only=True)
    assert "strategy_ranks" not in state
    assert sorted(p.name for p in run_cd.glob("strategy-rank*.pt")) == [
        f"strategy-rank{r}-step{state['step']}.pt" for r in (0, 1)]
    # K-means' Lloyd strategy: the same prototypes on both ranks, those of one process on
    # the whole data (up to the order of the sums); a rank that summed only its own shard
    # would differ from the other by far more than rounding.
    assert [r["kmeans_mode"] for r in results] == ["explicit", "explicit"]
    assert results[0]["kmeans"] == results[1]["kmeans"]
    centers, reference = torch.tensor(results[0]["kmeans"]), torch.tensor(single["kmeans"])
    assert torch.allclose(centers, reference, rtol=1e-5, atol=1e-6), (centers - reference)


class Net(torch.nn.Module):  # the scenario's Net, for the unused parameter's initial value
    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())
        self.dec = torch.nn.Linear(4, 8)
        self.unused = torch.nn.Linear(2, 2)


def _accumulated(batch_size: int, accumulate: int, schedule: str = "constant") -> tuple:
    import ebmkit as ek
    from ebmkit.data import TensorData

    sys.path.insert(0, str(REPO / "tests"))
    from dist_scenarios import DDPMean, build

    y = torch.rand(50, 8, generator=torch.Generator().manual_seed(5))  # 50: a short last group
    model = build(0)
    trainer = ek.Trainer(model, DDPMean(), epochs=2, batch_size=batch_size, device="cpu",
                         optimizer="sgd", lr=0.05, seed=3, progress=False, schedule=schedule,
                         accumulate=accumulate)
    history = trainer.fit(TensorData({"y": y}, name="rand", split="train"))
    return model.state_dict(), history, trainer


def test_gradient_accumulation_equals_the_large_batch() -> None:
    """accumulate=3 micro-batches of 5 take the steps of batch 15 (SGD, per-sample mean
    loss): the same weights, step count and schedule, including the short last group (50 =
    3·15 + 5, whose micro-batch is averaged alone, as the large batch's last one is)."""
    big, big_history, big_trainer = _accumulated(15, 1, "cosine")
    acc, acc_history, acc_trainer = _accumulated(5, 3, "cosine")
    assert acc_trainer.step == big_trainer.step == 2 * 4
    for name, p in big.items():
        if not name.startswith("norm."):  # BatchNorm's statistics are per micro-batch
            assert torch.allclose(acc[name], p, rtol=1e-5, atol=1e-6), name
    assert [h["lr"] for h in acc_history] == pytest.approx([h["lr"] for h in big_history])
    one, _, _ = _accumulated(5, 1)  # the baseline differs: accumulation is not a no-op
    assert not torch.allclose(one["enc.0.weight"], acc["enc.0.weight"], atol=1e-4)


def test_cuda_n_under_torchrun_is_refused_unless_it_is_the_local_rank() -> None:
    from ebmkit.errors import ConfigError
    from ebmkit.train import parallel
    from ebmkit.train.distributed import Dist

    two = Dist(rank=1, world=2, local_rank=1)
    with pytest.raises(ConfigError, match="LOCAL_RANK=1.*device='cuda'"):
        parallel.local_device(torch.device("cuda", 0), two)
    assert parallel.local_device(torch.device("cuda", 1), two) == torch.device("cuda", 1)
    assert parallel.local_device(torch.device("cuda", 3), Dist()) == torch.device("cuda", 3)


@pytest.mark.slow
def test_ebmkit_train_under_torchrun(tmp_path: Path) -> None:
    """`torchrun ... -m ebmkit train` with FSDP, accumulation and bf16 autocast: rank 0
    writes one run directory, whose weights load on one process."""
    import ebmkit as ek

    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONWARNINGS": "ignore"}
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node",
           "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "ebmkit",
           "train", "autoencoder", "--epochs", "1", "--set", "hidden=16", "--set", "code=4",
           "--device", "cpu", "--out", str(out), "--distributed", "fsdp", "--accumulate", "2",
           "--amp", "bf16", "--no-plots"]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())["trainer"]
    assert config["world_size"] == 2 and config["amp"] == "bf16"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    model = ek.checkpoint.load(out) if hasattr(ek.checkpoint, "load") else None
    assert model is not None and all(torch.isfinite(p).all() for p in model.parameters())
