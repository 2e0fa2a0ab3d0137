"""What the lower layers ask of the upper ones, without importing them.

The maths layer (energies, solvers, samplers, losses, strategies, ``EnergyModel``) imports
neither the plugin registry, nor checkpoints, nor metrics (``docs/architecture.md``). Where
it needs one of their services — ``model.save(p)`` writes files, a strategy names a loss
that a plugin registered, ``model.metrics()`` returns the default metric — it asks this
module by service name, and the package's top (``ebmkit/__init__.py``) says which
``module:attribute`` provides it. A leaf: imports nothing from ebmkit.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["get", "provide"]

_PROVIDERS: dict[str, str] = {}


def provide(name: str, target: str) -> None:
    """Declare that ``"module:attribute"`` provides the service ``name``."""
    if ":" not in target:
        raise ValueError(f"services.provide: expected 'module:attribute', got {target!r}")
    _PROVIDERS[name] = target


def get(name: str) -> Any:
    """The object providing the service ``name`` (its module is imported now)."""
    try:
        module, _, attr = _PROVIDERS[name].partition(":")
    except KeyError:
        raise LookupError(f"no provider for the ebmkit service {name!r}; known: "
                          f"{', '.join(sorted(_PROVIDERS)) or 'none'}") from None
    return getattr(importlib.import_module(module), attr)
