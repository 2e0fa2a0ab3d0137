"""The variational autoencoder as a latent-variable energy-based model.

Joint energy E(y, z) = −log p_θ(y | z) − log p(z), with p(z) = N(0, I) and a decoder
p_θ(y | z) that is a density on the data's space. A stochastic encoder
q_φ(z | y) = N(μ_φ(y), diag σ²_φ(y)) stands in for the intractable posterior, and the free
energy trained and reported is the variational one,

    F(y) = −ELBO(y) = E_q[−log p_θ(y | z)] + w · KL(q_φ(z | y) ‖ N(0, I))      (w = 1),

an upper bound on −log p_θ(y) when the KL weight w (``kl_weight``; β in the β-VAE papers,
*not* an inverse temperature) is 1. ``log_likelihood(y, k)`` tightens it with k importance
samples (Burda et al., 2016).

Decoders (``likelihood``):

- ``"continuous_bernoulli"`` (the default for data in [0, 1]; Loaiza-Ganem & Cunningham
  2019): p(y | λ) = C(λ) λ^y (1 − λ)^(1−y) on y ∈ [0, 1], a normalised density, so grey-level
  pixels get a proper likelihood, in nats;
- ``"gaussian"`` N(ŷ, σ²) (the default for real data), a density too;
- ``"bernoulli"``: kept for binary data. On grey-level pixels it is *not* a normalised
  density (the Bernoulli has mass only on {0, 1}); its "log-likelihood" is then minus a
  cross-entropy, not nats of any density on [0, 1].

On quantised data (digits take 17 grey levels, Fashion-MNIST 256) a density's value at the
data points is comparable with other densities only after dequantisation: each grey level
k of n is spread uniformly over its bin, x = (k + u)/n with u ~ U[0, 1). ``dequantize=n``
does this to every training batch (``dequantize(y)`` is the same map, for evaluation), so
the model learns a density of x; without it a learned decoder σ (or continuous-Bernoulli
rate) can collapse onto the exact grey levels (the black background) and its density is
then meaningless between them. For such a density p on [0, 1]^D, −log₂ p(x)/D + log₂ n
bits/dim bounds the discrete model's −log₂ P(k)/D from above in expectation over u
(Jensen; the bins have width 1/n).

Axis letters in shape comments: B batch, D features, K code size, S samples of z.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from ebmkit.config import at_least, number, one_of
from ebmkit.errors import ConfigError
from ebmkit.model import check_input

from .models import (
    FamilyBase,
    LeanArchitectural,
    NetConfig,
    build_decoder,
    build_encoder,
    check_net_config,
)

__all__ = ["VariationalAutoencoder", "VariationalConfig"]

_LOG_2PI = math.log(2 * math.pi)
_LIKELIHOODS = ("continuous_bernoulli", "gaussian", "bernoulli")


def cb_log_norm(logits: Tensor) -> Tensor:
    """log C(λ) of the continuous Bernoulli with λ = σ(η), elementwise.

    C(λ) = 2 atanh(1 − 2λ) / (1 − 2λ) = η / tanh(η/2) in the logit η, which tends to 2 at
    η = 0 (Taylor: log 2 + η²/12 near it, where the quotient is 0/0).
    """
    small = logits.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.log(safe.abs()) - torch.log(torch.tanh(safe.abs() / 2))
    return torch.where(small, math.log(2.0) + logits.square() / 12, exact)


def cb_mean(logits: Tensor) -> Tensor:
    """E[y] of the continuous Bernoulli with logit η: σ(η)/tanh(η/2) − 1/η (½ + η/12 near 0)."""
    small = logits.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
    return torch.where(small, 0.5 + logits / 12, exact)


@dataclass
class VariationalConfig(NetConfig):
    """A variational autoencoder: F(y) = −ELBO(y)."""

    code: int = 8
    hidden: int = 256
    # "continuous_bernoulli", "gaussian", "bernoulli" or "auto" (continuous Bernoulli in
    # [0, 1], gaussian otherwise)
    likelihood: str = "auto"
    kl_weight: float = 1.0  # weight w of the KL term (the β-VAE's β); 1 gives the ELBO
    beta: float | None = None  # deprecated alias of kl_weight (β is an inverse temperature elsewhere)
    samples: int = 1  # draws of z per ELBO estimate
    iw_samples: int = 64  # k of the importance-weighted log-likelihood metric
    std: float | None = None  # gaussian: fixed decoder σ; None learns one σ per feature
    # grey levels n of quantised data stored as k/(n − 1) (256 for 8-bit images); > 0: each
    # training batch is dequantised to (k + u)/n, u ~ U[0, 1). 0: trained on y as given
    dequantize: int = 0


class VariationalAutoencoder(FamilyBase):
    """Stochastic encoder N(μ, diag σ²), reparameterised samples, Bernoulli or Gaussian decoder."""

    name = "autoencoder.variational"
    config_class = VariationalConfig
    cfg: VariationalConfig

    def __init__(self, cfg: VariationalConfig) -> None:
        super().__init__()
        who = self.name
        check_net_config(cfg, who)
        one_of("likelihood", cfg.likelihood, ("auto", *_LIKELIHOODS), who=who)
        in_unit_box = cfg.low >= 0 and cfg.high <= 1
        if cfg.likelihood in ("bernoulli", "continuous_bernoulli") and not in_unit_box:
            raise ConfigError(f"{who}: likelihood={cfg.likelihood!r} needs data in [0, 1], but "
                              f"low={cfg.low}, high={cfg.high}; use likelihood='gaussian'")
        self.likelihood = (cfg.likelihood if cfg.likelihood != "auto"
                           else ("continuous_bernoulli" if in_unit_box else "gaussian"))
        self.bce = self.likelihood != "gaussian"  # logits out, y must lie in [0, 1]
        if cfg.beta is not None:
            warnings.warn(f"{who}: beta is deprecated, use kl_weight (the KL term's weight; "
                          f"beta means an inverse temperature elsewhere in ebmkit)",
                          DeprecationWarning, stacklevel=3)
            cfg.kl_weight, cfg.beta = cfg.beta, None
        number("kl_weight", cfg.kl_weight, low=0.0, who=who)
        at_least("samples", cfg.samples, who=who)
        at_least("iw_samples", cfg.iw_samples, who=who)
        at_least("dequantize", cfg.dequantize, 0, who=who)
        if cfg.dequantize == 1:
            raise ConfigError(f"{who}: dequantize must be 0 (off) or the number of grey levels "
                              f"n >= 2 (256 for 8-bit images), got 1")
        if cfg.dequantize and not in_unit_box:
            raise ConfigError(f"{who}: dequantize={cfg.dequantize} needs data k/(n − 1) in "
                              f"[0, 1], but low={cfg.low}, high={cfg.high}")
        if cfg.std is not None and not cfg.std > 0:
            raise ConfigError(f"{who}: std must be > 0 or None (learned), got {cfg.std!r}")
        self.cfg = cfg
        self.encoder = build_encoder(cfg, 2 * cfg.code, "identity", who)  # -> (μ, log σ²)
        self.decoder = build_decoder(cfg, who)
        self._probe = (next(self.encoder.parameters()),)  # .to() moves it in place
        if self.likelihood == "gaussian":
            log_std = torch.full((cfg.dim,), math.log(cfg.std if cfg.std else 0.1))
            if cfg.std is None:
                self.log_std = nn.Parameter(log_std)
            else:
                self.register_buffer("log_std", log_std)

    # -- encoder and decoder ---------------------------------------------------------------
    def posterior(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | y) as ``(μ, log σ²)``, each ``[B, K]``."""
        mu, logvar = self.enc(self.flat(y)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def encode(self, y: Tensor) -> Tensor:
        """The code: the posterior mean μ(y), ``[B, K]``."""
        return self.posterior(y)[0]

    def decode(self, z: Tensor) -> Tensor:
        """The decoder's mean E[y | z] in data space, flat ``[B, D]`` (for the continuous
        Bernoulli this is not λ = σ(logits) but the distribution's mean)."""
        check_input(z, "z", shape=(None, self.cfg.code), device=self.device,
                    finite="auto")
        out = self.dec(z)
        if self.likelihood == "continuous_bernoulli":
            return cb_mean(out)
        return torch.sigmoid(out) if self.bce else out

    def log_px(self, y: Tensor, z: Tensor) -> Tensor:
        """log p(y | z), summed over features; z ``[..., K]`` with y ``[B, D]`` broadcast
        against its leading axes. Returns z's leading shape."""
        out = self.dec(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], y.shape[-1])
        if self.bce:
            per = -nnf.binary_cross_entropy_with_logits(out, y.expand_as(out), reduction="none")
            if self.likelihood == "continuous_bernoulli":
                per = per + cb_log_norm(out)
            return per.sum(dim=-1)
        log_std = self.log_std
        per = 0.5 * ((y - out) * torch.exp(-log_std)).square() + log_std + 0.5 * _LOG_2PI
        return -per.sum(dim=-1)

    @staticmethod
    def log_prior(z: Tensor) -> Tensor:
        """log N(z; 0, I), summed over the code."""
        return -0.5 * (z.square() + _LOG_2PI).sum(dim=-1)

    def _draw(self, mu: Tensor, logvar: Tensor, s: int) -> tuple[Tensor, Tensor]:
        """Reparameterised z = μ + σ ⊙ ε, ``[S, B, K]``, and ε."""
        eps = torch.randn((s, *mu.shape), dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps, eps

    # -- energies --------------------------------------------------------------------------
    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, z) = −log p(y | z) − log p(z), ``[B]``; z = μ(y) when not given."""
        y = self.flat(y)
        if z is None:
            z = self.posterior(y)[0]
        return -self.log_px(y, z) - self.log_prior(z)

    def infer(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """ž = μ(y), the mode of q(z | y): an amortised guess from the encoder, not the
        argmin of E(y, z) (use ``ek.FreeEnergy(..., ek.latent.GradientDescent(...))`` on
        ``energy`` for that)."""
        return self.encode(y)

    def kl(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²), ``[B]``."""
        return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=1)

    def elbo(self, y: Tensor, samples: int | None = None, beta: float = 1.0) -> Tensor:
        """E_q[log p(y | z)] − w·KL(q ‖ p), ``[B]``, with ``samples`` draws of z and w =
        ``beta`` (the KL weight; 1, the default, gives the ELBO itself)."""
        y = self.flat(y)
        mu, logvar = self.posterior(y)
        z, _ = self._draw(mu, logvar, samples or self.cfg.samples)
        return self.log_px(y, z).mean(dim=0) - beta * self.kl(mu, logvar)

    def dequantize(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Grey levels y = k/(n − 1) spread over their bins: x = (k + u)/n, u ~ U[0, 1), with
        n = ``cfg.dequantize`` (256 when it is 0), ``[B, D]``. Training does this to every
        batch when ``dequantize`` > 0; evaluate densities on such x."""
        n = self.cfg.dequantize or 256
        y = self.flat(y)
        u = torch.rand(y.shape, generator=generator, device=y.device if generator is None
                       else generator.device).to(y)
        return (torch.round(y * (n - 1)) + u) / n

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F(y) = −ELBO(y) (with β: E_q[−log p(y | z)] + β·KL), ``[B]``; stochastic. In
        training with ``dequantize`` > 0, of the dequantised batch."""
        if self.training and self.cfg.dequantize:
            y = self.dequantize(y)
        return -self.elbo(y, beta=self.cfg.kl_weight)

    def log_likelihood(self, y: Tensor, k: int | None = None, chunk: int = 64) -> Tensor:
        """The importance-weighted lower bound on log p(y) (Burda et al., 2016), ``[B]``,
        with k samples z_i ~ q(z | y) (no gradients):

            L_k(y) = log (1/k) Σ_i p(y | z_i) p(z_i) / q(z_i | y),   E[L_k] ≤ log p(y),

        a *bound*, not the likelihood: E[L_k] rises with k towards log p(y) (k = 1 is the
        ELBO). One draw of L_k is a random variable and can exceed log p(y) by chance.
        """
        k = k or self.cfg.iw_samples
        with torch.no_grad():
            y = self.flat(y)
            mu, logvar = self.posterior(y)
            logs = []
            for start in range(0, k, chunk):
                z, eps = self._draw(mu, logvar, min(chunk, k - start))  # [S, B, K]
                log_q = -0.5 * (eps.square() + logvar + _LOG_2PI).sum(dim=-1)
                logs.append(self.log_px(y, z) + self.log_prior(z) - log_q)  # [S, B]
            return torch.logsumexp(torch.cat(logs), dim=0) - math.log(k)

    def score(self, y: Tensor, samples: int = 16) -> Tensor:
        """Anomaly score: −ELBO averaged over ``samples`` draws of z, ``[B]``."""
        with torch.no_grad():
            return -self.elbo(y, samples=samples)

    # -- sampling --------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None,
               mean: bool = True) -> Tensor:
        """``n`` samples ``[n, D]``: z ~ N(0, I), then the decoder's mean E[y | z] (or, with
        ``mean=False``, a draw y ~ p(y | z))."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{self.name}.sample: n must be a positive int, got {n!r}")
        where = self.device if generator is None else generator.device
        with torch.no_grad():
            z = torch.randn((n, self.cfg.code), generator=generator, device=where).to(self.device)
            y = self.decode(z)
            if mean:
                return y
            if self.likelihood == "continuous_bernoulli":  # by the inverse CDF
                u = torch.rand(y.shape, generator=generator, device=where).to(self.device)
                lam = torch.sigmoid(self.dec(z)).clamp(1e-6, 1 - 1e-6)
                return torch.distributions.ContinuousBernoulli(probs=lam).icdf(u).clamp(0, 1)
            if self.bce:
                return torch.bernoulli(y, generator=generator)
            noise = torch.randn(y.shape, generator=generator, device=where).to(self.device)
            return y + torch.exp(self.log_std) * noise

    def default_strategy(self) -> Any:
        """Architectural on F = −ELBO: its KL term already limits the volume of low energy."""
        return LeanArchitectural()

    def metrics(self) -> dict[str, Any]:
        import torchmetrics

        from ebmkit.metrics import Adapter

        out = super().metrics()
        out["elbo"] = Adapter(torchmetrics.MeanMetric(), lambda m, b: m.elbo(b["y"]))
        out["log_likelihood"] = Adapter(torchmetrics.MeanMetric(),
                                        lambda m, b: m.log_likelihood(b["y"]))
        return out
