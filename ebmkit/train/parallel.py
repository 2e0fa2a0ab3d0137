"""How a run uses several processes: DDP, FSDP2 or the explicit gradient all-reduce.

Functions of a [`Trainer`][ebmkit.train.trainer.Trainer]; the choice is ``Trainer(distributed=...)``:

- ``"ddp"``: PyTorch's ``DistributedDataParallel`` wraps a small module whose forward is the
  whole training step, ``strategy(model, batch)``. Samplers and latent solvers run inside
  it on the unwrapped model (their ``autograd.grad`` calls touch no parameter gradient),
  and the reducer all-reduces gradients in buckets while ``backward`` runs.
  ``find_unused_parameters=True``: a step may use part of the model; a parameter unused on
  every rank keeps ``grad = None``. Buffers are broadcast from rank 0 before every step.
- ``"fsdp"``: FSDP2's ``fully_shard`` on each child module of the model and on the model;
  the model's methods (``energy``, ``free_energy``, ``infer``, and the family's
  ``fsdp_methods``) gather the parameters when called. For models too large for one device.
- ``"explicit"``: after ``backward``, one coalesced all-reduce per dtype of the gradients
  ([`Dist.average_gradients`][ebmkit.train.distributed.Dist.average_gradients]); for
  strategies that step their own optimizers or change parameters in place.
- ``"auto"`` (the default): ``"ddp"`` when the strategy declares ``ddp = True``, else
  ``"explicit"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from .distributed import Dist

__all__ = ["MODES", "Step", "full_state_dict", "resolve_mode", "shard", "unwrap", "wrap_ddp"]

MODES = ("auto", "ddp", "fsdp", "explicit")
#: Methods of a model that gather FSDP2-sharded parameters when called (besides forward).
FSDP_METHODS = ("energy", "free_energy", "infer", "predict", "score", "reconstruct", "encode",
                "decode")


def unwrap(model: Any) -> tuple[Any, Any]:
    """``(the model, what the strategy calls)`` for a plain, DDP-wrapped or compiled model.

    A ``DistributedDataParallel`` wrapper is removed (the trainer wraps the step itself); a
    ``torch.compile``d model is handed to the strategy as is (its forward is compiled) and
    unwrapped for everything else (saving, metrics, parameters).
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    orig = getattr(model, "_orig_mod", None)  # torch._dynamo.eval_frame.OptimizedModule
    if isinstance(orig, nn.Module):
        return orig, model
    return model, model


def resolve_mode(distributed: str, strategy: Any, dist: Dist) -> str:
    """The path this run takes: ``"single"`` (one process), ``"ddp"``, ``"fsdp"`` or ``"explicit"``."""
    if distributed not in MODES:
        raise ConfigError(f"distributed must be one of {', '.join(map(repr, MODES))}, got "
                          f"{distributed!r}")
    if not dist.enabled:
        return "single"
    if distributed == "auto":
        return "ddp" if getattr(strategy, "ddp", False) is True else "explicit"
    return distributed


class Step(nn.Module):
    """The training step as a module, so that DDP can wrap it: ``forward(batch)`` runs
    ``strategy(model, batch)`` and returns ``(loss or None, the strategy's output)``."""

    def __init__(self, model: nn.Module, strategy: Any, call_model: Any) -> None:
        super().__init__()
        self.model = model  # registered: its parameters and buffers are DDP's
        if isinstance(strategy, nn.Module):
            self.strategy = strategy
        else:
            self.__dict__["strategy"] = strategy  # a plain object: not a submodule
        self.__dict__["call_model"] = call_model

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor | None, Any]:
        out = self.strategy(self.call_model, batch)
        loss = getattr(out, "loss", None)
        return (loss if isinstance(loss, Tensor) else None), out


def wrap_ddp(model: nn.Module, strategy: Any, call_model: Any,
             device: torch.device) -> nn.parallel.DistributedDataParallel:
    """``DistributedDataParallel`` around the training step (rank 0's weights and buffers
    are broadcast to every rank here)."""
    step = Step(model, strategy, call_model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=ids, find_unused_parameters=True,
                                               broadcast_buffers=True)


def shard(model: nn.Module) -> None:
    """FSDP2: ``fully_shard`` every child module, then the model; methods gather on call."""
    try:
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method
    except ImportError as exc:  # pragma: no cover - torch < 2.6
        raise ConfigError("distributed='fsdp' needs torch >= 2.6 (torch.distributed.fsdp."
                          "fully_shard)") from exc
    units = getattr(model, "fsdp_units", None)
    children = list(units()) if callable(units) else [
        m for m in model.children() if any(True for _ in m.parameters())]
    for child in children:
        fully_shard(child)
    fully_shard(model)
    for name in (*FSDP_METHODS, *getattr(model, "fsdp_methods", ())):
        if callable(getattr(type(model), name, None)):
            register_fsdp_forward_method(model, name)


def full_state_dict(model: nn.Module, mode: str) -> dict[str, Tensor] | None:
    """The unsharded state dict (a collective under FSDP; the model's own otherwise).

    Returns None on the ranks other than 0 under FSDP (they hold no copy)."""
    if mode != "fsdp":
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                              cpu_offload=True))
    return sd or None


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """FSDP: the optimizer's full state, keyed by parameter name, on rank 0 (a collective;
    ``{}`` on the other ranks). Plain tensors and numbers: ``weights_only`` loads it."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(
        full_state_dict=True, cpu_offload=True))


def load_full(model: nn.Module, weights: dict[str, Tensor],
              optimizer: torch.optim.Optimizer | None = None,
              optimizer_state: dict[str, Any] | None = None) -> None:
    """FSDP: shard rank 0's full weights (and optimizer state) onto every rank (a collective)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, weights, options=options)
    if optimizer is not None and optimizer_state is not None:
        # not strict: a parameter that never had a gradient has no state, as on one process
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=StateDictOptions(
            full_state_dict=True, broadcast_from_rank0=True, strict=False))


def local(t: Tensor) -> Tensor:
    """A DTensor's local shard; any other tensor as is."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t
