"""Each family computes exactly what its docs say (issue 14's "honest maths").

Fast checks against hand-written references: the autoencoder's cross-entropy minus its floor,
the continuous Bernoulli VAE's normalised density, LISTA's layer count, the KL weight's name,
EBGAN's per-pixel margin.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import ebmkit as ek

pytestmark = pytest.mark.usefixtures("one_thread")


@torch.no_grad()
def test_autoencoder_bce_energy_is_the_cross_entropy_minus_its_floor():
    torch.manual_seed(0)
    model = ek.get_model("autoencoder", code=4, hidden=8)
    y = torch.rand(5, 64)
    y[0] = (y[0] > 0.5).float()  # a binary sample: the floor H(y) is 0
    logits = model.decoder(model.encode(y))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(1)
    entropy = -(y * y.log() + (1 - y) * (1 - y).log()).nan_to_num(0.0).sum(1)
    torch.testing.assert_close(model.energy(y), bce - entropy)
    assert float(model.energy(y)[0]) == pytest.approx(float(bce[0]), abs=1e-4)
    # the composable term sums to the same energy, and it is zero at a perfect reconstruction
    z = model.encode(y)
    torch.testing.assert_close(model.reconstruction(y, z=z), model.energy(y, z=z))
    torch.testing.assert_close(sum(model.reconstruction.terms(y, z=z).values()), model.energy(y, z=z))
    perfect = ek.energies.Reconstruction(lambda z: torch.logit(y.clamp(1e-6, 1 - 1e-6)), "bce") \
        + ek.energies.Lambda(lambda y, x, z: -entropy, "entropy")
    assert perfect(y, z=z).abs().max() < 1e-3


def test_vae_default_likelihood_is_a_normalised_density_on_grey_levels():
    from ebmkit_autoencoders.variational import cb_log_norm, cb_mean

    model = ek.get_model("autoencoder.variational", code=2, hidden=8)
    assert model.likelihood == "continuous_bernoulli"
    # ∫₀¹ p(y | λ) dy = 1 for every logit, by the midpoint rule (also near η = 0)
    eta = torch.tensor([-20.0, -3.0, -0.004, 0.0, 0.3, 6.0], dtype=torch.float64)
    grid = (torch.arange(20_000, dtype=torch.float64) + 0.5) / 20_000
    log_p = (-torch.nn.functional.binary_cross_entropy_with_logits(
        eta[:, None].expand(-1, len(grid)), grid.expand(len(eta), -1), reduction="none")
        + cb_log_norm(eta)[:, None])
    torch.testing.assert_close(log_p.exp().mean(1), torch.ones(6, dtype=torch.float64),
                               atol=1e-4, rtol=0)
    mean = (grid * log_p.exp()).mean(1)
    torch.testing.assert_close(cb_mean(eta), mean, atol=1e-4, rtol=0)
    # the decoder's mean is the distribution's mean, not λ
    z = torch.randn(3, 2)
    torch.testing.assert_close(model.decode(z), cb_mean(model.decoder(z)))
    # the Bernoulli decoder is still there for binary data (the World Models' V uses it)
    assert ek.get_model("autoencoder.variational", likelihood="bernoulli").likelihood == "bernoulli"


def test_vae_kl_weight_is_named_as_such_and_beta_still_builds():
    model = ek.get_model("autoencoder.variational", kl_weight=0.5)
    assert model.config()["kl_weight"] == 0.5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = ek.get_model("autoencoder.variational", beta=0.25)
    assert old.cfg.kl_weight == 0.25 and old.config()["beta"] is None
    assert any("kl_weight" in str(w.message) for w in caught)
    torch.manual_seed(0)
    y = torch.rand(4, 64)
    mu, logvar = model.posterior(y)
    torch.manual_seed(1)
    f = model.free_energy(y)
    torch.manual_seed(1)
    torch.testing.assert_close(f, -model.elbo(y, beta=0.5))


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("layers", [1, 2, 5])
def test_lista_with_t_layers_is_t_ista_steps_and_uses_every_parameter(layers, tied):
    from ebmkit_sparse.lista import soft_threshold

    model = ek.get_model("sparse.lista", layers=layers, tied=tied, atoms=32)
    w, lam = model.decoder.weight.detach(), model.cfg.lam
    lip = torch.linalg.matrix_norm(w, ord=2).square()
    y = torch.randn(6, 64)
    z = torch.zeros(6, 32)
    for _ in range(layers):  # ISTA from z = 0, ½‖y − Wz‖² + λ|z|₁
        z = soft_threshold(z + (y - z @ w.T) @ w / lip, lam / lip)
    torch.testing.assert_close(model.infer(y), z, atol=1e-5, rtol=1e-4)
    model.infer(y).square().sum().backward()
    for name, p in model.encoder.named_parameters():
        assert p.numel() == 0 or p.grad is not None, name


def test_ebgan_margin_is_per_pixel():
    small = {"d_width": 8, "g_width": 8, "latent_dim": 4, "code_dim": 4}
    for size in (8, 16):
        model = ek.get_model("gan.ebgan", image_size=size, margin=0.02, **small)
        assert model.loss_margin == pytest.approx(0.02 * size * size)
        assert model.default_strategy().margin == pytest.approx(0.02 * size * size)
    assert ek.get_model("gan.dcgan", margin=1.0, d_width=8, g_width=8).loss_margin == 1.0


@torch.no_grad()
def test_generator_average_moves_towards_the_generator():
    model = ek.get_model("gan.dcgan", d_width=8, g_width=8, ema=0.9)
    p_ema, p = next(model.generator_ema.parameters()), next(model.generator.parameters())
    with torch.no_grad():
        p.add_(1.0)
    before = (p - p_ema).abs().mean()
    model.update_ema()
    assert math.isclose(float((p - p_ema).abs().mean()), 0.9 * float(before), rel_tol=1e-5)
    assert ek.get_model("gan.dcgan", d_width=8, g_width=8, ema=0.0).generator_ema is None


def test_soft_kmeans_fit_anneals_and_beats_lloyd_from_the_same_starts():
    """With ``beta`` set, ``fit`` is soft K-means under an annealed temperature: from the
    same k-means++ starts it ends at a lower hard inertia than Lloyd's on average, and its
    prototypes are the responsibility-weighted means at β (a fixed point of the soft
    M-step)."""
    y = ek.get_dataset("digits").y
    hard, soft = [], []
    for seed in range(4):
        hard.append(ek.get_model("kmeans", k=10, random_state=seed).fit(y).inertia_)
        model = ek.get_model("kmeans", k=10, beta=10.0, random_state=seed).fit(y)
        soft.append(model.inertia_)
    w = model.cluster_centers_
    r = torch.softmax(-10.0 * torch.cdist(y, w).square(), dim=1)  # [N, K]
    torch.testing.assert_close((r.T @ y) / r.sum(0)[:, None], w, atol=1e-3, rtol=1e-3)
    print(f"\nmean inertia over 4 starts: Lloyd {sum(hard) / 4:.0f}, soft β=10 {sum(soft) / 4:.0f}")
    assert sum(soft) < sum(hard)
    # above the critical temperature every prototype sits at the data mean
    hot = ek.get_model("kmeans", k=10, beta=0.5, random_state=0).fit(y)
    assert (hot.cluster_centers_ - y.mean(0)).norm(dim=1).max() < 0.05
