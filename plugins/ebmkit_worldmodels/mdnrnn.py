"""M: a mixture-density recurrent network over V's latents and the actions.

An LSTM reads ``[z_t, onehot(a_t)]`` and updates its state to ``h_{t+1}``; from ``h_{t+1}``
a linear head gives, for every latent dimension k independently, a mixture of M Gaussians
over the next latent and the logit of the episode ending:

    p(z_{t+1} | z_{≤t}, a_{≤t}) = Π_k Σ_m π_km N(z_{t+1,k}; μ_km, σ_km²).

The energy of a transition is its negative log-likelihood,

    E(z_{t+1} | h_{t+1}) = −Σ_k log Σ_m π_km N(z_{t+1,k}; μ_km, σ_km²),

computed with ``logsumexp`` over m on log π + log N (never exp of a log-density). Sampling at
temperature τ (Ha & Schmidhuber): the mixture logits are divided by τ and the variances
multiplied by τ; τ → 0 picks the likeliest component's mean.

Axis letters in shape comments: B batch, T time, K latent size, M mixtures, A actions,
H hidden size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

__all__ = ["MDNRNN", "Mixture", "mixture_nll", "same_latent_nll", "sample_mixture",
           "train_memory"]

_LOG_2PI = math.log(2 * math.pi)


class Mixture(NamedTuple):
    """The per-dimension Gaussian mixtures over the next latent, and the end logit."""

    logit_pi: Tensor  # [..., K, M] unnormalised log mixture weights
    mu: Tensor  # [..., K, M]
    log_sigma: Tensor  # [..., K, M]
    done_logit: Tensor  # [...]


def mixture_nll(z: Tensor, mix: Mixture) -> Tensor:
    """−log p(z) under the per-dimension mixtures, summed over K: ``[..., K] -> [...]``."""
    log_pi = torch.log_softmax(mix.logit_pi, dim=-1)  # [..., K, M]
    zs = (z.unsqueeze(-1) - mix.mu) * torch.exp(-mix.log_sigma)
    log_n = -0.5 * zs.square() - mix.log_sigma - 0.5 * _LOG_2PI  # [..., K, M]
    return -torch.logsumexp(log_pi + log_n, dim=-1).sum(dim=-1)


def sample_mixture(mix: Mixture, tau: float = 1.0,
                   generator: torch.Generator | None = None) -> Tensor:
    """One draw of the next latent at temperature τ, ``[..., K]``; τ = 0 gives the mean of the
    likeliest component."""
    if tau <= 0:
        best = mix.logit_pi.argmax(dim=-1, keepdim=True)
        return mix.mu.gather(-1, best).squeeze(-1)
    logits = mix.logit_pi / tau
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    pick = (logits - torch.log(-torch.log(u.clamp_min(1e-20)))).argmax(dim=-1, keepdim=True)
    mu = mix.mu.gather(-1, pick).squeeze(-1)  # Gumbel-max draw of the component
    sigma = torch.exp(mix.log_sigma.gather(-1, pick).squeeze(-1)) * math.sqrt(tau)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + sigma * eps


def same_latent_nll(z: Tensor, z_next: Tensor, var: Tensor) -> Tensor:
    """The "latent stays the same" baseline: −log N(z_{t+1}; z_t, diag var), summed over K."""
    return 0.5 * ((z_next - z).square() / var + var.log() + _LOG_2PI).sum(dim=-1)


class MDNRNN(nn.Module):
    """LSTM over ``[z_t, onehot(a_t)]`` with a mixture-density head and an end-of-episode head.

    Args:
        code: K, the latent size of V.
        actions: A, the number of discrete actions.
        hidden: H, the LSTM's state size.
        mixtures: M, Gaussians per latent dimension.
    """

    def __init__(self, code: int, actions: int, hidden: int = 64, mixtures: int = 5) -> None:
        super().__init__()
        self.code, self.actions, self.hidden, self.mixtures = code, actions, hidden, mixtures
        self.lstm = nn.LSTM(code + actions, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 3 * code * mixtures + 1)

    def initial(self, batch: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """The zero state ``(h, c)``, each ``[1, B, H]``."""
        zeros = torch.zeros(1, batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def mixture(self, h: Tensor) -> Mixture:
        """The head on LSTM outputs ``[..., H]``."""
        out = self.head(h)
        params, done = out[..., :-1], out[..., -1]
        params = params.reshape(*h.shape[:-1], self.code, 3 * self.mixtures)
        logit_pi, mu, log_sigma = params.split(self.mixtures, dim=-1)  # each [..., K, M]
        return Mixture(logit_pi, mu, log_sigma.clamp(-7.0, 3.0), done)

    def _inputs(self, z: Tensor, a: Tensor) -> Tensor:
        return torch.cat([z, nnf.one_hot(a, self.actions).to(z.dtype)], dim=-1)

    def forward(self, z: Tensor, a: Tensor,
                state: tuple[Tensor, Tensor] | None = None) -> tuple[Mixture, Tensor]:
        """Teacher-forced pass over sequences: ``z [B, T, K]``, ``a [B, T]`` (int64).

        Returns the mixtures over ``z_{t+1}`` (each ``[B, T, ...]``) and the LSTM outputs
        ``h_{t+1}``, ``[B, T, H]``.
        """
        out, _ = self.lstm(self._inputs(z, a), state)
        return self.mixture(out), out

    def step(self, z: Tensor, a: Tensor,
             state: tuple[Tensor, Tensor]) -> tuple[Mixture, tuple[Tensor, Tensor]]:
        """One step for a batch: ``z [B, K]``, ``a [B]`` → the mixture over the next latent
        and the new state (``state[0][0]`` is h, ``[B, H]``)."""
        out, state = self.lstm(self._inputs(z, a)[:, None], state)
        return self.mixture(out[:, 0]), state

    def transition_energy(self, z: Tensor, a: Tensor, z_next: Tensor,
                          state: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """E = −log p(z_{t+1} | z_{≤t}, a_{≤t}) for every step of sequences, ``[B, T]``."""
        mix, _ = self(z, a, state)
        return mixture_nll(z_next, mix)


@dataclass
class MemoryHistory:
    """Per-epoch mean training losses of M."""

    nll: list[float]
    done: list[float]


def _pad(seqs: list[Tensor], value: float = 0.0) -> Tensor:
    return nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


def train_memory(mdn: MDNRNN, latents: list[Tensor], actions: list[Tensor],
                 terminated: list[bool], *, epochs: int = 20, batch: int = 32,
                 lr: float = 3e-3, seed: int = 0, progress: bool = False) -> MemoryHistory:
    """Fit M by maximum likelihood on whole episodes (teacher forcing) plus a logistic end head.

    Args:
        latents: Per episode ``z_0 … z_T``, ``[T + 1, K]`` (V's posterior means).
        actions: Per episode ``a_0 … a_{T-1}``, ``[T]``.
        terminated: Per episode, whether its last transition ended it (a truncated episode
            has no end label).
    """
    from tqdm.auto import tqdm

    device = next(mdn.parameters()).device
    opt = torch.optim.Adam(mdn.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    n = len(latents)
    hist = MemoryHistory([], [])
    mdn.train()
    for _ in tqdm(range(epochs), desc="M", disable=not progress, leave=False):
        order = torch.randperm(n, generator=g).tolist()
        tot_nll = torch.zeros((), device=device)  # summed on the device: no sync per batch
        tot_done = torch.zeros((), device=device)
        count = 0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            z = _pad([latents[i][:-1] for i in idx]).to(device)  # [B, T, K]
            z_next = _pad([latents[i][1:] for i in idx]).to(device)
            a = _pad([actions[i] for i in idx]).to(device)  # [B, T]
            mask = _pad([torch.ones(len(actions[i])) for i in idx]).to(device)  # [B, T]
            done = torch.zeros_like(mask)
            for j, i in enumerate(idx):
                if terminated[i]:
                    done[j, len(actions[i]) - 1] = 1.0
            mix, _ = mdn(z, a)
            steps = mask.sum()
            nll = (mixture_nll(z_next, mix) * mask).sum() / steps
            bce = (nnf.binary_cross_entropy_with_logits(mix.done_logit, done, reduction="none")
                   * mask).sum() / steps
            opt.zero_grad(set_to_none=True)
            (nll + bce).backward()
            nn.utils.clip_grad_norm_(mdn.parameters(), 100.0)
            opt.step()
            tot_nll += nll.detach() * len(idx)
            tot_done += bce.detach() * len(idx)
            count += len(idx)
        hist.nll.append(float(tot_nll) / count)
        hist.done.append(float(tot_done) / count)
    mdn.eval()
    return hist
