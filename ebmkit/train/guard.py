"""The divergence guard: retry an epoch whose loss became non-finite, with a lower lr.

Functions of a [`Trainer`][ebmkit.train.trainer.Trainer]. At the start of each epoch the
guard snapshots what the epoch will change — parameters, buffers, optimizer state, the
grad scaler, the strategy's state (a replay buffer), the RNG states and the step — but only
when a retry is allowed (``max_retries > 0``). The snapshot stays on the training device
when it fits comfortably in the free memory there, and goes to the host otherwise.

When the last attempt also diverges, the epoch's starting state is put back before
[`DivergenceError`][ebmkit.train.guard.DivergenceError] is raised, so the model in hand
holds the last good weights, not the non-finite ones. With ``max_retries=0`` there is no
snapshot: the trainer restores the weights of the last checkpoint in ``checkpoint_dir``
when there is one, and says so in the error otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import EbmkitError
from .state import clone_tree, local_rng, set_local_rng, to_device

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["DivergenceError", "fail", "restore", "snapshot", "snapshot_device"]

log = logging.getLogger("ebmkit.train")

#: The snapshot stays on the accelerator only if it takes at most this share of its free memory.
_DEVICE_SHARE = 0.25


class DivergenceError(EbmkitError, RuntimeError):
    """Training produced a non-finite loss (or logged energy) and lowering the lr did not help.

    When it is raised, the model holds the weights from the start of the diverged epoch
    (``restored`` says whether that could be done).

    Attributes:
        epoch: The epoch (1-based) that diverged.
        step: The global step (1-based) of the first non-finite value in the last attempt.
        steps: That first bad step in every attempt, in order.
        lr: The learning rate of the last attempt.
        restored: Whether the last good weights were put back before raising.
    """

    def __init__(self, message: str, *, epoch: int, step: int, steps: list[int],
                 lr: float, restored: bool = False) -> None:
        super().__init__(message)
        self.epoch, self.step, self.steps, self.lr = epoch, step, steps, lr
        self.restored = restored


def snapshot_device(trainer: Trainer) -> torch.device:
    """Where a snapshot goes: the training device when it fits easily in its free memory."""
    device = trainer.device
    if device.type != "cuda":
        return device  # the CPU is the host; MPS shares its memory with it
    nbytes = sum(t.numel() * t.element_size() for t in trainer._state)
    free, _ = torch.cuda.mem_get_info(device)
    # The optimizer's state (Adam: two moments) doubles the parameters' bytes and more.
    return device if 3 * nbytes <= _DEVICE_SHARE * free else torch.device("cpu")


def snapshot(trainer: Trainer) -> dict[str, Any] | None:
    """The state to return to when an epoch diverges; None when no retry is allowed."""
    if trainer.max_retries == 0:
        return None
    where = snapshot_device(trainer)
    opt = trainer.optimizer
    non_blocking = where.type == "cpu" and trainer.device.type == "cuda"
    return {
        "tensors": [t.detach().to(where, copy=True, non_blocking=non_blocking)
                    for t in trainer._state],
        # moved first, then cloned (tensors already there would otherwise be aliased): a
        # snapshot headed for the host never doubles the optimizer state on the device
        "optimizer": (clone_tree(to_device(opt.state_dict(), where))
                      if opt is not None and opt.state else None),
        "lrs": [g["lr"] for g in opt.param_groups] if opt is not None else [],
        "base_lrs": list(trainer._base_lrs),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "strategy": clone_tree(to_device(trainer._strategy_state(), where)),
        "rng": local_rng(trainer.device, trainer._gen),
        "step": trainer.step,
    }


def restore(trainer: Trainer, snap: Mapping[str, Any], lr_factor: float) -> None:
    """Put ``snap`` back in place, with every learning rate multiplied by ``lr_factor``."""
    with torch.no_grad():
        for t, saved in zip(trainer._state, snap["tensors"]):
            t.copy_(saved)
    device = trainer.device
    opt = trainer.optimizer
    if opt is not None:
        if snap["optimizer"] is None:
            opt.state.clear()  # it had not stepped yet
        else:
            # load_state_dict may keep the given tensors: hand it a copy, keep the snapshot
            # clean (and on the optimizer's device: load_state_dict casts to the params').
            opt.load_state_dict(to_device(clone_tree(snap["optimizer"]), device))
        for group, lr in zip(opt.param_groups, snap["lrs"]):
            group["lr"] = lr * lr_factor
        trainer._base_lrs = [lr * lr_factor for lr in snap["base_lrs"]]  # what the schedule scales
    if trainer.scaler is not None:
        trainer.scaler.load_state_dict(snap["scaler"])
    trainer._load_strategy_state(to_device(clone_tree(snap["strategy"]), device))
    set_local_rng(snap["rng"], device, trainer._gen)
    trainer.step = snap["step"]


def _restore_from_checkpoint(trainer: Trainer) -> bool:
    """Without a snapshot: load the model weights of the last checkpoint, if there is one."""
    d = trainer.checkpoint_dir
    if d is None or not (d / "model.safetensors").exists() or trainer.epoch == 0:
        return False
    from .. import checkpoint as ckpt

    try:
        if trainer.mode == "fsdp":
            from .parallel import load_full

            load_full(trainer.model, ckpt.read_weights(d / "model.safetensors")[0])
        else:
            ckpt.load_weights(trainer.model, d / "model.safetensors")
    except Exception:  # noqa: BLE001 - a checkpoint we cannot read leaves the weights as they are
        return False
    return True


def fail(trainer: Trainer, snap: Mapping[str, Any] | None, bad_steps: list[int]) -> DivergenceError:
    """Put back the last good state and build the error to raise."""
    epoch, step = trainer.epoch + 1, bad_steps[-1]
    lr = trainer._current_lr()
    if snap is not None:
        restore(trainer, snap, 1.0)
        restored, how = True, "the weights from the start of the epoch were restored"
    elif _restore_from_checkpoint(trainer):
        restored, how = True, f"the weights of the checkpoint in {trainer.checkpoint_dir} were restored"
    else:
        restored = False
        how = ("no snapshot was kept (max_retries=0) and no checkpoint was written yet: the "
               "model's weights may be non-finite")
    where = ", ".join(str(s) for s in bad_steps)
    retried = (f"The epoch was restarted from its initial state {trainer.max_retries} time(s) "
               f"with the learning rate multiplied by {trainer.lr_backoff:g} each time (last lr "
               f"{lr:g}). " if trainer.max_retries else "")
    return DivergenceError(
        f"training diverged in epoch {epoch}: the loss or a logged energy became non-finite "
        f"first at step {step} (global step, 1-based; first bad step of each attempt: {where}). "
        f"{retried}{how[0].upper() + how[1:]}. Lower lr, set grad_clip, or check the energy "
        f"for overflow.", epoch=epoch, step=step, steps=bad_steps, lr=lr, restored=restored)


def nonfinite_params(params: list[Tensor]) -> Tensor | None:
    """A scalar that is finite exactly when every parameter is (no host sync)."""
    if not params:
        return None
    # NaN and infinity survive the sums; only absurdly large finite weights (sums past
    # 3e38) could overflow, and those have diverged in all but name.
    return torch.stack([p.detach().sum().float() for p in params]).sum()
