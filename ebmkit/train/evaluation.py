"""``Trainer.evaluate``'s loop: every metric of ``model.metrics()`` over a data source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import parallel
from .state import flatten_metric

__all__ = ["run_metrics"]


def run_metrics(model: Any, source: Any, device: torch.device,
                step: nn.Module | None = None) -> dict[str, float]:
    """Update every metric of ``model.metrics()`` with ``(model, batch)`` under
    ``torch.no_grad()`` in eval mode, then compute them (torchmetrics reduces across ranks).

    Args:
        model: The model (its training mode is restored afterwards).
        source: The trainer's batch source (``source.epoch(0)`` yields the batches).
        device: Where the metrics live.
        step: FSDP's sharded step module: its weights are gathered once for the whole
            evaluation, so ranks holding different numbers of batches run no collective per
            batch; None otherwise.

    Returns:
        ``{name: value}``; a metric returning several values adds ``name/<key>`` entries.

    Raises:
        ConfigError: ``metrics()`` is not a dict of torchmetrics-like metrics.
    """
    metrics = model.metrics()
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"{type(model).__name__}.metrics() must return a dict of "
                          f"torchmetrics metrics, got {type(metrics).__name__}")
    if not metrics:
        return {}
    for name, metric in metrics.items():
        if not callable(getattr(metric, "update", None)) or not callable(
                getattr(metric, "compute", None)):
            raise ConfigError(f"metric {name!r} of {type(model).__name__}.metrics() is "
                              f"a {type(metric).__name__}; expected a torchmetrics Metric")
        if isinstance(metric, nn.Module):
            metric.to(device)
        metric.reset()
    was_training = model.training
    model.eval()
    try:
        with parallel.gathered(step):
            with torch.no_grad():
                for batch in source.epoch(0):
                    for metric in metrics.values():
                        metric.update(model, batch)
            out: dict[str, float] = {}
            for name, metric in metrics.items():  # (compute may call the model too)
                flatten_metric(name, metric.compute(), out)
        return out
    finally:
        model.train(was_training)
