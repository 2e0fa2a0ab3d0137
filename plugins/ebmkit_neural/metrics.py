"""Exact log-likelihood of a 2-D energy, normalised on a fine grid."""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from ebmkit.model import check_input


def grid_log_partition(energy: Any, bounds: Sequence[Sequence[float]], resolution: int = 300,
                       device: torch.device | str = "cpu") -> Tensor:
    """log Z = log ∫ exp(−E) over the box, by the midpoint rule on a ``resolution²`` grid."""
    (x0, x1), (y0, y1) = bounds
    dx, dy = (x1 - x0) / resolution, (y1 - y0) / resolution
    xs = torch.linspace(x0 + dx / 2, x1 - dx / 2, resolution, device=device)
    ys = torch.linspace(y0 + dy / 2, y1 - dy / 2, resolution, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        e = torch.cat([energy(chunk) for chunk in points.split(65_536)])
    return torch.logsumexp(-e, dim=0) + math.log(dx * dy)


class GridLogLikelihood(Metric):
    """Mean log p(y) = −E(y) − log Z with Z integrated on a grid over ``bounds`` (2-D only).

    Updated with ``(model, batch)`` like every ebmkit model metric. The density is taken as
    zero outside the box, where the model's chains never go either.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, bounds: Sequence[Sequence[float]], resolution: int = 300, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bounds, self.resolution = bounds, resolution
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, model: Any, batch: dict[str, Tensor]) -> None:  # type: ignore[override]
        y = batch["y"]
        check_input(y, "y", shape=(None, 2), finite=False)
        with torch.no_grad():
            neg_e = -model(y)
        (lo0, hi0), (lo1, hi1) = self.bounds
        inside = (y[:, 0] >= lo0) & (y[:, 0] <= hi0) & (y[:, 1] >= lo1) & (y[:, 1] <= hi1)
        neg_e = torch.where(inside, neg_e, torch.full_like(neg_e, -math.inf))
        self.total += neg_e.double().sum()
        self.count += y.shape[0]
        # log Z depends on the model only: integrate once, in compute(). A weak reference kept
        # outside nn.Module's bookkeeping, so the model does not become a sub-module.
        self.__dict__["_model"] = weakref.ref(model)

    def compute(self) -> Tensor:
        ref = self.__dict__.get("_model")
        model = ref() if ref is not None else None
        if model is None:
            raise RuntimeError("GridLogLikelihood.compute() before any update()")
        log_z = grid_log_partition(model, self.bounds, self.resolution, device=self.total.device)
        return self.total / self.count - log_z.double()
