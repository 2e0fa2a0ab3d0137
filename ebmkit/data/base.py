"""[`TensorData`][ebmkit.data.base.TensorData]: an in-memory dataset of named tensors.

Every embedded dataset is small enough to live in memory as a handful of tensors that share
their first dimension: ``y`` (the modelled variable, always present) plus optional extras
such as ``label``. Keeping them as whole tensors lets
[`batches`][ebmkit.data.base.TensorData.batches] slice batches without any per-item Python
work, while ``__getitem__`` still makes the object a regular map-style
``torch.utils.data.Dataset`` for ``DataLoader`` users.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["TensorData"]


class TensorData(torch.utils.data.Dataset):
    """A dataset of named tensors that share their first (sample) dimension.

    Items are dicts of per-sample tensors, so torch's default collate turns a list of items
    into a dict of batched tensors.

    Args:
        tensors: Named tensors; must contain ``"y"``, all with the same length.
        name: Dataset name, e.g. ``"digits"``.
        split: Which split this is, e.g. ``"train"``.
        image_shape: ``(C, H, W)`` when each ``y`` row is a flattened image, else ``None``.
        num_classes: Number of classes of ``label``, when there are labels.
        meta: Free-form extras (class names, a vocabulary, …).

    Raises:
        ConfigError: ``"y"`` is missing, a value is not a tensor with a sample dimension,
            or the tensors' lengths differ.

    Examples:
        >>> import torch
        >>> d = TensorData({"y": torch.zeros(10, 3)}, name="zeros", split="train")
        >>> [b["y"].shape[0] for b in d.batches(4)]
        [4, 4, 2]
    """

    def __init__(
        self,
        tensors: dict[str, Tensor],
        *,
        name: str,
        split: str,
        image_shape: tuple[int, ...] | None = None,
        num_classes: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self._tensors = _checked(tensors)
        self.name = name
        self.split = split
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.num_classes = num_classes
        self.meta: dict[str, Any] = dict(meta) if meta else {}

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self._tensors["y"].shape[0])

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self._tensors.items()}

    @property
    def y(self) -> Tensor:
        """The modelled variable, shape ``[N, ...]``."""
        return self._tensors["y"]

    @property
    def labels(self) -> Tensor | None:
        """Class labels ``[N]`` (int64), or ``None`` for unlabelled data."""
        return self._tensors.get("label")

    @property
    def tensors(self) -> dict[str, Tensor]:
        """All tensors by name (a new dict; the tensors themselves are shared)."""
        return dict(self._tensors)

    @property
    def device(self) -> torch.device:
        """The device the tensors live on."""
        return self._tensors["y"].device

    # --------------------------------------------------------------- transforms
    def _replace(self, **tensors: Tensor) -> TensorData:
        """Return a shallow copy with some tensors replaced.

        ``copy.copy`` keeps every attribute a subclass (or a loader) added, so derived
        objects stay of the same class with the same extras.
        """
        new = copy.copy(self)
        new._tensors = _checked({**self._tensors, **tensors})
        new.meta = dict(self.meta)
        return new

    def to(self, device: torch.device | str) -> TensorData:
        """Return a copy (same class, same attributes) with every tensor on ``device``."""
        return self._replace(**{k: v.to(device) for k, v in self._tensors.items()})

    # ----------------------------------------------------------------- batching
    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[dict[str, Tensor]]:
        """Yield dicts of batched tensors by slicing whole tensors (no collate).

        Args:
            batch_size: Rows per batch (the last batch may be smaller).
            shuffle: Visit rows in a random order (each row exactly once per pass).
            generator: Random generator for the permutation; on CPU or on the data's device.
            drop_last: Skip a final batch smaller than ``batch_size``.

        Yields:
            ``{name: tensor[batch, ...]}`` on the data's device.

        Raises:
            ConfigError: ``batch_size`` is not a positive integer.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
        n, device = len(self), self.device
        stop = n - n % batch_size if drop_last else n
        if not shuffle:
            # Contiguous slices are views: no copy at all.
            for start in range(0, stop, batch_size):
                yield {k: v[start : start + batch_size] for k, v in self._tensors.items()}
            return
        if generator is not None and generator.device != device:
            # randperm must run where its generator lives; move only the index.
            perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
        else:
            perm = torch.randperm(n, generator=generator, device=device)
        for start in range(0, stop, batch_size):
            idx = perm[start : start + batch_size]
            yield {k: v.index_select(0, idx) for k, v in self._tensors.items()}

    # ------------------------------------------------------------------ display
    def describe(self) -> str:
        """One line, e.g. ``digits[train]: 1438 × (64,) float32, 10 classes, image 1×8×8``."""
        y = self.y
        dtype = str(y.dtype).removeprefix("torch.")
        parts = [f"{self.name}[{self.split}]: {len(self)} × {tuple(y.shape[1:])} {dtype}"]
        if self.num_classes is not None:
            parts.append(f"{self.num_classes} classes")
        if self.image_shape is not None:
            parts.append("image " + "×".join(str(s) for s in self.image_shape))
        if y.device.type != "cpu":
            parts.append(f"on {y.device}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{k}: {tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}"
            for k, v in self._tensors.items()
        )
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
            f"n={len(self)}, tensors={{{shapes}}}, device={str(self.device)!r})"
        )


def _checked(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Validate a dict of tensors: has ``y``, all tensors, one shared first dimension."""
    if not isinstance(tensors, dict) or "y" not in tensors:
        keys = sorted(tensors) if isinstance(tensors, dict) else type(tensors).__name__
        raise ConfigError(f"TensorData needs a dict of tensors with key 'y', got {keys}.")
    for k, v in tensors.items():
        if not isinstance(v, Tensor) or v.dim() == 0:
            what = f"shape {tuple(v.shape)}" if isinstance(v, Tensor) else type(v).__name__
            raise ConfigError(
                f"TensorData tensor {k!r} must be a tensor with a sample dimension, got {what}."
            )
    lengths = {k: int(v.shape[0]) for k, v in tensors.items()}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise ConfigError(
            f"TensorData tensors must share their first dimension; got lengths {listing}."
        )
    devices = {str(v.device) for v in tensors.values()}
    if len(devices) > 1:
        raise ConfigError(f"TensorData tensors must be on one device; got {sorted(devices)}.")
    return dict(tensors)
