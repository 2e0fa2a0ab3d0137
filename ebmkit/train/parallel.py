"""How a run uses several processes: DDP, FSDP2 or the explicit gradient all-reduce.

Functions of a [`Trainer`][ebmkit.train.trainer.Trainer]; the choice is ``Trainer(distributed=...)``:

- ``"ddp"``: PyTorch's ``DistributedDataParallel`` wraps a small module whose forward is the
  whole training step, ``strategy(model, batch)``. Samplers and latent solvers run inside
  it on the unwrapped model (their ``autograd.grad`` calls touch no parameter gradient),
  and the reducer all-reduces gradients in buckets while ``backward`` runs. A step that
  leaves part of the model unused on some steps declares ``find_unused_parameters = True``
  (a strategy or a model attribute); it is off otherwise, as in PyTorch. Buffers are
  broadcast from rank 0 before every step.
- ``"fsdp"``: FSDP2's ``fully_shard`` on the same step module, so the step's forward
  gathers every parameter once, whatever the strategy calls first (``energy``, JEM's
  ``logits``, a submodule, a weight read directly), and ``backward`` reduce-scatters the
  gradients. A model may declare ``fsdp_units()`` (e.g. its transformer blocks) to be
  sharded as their own units inside, which its forward methods must then call as modules.
  Scalar parameters, which FSDP2 cannot shard, stay whole on every rank and their
  gradients are averaged by the explicit all-reduce. Evaluation gathers the parameters
  once ([`gathered`][ebmkit.train.parallel.gathered]), so ranks that hold different
  numbers of samples run no collective per batch.
- ``"explicit"``: after ``backward``, one coalesced all-reduce per dtype of the gradients
  ([`Dist.average_gradients`][ebmkit.train.distributed.Dist.average_gradients]); for
  strategies that step their own optimizers or change parameters in place.
- ``"auto"`` (the default): ``"ddp"`` when the strategy declares ``ddp = True``, else
  ``"explicit"``.

``"ddp"`` and ``"fsdp"`` are refused with a [`ConfigError`][ebmkit.errors.ConfigError]
naming the mode to use where they cannot be exact: a model with no parameter trained by
gradient (closed-form updates: K-means, Hopfield) and a strategy that declares
``explicit_only = True`` (it steps its own optimizers, e.g. the GAN's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from .distributed import Dist

__all__ = ["MODES", "Step", "convert_sync_batchnorm", "full_state_dict", "gathered", "grad_sync",
           "local_device", "resolve_mode", "scale_grads", "shard", "unwrap", "wrap_ddp"]

MODES = ("auto", "ddp", "fsdp", "explicit")


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


def resolve_mode(distributed: str, strategy: Any, dist: Dist,
                 roots: Sequence[nn.Module] = ()) -> str:
    """The path this run takes: ``"single"`` (one process), ``"ddp"``, ``"fsdp"`` or ``"explicit"``.

    Args:
        distributed: The trainer's ``distributed`` option.
        strategy: The run's strategy (its ``ddp`` and ``explicit_only`` declarations).
        dist: This process's place in the run.
        roots: The trained modules (model, and the strategy when it is a module).

    Raises:
        ConfigError: an unknown mode, or ``"ddp"``/``"fsdp"`` where they cannot be exact.
    """
    if distributed not in MODES:
        raise ConfigError(f"distributed must be one of {', '.join(map(repr, MODES))}, got "
                          f"{distributed!r}")
    if not dist.enabled:
        return "single"
    trainable = any(p.requires_grad for root in roots for p in root.parameters())
    if distributed in ("ddp", "fsdp"):
        name = type(roots[0]).__name__ if roots else "the model"
        if roots and not trainable:
            raise ConfigError(f"distributed={distributed!r}: {name} has no parameter trained "
                              f"by gradient (its updates are closed-form), so there is nothing "
                              f"for {distributed.upper()} to synchronise; use distributed="
                              f"'explicit' (what 'auto' picks)")
        if getattr(strategy, "explicit_only", False) is True:
            raise ConfigError(f"distributed={distributed!r}: strategy "
                              f"{type(strategy).__name__} steps its own optimizers or changes "
                              f"parameters in place (explicit_only = True), which "
                              f"{distributed.upper()} cannot synchronise; use distributed="
                              f"'explicit' (what 'auto' picks)")
    if distributed == "auto":
        return "ddp" if getattr(strategy, "ddp", False) is True and trainable else "explicit"
    return distributed


def find_unused(strategy: Any, model: nn.Module) -> bool:
    """Whether DDP must look for parameters a step leaves unused (the strategy's or the
    model's ``find_unused_parameters`` declaration; off by default, as in PyTorch)."""
    return any(getattr(o, "find_unused_parameters", False) is True for o in (strategy, model))


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
    return nn.parallel.DistributedDataParallel(
        step, device_ids=ids, find_unused_parameters=find_unused(strategy, model),
        broadcast_buffers=True)


def shard(model: nn.Module, strategy: Any, call_model: Any) -> tuple[nn.Module, list[nn.Parameter]]:
    """FSDP2 around the training step: ``fully_shard`` on the model's declared
    ``fsdp_units()`` (if any), then on the [`Step`][ebmkit.train.parallel.Step] module.

    Returns:
        ``(the sharded step module, the scalar parameters left whole)``: the caller averages
        the latter's gradients itself (FSDP2 cannot shard a 0-d tensor).
    """
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError as exc:  # pragma: no cover - torch < 2.6
        raise ConfigError("distributed='fsdp' needs torch >= 2.6 (torch.distributed.fsdp."
                          "fully_shard)") from exc
    step = Step(model, strategy, call_model)
    scalars = [p for p in step.parameters() if p.dim() == 0]
    ignored = set(scalars) or None
    units = getattr(model, "fsdp_units", None)
    for unit in (units() if callable(units) else ()):
        fully_shard(unit, ignored_params=ignored)
    fully_shard(step, ignored_params=ignored)
    return step, scalars


@contextlib.contextmanager
def gathered(step: nn.Module | None) -> Iterator[None]:
    """Inside: every FSDP2-sharded parameter under ``step`` whole on every rank (one
    all-gather per unit on entry; freed on exit), so the model's methods run with no
    collective per call. A no-op for ``None`` or an unsharded module."""
    units = [] if step is None else [m for m in step.modules()
                                     if callable(getattr(m, "unshard", None))
                                     and callable(getattr(m, "reshard", None))]
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()


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


def whole(t: Tensor) -> Tensor:
    """A DTensor's full value as a plain tensor (a collective, no host sync), e.g. the
    global gradient norm ``clip_grad_norm_`` returns under FSDP; any other tensor as is."""
    full = getattr(t, "full_tensor", None)
    return full() if callable(full) else t


def local_device(device: torch.device, dist: Dist) -> torch.device:
    """``device`` for this rank: under ``torchrun`` a ``cuda:N`` other than ``cuda:LOCAL_RANK``
    is refused (every rank would share GPU N).

    Raises:
        ConfigError: ``cuda:N`` with ``N`` not this process's ``LOCAL_RANK``.
    """
    if dist.enabled and device.type == "cuda" and device.index is not None \
            and device.index != dist.local_rank:
        raise ConfigError(f"device={str(device)!r} under torchrun: rank {dist.rank} has "
                          f"LOCAL_RANK={dist.local_rank}, so every rank would use GPU "
                          f"{device.index}; pass device='cuda' (or 'auto'): each rank then takes "
                          f"cuda:LOCAL_RANK")
    return device


def convert_sync_batchnorm(model: nn.Module) -> None:
    """Replace every BatchNorm of ``model`` (in place) with ebmkit's
    [`GlobalBatchNorm`][ebmkit.train.syncbn.GlobalBatchNorm], whose training statistics are
    those of the global batch (on any device and backend, unlike ``nn.SyncBatchNorm``), as
    Lightning's ``sync_batchnorm=True`` does. Weights and running statistics are kept."""
    from .syncbn import convert

    convert(model)


def grad_sync(step: nn.Module | None, mode: str) -> Any:
    """For gradient accumulation: a function ``(final: bool) -> None`` called before each
    micro-batch, which lets gradients meet across ranks only on the final one (DDP's
    ``require_backward_grad_sync``, what ``no_sync()`` sets; FSDP2's
    ``set_requires_gradient_sync``); a no-op on the other paths."""
    if step is None or mode not in ("ddp", "fsdp"):
        return lambda final: None
    if mode == "ddp":
        def ddp(final: bool) -> None:
            step.require_backward_grad_sync = final
        return ddp
    units = [m for m in step.modules() if callable(getattr(m, "set_requires_gradient_sync",
                                                            None))]

    def fsdp(final: bool) -> None:
        for unit in units:
            unit.set_requires_gradient_sync(final, recurse=False)
    return fsdp


def scale_grads(params: Sequence[nn.Parameter], factor: float) -> None:
    """Multiply every existing gradient by ``factor`` in place (one fused kernel per dtype)."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        torch._foreach_mul_(grads, factor)
