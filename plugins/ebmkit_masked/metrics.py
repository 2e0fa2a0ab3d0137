"""torchmetrics for masked models, updated with ``(model, batch)`` like every ebmkit metric.

- [`MaskedTokenMetrics`][ebmkit_masked.metrics.MaskedTokenMetrics]: corrupts each batch with
  the model's own BERT corruption under a fixed seed and reports, over the ``<mask>``
  positions, ``accuracy``, ``perplexity`` = exp(mean NLL) and ``bpc`` (bits per token:
  mean NLL / ln 2; per character at the char level), and the same over every *selected*
  position (masked, replaced or kept) as ``selected/accuracy`` and ``selected/perplexity``.
- [`HiddenPSNR`][ebmkit_masked.metrics.HiddenPSNR]: PSNR of ``masked.image``'s inpainting
  on the hidden pixels only, for images in [0, 1].

An MLM "perplexity" is exp of a *per-token conditional* NLL given both sides and most of
the sequence: it is not comparable with an autoregressive language model's perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from .corruption import MASK_ID

__all__ = ["HiddenPSNR", "MaskedTokenMetrics"]


def _seeded(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class MaskedTokenMetrics(Metric):
    """Accuracy, perplexity and bits per token of a masked LM on a fixed corruption.

    Args:
        seed: Seed of the corruption; it restarts at every ``reset()``, so two evaluations
            of the same data in the same batches see the same x.
    """

    full_state_update = False
    higher_is_better = None  # accuracy up, perplexity down: see the keys

    def __init__(self, seed: int = 1234, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self._gen: torch.Generator | None = None
        for key in ("n_mask", "correct_mask", "nll_mask", "n_sel", "correct_sel", "nll_sel"):
            self.add_state(key, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def reset(self) -> None:
        super().reset()
        self._gen = None

    def update(self, model: Any, batch: Mapping[str, Tensor]) -> None:  # type: ignore[override]
        y = model.check_ids(batch["y"], "batch['y']")
        if self._gen is None or self._gen.device != y.device:
            self._gen = _seeded(self.seed, y.device)
        x, selected = model.corruption.corrupt(y, self._gen)                 # [B, T] each
        logits = model.logits(x)                                             # [B, T, V]
        nll = F.cross_entropy(logits.transpose(1, 2).float(), y, reduction="none")
        correct = logits.argmax(-1) == y                                     # [B, T]
        for where, suffix in ((x == MASK_ID, "mask"), (selected, "sel")):
            n = getattr(self, f"n_{suffix}")
            n += where.sum()
            c = getattr(self, f"correct_{suffix}")
            c += (correct & where).sum()
            s = getattr(self, f"nll_{suffix}")
            s += (nll * where).sum().double()

    def compute(self) -> dict[str, Tensor]:
        n_mask, n_sel = self.n_mask.clamp(min=1), self.n_sel.clamp(min=1)
        nll = self.nll_mask / n_mask
        return {"accuracy": self.correct_mask / n_mask, "perplexity": nll.exp(),
                "bpc": nll / math.log(2), "selected/accuracy": self.correct_sel / n_sel,
                "selected/perplexity": (self.nll_sel / n_sel).exp()}


class HiddenPSNR(Metric):
    """PSNR (dB, peak 1) of ``model.predict(x)`` on the hidden pixels, with x from
    ``model.corrupt(y, generator)`` under a fixed seed; also the mean ``energy`` per image."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, seed: int = 1234, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self._gen: torch.Generator | None = None
        for key in ("sq", "n", "energy", "images"):
            self.add_state(key, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def reset(self) -> None:
        super().reset()
        self._gen = None

    def update(self, model: Any, batch: Mapping[str, Tensor]) -> None:  # type: ignore[override]
        y = batch["y"]
        if self._gen is None or self._gen.device != y.device:
            self._gen = _seeded(self.seed, y.device)
        x = model.corrupt(y, generator=self._gen)
        hidden = torch.isnan(x)
        err = (model.predict(x) - y).square() * hidden
        self.sq += err.sum().double()
        self.n += hidden.sum()
        self.energy += err.flatten(1).sum(1).sum().double()
        self.images += y.shape[0]

    def compute(self) -> dict[str, Tensor]:
        mse = self.sq / self.n.clamp(min=1)
        return {"psnr": -10 * torch.log10(mse.clamp(min=1e-12)),
                "energy": self.energy / self.images.clamp(min=1)}
