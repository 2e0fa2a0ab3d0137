"""Option checks and config plumbing, written once for every family.

A family is its maths plus a ``@dataclass`` config: set ``config_class`` on the
[`EnergyModel`][ebmkit.model.EnergyModel] subclass, keep the config as ``self.cfg``, and the
base class supplies ``from_options`` (what the registry calls) and ``config()`` (what
``save`` writes). The checks below raise [`ConfigError`][ebmkit.errors.ConfigError]s that
name the option, what was expected and what came.

The networks' slot specs live here too (what a family's ``encoder=``, ``energy=``, …
option may hold, and the JSON record ``config()`` keeps of it): a family's config holds
them like any other option.

This module imports neither torch nor the registry: it is a leaf of the import graph.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

from .errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["INSTANCE_KEY", "NetworkSpec", "at_least", "attention_dims", "image_shape",
           "is_instance_record", "is_module", "number", "one_of", "parse_spec", "slot_record"]


def at_least(name: str, value: Any, minimum: int = 1, *, who: str = "") -> int:
    """``value`` if it is an int ``>= minimum`` (bools refused), else a ConfigError.

    Args:
        name: The option's name, used in the message.
        value: What the user gave.
        minimum: The smallest accepted value.
        who: Optional prefix for the message (e.g. the model's registry name).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        prefix = f"{who}: " if who else ""
        raise ConfigError(f"{prefix}{name} must be an integer >= {minimum}, got {value!r}")
    return value


def number(name: str, value: Any, *, low: float = -math.inf, high: float = math.inf,
           low_open: bool = False, high_open: bool = False, who: str = "") -> float:
    """``value`` as a float if it is a finite number in the given range, else a ConfigError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        lo = "" if low == -math.inf else (f"> {low:g}" if low_open else f">= {low:g}")
        hi = "" if high == math.inf else (f"< {high:g}" if high_open else f"<= {high:g}")
        rng = " and ".join(p for p in (lo, hi) if p)
        prefix = f"{who}: " if who else ""
        raise ConfigError(f"{prefix}{name} must be a number{' ' + rng if rng else ''}, "
                          f"got {value!r}")
    return float(value)


def one_of(name: str, value: Any, choices: tuple[Any, ...] | list[Any], *, who: str = "") -> Any:
    """``value`` if it is one of ``choices``, else a ConfigError listing them."""
    if value not in choices:
        prefix = f"{who}: " if who else ""
        raise ConfigError(f"{prefix}{name} must be one of {', '.join(map(repr, choices))}, "
                          f"got {value!r}")
    return value


def image_shape(value: Any, *, who: str = "", dim: int | None = None,
                name: str = "image_shape") -> list[int]:
    """``value`` as ``[C, H, W]`` of positive ints (and ``C·H·W == dim`` when ``dim`` is
    given), else a ConfigError saying what was expected. ``ebmkit train`` fills it from the
    data; families take their channels and size from it (RGB included)."""
    prefix = f"{who}: " if who else ""
    ok = (isinstance(value, (list, tuple)) and len(value) == 3
          and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in value))
    if not ok:
        raise ConfigError(f"{prefix}{name} must be [C, H, W] of positive ints (e.g. [1, 8, 8] "
                          f"or [3, 32, 32]), got {value!r}")
    shape = [int(s) for s in value]
    if dim is not None and math.prod(shape) != dim:
        raise ConfigError(f"{prefix}{name} {shape} has {math.prod(shape)} features but "
                          f"dim={dim}; expected C·H·W = dim")
    return shape


def attention_dims(n_layer: Any, n_head: Any, d_model: Any, *, who: str = "") -> None:
    """Check a transformer's ``n_layer``, ``n_head``, ``d_model`` (ints >= 1, ``d_model`` a
    multiple of ``n_head``); raise a ConfigError naming the option otherwise."""
    for name, value in (("n_layer", n_layer), ("n_head", n_head), ("d_model", d_model)):
        at_least(name, value, 1, who=who)
    if d_model % n_head:
        prefix = f"{who}: " if who else ""
        raise ConfigError(f"{prefix}d_model ({d_model}) must be a multiple of n_head ({n_head})")


# -- network slots: what a family's network option holds, and its record ---------------------
#: The key of the record that stands for an ``nn.Module`` passed from Python.
INSTANCE_KEY = "instance"

#: What a slot option accepts.
NetworkSpec = Union[None, str, Mapping[str, Any], "nn.Module"]


def is_module(value: Any) -> bool:
    """Whether ``value`` is an ``nn.Module`` (without importing torch when nobody has)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def is_instance_record(value: Any) -> bool:
    """Whether ``value`` is the record of a module passed from Python: ``{"instance": ...}``."""
    return isinstance(value, Mapping) and set(value) == {INSTANCE_KEY}


def _qualname(module: Any) -> str:
    cls = type(module)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def parse_spec(slot: str, spec: Any, *, who: str = "") -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a name or ``{"name": ..., **options}`` spec.

    Raises:
        ConfigError: anything else (an instance record asks for the module; see
            ``ek.load(p, slot=...)``).
    """
    prefix = f"{who}: " if who else ""
    if isinstance(spec, str):
        return spec, {}
    if is_instance_record(spec):
        shown = spec[INSTANCE_KEY]
        raise ConfigError(
            f"{prefix}slot {slot!r} held a {shown} passed from Python when the model was saved; "
            f"its weights are in the file but its code is not, so pass the module: "
            f"ek.load(p, {slot}={str(shown).rpartition('.')[2]}(...))")
    if isinstance(spec, Mapping):
        name = spec.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{prefix}slot {slot!r}: a dict spec needs a 'name' (a registered "
                              f"network, see `ebmkit networks`), got {dict(spec)!r}")
        options = {k: v for k, v in spec.items() if k != "name"}
        for reserved in ("in_shape", "out_shape"):
            if reserved in options:
                raise ConfigError(f"{prefix}slot {slot!r}: {reserved!r} is set by the family "
                                  f"(it says which shapes the slot needs); remove it from "
                                  f"{dict(spec)!r}")
        return name, options
    raise ConfigError(
        f"{prefix}slot {slot!r}: expected a registered network name (e.g. 'mlp'), a dict "
        f"{{'name': NAME, **options}}, an nn.Module or None (the default), got "
        f"{type(spec).__name__} {spec!r}")


def slot_record(spec: Any, *, slot: str = "network") -> Any:
    """The JSON-able record of a slot's spec, for ``config()`` and ``model.json``.

    ``None``, a name and ``{"name": ..., **options}`` are kept (options must be JSON-able);
    an ``nn.Module`` becomes ``{"instance": "package.ClassName"}``.

    Raises:
        ConfigError: a spec of another type, or options that JSON cannot hold.
    """
    if spec is None or isinstance(spec, str) or is_instance_record(spec):
        return spec if not isinstance(spec, Mapping) else dict(spec)
    if is_module(spec):
        return {INSTANCE_KEY: _qualname(spec)}
    parse_spec(slot, spec)  # raises for anything but a proper dict
    record = dict(spec)
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"slot {slot!r}: the options of {record!r} must be JSON-able "
                          f"(numbers, strings, lists, dicts) to be saved: {exc}") from exc
    return record
