"""Model metrics: torchmetrics objects updated with ``(model, batch)``.

``Trainer.evaluate`` calls ``metric.update(model, batch)`` for every metric of
``model.metrics()`` under ``torch.no_grad()`` and returns ``metric.compute()``. Because they
are torchmetrics ``Metric`` objects, their state lives on the model's device and is reduced
across processes automatically when training is distributed.

- [`FreeEnergyMean`][ebmkit.metrics.FreeEnergyMean]: the mean free energy F(x, y) over the data.
- [`Adapter`][ebmkit.metrics.Adapter]: any torchmetrics metric, fed by a function of
  ``(model, batch)``.

Example:
    >>> import torchmetrics
    >>> from ebmkit.metrics import Adapter
    >>> mse = Adapter(torchmetrics.MeanSquaredError(),
    ...               lambda model, batch: (model.reconstruct(batch["y"]), batch["y"]))

This module imports torchmetrics (about 3 s); ``ebmkit.model`` imports it only when
``metrics()`` is first called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor
from torchmetrics import MeanMetric, Metric
from torchmetrics.wrappers.abstract import WrapperMetric

from .errors import ConfigError

__all__ = ["Adapter", "FreeEnergyMean"]


class FreeEnergyMean(MeanMetric):
    """The mean free energy F(x, y) over every sample seen (lower is better on held-out data).

    ``update(model, batch)`` adds ``model.free_energy(batch["y"], x=batch.get("x"))``.

    Args:
        nan_strategy: As for torchmetrics ``MeanMetric``; the default ``"disable"`` skips the
            per-batch NaN scan (a device sync), so a NaN energy shows up as a NaN mean.
        **kwargs: Passed to ``torchmetrics.Metric`` (e.g. ``sync_on_compute``).
    """

    higher_is_better = False

    def __init__(self, nan_strategy: str | float = "disable", **kwargs: Any) -> None:
        super().__init__(nan_strategy=nan_strategy, **kwargs)

    def update(self, model: Any, batch: Mapping[str, Tensor]) -> None:  # type: ignore[override]
        """Add the free energies of one batch."""
        if not isinstance(batch, Mapping) or "y" not in batch:
            got = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise ConfigError(f"FreeEnergyMean.update(model, batch): expected a batch dict with "
                              f"'y', got {got}")
        energies = model.free_energy(batch["y"], x=batch.get("x"))
        super().update(energies.detach().float())


class Adapter(WrapperMetric):
    """Feed any torchmetrics metric from ``(model, batch)``.

    ``update(model, batch)`` calls ``metric.update(*inputs(model, batch))``; ``compute``,
    ``reset`` and the cross-process reduction are the wrapped metric's own.

    Args:
        metric: A torchmetrics ``Metric``, e.g. ``torchmetrics.MeanSquaredError()``.
        inputs: ``inputs(model, batch) -> tuple`` of the wrapped metric's update arguments
            (a single tensor is taken as a 1-tuple).
        **kwargs: Passed to ``torchmetrics.Metric``.

    Example:
        >>> import torchmetrics
        >>> acc = Adapter(torchmetrics.Accuracy(task="multiclass", num_classes=10),
        ...               lambda model, batch: (model.predict(batch["y"]), batch["label"]))
    """

    def __init__(self, metric: Metric, inputs: Callable[[Any, Mapping[str, Tensor]], Any],
                 **kwargs: Any) -> None:
        if not isinstance(metric, Metric):
            raise ConfigError(f"Adapter: expected a torchmetrics.Metric, got "
                              f"{type(metric).__name__}")
        if not callable(inputs):
            raise ConfigError(f"Adapter: inputs must be callable as inputs(model, batch) -> tuple, "
                              f"got {type(inputs).__name__}")
        super().__init__(**kwargs)
        self.metric = metric
        self.inputs = inputs

    @property
    def higher_is_better(self) -> bool | None:  # type: ignore[override]
        return self.metric.higher_is_better

    def _args(self, model: Any, batch: Mapping[str, Tensor]) -> tuple[Any, ...]:
        args = self.inputs(model, batch)
        return args if isinstance(args, tuple) else (args,)

    def update(self, model: Any, batch: Mapping[str, Tensor]) -> None:  # type: ignore[override]
        """Update the wrapped metric with ``inputs(model, batch)``."""
        self.metric.update(*self._args(model, batch))

    def compute(self) -> Any:
        """The wrapped metric's value (reduced across processes when distributed)."""
        return self.metric.compute()

    def forward(self, model: Any, batch: Mapping[str, Tensor]) -> Any:  # type: ignore[override]
        """Update and return the wrapped metric's value on this batch alone."""
        return self.metric(*self._args(model, batch))

    def reset(self) -> None:
        """Reset the wrapped metric."""
        self.metric.reset()
        super().reset()

    def __repr__(self) -> str:
        name = getattr(self.inputs, "__name__", type(self.inputs).__name__)
        return f"Adapter({self.metric!r}, inputs={name})"
