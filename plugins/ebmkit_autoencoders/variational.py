"""The variational autoencoder as a latent-variable energy-based model.

Joint energy E(y, z) = −log p_θ(y | z) − log p(z), with p(z) = N(0, I) and a Bernoulli or
Gaussian decoder p_θ(y | z). A stochastic encoder q_φ(z | y) = N(μ_φ(y), diag σ²_φ(y))
stands in for the intractable posterior, and the free energy trained and reported is the
variational one,

    F(y) = −ELBO(y) = E_q[−log p_θ(y | z)] + β · KL(q_φ(z | y) ‖ N(0, I))      (β = 1),

an upper bound on −log p_θ(y). ``log_likelihood(y, k)`` tightens it with k importance
samples (Burda et al., 2016).

Axis letters in shape comments: B batch, D features, K code size, S samples of z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from ebmkit.config import at_least
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


@dataclass
class VariationalConfig(NetConfig):
    """A variational autoencoder: F(y) = −ELBO(y)."""

    code: int = 8
    hidden: int = 256
    likelihood: str = "auto"  # "bernoulli", "gaussian" or "auto" (bernoulli in [0, 1])
    beta: float = 1.0  # weight β of the KL term
    samples: int = 1  # draws of z per ELBO estimate
    iw_samples: int = 64  # k of the importance-weighted log-likelihood metric
    std: float | None = None  # gaussian: fixed decoder σ; None learns one σ per feature


class VariationalAutoencoder(FamilyBase):
    """Stochastic encoder N(μ, diag σ²), reparameterised samples, Bernoulli or Gaussian decoder."""

    name = "autoencoder.variational"
    config_class = VariationalConfig
    cfg: VariationalConfig

    def __init__(self, cfg: VariationalConfig) -> None:
        super().__init__()
        who = self.name
        check_net_config(cfg, who)
        if cfg.likelihood not in ("auto", "bernoulli", "gaussian"):
            raise ConfigError(f"{who}: likelihood must be 'bernoulli', 'gaussian' or 'auto', got "
                              f"{cfg.likelihood!r}")
        in_unit_box = cfg.low >= 0 and cfg.high <= 1
        if cfg.likelihood == "bernoulli" and not in_unit_box:
            raise ConfigError(f"{who}: likelihood='bernoulli' needs data in [0, 1], but "
                              f"low={cfg.low}, high={cfg.high}; use likelihood='gaussian'")
        self.likelihood = (cfg.likelihood if cfg.likelihood != "auto"
                           else ("bernoulli" if in_unit_box else "gaussian"))
        self.bce = self.likelihood == "bernoulli"
        if not cfg.beta >= 0:
            raise ConfigError(f"{who}: beta must be >= 0, got {cfg.beta!r}")
        at_least("samples", cfg.samples, who=who)
        at_least("iw_samples", cfg.iw_samples, who=who)
        if cfg.std is not None and not cfg.std > 0:
            raise ConfigError(f"{who}: std must be > 0 or None (learned), got {cfg.std!r}")
        self.cfg = cfg
        self.encoder = build_encoder(cfg, 2 * cfg.code, "identity")  # -> (μ, log σ²)
        self.decoder = build_decoder(cfg)
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
        mu, logvar = self.encoder(self.flat(y)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def encode(self, y: Tensor) -> Tensor:
        """The code: the posterior mean μ(y), ``[B, K]``."""
        return self.posterior(y)[0]

    def decode(self, z: Tensor) -> Tensor:
        """The decoder's mean E[y | z] in data space, flat ``[B, D]``."""
        check_input(z, "z", shape=(None, self.cfg.code), finite=False)
        out = self.decoder(z)
        return torch.sigmoid(out) if self.bce else out

    def log_px(self, y: Tensor, z: Tensor) -> Tensor:
        """log p(y | z), summed over features; z ``[..., K]`` with y ``[B, D]`` broadcast
        against its leading axes. Returns z's leading shape."""
        out = self.decoder(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], y.shape[-1])
        if self.bce:
            return -nnf.binary_cross_entropy_with_logits(
                out, y.expand_as(out), reduction="none").sum(dim=-1)
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
        """ž = μ(y), the mode of q(z | y)."""
        return self.encode(y)

    def kl(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²), ``[B]``."""
        return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=1)

    def elbo(self, y: Tensor, samples: int | None = None, beta: float = 1.0) -> Tensor:
        """E_q[log p(y | z)] − β·KL(q ‖ p), ``[B]``, with ``samples`` draws of z."""
        y = self.flat(y)
        mu, logvar = self.posterior(y)
        z, _ = self._draw(mu, logvar, samples or self.cfg.samples)
        return self.log_px(y, z).mean(dim=0) - beta * self.kl(mu, logvar)

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F(y) = −ELBO(y) (with β: E_q[−log p(y | z)] + β·KL), ``[B]``; stochastic."""
        return -self.elbo(y, beta=self.cfg.beta)

    def log_likelihood(self, y: Tensor, k: int | None = None, chunk: int = 64) -> Tensor:
        """Importance-weighted estimate of log p(y) with k samples of q (no gradients):

        log (1/k) Σ_i p(y | z_i) p(z_i) / q(z_i | y) ≤ log p(y), tighter as k grows. ``[B]``.
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
