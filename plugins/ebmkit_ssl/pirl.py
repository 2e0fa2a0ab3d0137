r"""``ssl.pirl``: after Misra & van der Maaten (2020), *Self-Supervised Learning of
Pretext-Invariant Representations* — what is implemented is MoCo's queue with a jigsaw
term and softmax InfoNCE, not the paper's NCE with a memory bank.

PIRL asks the representation to be *invariant* to a pretext transform (a jigsaw shuffle)
instead of predicting it. With $f$ the embedding of an image view $v_I$, $g$ that of its
jigsaw-shuffled version $v_{I^t}$, $m_I$ the momentum network's embedding of another view
of the same image, and negatives from a FIFO of earlier $m$'s, the loss mixes two InfoNCE
free energies ($E = 1 - \cos$, temperature τ):

$$ L = \lambda\,\mathrm{InfoNCE}(g(v_{I^t}) \to m_I) + (1 - \lambda)\,\mathrm{InfoNCE}(f(v_I)
   \to m_I). $$

How this differs from the paper, said plainly:

- **Loss**: the paper's $h$ is the noise-contrastive estimation (NCE) posterior, a binary
  classifier of each pair against $N$ noise samples; here each term is the softmax
  InfoNCE (cross-entropy over the positive and the queue), as in MoCo.
- **Memory**: the paper's $m_I$ is a per-image exponential moving average of $f(v_I)$
  stored at the image's index in a bank of the whole data set. Batches here carry no
  indices, so $m_I$ comes from a moving average of the *network* (MoCo's momentum encoder:
  the average is over weights, not per image), and the negatives are a FIFO queue of earlier
  such embeddings (masked where they are the query's own image) — MoCo's queue, the same
  code ([`MomentumQueue`][ebmkit_ssl.momentum.MomentumQueue]).
- **Jigsaw**: $g$ runs the same encoder on the whole shuffled image with its own head (the
  paper encodes each patch separately and concatenates).

Without the moving average the queue chases a drifting embedding and the run collapses (a
first version here did, at the loss's $\log K$). The heads are two-layer MLPs with batch
norm (``head_batch_norm``; without it the run collapsed) and MoCo's shuffled batch norm
(``shuffle_bn``): see [`momentum`][ebmkit_ssl.momentum].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

import ebmkit as ek

from .augment import jigsaw
from .momentum import MomentumQueue, MomentumQueueConfig, finite_mean

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
class PIRLConfig(MomentumQueueConfig):
    """PIRL's options.

    Attributes:
        bank: Queue entries used as negatives (at most the data set's size).
        tiles: Jigsaw patches per side (the paper's 3 on 255×255 crops; 2 on 8×8 digits).
        temperature: τ.
        weight: λ, the jigsaw term's share.
        momentum: The EMA rate of the network that makes $m_I$ and the bank's entries.
        head_batch_norm: Batch norm in the heads' hidden layer.
        shuffle_bn: Shuffled batch norm on one device (see [`momentum`][ebmkit_ssl.momentum]).
    """

    bank: int = 1024
    tiles: int = 2
    temperature: float = 0.2
    weight: float = 0.5


class PIRL(MomentumQueue):
    """PIRL (as implemented: MoCo's queue, a jigsaw term, softmax InfoNCE; see the module):
    invariance to a jigsaw shuffle, negatives from a queue of momentum embeddings.

    Logs ``e_pos`` (image ↔ jigsaw), ``e_neg``, ``std`` and ``queue_self``.
    """

    name = "ssl.pirl"
    config_class = PIRLConfig
    cfg: PIRLConfig

    def __init__(self, cfg: PIRLConfig) -> None:
        super().__init__(cfg, cfg.bank, "bank")
        ek.config.at_least("tiles", cfg.tiles, who=self.name)
        if cfg.image_shape is None:
            raise ek.errors.ConfigError(f"{self.name}: the jigsaw pretext needs images; set "
                                        f"image_shape=[C, H, W]")
        if cfg.image_shape[1] % cfg.tiles or cfg.image_shape[2] % cfg.tiles:
            raise ek.errors.ConfigError(f"{self.name}: image sides {cfg.image_shape[1:]} must be "
                                        f"divisible by tiles={cfg.tiles}")
        self.criterion = PIRLLoss(cfg.temperature, cfg.weight)
        # g's own head: built again from the projector slot's spec (a module passed from
        # Python is copied, so it starts from the projector's weights).
        self.jigsaw_head = (copy.deepcopy(self.projector) if isinstance(cfg.projector, nn.Module)
                            else self.build_projector())

    def shuffle(self, y: Tensor) -> Tensor:
        """The jigsaw pretext transform of ``y`` ``[B, dim]`` (one permutation per image)."""
        b = y.shape[0]
        images = y.reshape(b, *self.view_shape)
        return jigsaw(images, self.generator(y.device), self.cfg.tiles).reshape(b, -1)

    def step(self, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check_batch(y)
        n = y.shape[0]
        self.update_keys()
        views = self.augment(torch.cat([y, y]))                                    # [2n, dim]
        shuffled = self.shuffle(views[:n])                                         # [n, dim]
        h = self.per_view(self.encode, torch.cat([views[:n], shuffled]))           # [2n, rep]
        f1 = nnf.normalize(self.projector(h[:n]), dim=1)                           # [n, d]
        g = nnf.normalize(self.jigsaw_head(h[n:]), dim=1)                          # [n, d]
        m = self.keys(views[n:])                                                   # m_I
        prints = self.memory.fingerprint(y)
        e_neg_f, self_share = self.memory.energies(f1, prints)
        e_neg_g, _ = self.memory.energies(g, prints)
        loss = self.criterion(f1, g, m, e_neg_f, e_neg_g)
        self.memory.push(m, prints)
        e_pos = 1.0 - (g.detach() * f1.detach()).sum(dim=1)
        return loss, {"e_pos": e_pos.mean(), "e_neg": finite_mean(e_neg_f),
                      "std": f1.detach().std(0).mean(),
                      "queue_self": self_share}
