"""Training: [`Trainer`][ebmkit.train.trainer.Trainer] and
[`DivergenceError`][ebmkit.train.guard.DivergenceError].

- ``trainer``: the loop, devices and AMP;
- ``ema``: moving averages of a network's weights (``ema_``: target and averaged networks);
- ``schedule``: learning-rate schedules (constant, cosine, linear, warm-up);
- ``guard``: the divergence guard (snapshot, retry with a lower lr, restore before raising);
- ``parallel``: DDP, FSDP2 or the explicit all-reduce under ``torchrun``;
- ``rundir``: the run directory's checkpoint (an atomic commit per epoch) and resume;
- ``monitor``: per-epoch sums and the non-finite check, without per-step host syncs;
- ``batching``: batches from ``TensorData`` (fast path), a ``Dataset`` or a ``DataLoader``;
- ``distributed``: the process group under ``torchrun`` and gradient averaging;
- ``options``, ``state``: option checks, RNG capture and restore, checkpoint helpers.
"""

from __future__ import annotations

from .ema import ema_
from .guard import DivergenceError
from .state import seed_everything
from .trainer import Trainer

__all__ = ["DivergenceError", "Trainer", "ema_", "seed_everything"]
