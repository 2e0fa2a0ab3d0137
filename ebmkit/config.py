"""Option checks and config plumbing, written once for every family.

A family is its maths plus a ``@dataclass`` config: set ``config_class`` on the
[`EnergyModel`][ebmkit.model.EnergyModel] subclass, keep the config as ``self.cfg``, and the
base class supplies ``from_options`` (what the registry calls) and ``config()`` (what
``save`` writes). The checks below raise [`ConfigError`][ebmkit.errors.ConfigError]s that
name the option, what was expected and what came.

This module imports neither torch nor the registry: it is a leaf of the import graph.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

__all__ = ["at_least", "attention_dims", "image_shape", "number", "one_of"]


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
