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
             # Two descent steps of a larger initial step (0.1), batch 32, a cosine rate:
             # chosen on a validation split of the training digits (docs/families/attention.md),
             # about 2 CPU-minutes on one thread, +3 dB over the mean fill on the test digits.
             demo={"data": "digits", "epochs": 120, "batch_size": 32, "lr": 5e-3,
                   "schedule": "cosine", "warmup": 50,
                   "options": {"memories": 256, "heads": 8, "steps": 2, "step_size": 0.1},
                   "tour": {"epochs": 8}},
             # 4×4 patches (49 tokens of a 28×28 image), otherwise the digits recipe's model
             recipes={"fashion-mnist": {"epochs": 1, "batch_size": 64, "lr": 5e-3,
                                        "schedule": "cosine", "warmup": 50,
                                        "options": {"patch_size": 4, "memories": 256, "heads": 8,
                                                    "steps": 2, "step_size": 0.1}}})
