"""A bridge to PyTorch Lightning: train any ebmkit model with ``lightning.Trainer``.

``pip install 'torch-ebmkit[lightning]'``. [`EnergyModule`][ebmkit.lightning.EnergyModule]
is a ``lightning.LightningModule`` whose ``training_step`` runs the model's strategy (the
same ``strategy(model, batch) -> StepOutput`` that ``ek.Trainer`` calls), so a lab that
trains everything with Lightning keeps its loggers, callbacks, precision plugins and
multi-GPU strategies, and gets the ebmkit energy, sampler and loss.

What is the same as ``ek.Trainer``: the step (strategy, loss, one optimizer over the model's
and a module strategy's trainable parameters, built by the same function with the same
fused kernel), and so, with the same seed and the same batches, the same weights (the tests
check one epoch of an autoencoder and of contrastive divergence with a replay buffer, bit
for bit). The strategy's state (persistent chains, queues) goes into Lightning's checkpoint.

What ``ek.Trainer`` does and this module leaves to Lightning: the data order (give a
``DataLoader``), the device, mixed precision, gradient clipping
(``Trainer(gradient_clip_val=...)``), learning-rate schedules, distributed training, and
checkpoints. What it does not do at all: ``ek.Trainer``'s divergence guard (an epoch
replayed at a lower rate when the loss turns non-finite; use Lightning's
``detect_anomaly`` or a callback), and the ``check_every`` window (Lightning's ``self.log``
reads values back at its own ``log_every_n_steps``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .model import EnergyModel, resolve_strategy
from .strategies import StepOutput

try:
    import lightning as L
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("ek.lightning needs PyTorch Lightning: pip install "
                      "'torch-ebmkit[lightning]'") from exc

__all__ = ["EnergyModule"]


class EnergyModule(L.LightningModule):
    """A ``LightningModule`` that trains an ebmkit model with its strategy.

    Args:
        model: The [`EnergyModel`][ebmkit.model.EnergyModel] to train.
        strategy: How to shape the energy; None uses ``model.default_strategy()``.
        lr: The learning rate of a named optimizer.
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (as ``ek.Trainer`` builds them) or a
            callable ``params -> Optimizer``.
        weight_decay: For the named optimizers.
        log_prefix: Prefix of the names given to ``self.log`` (``train/loss``,
            ``train/e_pos``, …).

    Example:
        >>> module = ek.lightning.EnergyModule(ek.get_model("autoencoder"), lr=5e-3)  # doctest: +SKIP
        >>> lightning.Trainer(max_epochs=5).fit(module, loader)                        # doctest: +SKIP
        >>> module.model.save("runs/ae/model")                                         # doctest: +SKIP
    """

    def __init__(self, model: EnergyModel, strategy: Any = None, lr: float = 1e-3,
                 optimizer: str | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] = "adam",
                 weight_decay: float = 0.0, log_prefix: str = "train/") -> None:
        super().__init__()
        if not isinstance(model, EnergyModel):
            raise ConfigError(f"EnergyModule needs an ek.EnergyModel, got {type(model).__name__}")
        strategy = resolve_strategy(model, strategy, "EnergyModule")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ConfigError(f"lr must be a number > 0, got {lr!r}")
        self.model = model
        # A strategy that is a module (a learned sampler) trains and moves with the model;
        # any other strategy is a plain attribute, as ek.Trainer holds it.
        if isinstance(strategy, nn.Module):
            self.strategy_module = strategy
        self.strategy = strategy
        self.lr, self.optimizer_spec, self.weight_decay = float(lr), optimizer, weight_decay
        self.log_prefix = log_prefix
        self._has_optimizer = any(p.requires_grad for p in self.parameters())
        # Closed-form updates (K-means' Lloyd step) have no gradient: step by hand.
        self.automatic_optimization = self._has_optimizer

    def forward(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """The free energy F(x, y), ``[B]``."""
        return self.model(y, x)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """One step of the strategy; logs the loss and the strategy's logs."""
        from .train.batching import to_batch

        out = self.strategy(self.model, to_batch(batch, self.device))
        if not isinstance(out, StepOutput) or not isinstance(out.loss, Tensor) \
                or out.loss.dim() != 0:
            raise ConfigError(f"strategy {type(self.strategy).__name__} returned "
                              f"{type(out).__name__}; expected ek.StepOutput(loss, logs) with a "
                              f"scalar loss")
        size = int(to_batch_size(batch))
        self.log(f"{self.log_prefix}loss", out.loss.detach(), prog_bar=True, batch_size=size)
        for key, value in (out.logs or {}).items():
            if isinstance(value, Tensor) and value.dim() == 0:
                self.log(f"{self.log_prefix}{key}", value.detach(), batch_size=size)
        return out.loss if self._has_optimizer else None

    def configure_optimizers(self) -> Any:
        """The optimizer ``ek.Trainer`` would build (None without trainable parameters)."""
        from .train.options import build_optimizer

        params = [p for p in self.parameters() if p.requires_grad]
        _, opt = build_optimizer(self.optimizer_spec, params, self.lr, self.weight_decay)
        return opt

    # The strategy's state (persistent chains, queues) rides in Lightning's checkpoint.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        fn = getattr(self.strategy, "state_dict", None)
        if callable(fn) and not isinstance(self.strategy, nn.Module):
            checkpoint["ebmkit_strategy"] = fn()

    def on_load_checkpoint(self, checkpoint: Mapping[str, Any]) -> None:
        fn = getattr(self.strategy, "load_state_dict", None)
        if callable(fn) and "ebmkit_strategy" in checkpoint:
            fn(checkpoint["ebmkit_strategy"])


def to_batch_size(batch: Any) -> int:
    """The number of samples in a batch of any form ``to_batch`` accepts."""
    if isinstance(batch, Mapping):
        batch = batch["y"]
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    return int(batch.shape[0])
