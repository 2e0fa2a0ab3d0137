"""Retrieval metrics of the associative memories: how often a half-hidden pattern comes back.

Each batch's patterns are queried with a fraction (the model's ``hidden``) of their entries
hidden, the same number per row, at places drawn from a generator seeded with the model's
``seed`` (so two evaluations of one model agree).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["HiddenError", "MaskedPSNR", "RetrievalAccuracy"]


def _masked_query(model: Any, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    x = model.mask(y, generator=gen)  # NaN where hidden
    return x, torch.isnan(x), model.predict(x)


class RetrievalAccuracy(Metric):
    """Share of half-hidden queries whose output's nearest stored pattern is the query's own
    nearest stored pattern (for stored data: the pattern itself, the protocol of the docs'
    table; for unseen data: agreement with nearest-neighbour lookup of the full pattern)."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self._gen: torch.Generator | None = None

    def update(self, model: Any, batch: dict[str, Tensor]) -> None:  # type: ignore[override]
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(int(model.cfg.seed))
        y = batch["y"]
        _, _, out = _masked_query(model, y, self._gen)
        self.correct += (model.nearest(out) == model.nearest(y)).sum()
        self.total += y.shape[0]

    def compute(self) -> Tensor:
        return self.correct / self.total.clamp_min(1)


class HiddenError(Metric):
    """Mean squared error of the output on the hidden entries (inputs' units)."""

    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("sse", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self._gen: torch.Generator | None = None

    def update(self, model: Any, batch: dict[str, Tensor]) -> None:  # type: ignore[override]
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(int(model.cfg.seed) + 1)
        y = batch["y"]
        _, hidden, out = _masked_query(model, y, self._gen)
        self.sse += ((out.to(y.dtype) - y).square() * hidden).sum()
        self.count += hidden.sum()

    def compute(self) -> Tensor:
        return self.sse / self.count.clamp_min(1)


class MaskedPSNR(Metric):
    """PSNR in dB of the completion on the hidden pixels, for data in [0, 1]:
    10·log10(1 / MSE over every hidden pixel of the data). Masks: the model's ``mask_ratio``
    of patches, from a generator seeded with its ``seed``."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("sse", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self._gen: torch.Generator | None = None

    def update(self, model: Any, batch: dict[str, Tensor]) -> None:  # type: ignore[override]
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(int(model.cfg.seed))
        y = batch["y"]
        x = model.mask(y, generator=self._gen)
        hidden = torch.isnan(x)
        out = model.predict(x)
        self.sse += ((out - y).square() * hidden).sum().double()
        self.count += hidden.sum().double()

    def compute(self) -> Tensor:
        return 10 * torch.log10(1.0 / (self.sse / self.count.clamp_min(1)))
