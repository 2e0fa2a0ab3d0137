"""torchmetrics metrics of the autoencoder family, updated with ``(model, batch)``.

- ``mse``, ``psnr``: of ``model.reconstruct(y)`` against y (PSNR over the data range
  ``high − low``);
- ``ssim``: the same pairs as images, when the model knows its ``image_shape``;
- ``auroc``: how well ``model.score(y)`` (the free energy) tells the ``anomaly_classes``
  from the rest, when the model was given some (batches must carry ``label``, or ``anomaly``
  as booleans).
"""

from __future__ import annotations

from typing import Any

import torch
import torchmetrics
from torch import Tensor
from torchmetrics.classification import BinaryAUROC

from ebmkit.errors import ConfigError
from ebmkit.metrics import Adapter

__all__ = ["anomaly_auroc", "family_metrics", "to_unit_interval"]


def to_unit_interval(score: Tensor) -> Tensor:
    """An order-preserving map of any real scores into (0, 1), in float64.

    torchmetrics reads scores outside [0, 1] as logits and applies a sigmoid, which ties
    every energy above ~37; ½ + atan(s)/π keeps their order (and AUROC only sees order).
    """
    return 0.5 + torch.atan(score.double()) / torch.pi


class _Reconstructions:
    """``(model, batch) -> (ŷ, y)``, flat, computed once per batch for all metrics."""

    def __init__(self) -> None:
        self._key: Any = None
        self._pair: tuple[Tensor, Tensor] | None = None

    def __call__(self, model: Any, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        y = batch["y"]
        if self._key is not y or self._pair is None:
            flat = model.flat(y)
            self._key, self._pair = y, (model.reconstruct(flat), flat)
        return self._pair

    def images(self, model: Any, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        y_hat, y = self(model, batch)
        shape = (y.shape[0], *model.cfg.image_shape)
        return y_hat.reshape(shape), y.reshape(shape)


def _anomaly_inputs(classes: list[int]) -> Any:
    def inputs(model: Any, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        if "anomaly" in batch:
            target = batch["anomaly"]
        elif "label" in batch:
            target = torch.isin(batch["label"], torch.tensor(classes, device=batch["label"].device))
        else:
            raise ConfigError(f"auroc: the batch needs 'label' (to compare with anomaly_classes="
                              f"{classes}) or 'anomaly' (booleans); got keys {sorted(batch)}")
        return to_unit_interval(model.score(batch["y"])), target.long()

    return inputs


def family_metrics(model: Any) -> dict[str, Any]:
    """The metrics every model of the family reports (see the module docstring)."""
    cfg = model.cfg
    span = float(cfg.high - cfg.low)
    pairs = _Reconstructions()
    out: dict[str, Any] = {
        "mse": Adapter(torchmetrics.MeanSquaredError(), pairs),
        "psnr": Adapter(torchmetrics.image.PeakSignalNoiseRatio(data_range=span), pairs),
    }
    if cfg.image_shape:
        side = min(cfg.image_shape[1:])
        kernel = min(11, side if side % 2 else side - 1)
        out["ssim"] = Adapter(torchmetrics.image.StructuralSimilarityIndexMeasure(
            data_range=span, kernel_size=kernel, sigma=1.5 * kernel / 11), pairs.images)
    if cfg.anomaly_classes:
        out["auroc"] = Adapter(BinaryAUROC(), _anomaly_inputs(list(cfg.anomaly_classes)))
    return out


def anomaly_auroc(model: Any, y: Tensor, anomaly: Tensor) -> float:
    """AUROC of ``model.score(y)`` for telling ``anomaly`` (booleans ``[B]``) from the rest."""
    metric = BinaryAUROC()
    metric.update(to_unit_interval(model.score(y)), anomaly.long())
    return float(metric.compute())
