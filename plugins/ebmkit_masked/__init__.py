"""Built-in plugin ``ebmkit_masked``: masked models read as energy-based models.

``masked.lm`` (a BERT-style masked language model on token ids; E = NLL of the hidden
tokens) and ``masked.image`` (masked-patch modelling of images; E = squared error on the
hidden pixels). Registered through the public hooks exactly as a third-party plugin would
be; the model code is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek

_PKG = "ebmkit_masked"


@ek.hookimpl
def register_models(register: Any) -> None:
    register("masked.lm", ek.plugins.lazy(f"{_PKG}.lm:MaskedLM.from_options",
                                          signature=f"{_PKG}.lm:MaskedLMConfig"),
             summary="A BERT-style masked language model: E(x, y) = −Σ_{x_i=<mask>} log p(y_i | x)",
             # The full recipe: ~5 min on 2 CPU cores; the tour trains a shorter run.
             demo={"data": "text", "epochs": 12, "batch_size": 32, "lr": 2e-3,
                   "tour": {"epochs": 2}})
    register("masked.image", ek.plugins.lazy(f"{_PKG}.image:MaskedImage.from_options",
                                             signature=f"{_PKG}.image:MaskedImageConfig"),
             summary="Masked-patch image modelling: E(x, y) = Σ_{x_i = NaN} (ŷ_i(x) − y_i)²",
             demo={"data": "digits", "epochs": 80, "batch_size": 64, "lr": 3e-3,
                   "tour": {"epochs": 30}},
             # one epoch of 60,000 images: +3.6 dB over the mean fill (docs/quality.md)
             recipes={"fashion-mnist": {"epochs": 1, "batch_size": 128, "lr": 1e-3}})


@ek.hookimpl
def register_networks(register: Any) -> None:
    register("masked.patch_transformer", ek.plugins.lazy(f"{_PKG}.image:patch_transformer"),
             summary="masked.image's net: a transformer over image patches, image → image")
