"""Multi-process data parallelism for the trainer: process group, gradient averaging, helpers.

A run is distributed when ``torchrun`` (or anything that sets the same variables) launches
it with ``WORLD_SIZE > 1``, or when the caller has already initialised
``torch.distributed``. Every rank runs the same trainer; each takes its shard of the
epoch's shared permutation, gradients are averaged after ``backward``, and rank 0 writes
the files.

Why gradients are all-reduced by hand rather than with ``DistributedDataParallel``:
strategies call model methods (``energy``, ``free_energy``, ``infer``), latent solvers
and samplers run their own inner ``autograd.grad`` loops, score matching differentiates
through a gradient, and a strategy may touch only part of the model. DDP's reducer hooks
every parameter's gradient accumulator and assumes one forward and one backward per
step with a predictable set of used parameters; these strategies break that assumption
(or force ``find_unused_parameters`` graph scans every step). One coalesced
``all_reduce`` of the finished gradients works for any strategy, keeps every rank's
parameters bitwise identical, and costs one collective per step; what it gives up is
DDP's overlap of communication with the backward pass, which matters little at the model
sizes ebmkit targets.
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

__all__ = ["Dist", "setup"]


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

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over the ranks, one collective per dtype.

        A parameter without a gradient on this rank counts as a zero gradient, so every
        rank reduces the same tensors (one rank may use a parameter another skipped).
        """
        if not self.enabled or not params:
            return
        groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            elif p.grad.is_sparse:
                raise ConfigError("distributed training does not support sparse gradients")
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
        for grads in groups.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)  # SUM then divide: gloo has no AVG
            flat.div_(self.world)
            offset = 0
            for g in grads:
                n = g.numel()
                g.copy_(flat[offset : offset + n].view_as(g))
                offset += n


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
