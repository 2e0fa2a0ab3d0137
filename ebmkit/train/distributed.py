"""Multi-process data parallelism for the trainer: process group, collectives, helpers.

A run is distributed when ``torchrun`` (or anything that sets the same variables) launches
it with ``WORLD_SIZE > 1``, or when the caller has already initialised
``torch.distributed``. Every rank runs the same trainer; each takes its shard of the
epoch's shared permutation and rank 0 writes the files.

How gradients meet is [`ebmkit.train.parallel`][ebmkit.train.parallel]'s choice: PyTorch's
``DistributedDataParallel`` for strategies that declare ``ddp = True`` (communication
overlapped with ``backward``), FSDP2 on request, and otherwise the explicit path here:
[`Dist.average_gradients`][ebmkit.train.distributed.Dist.average_gradients], one
coalesced all-reduce of the finished gradients, exact for any strategy (a strategy that
steps its own optimizers, or updates parameters in place).

[`all_gather_cat`][ebmkit.train.distributed.all_gather_cat] is for families: keys for a
MoCo-style queue gathered from every rank, so every rank enqueues the same ones.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import ConfigError

__all__ = ["Dist", "all_gather_cat", "current", "setup"]


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its rank, the world size and the local rank."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this process writes files and draws the progress bar."""
        return self.rank == 0

    # -------------------------------------------------------------------- collectives
    def barrier(self, device: torch.device) -> None:
        if not self.enabled:
            return
        if device.type == "cuda":
            dist.barrier(device_ids=[device.index or 0])
        else:
            dist.barrier()

    def all_reduce(self, t: Tensor, op: str = "sum") -> Tensor:
        """Reduce ``t`` in place across ranks (``"sum"`` or ``"max"``); a no-op alone."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return t

    def broadcast_(self, tensors: Iterable[Tensor]) -> None:
        """Copy rank 0's values into every rank's ``tensors`` (in place)."""
        if not self.enabled:
            return
        for t in tensors:
            dist.broadcast(t, src=0)

    def all_gather(self, t: Tensor) -> list[Tensor]:
        """Every rank's ``t`` (same shape and dtype on each rank), in rank order."""
        if not self.enabled:
            return [t]
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t.contiguous())
        return out

    def broadcast_coalesced_(self, tensors: Sequence[Tensor]) -> None:
        """Rank 0's values into ``tensors`` on every rank, one collective per (dtype, device)."""
        if not self.enabled or not tensors:
            return
        groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
        for t in tensors:
            if t.numel():
                groups.setdefault((t.dtype, t.device), []).append(t)
        for ts in groups.values():
            flat = torch.cat([t.detach().reshape(-1) for t in ts])
            dist.broadcast(flat, src=0)
            offset = 0
            with torch.no_grad():
                for t in ts:
                    n = t.numel()
                    t.copy_(flat[offset : offset + n].view_as(t))
                    offset += n

    def shared_seed(self, device: torch.device) -> int:
        """A fresh random seed, rank 0's on every rank (for ``seed=None`` runs, whose data
        shards must still be disjoint)."""
        s = int.from_bytes(os.urandom(7), "little")
        if not self.enabled:
            return s
        comm = device if device.type == "cuda" else torch.device("cpu")
        t = torch.tensor([s if self.main else 0], dtype=torch.int64, device=comm)
        dist.broadcast(t, src=0)
        return int(t.item())

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over the ranks, one collective per dtype.

        What one process would compute on the union of the ranks' batches: a parameter
        that some rank used gets the mean (a rank that did not use it counts zero); a
        parameter that no rank used keeps ``grad = None``, so weight decay and momentum
        leave it alone, as they would on one process. Which parameters were used anywhere
        travels in the same collective; it is read back (one host sync) only on a rank
        that has a parameter without a gradient.
        """
        if not self.enabled or not params:
            return
        groups: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
        for p in params:  # by the parameters' dtype: the same layout on every rank
            if p.grad is not None and p.grad.is_sparse:
                raise ConfigError("distributed training does not support sparse gradients")
            groups.setdefault((p.dtype, p.device), []).append(p)
        for (dtype, device), ps in groups.items():
            missing = [p.grad is None for p in ps]
            grads = [torch.zeros_like(p) if m else p.grad for p, m in zip(ps, missing)]
            used = torch.ones(len(ps), dtype=dtype, device=device)  # no host-to-device copy
            for i in (i for i, m in enumerate(missing) if m):
                used[i].zero_()
            flat = torch.cat([g.reshape(-1) for g in grads] + [used])
            dist.all_reduce(flat)  # SUM then divide: gloo has no AVG
            n_grads = flat.numel() - len(ps)
            flat[:n_grads].div_(self.world)
            anywhere = flat[n_grads:].tolist() if any(missing) else None
            offset = 0
            for i, (p, g) in enumerate(zip(ps, grads)):
                n = g.numel()
                if missing[i]:
                    if anywhere is not None and anywhere[i] > 0:
                        p.grad = flat[offset : offset + n].view_as(p).clone()
                else:
                    g.copy_(flat[offset : offset + n].view_as(g))
                offset += n


def current() -> Dist:
    """This process's place in the run (``Dist()`` when no process group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", dist.get_rank()))
    return Dist()


def all_gather_cat(t: Tensor, ragged: bool = False) -> Tensor:
    """Every rank's ``t`` concatenated along dim 0, in rank order; ``t`` itself when alone.

    For state every rank must agree on, e.g. keys enqueued in a MoCo queue, or the patterns
    a Hopfield memory stores. The result is detached (no gradient flows back to other
    ranks). Every rank must call it with the same dtype and trailing shape.

    Args:
        t: This rank's rows.
        ragged: The ranks may hold different numbers of rows: they are exchanged first and
            read back (one host sync), and the rows padded to the largest count for the
            gather. Otherwise every rank must pass the same shape (no host sync).
    """
    here = current()
    if not here.enabled:
        return t
    t = t.detach()
    if not ragged:
        return torch.cat(here.all_gather(t), dim=0)
    sizes = [int(n) for n in torch.cat(here.all_gather(  # noqa: sync - ragged sizes
        torch.tensor([t.shape[0]], device=t.device))).tolist()]
    padded = t.new_zeros((max(sizes), *t.shape[1:]))
    padded[: t.shape[0]] = t
    return torch.cat([part[:n] for part, n in zip(here.all_gather(padded), sizes)], dim=0)


_OWNED = False  # whether ebmkit created the process group (and so destroys it at exit)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None


def setup(device_type: str) -> Dist:
    """Join (or create) the process group when launched with ``WORLD_SIZE > 1``.

    Args:
        device_type: ``"cuda"`` picks the NCCL backend, anything else gloo.

    Returns:
        This process's [`Dist`][ebmkit.train.distributed.Dist]; ``Dist()`` when alone.
    """
    global _OWNED
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(),
                    _env_int("LOCAL_RANK", dist.get_rank()))
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Dist()
    if not dist.is_available():
        raise ConfigError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} asks for distributed training but "
                          f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                          f"set; launch with `torchrun --nproc-per-node N script.py`")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    _OWNED = True
    atexit.register(_teardown)
    return Dist(rank, world, local_rank)


def _teardown() -> None:
    """Leave the process group together: a rank that tears gloo down while its peer is still
    talking can abort the process ("terminate called without an active exception")."""
    global _OWNED
    if _OWNED and dist.is_initialized():
        try:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=60))
            else:
                dist.barrier()
        except Exception:  # a peer already gone: nothing left to wait for
            pass
        dist.destroy_process_group()
    _OWNED = False
