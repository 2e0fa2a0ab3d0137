r"""``ssl.simclr``: Chen, Kornblith, Norouzi & Hinton (2020), *A Simple Framework for
Contrastive Learning of Visual Representations*.

Two views of each of $N$ images give $2N$ embeddings. For the view $i$ whose other view is
$j(i)$, with $E_{ab} = 1 - \cos(g_a, g_b)$ the energy of a pair,

$$ \ell_i = -\log \frac{e^{-E_{i\,j(i)}/\tau}}{\sum_{k \ne i} e^{-E_{ik}/\tau}}
         = \tfrac1\tau\,\mathrm{nll}(E_{i\,j(i)}, \{E_{ik}\}_{k \ne i, j(i)};\ T = \tau), $$

the NT-Xent loss: the InfoNCE free energy of the positive pair among the $2N - 2$ other
samples of the batch, computed by the core catalogue's [`nll`][ebmkit.losses.nll] (which is
$T$ times the cross-entropy, hence the $1/\tau$).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .base import JointEmbedding, SSLConfig

__all__ = ["NTXentLoss", "SimCLR", "SimCLRConfig"]


class NTXentLoss(nn.Module):
    """NT-Xent (Chen et al., 2020) over two batches of embeddings, through ``ek.losses.nll``.

    Args:
        temperature: τ > 0 (the paper's 0.5 for CIFAR-10, 0.1 with very large batches; 0.2
            is the model's default on digits).
        negatives: Use the other samples of the batch as negatives. ``False`` keeps only the
            positive pair's energy, ``E = 1 − cos``: the collapsing baseline.
    """

    def __init__(self, temperature: float = 0.5, negatives: bool = True) -> None:
        super().__init__()
        self.temperature = ek.config.number("temperature", temperature, low=0.0, low_open=True,
                                            who="NTXentLoss")
        self.negatives = bool(negatives)
        self._masks: dict[tuple[int, torch.device], Tensor] = {}

    def _excluded(self, n: int, device: torch.device) -> Tensor:
        """``[2n, 2n]`` bool: True where view ``k`` is not a negative of view ``i`` (``k = i``,
        or ``k`` is ``i``'s other view); built once per batch size."""
        key = (n, device)
        if key not in self._masks:
            i = torch.arange(2 * n, device=device)
            pos = (i + n) % (2 * n)
            self._masks[key] = (i[None, :] == i[:, None]) | (i[None, :] == pos[:, None])
        return self._masks[key]

    def energies(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor]:
        """``(e_pos [2n], e_neg [2n, 2n])``: ``1 − cos`` of each view with its other view, and
        with every view, where the view itself and its positive are ``+∞`` (a candidate at
        infinite energy has zero Gibbs weight, so row ``i`` holds exactly its 2n − 2 negatives).
        """
        return self._energies(z1, z2)[1:]

    def _energies(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # Masking in place of gathering the 2n − 2 negatives keeps the backward pass to one
        # elementwise mask (a gather's backward scatters into a fresh [2n, 2n] of zeros), and
        # e_pos is a row-wise dot: the loss then costs what a hand-written cross_entropy
        # over the masked logits does (bench/bench_ssl.py).
        n = z1.shape[0]
        z = nnf.normalize(torch.cat([z1, z2]), dim=1)                              # [2n, d]
        e_pos = 1.0 - (z * z.roll(n, dims=0)).sum(dim=1)                           # [2n]
        e_neg = (1.0 - z @ z.T).masked_fill(self._excluded(n, z.device), math.inf)  # [2n, 2n]
        return z, e_pos, e_neg

    def forward(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, e_pos mean, e_neg mean)`` for embeddings ``z1``, ``z2`` ``[n, d]``."""
        if not self.negatives:
            e_pos = 1.0 - nnf.cosine_similarity(z1, z2, dim=1)
            return e_pos.mean(), e_pos.detach().mean(), e_pos.new_zeros(())
        n = z1.shape[0]
        if n < 2:
            raise ek.errors.ConfigError(f"NTXentLoss: a batch of {n} pair has no other views "
                                        f"to contrast with; expected at least 2 pairs")
        z, e_pos, e_neg = self._energies(z1, z2)
        t = self.temperature
        loss = ek.losses.nll(e_pos, e_neg, temperature=t) / t
        with torch.no_grad():
            # The negatives' mean energy without a pass over [2n, 2n]: the sum of 1 − z_i·z_k
            # over all pairs is (2n)² − |Σ z|²; take away the diagonal and the positives.
            z, m = z.detach(), 2 * n
            total = m * m - z.sum(dim=0).square().sum()
            diagonal = m - z.square().sum()
            neg_mean = (total - diagonal - e_pos.detach().sum()) / (m * (m - 2))
        return loss, e_pos.detach().mean(), neg_mean


@dataclass
class SimCLRConfig(SSLConfig):
    """SimCLR's options (see [`SSLConfig`][ebmkit_ssl.base.SSLConfig] for the shared ones).

    SimCLR's defaults differ from the shared ones where digits measured better (seeded
    300-epoch runs, figures in ``docs/families/ssl.md``): no projection head (the embedding
    is the representation, as in the issue's reference SimCLR; the two-layer head scored
    probe 0.978 / 5-NN 0.978) and stronger geometric views (±10°, ±10 % zoom).

    Attributes:
        temperature: τ of NT-Xent.
        negatives: False drops the negatives (the energy collapses; for demonstrations).
        eval_ema: In eval mode ``encode`` and ``embed`` use an exponential moving average
            of the encoder's and the projector's weights with this rate (0: the trained
            weights themselves). The trainer's learning rate is constant; averaging the
            last ~1/(1 − rate) steps' weights removes most of the noise a decaying schedule
            would. ``export_encoder()`` returns the averaged encoder.
    """

    temperature: float = 0.2
    negatives: bool = True
    eval_ema: float = 0.99
    proj_layers: int = 0
    degrees: float = 10.0
    scale: float = 0.1


class SimCLR(JointEmbedding):
    """SimCLR: two augmented views, a shared encoder and projection head, NT-Xent.

    Logs ``e_pos`` / ``e_neg`` (mean energies of positive and negative pairs) and the
    per-batch collapse meter ``std`` (normalised std of the embeddings).
    """

    name = "ssl.simclr"
    config_class = SimCLRConfig
    cfg: SimCLRConfig

    def __init__(self, cfg: SimCLRConfig) -> None:
        super().__init__(cfg)
        self.criterion = NTXentLoss(cfg.temperature, cfg.negatives)
        ek.config.number("eval_ema", cfg.eval_ema, low=0.0, high=1.0, high_open=True,
                         who=self.name)
        average = cfg.eval_ema > 0
        self.ema_encoder = copy.deepcopy(self.encoder).requires_grad_(False) if average else None
        self.ema_projector = (copy.deepcopy(self.projector).requires_grad_(False) if average
                              else None)

    def eval_encoder(self) -> nn.Module:
        """The averaged encoder (``eval_ema > 0``), else the trained one."""
        return self.encoder if self.ema_encoder is None else self.ema_encoder

    def encode(self, y: Tensor) -> Tensor:
        """The representation ``[B, rep_dim]``: by the averaged encoder in eval mode (see
        ``eval_ema``), by the trained one in train mode."""
        if self.training or self.ema_encoder is None:
            return super().encode(y)
        self.check(y)
        return self.ema_encoder(self.images(y))

    def embed(self, y: Tensor) -> Tensor:
        """The embedding ``[B, proj_dim]``: the averaged projector on the averaged encoder in
        eval mode, the trained ones in train mode."""
        if self.training or self.ema_projector is None:
            return super().embed(y)
        return self.ema_projector(self.encode(y))

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        if self.ema_encoder is not None:  # average in the previous optimizer step
            ek.train.ema_(self.ema_encoder, self.encoder, self.cfg.eval_ema)
            ek.train.ema_(self.ema_projector, self.projector, self.cfg.eval_ema)
        n = y.shape[0]
        views = self.augment(torch.cat([y, y]))                                    # [2n, dim]
        z = self.embed(views)                                                      # [2n, d]
        loss, e_pos, e_neg = self.criterion(z[:n], z[n:])
        std = nnf.normalize(z.detach(), dim=1).std(dim=0).mean()
        return loss, {"e_pos": e_pos, "e_neg": e_neg, "std": std}
