"""The ``autoencoder.variational`` row of ``python -m bench quality``: a test log-likelihood
on dequantised Fashion-MNIST pixels, in bits/dim, against probabilistic PCA.

Both models are densities on the dequantised pixels x = (k + u)/256 (k the 8-bit grey level,
u ~ U[0, 1) per pixel), evaluated on the same draw of u per seed (paired per image):

- the VAE (its fashion-mnist recipe: continuous-Bernoulli decoder, a normalised density on
  [0, 1]^D, trained on dequantised batches) gives the importance-weighted **lower bound**
  L_k(x) = log (1/k) Σ_i p(x | z_i) p(z_i) / q(z_i | x), k = 100 (``log_likelihood``), not
  log p(x) itself: E[L_k] ≤ log p(x);
- probabilistic PCA (Tipping & Bishop, 1999) with as many latents as the VAE's code gives
  its exact log-density: fitted in closed form on the dequantised training rows (the rows the
  VAE trained on, ``ek.data.split_validation``'s), its marginal is N(μ, WWᵀ + σ²I) with W
  from the top q eigenpairs of the sample covariance and σ² the mean of the other D − q
  eigenvalues.

Bits/dim of a density p on [0, 1]^D for 8-bit data: −log₂ p(x)/D + 8 (the 1/256 bin width
per pixel). Averaged over u this bounds the discrete model's −log₂ P(k)/D from above
(Jensen), for both models alike; lower is better. The bar ("above PPCA") is judged on the
per-image log-likelihoods, on every seed: the VAE's bound significantly above PPCA's exact
log-likelihood by a paired bootstrap (5%).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from .quality_rows import Row, _epochs, _fashion, _train

NAME = "autoencoder.variational"
K = 100  # importance samples of the IW bound (issue 21: k ≥ 100)


def dequantize(y: Tensor, generator: torch.Generator) -> Tensor:
    """8-bit grey levels y = k/255 as x = (k + u)/256, u ~ U[0, 1), float64 ``[N, D]``."""
    u = torch.rand(y.shape, generator=generator, dtype=torch.float64)
    return (torch.round(y.double() * 255) + u) / 256


def ppca_fit(x: Tensor, q: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Maximum-likelihood probabilistic PCA of ``x`` ``[N, D]`` with ``q`` latents, closed
    form: ``(μ [D], U [D, q], λ [q], σ²)``, the marginal covariance being
    U diag(λ) Uᵀ + σ² (I − U Uᵀ) (= WWᵀ + σ²I with W = U (diag λ − σ²I)^½)."""
    x = x.double()
    mu = x.mean(0)
    cov = (x - mu).T @ (x - mu) / len(x)
    lam, vec = torch.linalg.eigh(cov)  # ascending
    lam, vec = lam.flip(0), vec.flip(1)
    return mu, vec[:, :q], lam[:q], lam[q:].mean()


def ppca_log_density(x: Tensor, fit: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """Exact log N(x; μ, WWᵀ + σ²I) per row, nats, float64 ``[N]`` (in the eigenbasis: the
    q kept directions have variance λ_i, the other D − q have σ²)."""
    mu, u, lam, s2 = fit
    d, q = u.shape
    c = x.double() - mu
    p = c @ u
    quad = (p.square() / lam).sum(1) + (c.square().sum(1) - p.square().sum(1)) / s2
    log_det = torch.log(lam).sum() + (d - q) * torch.log(s2)
    return -0.5 * (d * math.log(2 * math.pi) + log_det + quad)


def bits_per_dim(log_p: Tensor, d: int) -> Tensor:
    """−log₂ p(x)/D + 8: a density on [0, 1]^D of 8-bit data, in bits per pixel."""
    return -log_p / (d * math.log(2)) + 8


def row_vae(seeds: tuple[int, ...], quick: bool = False) -> Row:
    """``autoencoder.variational`` by the plain command (its fashion-mnist recipe); per test
    image, the IW-100 lower bound on its log-likelihood against PPCA's exact one, with as
    many latents, on the same dequantised pixels."""
    import ebmkit as ek

    train, test = _fashion()
    fit_rows, _ = ek.data.split_validation(train)  # what `ebmkit train` trains on
    ty = test.y[:1000] if quick else test.y
    d = ty.shape[1]
    vae, elbo, ppca, gap, tests, met, code = [], [], [], [], [], True, 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            model = _train(NAME, "fashion-mnist", seed, Path(tmp) / str(seed),
                           **_epochs(NAME, quick))
            model.eval()
            code = model.cfg.code
            x = dequantize(ty, torch.Generator().manual_seed(1000 + seed))
            base = ppca_log_density(x, ppca_fit(dequantize(
                fit_rows.y, torch.Generator().manual_seed(2000 + seed)), code))
            xf = x.float()
            torch.manual_seed(seed)  # the draws of z
            with torch.no_grad():
                ll = torch.cat([model.log_likelihood(xf[s:s + 500], k=K)
                                for s in range(0, len(xf), 500)]).double()
                e1 = torch.cat([model.elbo(xf[s:s + 2000], samples=1)
                                for s in range(0, len(xf), 2000)]).double()
            vae.append(float(bits_per_dim(ll, d).mean()))
            elbo.append(float(bits_per_dim(e1, d).mean()))
            ppca.append(float(bits_per_dim(base, d).mean()))
            gap.append(ppca[-1] - vae[-1])
            t = ek.stats.paired_bootstrap(ll, base)
            tests.append(f"seed {seed}: per-image log-likelihood (nats), VAE IW-{K} bound vs "
                         f"PPCA exact: {t}")
            met = met and t.above()
    lik, deq = model.likelihood, model.cfg.dequantize
    return Row(NAME, NAME, f"test log-likelihood on dequantised pixels, bits/dim (lower is "
               f"better): the VAE's IW-{K} lower bound vs PPCA's exact value",
               {f"VAE, IW-{K} bound": vae, "VAE, ELBO (k = 1)": elbo,
                f"PPCA, {code} latents (exact)": ppca, "PPCA − VAE (bits/dim)": gap},
               tests, "above PPCA's log-likelihood, significantly on every seed", met,
               list(seeds),
               notes=f"code {code}, {lik} decoder (a normalised density on [0, 1]^{d}), trained "
                     f"on dequantised batches (dequantize={deq}); x = (k + u)/256 with one draw "
                     f"of u per seed, shared by both models; bits/dim = −log₂ p(x)/{d} + 8. "
                     f"The VAE's figure is the importance-weighted bound with k = {K}, a lower "
                     f"bound on its log-likelihood (an upper bound in bits/dim); PPCA's is "
                     f"exact, fitted in closed form on the {len(fit_rows)} dequantised rows "
                     f"the VAE trained on. The paired bootstrap compares per-image "
                     f"log-likelihoods in nats (10,000 resamples).")
