"""Built-in plugin ``ebmkit_gan``: GANs as energy-based models.

- ``gan.dcgan``: DCGAN (Radford et al. 2016); the discriminator is an energy
  E(y) = −logit D(y), the generator a learned producer of contrastive samples.
- ``gan.ebgan``: EBGAN (Zhao, Mathieu & LeCun 2016); the energy is an autoencoder's
  reconstruction error, trained with a margin and the pulling-away term.
- strategy ``gan.adversarial``: alternating two-player updates with two optimizers.
- losses ``gan.minimax``, ``gan.hinge``, ``gan.margin`` (the discriminator's side).

Samples are scored offline with the classifier FID/KID of
[`ebmkit_gan.scores`][ebmkit_gan.scores]. Registered through the public hooks exactly as a
third-party plugin would be; the model code is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek


@ek.hookimpl
def register_models(register: Any) -> None:
    register("gan.dcgan", ek.plugins.lazy("ebmkit_gan.models:DCGAN.from_options",
                                          signature="ebmkit_gan.models:DCGANConfig"),
             summary="DCGAN: the discriminator as an energy, the generator as contrastive sampler",
             demo={"data": "digits", "epochs": 30, "batch_size": 32, "tour": {"epochs": 10}},
             # about 165 CPU-s an epoch on one thread (57,000 images, batch 32): 2 epochs
             # (3,562 steps) keep the plain command near 6 CPU-minutes (issue 21: ≤ 20); the
             # 10-epoch fallback took about 1,600 CPU-s. Judged in bench/quality_gen.py.
             recipes={"fashion-mnist": {"epochs": 2, "batch_size": 32}})
    register("gan.ebgan", ek.plugins.lazy("ebmkit_gan.models:EBGAN.from_options",
                                          signature="ebmkit_gan.models:EBGANConfig"),
             summary="EBGAN: an autoencoder energy with a margin, and the pulling-away term",
             # per-sample energy, R1: classifier FID and class shares in tests/test_gan.py
             demo={"data": "digits", "epochs": 20, "batch_size": 32},
             # about 330 CPU-s an epoch on one thread (57,000 images, batch 32). Chosen on
             # the validation rows (classifier FID of 3,000 samples after one epoch, seed 0):
             # the defaults 41 (the run's own val score; four classes nearly absent), r1=10
             # 86, margin=0.05 4.1 (rarest class 1.3%), the paper's batch norm 2.7, both 1.7
             # (rarest 6.6%).
             # Judged in bench/quality_gen.py.
             recipes={"fashion-mnist": {"epochs": 1, "batch_size": 32,
                                        "options": {"d_norm": "batch", "margin": 0.05}}})


@ek.hookimpl
def register_networks(register: Any) -> None:
    """DCGAN's networks, reusable by any family's slots."""
    for part, summary in [
        ("generator", "DCGAN's generator: (Z,) → (C, S, S) in [0, 1], transposed convs, batch norm"),
        ("discriminator", "DCGAN's discriminator as an energy: (C, S, S) → [B], no batch norm"),
        ("encoder", "DCGAN's discriminator body as an encoder: (C, S, S) → (K,)"),
    ]:
        register(f"dcgan.{part}", ek.plugins.lazy(f"ebmkit_gan.networks:dcgan_{part}"),
                 summary=summary)


@ek.hookimpl
def register_strategies(register: Any) -> None:
    register("gan.adversarial", ek.plugins.lazy("ebmkit_gan.strategy:Adversarial"),
             summary="Alternating D/G updates with two optimizers and a D:G ratio")


@ek.hookimpl
def register_losses(register: Any) -> None:
    register("gan.minimax", ek.plugins.lazy("ebmkit_gan.losses:gan_minimax"),
             summary="−V(D, G) = softplus(E₊) + softplus(−E₋), D = σ(−E)")
    register("gan.hinge", ek.plugins.lazy("ebmkit_gan.losses:gan_hinge"),
             summary="[m + E₊]₊ + [m − E₋]₊")
    register("gan.margin", ek.plugins.lazy("ebmkit_gan.losses:gan_margin"),
             summary="EBGAN: E₊ + [m − E₋]₊")
