"""Batches for the trainer: a fast path for ``TensorData`` and a ``DataLoader`` path for the rest.

Every source yields dicts of tensors on the training device with at least ``"y"``. A
[`TensorData`][ebmkit.data.base.TensorData] is moved to the device once and batched by
``index_select`` over a permutation drawn from the trainer's seeded generator (no collate,
no per-item Python). Any other map-style ``Dataset`` goes through a ``DataLoader`` with the
same generator; a ``DataLoader`` is used as given.

Distributed: all ranks draw the same permutation (same generator state) and rank ``r``
takes positions ``r, r + W, r + 2W, …`` of it after padding it to a multiple of ``W`` —
``DistributedSampler``'s semantics — so the union of the ranks' i-th batches is the
single-process i-th batch of ``W`` times the size.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import ConfigError
from .distributed import Dist

__all__ = ["LoaderSource", "TensorSource", "make_source", "to_batch"]

# TensorData larger than this stays where it is and is copied to the device batch by batch.
_MOVE_LIMIT_BYTES = 2 << 30


def to_batch(item: Any, device: torch.device) -> dict[str, Tensor]:
    """Normalise one batch to ``{"y": ..., ...}`` on ``device``.

    Accepts a dict with ``"y"``, a tensor (taken as ``y``), or a ``(y,)`` / ``(y, label)``
    tuple.

    Raises:
        ConfigError: anything else, or a dict without ``"y"``.
    """
    if isinstance(item, Mapping):
        if "y" not in item:
            raise ConfigError(f"a batch must hold 'y' (the modelled variable); got a dict with "
                              f"keys {sorted(item)}. Rename the key or wrap the data in "
                              f"ek.data.TensorData({{'y': ...}})")
        batch = dict(item)
    elif isinstance(item, Tensor):
        batch = {"y": item}
    elif isinstance(item, (tuple, list)) and 1 <= len(item) <= 2 and all(
            isinstance(t, Tensor) for t in item):
        batch = {"y": item[0]} if len(item) == 1 else {"y": item[0], "label": item[1]}
    else:
        what = (f"a {type(item).__name__} of {len(item)}" if isinstance(item, (tuple, list))
                else f"a {type(item).__name__}")
        raise ConfigError(f"expected batches that are dicts with 'y', tensors, or (y, label) "
                          f"tuples of tensors; got {what}")
    if not isinstance(batch["y"], Tensor):
        raise ConfigError(f"batch['y'] must be a tensor, got {type(batch['y']).__name__}")
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v
            for k, v in batch.items()}


def _shard(perm: Tensor, dist: Dist, pad: bool) -> Tensor:
    """This rank's positions of ``perm`` (DistributedSampler's layout)."""
    if not dist.enabled:
        return perm
    if pad:
        total = math.ceil(len(perm) / dist.world) * dist.world
        if total > len(perm):
            reps = math.ceil((total - len(perm)) / len(perm))
            perm = torch.cat([perm, perm.repeat(reps)[: total - len(perm)]])
    return perm[dist.rank :: dist.world]


class TensorSource:
    """Batches of a ``TensorData`` by index; see the module docstring.

    Args:
        data: The dataset (a ``TensorData`` or anything with a ``tensors`` dict).
        batch_size: Per-rank batch size.
        device: Training device.
        generator: CPU generator that draws each epoch's permutation; None for data order.
        dist: This process's place in the run.
        pad: Pad the permutation so every rank has equally many samples (training);
            ``False`` for evaluation, where each sample must count once.
    """

    def __init__(self, data: Any, batch_size: int, device: torch.device,
                 generator: torch.Generator | None, dist: Dist, pad: bool = True) -> None:
        tensors: dict[str, Tensor] = dict(data.tensors)
        if "y" not in tensors:
            raise ConfigError(f"the data has no 'y' tensor (keys: {sorted(tensors)})")
        nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
        self.index_device = device if nbytes <= _MOVE_LIMIT_BYTES else tensors["y"].device
        # One copy per fit: embedded datasets are small, and slicing on the device is fast.
        self.tensors = {k: v.to(self.index_device) for k, v in tensors.items()}
        self.n = int(tensors["y"].shape[0])
        self.batch_size, self.device, self.generator = batch_size, device, generator
        self.dist, self.pad = dist, pad
        per_rank = (math.ceil(self.n / dist.world) if pad
                    else len(range(dist.rank, self.n, dist.world)))
        self.samples = per_rank
        self.batches = math.ceil(per_rank / batch_size)

    def __len__(self) -> int:
        return self.batches

    def epoch(self, epoch: int) -> Iterator[dict[str, Tensor]]:
        """One pass over this rank's shard."""
        del epoch  # the generator's state carries the epoch
        tensors, bs, device = self.tensors, self.batch_size, self.device
        move = self.index_device != device  # data too big for the device: copy per batch
        if self.generator is None and not self.dist.enabled:
            for start in range(0, self.n, bs):  # contiguous slices are views: no copy
                batch = {k: v[start : start + bs] for k, v in tensors.items()}
                yield {k: v.to(device, non_blocking=True) for k, v in batch.items()} if move \
                    else batch
            return
        if self.generator is None:
            perm = torch.arange(self.n)
        else:
            perm = torch.randperm(self.n, generator=self.generator)
        idx = _shard(perm, self.dist, self.pad).to(self.index_device)
        for start in range(0, len(idx), bs):
            i = idx[start : start + bs]
            batch = {k: v.index_select(0, i) for k, v in tensors.items()}
            yield {k: v.to(device, non_blocking=True) for k, v in batch.items()} if move \
                else batch


class LoaderSource:
    """Batches of a ``DataLoader``, normalised by [`to_batch`][ebmkit.train.batching.to_batch]."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device
        try:
            self.batches: int | None = len(loader)
        except TypeError:  # an iterable dataset without __len__
            self.batches = None

    def __len__(self) -> int:
        return self.batches or 0

    def epoch(self, epoch: int) -> Iterator[dict[str, Tensor]]:
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for item in self.loader:
            yield to_batch(item, self.device)


# Tensors already found finite, with their version counter then: refitting unchanged data
# (a loop of short fits, a benchmark) skips the pass; any in-place write bumps the version.
# Keyed by id (a tensor's == is elementwise), holding a weak reference to rule out reuse of
# the id by a later tensor.
_FINITE: dict[int, tuple[weakref.ref[Tensor], int]] = {}


def _known_finite(t: Tensor) -> bool:
    ref, version = _FINITE.get(id(t), (None, -1))
    return ref is not None and ref() is t and version == t._version


def _check_finite(data: Any) -> None:
    """NaN or inf in the data is a clear error up front (one check per fit, not per step)."""
    for key, t in data.tensors.items():
        if not t.is_floating_point() or _known_finite(t):
            continue
        # one reduction: the sum is finite unless a value is NaN/inf (or the sum overflows,
        # which the row check below then clears)
        if not bool(torch.isfinite(t.sum(dtype=torch.float64))):
            bad = ~torch.isfinite(t.reshape(len(t), -1)).all(dim=1)
            if bool(bad.any()):
                rows = bad.nonzero().flatten()[:5].tolist()
                raise ConfigError(f"data {getattr(data, 'name', '')!r}: {key!r} contains NaN or "
                                  f"infinite values ({int(bad.sum())} rows, first {rows}); "
                                  f"expected finite numbers")
        if len(_FINITE) > 64:  # drop entries of tensors that are gone
            for k in [k for k, (r, _) in _FINITE.items() if r() is None]:
                del _FINITE[k]
        _FINITE[id(t)] = (weakref.ref(t), t._version)


def _is_tensor_data(data: Any) -> bool:
    from ..data.base import TensorData

    return isinstance(data, TensorData)


def make_source(data: Any, *, batch_size: int, device: torch.device,
                generator: torch.Generator | None, dist: Dist, seed: int,
                train: bool) -> TensorSource | LoaderSource:
    """The batch source for ``data`` (``TensorData``, ``Dataset`` or ``DataLoader``).

    Args:
        generator: Shuffles when given (training); None keeps the data order (evaluation).
        seed: The ``DistributedSampler`` seed for a distributed generic ``Dataset``.
        train: Pad shards to equal length (training) or keep every sample once (evaluation).

    Raises:
        ConfigError: ``data`` is none of the accepted kinds.
    """
    if _is_tensor_data(data):
        _check_finite(data)
        return TensorSource(data, batch_size, device, generator, dist, pad=train)
    if isinstance(data, DataLoader):
        if dist.enabled and train and not isinstance(data.sampler, DistributedSampler):
            warnings.warn("distributed training with a DataLoader whose sampler is not a "
                          "DistributedSampler: every process sees all of its batches. Pass the "
                          "Dataset instead (ebmkit shards it) or give it a DistributedSampler",
                          stacklevel=3)
        return LoaderSource(data, device)
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        pin = device.type == "cuda"
        # a dataset may ask for decoding workers (ek.data.ImageFolderData: images on disk)
        workers = int(getattr(data, "num_workers", 0) or 0)
        more = {"num_workers": workers, "persistent_workers": workers > 0}
        if dist.enabled:
            if train:
                sampler = DistributedSampler(data, num_replicas=dist.world, rank=dist.rank,
                                             shuffle=generator is not None, seed=seed)
            else:  # every sample exactly once across ranks: no padding
                sampler = list(range(dist.rank, len(data), dist.world))
            loader = DataLoader(data, batch_size=batch_size, sampler=sampler, pin_memory=pin,
                                **more)
        else:
            loader = DataLoader(data, batch_size=batch_size, shuffle=generator is not None,
                                generator=generator, pin_memory=pin, **more)
        return LoaderSource(loader, device)
    raise ConfigError(f"expected the data as an ek.data.TensorData, a torch Dataset or a "
                      f"DataLoader; got {type(data).__name__}")
