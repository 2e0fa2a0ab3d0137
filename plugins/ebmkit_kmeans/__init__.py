"""Built-in plugin ``ebmkit_kmeans``: K-means as a latent-variable energy-based model.

``kmeans``: E(y, z) = ‖y − W z‖² with z one-hot over K prototypes, exhaustive inference,
hard (F∞) or soft (F_β) free energy, Lloyd or gradient training, and scikit-learn's
interface (``fit``, ``predict``, ``transform``, ``inertia_``, ``cluster_centers_``).
Registered through the public hooks exactly as a third-party plugin would be; the model
code is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek


@ek.hookimpl
def register_models(register: Any) -> None:
    register("kmeans", ek.plugins.lazy("ebmkit_kmeans.models:KMeans.from_options",
                                       signature="ebmkit_kmeans.models:KMeansConfig"),
             summary="K-means: one-hot latent over K prototypes, exhaustive inference, Lloyd "
                     "or gradient training, scikit-learn's interface",
             demo={"data": "digits", "epochs": 3, "batch_size": 256, "options": {"k": 10}},
             # 10 k-means++ restarts, the lowest inertia kept (scikit-learn's former default):
             # one restart's NMI varies by ±0.04 with the seed on Fashion-MNIST
             recipes={"fashion-mnist": {"epochs": 1, "options": {"k": 10, "n_init": 10}}})
