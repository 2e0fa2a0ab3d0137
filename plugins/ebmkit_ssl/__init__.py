"""Built-in plugin ``ebmkit_ssl``: joint-embedding self-supervised learning as energy shaping.

E(x, y) is the distance between the embeddings of two views of one input; the seven methods
differ in how they keep it from being flat. Contrastive: ``ssl.simclr``, ``ssl.moco``,
``ssl.pirl``, ``ssl.swav``. Regularised: ``ssl.byol``, ``ssl.barlow``, ``ssl.vicreg``.
Registered through the public hooks as a third-party plugin would be; model code is imported
only when a model is built.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek

_PKG = "ebmkit_ssl"

# name -> (module:Class, config class, summary, recipe)
_MODELS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "ssl.simclr": (
        "simclr:SimCLR", "simclr:SimCLRConfig",
        "SimCLR: NT-Xent, the InfoNCE free energy of a view pair among the batch's other views",
        {"data": "digits", "epochs": 60, "batch_size": 256, "lr": 2e-3,
         "tour": {"epochs": 10}}),
    "ssl.moco": (
        "moco:MoCo", "moco:MoCoConfig",
        "MoCo: InfoNCE against a queue of keys from a momentum encoder",
        {"data": "digits", "epochs": 60, "batch_size": 256, "lr": 2e-3,
         "tour": {"epochs": 10}}),
    "ssl.pirl": (
        "pirl:PIRL", "pirl:PIRLConfig",
        "PIRL: InfoNCE invariance to a jigsaw shuffle, negatives from a memory bank",
        {"data": "digits", "epochs": 60, "batch_size": 256, "lr": 2e-3,
         "tour": {"epochs": 10}}),
    "ssl.swav": (
        "swav:SwAV", "swav:SwAVConfig",
        "SwAV: swapped prediction of Sinkhorn cluster codes over learned prototypes",
        {"data": "digits", "epochs": 60, "batch_size": 256, "lr": 2e-3,
         "tour": {"epochs": 10}}),
    "ssl.byol": (
        "byol:BYOL", "byol:BYOLConfig",
        "BYOL: an online predictor regresses an EMA target's embedding; no negatives",
        {"data": "digits", "epochs": 60, "batch_size": 256, "lr": 2e-3,
         "tour": {"epochs": 10}}),
    "ssl.barlow": (
        "barlow:BarlowTwins", "barlow:BarlowTwinsConfig",
        "Barlow Twins: the views' cross-correlation pulled to the identity",
        {"data": "digits", "epochs": 60, "batch_size": 256, "lr": 2e-3,
         "tour": {"epochs": 10}}),
    "ssl.vicreg": (
        "vicreg:VICReg", "vicreg:VICRegConfig",
        "VICReg: invariance energy with variance and covariance regularisers",
        {"data": "digits", "epochs": 60, "batch_size": 256, "lr": 2e-3,
         "tour": {"epochs": 10}}),
}


@ek.hookimpl
def register_models(register: Any) -> None:
    for name, (target, config, summary, recipe) in _MODELS.items():
        register(name, ek.plugins.lazy(f"{_PKG}.{target}.from_options",
                                       signature=f"{_PKG}.{config}"),
                 summary=summary, demo=recipe)
