"""What kind of data a dataset holds, and the validation set carved from its training split.

``ebmkit train`` never reads a test split: its ``val`` is a fixed share of the training
rows, drawn once with a fixed seed (the same rows for every ``--seed``, so runs that differ
only in their seed are validated on the same items), and nothing trains on it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["VAL_FRACTION", "VAL_SEED", "data_kind", "split_validation"]

VAL_FRACTION = 0.05
"""The share of the training rows ``ebmkit train`` holds out as its validation set."""
VAL_SEED = 0
"""The seed of the permutation that picks them: fixed, independent of the run's ``--seed``."""


def data_kind(data: Any) -> str | None:
    """``"images"`` (the data has an ``image_shape``), ``"tokens"`` (integer ``y`` of shape
    ``[N, T]``), ``"vectors"`` (floating ``y`` of shape ``[N, D]``), or ``None``.

    Examples:
        >>> import torch
        >>> from ebmkit.data import TensorData
        >>> data_kind(TensorData({"y": torch.zeros(4, 2)}, name="p", split="train"))
        'vectors'
    """
    if getattr(data, "image_shape", None):
        return "images"
    y = getattr(data, "y", None)
    if not isinstance(y, torch.Tensor) or y.dim() != 2:
        return None
    return "vectors" if y.is_floating_point() else "tokens"


def split_validation(data: Any, fraction: float = VAL_FRACTION,
                     seed: int = VAL_SEED) -> tuple[Any, Any]:
    """Carve a validation set out of ``data``: ``(train, val)``, disjoint, covering ``data``.

    ``round(fraction · N)`` rows (at least one when ``fraction > 0``) are chosen by a
    permutation drawn from ``torch.Generator().manual_seed(seed)``; both parts keep the
    data's row order, class, and attributes (``image_shape``, a vocabulary, …), with
    ``split`` set to ``"train"`` and ``"val"``. Not stratified: with few rows per class the
    validation classes are as uneven as a random draw makes them.

    Args:
        data: A [`TensorData`][ebmkit.data.base.TensorData], or a dataset with a
            ``subset(indices, split)`` method (the lazily decoded image folder).
        fraction: The share held out, in ``[0, 1)``; ``0`` gives ``(data, None)``.
        seed: The permutation's seed.

    Raises:
        ConfigError: ``fraction`` outside ``[0, 1)``, or too few rows to leave both parts
            non-empty.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0.0 <= fraction < 1.0):
        raise ConfigError(f"val_fraction must be a number in [0, 1), got {fraction!r}")
    if fraction == 0:
        return data, None
    n = len(data)
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise ConfigError(f"val_fraction={fraction:g} of {n} rows leaves no training rows; "
                          f"expected at least 2 rows or a smaller fraction (0 for no "
                          f"validation set)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, _ = perm[:n_val].sort()
    train_idx, _ = perm[n_val:].sort()
    subset = getattr(data, "subset", None)
    if callable(subset):
        return subset(train_idx, "train"), subset(val_idx, "val")
    replace = getattr(data, "_replace", None)
    if not callable(replace):
        raise ConfigError(f"cannot carve a validation set out of a {type(data).__name__}: "
                          f"expected an ek.data.TensorData or a dataset with subset(indices, "
                          f"split); pass val_fraction=0 and your own validation data")
    parts = []
    for idx, split in ((train_idx, "train"), (val_idx, "val")):
        part = replace(**{k: v.index_select(0, idx.to(v.device))
                          for k, v in data.tensors.items()})
        part.split = split
        parts.append(part)
    return parts[0], parts[1]
