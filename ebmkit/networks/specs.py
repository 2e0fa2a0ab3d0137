"""Slot specs: what a family's network option may hold, and how it is recorded.

A spec is ``None`` (the family's default), a registered network name, a dict
``{"name": NAME, **options}``, or an ``nn.Module`` instance (Python only). Recording one for
``config()``/``model.json`` keeps names and options as they are and replaces an instance by
``{"instance": "package.ClassName"}``: the class name is shown in messages and never
imported, so loading a file cannot run code named in it.

Imports neither torch nor the registry (``ebmkit models -v`` reads these without torch).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

from ..errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["INSTANCE_KEY", "NetworkSpec", "is_instance_record", "is_module", "parse_spec",
           "slot_record"]

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
    return f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__


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
