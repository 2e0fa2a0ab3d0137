"""The trainer's per-epoch plumbing, split out of ``trainer.py`` by idea: an epoch under the
divergence guard and the record it yields, the one-line report of that record, and the
slow-path check of a strategy's output. Each takes the ``Trainer`` as an argument and names
its type only under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from ..errors import ConfigError
from ..strategies import StepOutput
from . import guard

if TYPE_CHECKING:
    from .trainer import Trainer

log = logging.getLogger("ebmkit.train")

_RESERVED = frozenset({"epoch", "step", "loss", "lr", "time_s", "samples_per_s", "retries"})


def report(trainer: Trainer, record: Mapping[str, Any]) -> None:
    """Log an epoch's record on one line (and write it above the progress bar)."""
    show = trainer._show_progress()
    if not (show or log.isEnabledFor(logging.INFO)):
        return
    parts = [f"epoch {record['epoch']}/{trainer.epochs}", f"loss {record['loss']:.4g}"]
    parts += [f"{k} {v:.4g}" for k, v in record.items()
              if k.startswith("val_") and isinstance(v, float)]
    parts.append(f"{record['time_s']:.2f} s")
    line = ", ".join(parts)
    log.info(line)
    if show:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)


def epoch_with_guard(trainer: Trainer, source: Any) -> dict[str, Any]:
    """One epoch under the divergence guard; its record (loss, lr, timing, retries)."""
    # Snapshot at the start of the epoch; a diverged attempt replays the whole epoch
    # (same permutation, same RNG) with a lower lr, which keeps retries deterministic
    # for any data source, including a DataLoader that cannot be rewound.
    snap = guard.snapshot(trainer)  # None when no retry is allowed
    bad_steps: list[int] = []
    while True:
        t0 = time.perf_counter()
        monitor = trainer._run_epoch(source)
        elapsed = time.perf_counter() - t0
        if monitor.bad_step is None:
            break
        bad_steps.append(monitor.bad_step)
        epoch = trainer.epoch + 1
        if len(bad_steps) > trainer.max_retries:
            raise guard.fail(trainer, snap, bad_steps)  # the last good weights are back
        old = trainer._current_lr()
        assert snap is not None
        guard.restore(trainer, snap, trainer.lr_backoff ** len(bad_steps))
        log.warning("epoch %d diverged at step %d (non-finite loss or energy); restored the "
                    "start of the epoch, lr %.3g -> %.3g, retry %d/%d", epoch,
                    monitor.bad_step, old, trainer._current_lr(), len(bad_steps),
                    trainer.max_retries)
    trainer.epoch += 1
    if not monitor.counts or monitor.counts[0] == 0:
        raise ConfigError("the data yielded no batches; expected at least one sample")
    record: dict[str, Any] = {"epoch": trainer.epoch, "step": trainer.step,
                              "loss": monitor.running_loss()}
    for key, value in monitor.means().items():
        record[f"strategy/{key}" if key in _RESERVED else key] = value
    samples = monitor.counts[0]
    record.update({"lr": trainer._current_lr(), "time_s": elapsed,
                   "samples_per_s": samples / elapsed if elapsed > 0 else math.inf,
                   "retries": len(bad_steps)})
    return record


def bad_output(trainer: Trainer, out: Any) -> Tensor:
    """Say what is wrong with a strategy's output (the slow path of the loop's check)."""
    name = trainer._strategy_name()
    if not isinstance(out, StepOutput):
        raise ConfigError(f"strategy {name} returned a {type(out).__name__}; expected "
                          f"ek.StepOutput(loss, logs) with a scalar loss")
    loss = out.loss
    if not isinstance(loss, Tensor):
        raise ConfigError(f"strategy {name} returned a loss of type {type(loss).__name__}; "
                          f"expected a scalar tensor")
    if loss.dim() != 0:
        raise ConfigError(f"strategy {name} returned a loss of shape {list(loss.shape)}; "
                          f"expected a scalar (reduce over the batch, e.g. energies.mean())")
    if trainer.optimizer is not None and not loss.requires_grad:
        raise ConfigError(f"strategy {name} returned a loss that does not require grad: it "
                          f"is not connected to any trainable parameter (computed under "
                          f"no_grad, or detached?)")
    raise ConfigError(f"strategy {name} returned logs of type {type(out.logs).__name__}; "
                      f"expected a dict of scalar tensors")
