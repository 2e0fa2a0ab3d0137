"""Checking and resolving the trainer's options: numbers, device, mixed precision, optimizer."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..config import at_least, number
from ..errors import ConfigError

__all__ = ["OPTIMIZERS", "build_optimizer", "number", "positive_int", "resolve_amp",
           "resolve_device"]

#: The optimizers ``Trainer(optimizer=...)`` knows by name.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Alias of [`ebmkit.config.at_least`][ebmkit.config.at_least], kept for old callers."""
    return at_least(name, value, minimum)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA, else MPS, else CPU; any other value must name an available device."""
    if isinstance(device, str) and device.strip().lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; "
                          f"got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(dev)!r} was asked for but CUDA is not available "
                          f"(torch {torch.__version__}); use device='auto' or 'cpu'")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device 'mps' was asked for but MPS is not available; use 'auto'")
    return dev


def resolve_amp(amp: bool | str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for full precision.

    ``True`` means bf16 where the CUDA device supports it, else fp16; off CUDA it has no
    effect (with a warning). ``"bf16"`` / ``"fp16"`` autocast on any device.
    """
    if amp is None or amp is False or (isinstance(amp, str) and amp.lower() in ("off", "none", "")):
        return None
    if amp is True:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        warnings.warn(f"amp=True has no effect on {device.type}: mixed precision is on by "
                      f"default only on CUDA; pass amp='bf16' to autocast on {device.type} anyway",
                      stacklevel=3)
        return None
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, "half": torch.float16}
    if isinstance(amp, torch.dtype) and amp in (torch.bfloat16, torch.float16):
        return amp
    if isinstance(amp, str) and amp.lower() in names:
        return names[amp.lower()]
    raise ConfigError(f"amp must be False, True, 'bf16' or 'fp16'; got {amp!r}")


def build_optimizer(optimizer: Any, params: Sequence[nn.Parameter], lr: float,
                    weight_decay: float) -> tuple[str, torch.optim.Optimizer | None]:
    """``(name, optimizer)``; the optimizer is None when there is nothing to optimise.

    Args:
        optimizer: A name from ``OPTIMIZERS`` (any case: "adam", "adamw", "sgd"), built
            with ``fused=True`` where PyTorch has a fused kernel for the parameters' device
            and dtype (CPU and CUDA floating point) and without it elsewhere; or a callable
            ``params -> torch.optim.Optimizer`` (which sets its own lr).
        params: The trainable parameters.
        lr: Learning rate for a named optimizer.
        weight_decay: Weight decay for a named optimizer.
    """
    if isinstance(optimizer, str):
        key = optimizer.strip().lower()
        if key not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {optimizer!r}; expected one of "
                              f"{', '.join(repr(k) for k in OPTIMIZERS)} or a callable "
                              f"params -> torch.optim.Optimizer")
        if not params:
            return key, None  # nothing to optimise: the strategy updates buffers itself
        cls = OPTIMIZERS[key]
        try:
            # PyTorch's fused kernel updates every parameter in one call: about 1.4× faster
            # than the per-tensor loop `torch.optim` uses by default on the CPU (bench/).
            return key, cls(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device/dtype
            return key, cls(params, lr=lr, weight_decay=weight_decay)
    if callable(optimizer):
        name = getattr(optimizer, "__qualname__", None) or type(optimizer).__name__
        if not params:
            return name, None
        opt = optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ConfigError(f"optimizer callable {name} returned a {type(opt).__name__}; "
                              f"expected a torch.optim.Optimizer")
        return name, opt
    raise ConfigError(f"optimizer must be 'adam', 'adamw', 'sgd' or a callable params -> "
                      f"Optimizer; got {type(optimizer).__name__}")


def gpu_switches(model: nn.Module, device: torch.device, *, tf32: bool | None,
                 channels_last: bool, deterministic: bool) -> None:
    """Apply the trainer's GPU switches (process-wide torch settings, and the model's
    memory format).

    Args:
        model: The model; with ``channels_last`` its 4-D parameters and buffers take the
            channels-last memory format (convolutions then run NHWC, faster on tensor cores).
        device: The run's device (TF32 and cuDNN matter only on CUDA; set anyway).
        tf32: True: float32 matrix products and convolutions may use TF32 (~10 mantissa
            bits, much faster on Ampere and later); False: full float32; None: leave
            PyTorch's settings as they are.
        channels_last: Convert the model to the channels-last memory format.
        deterministic: ``torch.use_deterministic_algorithms(True, warn_only=True)`` and
            ``cudnn.benchmark = False`` (benchmarking picks kernels by timing, which can
            differ from run to run); otherwise cuDNN's benchmark flag is left as it is.
    """
    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        torch.backends.cudnn.allow_tf32 = bool(tf32)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    if channels_last:
        model.to(memory_format=torch.channels_last)
