"""Scenarios run by tests/test_distributed.py: under torchrun (2 gloo processes) or, as the
reference, in one process with twice the batch. Writes its results under argv[1]."""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from torch import nn

import ebmkit as ek
from ebmkit.data import TensorData
from ebmkit.strategies import StepOutput, Strategy


class Net(ek.EnergyModel):
    """Per-sample maths (so 2 x B equals 1 x 2B), an unused parameter and a BatchNorm buffer."""

    name = "test.dist-net"
    find_unused_parameters = True  # `unused` is in no step's graph: DDP must look for it

    def __init__(self, dim=8, hidden=4):
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh())
        self.dec = nn.Linear(hidden, dim)
        self.unused = nn.Linear(2, 2)  # never in any graph: grad None, untouched by decay
        self.norm = nn.BatchNorm1d(dim)  # its running stats are buffers (not in the loss)

    def energy(self, y, x=None, z=None):
        if self.training:
            self.norm(y)  # updates running_mean / running_var from this rank's batch
        return (y - self.dec(self.enc(y))).square().sum(dim=1)

    def config(self):
        return {"dim": self.dim, "hidden": self.hidden}


class BNNet(Net):
    """BatchNorm inside the loss: its batch statistics shape every gradient."""

    name = "test.dist-bnnet"

    def energy(self, y, x=None, z=None):
        h = self.norm(y)
        return (h - self.dec(self.enc(h))).square().sum(dim=1)


class DDPMean(Strategy):
    ddp = True

    def __call__(self, model, batch):
        e = model.energy(batch["y"])
        return StepOutput(e.mean(), {"e_pos": e.detach().mean()})


def explicit_mean(model, batch):  # a plain function: the explicit path
    e = model.energy(batch["y"])
    return StepOutput(e.mean(), {"e_pos": e.detach().mean()})


class Recorder(Strategy):
    """Remembers which samples (column 0 holds the index) this rank saw."""

    ddp = True

    def __init__(self):
        self.seen = []

    def __call__(self, model, batch):
        self.seen += batch["y"][:, 0].long().tolist()
        e = model.energy(batch["y"])
        return StepOutput(e.mean(), {})


def sgd(params):  # momentum and weight decay: an unused parameter must not move
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.1)


def build(rank):
    torch.manual_seed(100 + rank)  # different initial weights per rank: rank 0's must win
    model = Net()
    if rank == 0:
        torch.manual_seed(1)
        model = Net()
    return model


def main():
    out, batch_size = sys.argv[1], int(sys.argv[2])
    rank = int(os.environ.get("RANK", "0"))
    y = torch.rand(96, 8, generator=torch.Generator().manual_seed(5))
    data = TensorData({"y": y}, name="rand", split="train")
    results = {}
    for mode, strategy in (("ddp", DDPMean()), ("explicit", explicit_mean), ("fsdp", DDPMean())):
        model = build(rank)
        trainer = ek.Trainer(model, strategy, epochs=2, batch_size=batch_size, device="cpu",
                             optimizer=sgd, seed=3, progress=False, distributed=mode,
                             checkpoint_dir=os.path.join(out, f"run-{mode}"))
        history = trainer.fit(data)
        results[mode] = {"history": history, "trainer_mode": trainer.mode}
        state = {k: v.contiguous() for k, v in model.state_dict().items()} if mode != "fsdp" \
            else {}
        if state:
            save_file(state, os.path.join(out, f"{mode}{rank}.safetensors"))

    # sync_batchnorm: statistics of the global batch (ebmkit's GlobalBatchNorm, any device),
    # and gradient accumulation: 2 micro-batches of half the batch per optimizer step
    for mode, kwargs in (("syncbn", {"sync_batchnorm": True}), ("acc", {"accumulate": 2})):
        torch.manual_seed(1)
        model = BNNet() if mode == "syncbn" else build(rank)
        bs = batch_size // 2 if mode == "acc" and int(os.environ.get("WORLD_SIZE", "1")) > 1 \
            else batch_size
        trainer = ek.Trainer(model, DDPMean(), epochs=2, batch_size=bs, device="cpu",
                             optimizer=sgd, seed=3, progress=False, distributed="ddp", **kwargs)
        trainer.fit(data)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  os.path.join(out, f"{mode}{rank}.safetensors"))

    # FSDP resume: one more epoch from the checkpoint (weights and optimizer state sharded
    # from rank 0's full copies) ends where the single process's resumed run ends
    # (rank 1 is pointed at an empty directory, as on a node without a shared filesystem:
    # rank 0 reads the checkpoint and broadcasts it)
    trainer = ek.Trainer(build(rank), DDPMean(), epochs=3, batch_size=batch_size, device="cpu",
                         optimizer=sgd, seed=3, progress=False, distributed="fsdp",
                         checkpoint_dir=os.path.join(out, "run-fsdp" if rank == 0 else
                                                     "no-shared-fs"), resume=True)
    results["fsdp_resumed"] = trainer.fit(data)[-1]["loss"]

    # seed=None: one shared data order, disjoint shards that cover the data
    idx = torch.arange(96, dtype=torch.float32).unsqueeze(1).repeat(1, 8)
    rec = Recorder()
    ek.Trainer(Net(), rec, epochs=1, batch_size=batch_size, device="cpu", seed=None,
               progress=False).fit(TensorData({"y": idx}, name="idx", split="train"))
    results["seen"] = rec.seen

    # per-rank replay buffers: saved per rank, each rank resumes with its own
    def cd():
        return ek.strategies.ContrastiveDivergence(
            ek.samplers.Langevin(steps=2, step_size=0.01),
            buffer=ek.samplers.ReplayBuffer(capacity=16, reinit=0.0), alpha=0.1)

    run = os.path.join(out, "run-cd")
    first = cd()
    ek.Trainer(build(rank), first, epochs=1, batch_size=batch_size, device="cpu", seed=7,
               progress=False, checkpoint_dir=run).fit(data)
    again = cd()
    ek.Trainer(build(rank), again, epochs=1, batch_size=batch_size, device="cpu", seed=7,
               progress=False, checkpoint_dir=run, resume=True).fit(data)
    results["buffer_own"] = bool(torch.equal(again.buffer.storage, first.buffer.storage))
    results["buffer_sum"] = float(first.buffer.storage.sum())

    # K-means' closed-form mini-batch update (the explicit path, no gradient): the ranks sum
    # their batch sums and counts and draw the first prototypes (k-means++, each rank's own
    # RNG) on rank 0 from the union of their first batches
    km = ek.get_model("kmeans", k=4, dim=8)
    trainer = ek.Trainer(km, epochs=2, batch_size=batch_size, device="cpu", seed=3,
                         progress=False)
    results["kmeans_mode"] = trainer.mode
    trainer.fit(data)
    results["kmeans"] = km.cluster_centers_.tolist()
    with open(os.path.join(out, f"result{rank}.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
