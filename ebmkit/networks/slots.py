"""Building networks by name and filling a family's slots, with the output shape checked.

Every network is checked once, when it is built: one forward pass on two zero samples of
``in_shape`` (no gradient, eval mode, restored afterwards; zeros so no random numbers are
drawn and seeded runs stay identical) must give ``[2, *out_shape]``. Under
``with torch.device("meta")`` the pass runs on meta tensors and allocates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .specs import is_module, parse_spec

__all__ = ["build_network", "build_slot", "check_output", "shape"]


def shape(value: Any, what: str) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints (a shape without the batch), else a ConfigError."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if (not isinstance(value, Sequence) or isinstance(value, str)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)):
        raise ConfigError(f"{what}: expected a shape, a tuple of positive ints without the "
                          f"batch dimension (e.g. (3, 32, 32) or (128,) or ()), got {value!r}")
    return tuple(value)


def _fmt(s: Sequence[int]) -> str:
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
    was_training = net.training
    y = torch.zeros((2, *in_shape), dtype=dtype, device=device)
    try:
        net.eval()
        with torch.no_grad():
            out = net(y)
    except Exception as exc:
        raise ConfigError(f"{what}: {type(net).__name__} failed on an input of shape "
                          f"{_fmt(in_shape)} (the slot's input): {type(exc).__name__}: "
                          f"{exc}") from exc
    finally:
        net.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{what}: {type(net).__name__} must return one tensor of shape "
                          f"{_fmt(out_shape)}, returned {type(out).__name__}")
    if tuple(out.shape) != (2, *out_shape):
        raise ConfigError(
            f"{what}: expected a network mapping {_fmt(in_shape)} to {_fmt(out_shape)}, got "
            f"{type(net).__name__} returning [B{''.join(f', {n}' for n in out.shape[1:])}]; "
            + ("reduce its output to one number per sample" if not out_shape else
               "change its output size, or pass a network built for this shape"))
    return net


def build_network(name: str, /, *, in_shape: Sequence[int], out_shape: Sequence[int],
                  what: str = "", **options: Any) -> nn.Module:
    """Build registered network ``name`` for these shapes and check its output shape."""
    from ..plugins import build

    in_shape = shape(in_shape, f"network {name!r}: in_shape")
    out_shape = shape(out_shape, f"network {name!r}: out_shape") if out_shape != () else ()
    net = build("networks", name, in_shape=in_shape, out_shape=out_shape, **options)
    return check_output(net, in_shape, out_shape, what=what or f"network {name!r}")


def build_slot(slot: str, spec: Any, *, in_shape: Sequence[int], out_shape: Sequence[int],
               default: str | Mapping[str, Any], who: str = "") -> nn.Module:
    """Build the network of one slot of a family from its spec.

    Args:
        slot: The slot's name, e.g. ``"encoder"`` (used in messages).
        spec: ``None`` (use ``default``), a registered name, ``{"name": NAME, **options}``,
            or an ``nn.Module`` (used as given, after the shape check).
        in_shape: What the slot's network receives, without the batch, e.g. ``(1, 8, 8)``.
        out_shape: What it must return, without the batch; ``()`` for one number per sample.
        default: The family's default, a name or a ``{"name": ..., **options}`` dict.
        who: The family's name, for messages.

    Returns:
        The network, checked to map ``[B, *in_shape]`` to ``[B, *out_shape]``.

    Raises:
        ConfigError: a malformed spec, an unknown option, or a network whose output shape
            does not fit the slot (expected vs got), naming the slot; an instance record read
            from a file (pass the module to ``ek.load``).
        UnknownNameError: a name no plugin registered.
    """
    what = f"{who}: slot {slot!r}" if who else f"slot {slot!r}"
    in_shape = shape(in_shape, f"{what}: in_shape")
    out_shape = shape(out_shape, f"{what}: out_shape") if tuple(out_shape) != () else ()
    if is_module(spec):
        return check_output(spec, in_shape, out_shape, what=what)
    name, options = parse_spec(slot, default if spec is None else spec, who=who)
    from ..plugins import build

    net = build("networks", name, in_shape=in_shape, out_shape=out_shape, **options)
    return check_output(net, in_shape, out_shape, what=f"{what} (network {name!r})")
