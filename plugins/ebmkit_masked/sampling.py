"""Sampling text from a masked language model: Gibbs and Metropolis–Hastings chains.

Both start from ``init`` (default: all ``<mask>``), fill its ``<mask>`` positions one at a
time in a random order — each drawn from p(· | the current sequence) — and then make
``steps`` sweeps, visiting every position once per sweep in a fresh random order:

- **Gibbs** (``method="gibbs"``): mask position i, draw y_i ~ p(· | y_{∖i}) and keep it. The
  chain follows the model's conditionals; because an MLM's conditionals need not be those
  of any joint distribution, it has no energy it provably samples from.
- **Metropolis–Hastings** (``method="mh"``, Goyal et al. 2021, "Exposing the Implicit
  Energy Networks behind Masked Language Models via Metropolis–Hastings"): the same draw is
  a *proposal* y′, accepted with probability

      min(1, exp(−E(y′)) q(y_i | y_{∖i}) / (exp(−E(y)) q(y′_i | y_{∖i}))),

  with E = ``model.score`` (the pseudo-NLL). The chain's stationary distribution is
  ∝ exp(−score(y)), so samples follow the energy, not only the proposal. Each proposal costs
  one pseudo-NLL (T masked copies of the sequence).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

import ebmkit as ek

from .corruption import MASK_ID, N_SPECIAL

if TYPE_CHECKING:
    from .lm import MaskedLM

__all__ = ["sample"]


def _draw(model: MaskedLM, x: Tensor, pos: Tensor, temperature: float,
          generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Mask ``pos`` (one per row) and draw a token there; returns (token, log q of all)."""
    rows = torch.arange(x.shape[0], device=x.device)
    masked = x.clone()
    masked[rows, pos] = MASK_ID
    h = model.hidden(masked)[rows, pos]                                       # [n, d]
    logits = model.head(h).float() / temperature                              # [n, v]
    logits[:, :N_SPECIAL] = -torch.inf                                        # never pad/unk/mask
    logq = logits.log_softmax(-1)
    token = torch.multinomial(logq.exp(), 1, generator=generator).squeeze(1)  # [n]
    return token, logq


@torch.no_grad()
def sample(model: MaskedLM, n: int = 8, steps: int = 2, length: int | None = None,
           method: str = "gibbs", init: Tensor | None = None, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> Tensor:
    """Run ``n`` chains; returns int64 ``[n, length]`` (see the module docstring)."""
    ek.config.one_of("method", method, ("gibbs", "mh"), who="masked.lm sample")
    ek.config.at_least("steps", steps, 0, who="masked.lm sample")
    ek.config.number("temperature", temperature, low=0.0, low_open=True, who="masked.lm sample")
    device = model.device
    if init is None:
        ek.config.at_least("n", n, 1, who="masked.lm sample")
        length = min(64, model.cfg.block_size) if length is None else length
        ek.config.at_least("length", length, 1, who="masked.lm sample")
        init = torch.full((n, length), MASK_ID, dtype=torch.long, device=device)
    y = model.check_ids(init, "init").clone()
    n, length = y.shape
    was_training = model.training
    model.eval()
    try:
        rows = torch.arange(n, device=device)
        order = torch.rand(n, length, device=device, generator=generator).argsort(1)
        for j in range(length):                                  # fill the <mask>s
            pos = order[:, j]
            hidden = y[rows, pos] == MASK_ID
            token, _ = _draw(model, y, pos, temperature, generator)
            y[rows, pos] = torch.where(hidden, token, y[rows, pos])
        energy = model.score(y) if method == "mh" else None
        accepted = torch.zeros((), device=device)
        for _ in range(steps):
            order = torch.rand(n, length, device=device, generator=generator).argsort(1)
            for j in range(length):
                pos = order[:, j]
                token, logq = _draw(model, y, pos, temperature, generator)
                if method == "gibbs":
                    y[rows, pos] = token
                    continue
                proposal = y.clone()
                proposal[rows, pos] = token
                e_new = model.score(proposal)
                # log acceptance ratio: −E(y′) + E(y) + log q(y_i) − log q(y′_i)
                log_a = (energy - e_new + logq[rows, y[rows, pos]] - logq[rows, token])
                u = torch.rand(n, device=device, generator=generator)
                accept = u.log() < log_a
                y = torch.where(accept.unsqueeze(1), proposal, y)
                energy = torch.where(accept, e_new, energy)
                accepted += accept.sum()
        if method == "mh" and steps:
            model.last_acceptance = float(accepted) / (steps * length * n)
    finally:
        model.train(was_training)
    return y
