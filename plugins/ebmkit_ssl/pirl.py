r"""``ssl.pirl``: Misra & van der Maaten (2020), *Self-Supervised Learning of
Pretext-Invariant Representations*.

Instead of predicting a pretext transform (which jigsaw permutation was applied), PIRL asks
the representation to be *invariant* to it. With $f$ the embedding of an image view $v_I$,
$g$ that of its jigsaw-shuffled version $v_{I^t}$, and negatives $m'$ drawn from a memory
bank of earlier image embeddings, the loss is a mix of two InfoNCE free energies
($E = 1 - \cos$, temperature τ):

$$ L = \lambda\,\mathrm{NCE}(g(v_{I^t}) \to m_I) + (1 - \lambda)\,\mathrm{NCE}(f(v_I) \to m_I). $$

Simplifications here, said plainly: the paper's $m_I$ is a per-image exponential moving
average of $f(v_I)$ stored at the image's index in a bank of the whole data set; batches
here carry no indices, so $m_I$ is the embedding of the image by a moving average of the
network (the momentum encoder of MoCo: the average is over weights, not per image), and
the bank is a FIFO of earlier such embeddings (masked where they are the query's own image).
Without the moving average the bank chases a drifting embedding and the run collapses (a
first version here did, at the loss's $\log K$), and so does a one-layer head without
batch norm (within 10 epochs on digits): the heads here are two-layer MLPs with batch norm.
$g$ runs the same encoder on the shuffled image with its own head (the paper encodes each
patch separately and concatenates).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .augment import jigsaw
from .base import JointEmbedding, SSLConfig
from .memory import Memory
from .nets import head

__all__ = ["PIRL", "PIRLConfig", "PIRLLoss"]


class PIRLLoss(nn.Module):
    r"""$\lambda\,\mathrm{NCE}(g \to m) + (1 - \lambda)\,\mathrm{NCE}(f \to m)$ through
    ``ek.losses.nll``, negatives from a memory.

    Args:
        temperature: τ > 0 (paper: 0.07).
        weight: λ (paper: 0.5).
    """

    def __init__(self, temperature: float = 0.07, weight: float = 0.5) -> None:
        super().__init__()
        self.temperature = ek.config.number("temperature", temperature, low=0.0, low_open=True,
                                            who="PIRLLoss")
        self.weight = ek.config.number("weight", weight, low=0.0, high=1.0, who="PIRLLoss")

    def nce(self, query: Tensor, target: Tensor, e_neg: Tensor) -> Tensor:
        t = self.temperature
        e_pos = 1.0 - (query * target).sum(dim=1)
        return ek.losses.nll(e_pos, e_neg, temperature=t) / t

    def forward(self, f: Tensor, g: Tensor, m: Tensor, e_neg_f: Tensor,
                e_neg_g: Tensor) -> Tensor:
        lam = self.weight
        return lam * self.nce(g, m, e_neg_g) + (1 - lam) * self.nce(f, m, e_neg_f)


@dataclass
class PIRLConfig(SSLConfig):
    """PIRL's options.

    Attributes:
        bank: Memory-bank entries used as negatives (at most the data set's size).
        tiles: Jigsaw patches per side (the paper's 3 on 255×255 crops; 2 on 8×8 digits).
        temperature: τ.
        weight: λ, the jigsaw term's share.
        momentum: The EMA rate of the network that makes $m_I$ and the bank's entries.
    """

    bank: int = 1024
    momentum: float = 0.99
    proj_layers: int = 2
    tiles: int = 2
    temperature: float = 0.2
    weight: float = 0.5


class PIRL(JointEmbedding):
    """PIRL: invariance to a jigsaw shuffle, negatives from a memory bank.

    Logs ``e_pos`` (image ↔ jigsaw), ``e_neg``, ``std`` and ``queue_self``.
    """

    name = "ssl.pirl"
    config_class = PIRLConfig
    cfg: PIRLConfig

    def __init__(self, cfg: PIRLConfig) -> None:
        super().__init__(cfg)
        ek.config.at_least("bank", cfg.bank, who=self.name)
        ek.config.at_least("tiles", cfg.tiles, who=self.name)
        if cfg.image_shape is None:
            raise ek.errors.ConfigError(f"{self.name}: the jigsaw pretext needs images; set "
                                        f"image_shape=[C, H, W]")
        if cfg.image_shape[1] % cfg.tiles or cfg.image_shape[2] % cfg.tiles:
            raise ek.errors.ConfigError(f"{self.name}: image sides {cfg.image_shape[1:]} must be "
                                        f"divisible by tiles={cfg.tiles}")
        self.criterion = PIRLLoss(cfg.temperature, cfg.weight)
        self.jigsaw_head = head(cfg.rep_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers)
        self.memory = Memory(cfg.bank, cfg.proj_dim, cfg.dim, who=self.name)
        ek.config.number("momentum", cfg.momentum, low=0.0, high=1.0, who=self.name)
        self.key_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def check_data(self, data: Any) -> None:
        """Refuse a memory bank larger than the data set (``ebmkit train`` calls this)."""
        self.memory.check_size(len(data))

    def shuffle(self, y: Tensor) -> Tensor:
        """The jigsaw pretext transform of ``y`` ``[B, dim]`` (one permutation per image)."""
        b = y.shape[0]
        images = y.reshape(b, *self.view_shape)
        return jigsaw(images, self.generator(y.device), self.cfg.tiles).reshape(b, -1)

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        ek.train.ema_(self.key_encoder, self.encoder, self.cfg.momentum)
        ek.train.ema_(self.key_projector, self.projector, self.cfg.momentum)
        views = self.augment(torch.cat([y, y]))                                    # [2n, dim]
        shuffled = self.shuffle(views[:n])                                         # [n, dim]
        h = self.encode(torch.cat([views[:n], shuffled]))                          # [2n, rep]
        f1 = nnf.normalize(self.projector(h[:n]), dim=1)                           # [n, d]
        g = nnf.normalize(self.jigsaw_head(h[n:]), dim=1)                          # [n, d]
        with torch.no_grad():                                                      # m_I
            m = nnf.normalize(self.key_projector(self.key_encoder(views[n:])), dim=1)
        prints = self.memory.fingerprint(y)
        e_neg_f, self_share = self.memory.energies(f1, prints)
        e_neg_g, _ = self.memory.energies(g, prints)
        loss = self.criterion(f1, g, m, e_neg_f, e_neg_g)
        self.memory.push(m, prints)
        e_pos = 1.0 - (g.detach() * f1.detach()).sum(dim=1)
        finite = torch.isfinite(e_neg_f)
        e_neg = e_neg_f.detach().where(finite, 0.0).sum() / finite.sum().clamp_min(1)
        return loss, {"e_pos": e_pos.mean(), "e_neg": e_neg, "std": f1.detach().std(0).mean(),
                      "queue_self": self_share}
