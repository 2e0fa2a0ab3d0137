"""Built-in plugin ``ebmkit_sparse``: sparse coding as a latent-variable energy-based model.

- ``sparse.coding``: E(y, z) = ½‖y − W z‖² + λ|z|₁, ISTA/FISTA inference, dictionary learning.
- ``sparse.group``: the same with the group penalty λ Σ_g ‖z_g‖₂ (invariant pooled features).
- ``sparse.lista``: LISTA, a learned unrolled ISTA encoder (Gregor & LeCun 2010).
- ``sparse.drsae``: the discriminative recurrent sparse autoencoder (Rolfe & LeCun 2013).

Registered through the public hooks exactly as a third-party plugin would be; the model
code is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek


@ek.hookimpl
def register_models(register: Any) -> None:
    register("sparse.coding", ek.plugins.lazy("ebmkit_sparse.coding:SparseCoding.from_options",
                                              signature="ebmkit_sparse.coding:SparseCodingConfig"),
             summary="Sparse coding: ½‖y − Wz‖² + λ|z|₁, FISTA inference, dictionary learning",
             # within 2% of scikit-learn's MiniBatchDictionaryLearning (tests/test_sparse.py)
             demo={"data": "digits", "epochs": 10, "lr": 3e-2, "batch_size": 64,
                   "options": {"steps": 50}})
    register("sparse.group",
             ek.plugins.lazy("ebmkit_sparse.coding:GroupSparseCoding.from_options",
                             signature="ebmkit_sparse.coding:GroupSparseCodingConfig"),
             summary="Group sparse coding: ½‖y − Wz‖² + λΣ_g‖z_g‖₂, invariant pooled features",
             demo={"data": "digits", "epochs": 10, "lr": 3e-2, "batch_size": 64,
                   "options": {"steps": 50}})
    register("sparse.lista", ek.plugins.lazy("ebmkit_sparse.lista:LISTA.from_options",
                                             signature="ebmkit_sparse.lista:LISTAConfig"),
             summary="LISTA: a learned, unrolled ISTA encoder predicting optimal sparse codes",
             demo={"data": "digits", "epochs": 3, "lr": 1e-3, "options": {"fista_steps": 100}})
    register("sparse.drsae", ek.plugins.lazy("ebmkit_sparse.lista:DrSAE.from_options",
                                             signature="ebmkit_sparse.lista:DrSAEConfig"),
             summary="DrSAE: recurrent ReLU sparse autoencoder with a classifier on its codes",
             # test accuracy above raw-pixel logistic regression's (tests/test_sparse.py)
             demo={"data": "digits", "epochs": 40, "lr": 1e-3, "batch_size": 64,
                   "options": {"classification": 5.0}})
