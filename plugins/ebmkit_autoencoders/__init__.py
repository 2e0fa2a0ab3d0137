"""Built-in plugin ``ebmkit_autoencoders``: autoencoders whose energy is the reconstruction cost.

``autoencoder`` (plain, tied, MLP or conv), ``autoencoder.denoising``, ``autoencoder.sparse``
(predictive sparse decomposition by default, Ng's with ``kind="ng"``),
``autoencoder.contractive`` and ``autoencoder.variational``. Registered through the public
hooks exactly as a third-party plugin would be; the model code is imported only when a
model is built.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek

_PKG = "ebmkit_autoencoders"


@ek.hookimpl
def register_models(register: Any) -> None:
    fast = {"data": "digits", "epochs": 8, "batch_size": 64, "lr": 5e-3}  # seconds each
    # Images of any size (`ebmkit train autoencoder --data FOLDER`): the digits recipe's rate
    # and batch, longer. On 3,000 Fashion-MNIST PNGs: 18.4 dB held-out PSNR after 26 epochs,
    # 15.8 dB after 10; batch 128 at lr 1e-3 gave identical blobs (10.9 dB, issue 20).
    images = {"images": {"epochs": 30, "batch_size": 64, "lr": 5e-3}}
    # Fashion-MNIST's 60,000 images (issue 21), chosen on the validation rows: reconstruction
    # error 0.65x PCA's (16 components) with batch 64 at lr 5e-3, 0.83x with batch 128 at
    # 1e-3 (3 epochs, seed 0); docs/quality.md has the test figures over 3 seeds.
    fashion = {"fashion-mnist": {"epochs": 3, "batch_size": 64, "lr": 5e-3}}
    register("autoencoder", ek.plugins.lazy(f"{_PKG}.models:Autoencoder.from_options",
                                            signature=f"{_PKG}.models:AutoencoderConfig"),
             summary="An autoencoder: E(y) = C(y, Dec(Enc(y))), MLP or conv, optionally tied",
             demo=fast, recipes={**images, **fashion})
    register("autoencoder.denoising",
             ek.plugins.lazy(f"{_PKG}.models:DenoisingAutoencoder.from_options",
                             signature=f"{_PKG}.models:DenoisingConfig"),
             summary="A denoising autoencoder: maps corrupted inputs ỹ ~ p(ỹ|y) back to y",
             demo=fast, recipes={**images, **fashion})
    register("autoencoder.sparse", ek.plugins.lazy(f"{_PKG}.psd:sparse_autoencoder",
                                                   signature=f"{_PKG}.models:SparseConfig"),
             summary="A sparse autoencoder: PSD, ½‖y − Wz‖² + λ|z|₁ + ½α‖z − Enc(y)‖², ž by "
                     "FISTA (kind='ng': Ng's KL firing-rate model)",
             # dictionary within 2% of scikit-learn's at the same λ (tests/test_psd.py)
             demo={**fast, "epochs": 30})
    register("autoencoder.contractive",
             ek.plugins.lazy(f"{_PKG}.models:ContractiveAutoencoder.from_options",
                             signature=f"{_PKG}.models:ContractiveConfig"),
             summary="A contractive autoencoder: penalty on the encoder Jacobian ‖∂h/∂y‖²_F",
             demo=fast)
    register("autoencoder.variational",
             ek.plugins.lazy(f"{_PKG}.variational:VariationalAutoencoder.from_options",
                             signature=f"{_PKG}.variational:VariationalConfig"),
             summary="A variational autoencoder: F(y) = −ELBO, sampling, IWAE log-likelihood",
             demo={**fast, "epochs": 10},
             # Fashion-MNIST (issue 21): the default continuous-Bernoulli decoder on
             # dequantised batches (x = (k + u)/256, so it is a density between grey levels).
             # Chosen on the validation rows (seed 0, IW-100 bound on 2,000 of them, lr 3e-3):
             # 4.34 bits/dim with batch 64, 4.39 with batch 128 (4.47 after 5 epochs); a
             # Gaussian decoder with a learned per-pixel σ: 6.90 after 5 epochs (PPCA with 8
             # latents: 7.47). About 12 CPU-s an epoch; docs/families/autoencoders.md has
             # the test figures over 3 seeds.
             recipes={"fashion-mnist": {"epochs": 10, "batch_size": 64, "lr": 3e-3,
                                        "options": {"dequantize": 256}}})


@ek.hookimpl
def register_networks(register: Any) -> None:
    """The family's default networks, reusable by any family (and any user) by name."""
    for name, summary in [
        ("mlp_encoder", "The autoencoders' MLP encoder: data → (K,), with a code activation"),
        ("mlp_decoder", "The autoencoders' MLP decoder: (K,) → data shape, mirroring the encoder"),
        ("conv_encoder", "The autoencoders' conv encoder: (C, H, W) → (K,), two stride-2 convs"),
        ("conv_decoder", "The autoencoders' conv decoder: (K,) → (C, H, W), two stride-2 "
                         "transposed convs"),
    ]:
        register(f"autoencoder.{name}", ek.plugins.lazy(f"{_PKG}.nets:{name}"), summary=summary)
