"""Building networks by name and filling a family's slots, with the output shape checked
([`check_output`][ebmkit.networks.shapes.check_output])."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..config import is_module, parse_spec
from ..errors import ConfigError
from ..plugins import build
from .shapes import check_output, shape, shape_text

__all__ = ["build_slot"]


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
    out_shape = shape(out_shape, f"{what}: out_shape")
    if is_module(spec):
        return check_output(spec, in_shape, out_shape, what=what)
    name, options = parse_spec(slot, default if spec is None else spec, who=who)
    try:
        net = build("networks", name, in_shape=in_shape, out_shape=out_shape, **options)
    except ConfigError as exc:  # say which slot asked, and for which shapes
        raise ConfigError(f"{what} ({shape_text(in_shape)} → {shape_text(out_shape)}): "
                          f"{exc}") from exc
    return check_output(net, in_shape, out_shape, what=f"{what} (network {name!r})")
