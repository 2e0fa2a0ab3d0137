"""Exact log-likelihood of a 2-D energy, normalised on a fine grid."""

from __future__ import annotations

import math
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
        log_z = grid_log_partition(model, self.bounds, self.resolution, device=y.device)
        with torch.no_grad():
            log_p = -model(y) - log_z
        (lo0, hi0), (lo1, hi1) = self.bounds
        inside = (y[:, 0] >= lo0) & (y[:, 0] <= hi0) & (y[:, 1] >= lo1) & (y[:, 1] <= hi1)
        log_p = torch.where(inside, log_p, torch.full_like(log_p, -math.inf))
        self.total += log_p.double().sum()
        self.count += y.shape[0]

    def compute(self) -> Tensor:
        return self.total / self.count
