"""Built-in plugin ``ebmkit_attention``: attention and associative memory as energy minimisation.

``hopfield`` (the modern continuous Hopfield network: one update is softmax attention),
``hopfield.classical`` (the binary Hopfield network, the baseline) and
``attention.transformer`` (an energy transformer: a forward pass is gradient descent on one
energy). The reusable layers ``Hopfield``, ``HopfieldPooling`` and ``HopfieldLayer`` (each
an ``nn.Module`` with an ``energy()``) are importable from here; like the model code, they
are imported only when first used, so listing plugins stays cheap.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek

_PKG = "ebmkit_attention"
_LAYERS = {"Hopfield", "HopfieldPooling", "HopfieldLayer"}

__all__ = sorted(_LAYERS)


def __getattr__(name: str) -> Any:  # PEP 562: the layers load torch only when asked for
    if name in _LAYERS:
        from . import layers

        return getattr(layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@ek.hookimpl
def register_models(register: Any) -> None:
    # Storing is training here (the memory is the data): one epoch stores the training split.
    register("hopfield", ek.plugins.lazy(f"{_PKG}.hopfield:ModernHopfield.from_options",
                                         signature=f"{_PKG}.hopfield:ModernHopfieldConfig"),
             summary="Modern Hopfield network: log-sum-exp energy whose one update is softmax "
                     "attention; stores the data, retrieves from partial patterns",
             demo={"data": "digits", "epochs": 1, "batch_size": 256,
                   "options": {"normalize": True, "beta": 64.0}})
    register("hopfield.classical",
             ek.plugins.lazy(f"{_PKG}.classical:ClassicalHopfield.from_options",
                             signature=f"{_PKG}.classical:ClassicalHopfieldConfig"),
             summary="Binary Hopfield network (Hebbian or covariance rule, E = −½ sᵀWs): the "
                     "baseline, overloaded by more than a handful of digits",
             demo={"data": "digits", "epochs": 1, "batch_size": 256})
    register("attention.transformer",
             ek.plugins.lazy(f"{_PKG}.energy_transformer:EnergyTransformer.from_options",
                             signature=f"{_PKG}.energy_transformer:EnergyTransformerConfig"),
             summary="Energy transformer: tokens descend one attention + Hopfield energy; "
                     "completes masked image patches (NaN = hidden)",
             demo={"data": "digits", "epochs": 100, "batch_size": 64, "lr": 3e-3,
                   "options": {"memories": 256, "heads": 8}, "tour": {"epochs": 8}})
