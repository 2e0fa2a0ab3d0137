"""Checking a network's shapes: the slot's contract, ``[B, *in_shape] -> [B, *out_shape]``.

Every network is checked once, when it is built: one forward pass on two zero samples of
``in_shape`` (no gradient, eval mode, restored afterwards; zeros so no random numbers are
drawn and seeded runs stay identical) must give ``[2, *out_shape]``. Under
``with torch.device("meta")`` the pass runs on meta tensors and allocates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["check_output", "shape", "shape_text"]


def shape(value: Any, what: str) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints (a shape without the batch), else a ConfigError."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if (not isinstance(value, Sequence) or isinstance(value, str)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)):
        raise ConfigError(f"{what}: expected a shape, a tuple of positive ints without the "
                          f"batch dimension (e.g. (3, 32, 32) or (128,) or ()), got {value!r}")
    return tuple(value)


def shape_text(s: Sequence[int]) -> str:
    """``(3, 8, 8)`` as ``"[B, 3, 8, 8]"``: a batch of that shape, as messages show it."""
    return "[B" + "".join(f", {n}" for n in s) + "]"


def _where(net: nn.Module) -> tuple[torch.device | None, torch.dtype]:
    for t in (*net.parameters(), *net.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return None, torch.get_default_dtype()


def check_output(net: nn.Module, in_shape: Sequence[int], out_shape: Sequence[int], *,
                 what: str) -> nn.Module:
    """Check that ``net`` maps ``[B, *in_shape]`` to ``[B, *out_shape]``; return it.

    Args:
        net: The network.
        in_shape: Its input shape without the batch.
        out_shape: The output shape it must have without the batch (``()`` for ``[B]``).
        what: How to name it in the message, e.g. ``"autoencoder: slot 'encoder'"``.

    Raises:
        ConfigError: not an ``nn.Module``, a forward pass that fails, or the wrong output
            shape (expected vs got).
    """
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{what}: expected an nn.Module, got {type(net).__name__}")
    device, dtype = _where(net)
    modes = [(m, m.training) for m in net.modules()]  # each submodule's own mode comes back
    y = torch.zeros((2, *in_shape), dtype=dtype, device=device)
    try:
        net.eval()
        with torch.no_grad():
            out = net(y)
    except Exception as exc:
        raise ConfigError(f"{what}: {type(net).__name__} failed on an input of shape "
                          f"{shape_text(in_shape)} (the slot's input): {type(exc).__name__}: "
                          f"{exc}") from exc
    finally:
        for m, training in modes:
            m.training = training
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{what}: {type(net).__name__} must return one tensor of shape "
                          f"{shape_text(out_shape)}, returned {type(out).__name__}")
    if tuple(out.shape) != (2, *out_shape):
        raise ConfigError(
            f"{what}: expected a network mapping {shape_text(in_shape)} to "
            f"{shape_text(out_shape)}, got "
            f"{type(net).__name__} returning [B{''.join(f', {n}' for n in out.shape[1:])}]; "
            + ("reduce its output to one number per sample" if not out_shape else
               "change its output size, or pass a network built for this shape"))
    return net
