"""A FIFO memory of embeddings (MoCo's queue, PIRL's memory bank) that is correct under
``torchrun`` and never uses a sample as its own negative.

- **Distributed**: keys are gathered from every rank (``torch.distributed.all_gather``,
  rank order) *before* they are enqueued, so every rank holds the same queue, as in MoCo's
  reference code (``concat_all_gather``). The queue is a buffer of the model: it is saved in
  checkpoints, restored by the divergence guard, and broadcast from rank 0 by the trainer.
- **Own sample as negative**: a queue longer than the data set holds keys of the very
  images in the batch (and on a small data set, recent ones do too). Each entry carries a
  fingerprint of its input image (a fixed random projection of ``y``); a negative whose
  fingerprint matches the query's is masked out (energy +∞, weight 0 in the softmax). The
  share of masked entries is logged as ``queue_self``; it is the fraction of the queue that
  is wasted, so a queue larger than the data shows up there — and ``check_size`` refuses
  one outright when the data size is known.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

__all__ = ["Memory", "gather"]


def gather(t: Tensor) -> Tensor:
    """Every rank's ``t`` concatenated along dim 0 in rank order (``t`` itself when the
    process group is not initialised). Detached: no gradient flows to other ranks."""
    t = t.detach()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return t
    parts = [torch.empty_like(t) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class Memory(nn.Module):
    """A FIFO of ``size`` unit-norm ``dim``-d embeddings with their inputs' fingerprints.

    Starts filled with random unit vectors (as MoCo does) whose fingerprints match nothing.

    Args:
        size: Entries kept.
        dim: Embedding size.
        input_dim: Size of the inputs ``y`` (for the fingerprint).
        who: The model's name, for messages.
    """

    def __init__(self, size: int, dim: int, input_dim: int, who: str = "") -> None:
        super().__init__()
        self.who = who
        g = torch.Generator().manual_seed(1234)
        self.register_buffer("keys", nnf.normalize(torch.randn(size, dim, generator=g), dim=1))
        self.register_buffer("prints", torch.full((size,), float("nan")))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("projection", torch.rand(input_dim, generator=g) + 0.5)

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def check_size(self, num_samples: int) -> None:
        """Refuse a memory larger than the data set it will hold (``num_samples``)."""
        if self.size > num_samples:
            raise ek.errors.ConfigError(
                f"{self.who}: the queue/memory holds {self.size} entries but the data has only "
                f"{num_samples} samples, so it would hold several keys of the same image; set "
                f"it to at most {num_samples} (e.g. --set queue={num_samples // 2})")

    def fingerprint(self, y: Tensor) -> Tensor:
        """``[B]``: a fixed random projection of each (flattened) input."""
        return y.reshape(y.shape[0], -1).float() @ self.projection

    def energies(self, q: Tensor, prints: Tensor) -> tuple[Tensor, Tensor]:
        """``(e_neg [B, K], self_share)``: 1 − cos of each normalised query with every entry,
        +∞ where the entry is a key of the query's own input."""
        # A copy: the backward pass needs these keys after `push` has overwritten some.
        e = 1.0 - q @ self.keys.clone().T                                          # [b, k]
        same = (prints[:, None] - self.prints[None, :]).abs() <= 1e-4 * (1 + prints.abs()[:, None])
        return e.masked_fill(same, float("inf")), same.float().mean()

    @torch.no_grad()
    def push(self, keys: Tensor, prints: Tensor) -> None:
        """Enqueue ``keys`` ``[B, d]`` (gathered from every rank first), oldest out; no host
        sync (the write position stays on the device)."""
        keys, prints = gather(keys), gather(prints)
        n = keys.shape[0]
        if n > self.size:
            keys, prints, n = keys[-self.size:], prints[-self.size:], self.size
        idx = (self.ptr + torch.arange(n, device=keys.device)) % self.size
        self.keys.index_copy_(0, idx, keys.to(self.keys.dtype))
        self.prints.index_copy_(0, idx, prints.to(self.prints.dtype))
        self.ptr.copy_((self.ptr + n) % self.size)
