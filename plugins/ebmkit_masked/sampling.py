"""Sampling text from a masked language model: Gibbs and Metropolis–Hastings chains.

Both start from ``init`` (default: all ``<mask>``), fill its ``<mask>`` and ``<unk>``
positions one at a time in a random order — each drawn from p(· | the current sequence) —
and then make ``steps`` sweeps, visiting every position once per sweep in a fresh random
order. ``<pad>`` (id 0) positions in ``init`` mark where a shorter sequence ends: they are
never drawn, never attended to, and not part of the state.

- **Gibbs** (``method="gibbs"``): mask position i, draw y_i ~ p(· | y_{∖i}) and keep it. The
  chain follows the model's conditionals; because an MLM's conditionals need not be those
  of any joint distribution, it has no energy it provably samples from.
- **Metropolis–Hastings** (``method="mh"``, Goyal et al. 2021, "Exposing the Implicit
  Energy Networks behind Masked Language Models via Metropolis–Hastings"): the same draw is
  a *proposal* y′, accepted with probability

      min(1, exp(−E(y′)) q(y_i | y_{∖i}) / (exp(−E(y)) q(y′_i | y_{∖i}))),

  with E = ``model.score`` (the pseudo-NLL). The chain's stationary distribution is
  ∝ exp(−score(y)) over the sequences of *ordinary* tokens at every non-pad position (the
  proposals never draw ``<pad>``, ``<unk>`` or ``<mask>``, which is why the initial fill
  replaces ``<unk>`` too: a special token left in the state could never be left). Each
  proposal costs one pseudo-NLL (T masked copies of the sequence).

This module needs only the model's methods (``hidden``, ``head``, ``_score``, ``_ids``), not
its class: ``lm.py`` imports it, never the other way round.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import ebmkit as ek

from .corruption import MASK_ID, N_SPECIAL, PAD_ID

__all__ = ["sample"]

UNK_ID = 1


def _draw(model: Any, x: Tensor, pos: Tensor, keep: Tensor | None, temperature: float,
          generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Mask ``pos`` (one per row) and draw a token there; returns (token, log q of all)."""
    rows = torch.arange(x.shape[0], device=x.device)
    masked = x.clone()
    masked[rows, pos] = MASK_ID
    h = model.hidden(masked, keep, at=pos)                                    # [n, d]
    logits = model.head(h).float() / temperature                              # [n, v]
    logits[:, :N_SPECIAL] = -torch.inf                                        # never pad/unk/mask
    logq = logits.log_softmax(-1)
    token = torch.multinomial(logq.exp(), 1, generator=generator).squeeze(1)  # [n]
    return token, logq


@torch.no_grad()
def sample(model: Any, n: int = 8, steps: int = 2, length: int | None = None,
           method: str = "gibbs", init: Tensor | None = None, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> Tensor:
    """Run ``n`` chains of ``model`` (a ``masked.lm``); returns int64 ``[n, length]`` (see the
    module docstring). Inputs are checked once here; the steps do no host sync."""
    who = "masked.lm sample"
    ek.config.one_of("method", method, ("gibbs", "mh"), who=who)
    ek.config.at_least("steps", steps, 0, who=who)
    ek.config.number("temperature", temperature, low=0.0, low_open=True, who=who)
    device = model.device
    if init is None:
        ek.config.at_least("n", n, 1, who=who)
        length = min(64, model.cfg.block_size) if length is None else length
        ek.config.at_least("length", length, 1, who=who)
        init = torch.full((n, length), MASK_ID, dtype=torch.long, device=device)
    y, keep = model._ids(init, "init")
    y = y.clone()
    n, length = y.shape
    fixed = y == PAD_ID                                                       # [n, T]
    was_training = model.training
    model.eval()
    model.last_acceptance = None
    try:
        rows = torch.arange(n, device=device)
        order = torch.rand(n, length, device=device, generator=generator).argsort(1)
        for j in range(length):                                  # fill the <mask>s and <unk>s
            pos = order[:, j]
            here = y[rows, pos]
            token, _ = _draw(model, y, pos, keep, temperature, generator)
            y[rows, pos] = torch.where((here == MASK_ID) | (here == UNK_ID), token, here)
        energy = model._score(y, keep) if method == "mh" else None
        accepted = torch.zeros((), device=device)
        for _ in range(steps):
            order = torch.rand(n, length, device=device, generator=generator).argsort(1)
            for j in range(length):
                pos = order[:, j]
                free = ~fixed[rows, pos]                                      # [n]
                token, logq = _draw(model, y, pos, keep, temperature, generator)
                if method == "gibbs":
                    y[rows, pos] = torch.where(free, token, y[rows, pos])
                    continue
                proposal = y.clone()
                proposal[rows, pos] = token
                e_new = model._score(proposal, keep)
                # log acceptance ratio: −E(y′) + E(y) + log q(y_i) − log q(y′_i)
                log_a = (energy - e_new + logq[rows, y[rows, pos]] - logq[rows, token])
                u = torch.rand(n, device=device, generator=generator)
                accept = (u.log() < log_a) & free
                y = torch.where(accept.unsqueeze(1), proposal, y)
                energy = torch.where(accept, e_new, energy)
                accepted += accept.sum()
        if method == "mh" and steps:
            moves = steps * int((~fixed).sum())
            model.last_acceptance = float(accepted) / max(moves, 1)
    finally:
        model.train(was_training)
    return y
