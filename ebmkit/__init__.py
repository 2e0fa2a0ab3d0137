"""ebmkit: a plugin-based toolkit for energy-based models on PyTorch.

``import ebmkit`` is cheap: it imports neither torch nor any plugin. Each public name below
is loaded on first access (PEP 562), so ``ebmkit models`` answers before torch would have
finished importing, and ``ek.get_model(...)`` pays for torch only when a model is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import services as _services
from .hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

# The services the maths layer asks for by name, provided from above (docs/architecture.md).
_services.provide("save_model", "ebmkit.checkpoint:save_model")
_services.provide("default_metric", "ebmkit.metrics:FreeEnergyMean")
_services.provide("find_entry", "ebmkit.plugins:get_entry")

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "get_model": ("ebmkit.plugins", "get_model"),
    "list_models": ("ebmkit.plugins", "list_models"),
    "get_dataset": ("ebmkit.plugins", "get_dataset"),
    "list_datasets": ("ebmkit.plugins", "list_datasets"),
    "get_network": ("ebmkit.plugins", "get_network"),
    "list_networks": ("ebmkit.plugins", "list_networks"),
    "networks": ("ebmkit.networks", None),
    "get_plugins": ("ebmkit.plugins", "get_plugins"),
    "PluginInfo": ("ebmkit.plugins", "PluginInfo"),
    "EnergyModel": ("ebmkit.model", "EnergyModel"),
    "model": ("ebmkit.model", None),
    "load": ("ebmkit.checkpoint", "load"),
    "FreeEnergy": ("ebmkit.free_energy", "FreeEnergy"),
    "predict": ("ebmkit.free_energy", "predict"),
    "Trainer": ("ebmkit.train", "Trainer"),
    "DivergenceError": ("ebmkit.train", "DivergenceError"),
    "StepOutput": ("ebmkit.strategies", "StepOutput"),
    "energies": ("ebmkit.energy", None),
    "latent": ("ebmkit.latent", None),
    "samplers": ("ebmkit.samplers", None),
    "negatives": ("ebmkit.negatives", None),
    "losses": ("ebmkit.losses", None),
    "strategies": ("ebmkit.strategies", None),
    "metrics": ("ebmkit.metrics", None),
    "data": ("ebmkit.data", None),
    "errors": ("ebmkit.errors", None),
    "plugins": ("ebmkit.plugins", None),
    "viz": ("ebmkit.viz", None),
    "stats": ("ebmkit.stats", None),
    "config": ("ebmkit.config", None),
    "checkpoint": ("ebmkit.checkpoint", None),
    "train": ("ebmkit.train", None),
    "callbacks": ("ebmkit.callbacks", None),
    "loggers": ("ebmkit.loggers", None),
    "lightning": ("ebmkit.lightning", None),
}

__all__ = ["__version__", "hookimpl", "hookspec", *_LAZY]

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from . import checkpoint, config, data, errors, latent, losses, metrics, model, negatives, plugins, samplers, stats, strategies, train, viz
    from . import energy as energies
    from .checkpoint import load
    from .free_energy import FreeEnergy, predict
    from .model import EnergyModel
    from .strategies import StepOutput
    from .train import DivergenceError, Trainer
    from .plugins import (
        PluginInfo,
        get_dataset,
        get_model,
        get_network,
        get_plugins,
        list_datasets,
        list_models,
        list_networks,
    )


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ebmkit' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
