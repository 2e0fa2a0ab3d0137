r"""The adversarial losses, written over energies.

The discriminator is an energy $E(y)$ and $D(y) = \sigma(-E(y))$, so $\log D(y) =
-\operatorname{softplus}(E(y))$ and $\log(1 - D(y)) = -\operatorname{softplus}(-E(y))$. With
$E_+ = E(y)$ on data and $E_- = E(G(z))$ on samples, each loss is a pair: what the
discriminator minimises and what the generator minimises.

| name | discriminator | generator |
|---|---|---|
| ``minimax`` | $-V = \overline{\operatorname{sp}(E_+)} + \overline{\operatorname{sp}(-E_-)}$ | $V$'s sample term: $-\overline{\operatorname{sp}(-E_-)}$ (saturates) |
| ``non_saturating`` | same as minimax | $\overline{\operatorname{sp}(E_-)} = -\overline{\log D(G(z))}$ |
| ``hinge`` | $\overline{[1 + E_+]_+} + \overline{[1 - E_-]_+}$ | $\overline{E_-}$ |
| ``margin`` (EBGAN) | $\overline{E_+} + \overline{[m - E_-]_+}$ | $\overline{E_-}$ (+ pulling-away term) |

Every function takes energies of shape ``[B]`` and returns a scalar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from ebmkit.errors import ConfigError

__all__ = ["GAN_LOSSES", "GANLoss", "get_gan_loss", "hinge_d", "hinge_g", "margin_d",
           "minimax_d", "minimax_g", "non_saturating_g", "pulling_away", "value_function"]


def value_function(e_pos: Tensor, e_neg: Tensor) -> Tensor:
    r"""$V(D, G) = \mathbb E_y[\log D(y)] + \mathbb E_z[\log(1 - D(G(z)))]$ with $D = \sigma(-E)$."""
    return -F.softplus(e_pos).mean() - F.softplus(-e_neg).mean()


def minimax_d(e_pos: Tensor, e_neg: Tensor) -> Tensor:
    """The discriminator maximises V: it minimises −V (binary cross-entropy, data = 1)."""
    return F.softplus(e_pos).mean() + F.softplus(-e_neg).mean()


def minimax_g(e_neg: Tensor) -> Tensor:
    """The generator minimises V's sample term, log(1 − D(G(z))): flat where D wins."""
    return -F.softplus(-e_neg).mean()


def non_saturating_g(e_neg: Tensor) -> Tensor:
    """The generator maximises log D(G(z)) instead: strong gradients early in training."""
    return F.softplus(e_neg).mean()


def hinge_d(e_pos: Tensor, e_neg: Tensor, margin: float = 1.0) -> Tensor:
    """Hinge: data below −margin, samples above +margin."""
    return F.relu(margin + e_pos).mean() + F.relu(margin - e_neg).mean()


def hinge_g(e_neg: Tensor) -> Tensor:
    """The generator lowers the energy of its samples."""
    return e_neg.mean()


def margin_d(e_pos: Tensor, e_neg: Tensor, margin: float = 1.0) -> Tensor:
    """EBGAN: D(y) + [m − D(G(z))]₊ with D the (non-negative) reconstruction energy."""
    return e_pos.mean() + F.relu(margin - e_neg).mean()


def pulling_away(code: Tensor) -> Tensor:
    r"""EBGAN's pulling-away term: $\frac{1}{N(N-1)}\sum_{i \ne j} \cos^2(s_i, s_j)$.

    ``code`` is ``[N, D]``; near 0 when the batch's embeddings are orthogonal (diverse),
    1 when they all point one way (mode collapse).
    """
    n = code.shape[0]
    if n < 2:
        return code.new_zeros(())
    s = F.normalize(code.flatten(1), dim=1)
    gram = (s @ s.T).square()  # [N, N]
    return (gram.sum() - gram.diagonal().sum()) / (n * (n - 1))


@dataclass(frozen=True)
class GANLoss:
    """A discriminator loss ``d(e_pos, e_neg)`` paired with a generator loss ``g(e_neg)``."""

    name: str
    d: Callable[..., Tensor]
    g: Callable[[Tensor], Tensor]
    takes_margin: bool = False


GAN_LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss("minimax", minimax_d, minimax_g),
    "non_saturating": GANLoss("non_saturating", minimax_d, non_saturating_g),
    "hinge": GANLoss("hinge", hinge_d, hinge_g, takes_margin=True),
    "margin": GANLoss("margin", margin_d, hinge_g, takes_margin=True),
}


def get_gan_loss(name: str) -> GANLoss:
    """The pair called ``name``; a ConfigError lists the known ones."""
    if isinstance(name, GANLoss):
        return name
    try:
        return GAN_LOSSES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown GAN loss {name!r}; expected one of "
                          f"{', '.join(map(repr, GAN_LOSSES))}") from None


# Registered (discriminator side, ek.losses signature loss(e_pos, e_neg, **options)).
def gan_minimax(e_pos: Tensor, e_neg: Tensor) -> Tensor:
    """−V(D, G): softplus(E₊) + softplus(−E₋), the discriminator's cross-entropy."""
    return minimax_d(e_pos, e_neg)


def gan_hinge(e_pos: Tensor, e_neg: Tensor, margin: float = 1.0) -> Tensor:
    """[m + E₊]₊ + [m − E₋]₊ (the hinge GAN discriminator loss)."""
    return hinge_d(e_pos, e_neg, margin)


def gan_margin(e_pos: Tensor, e_neg: Tensor, margin: float = 1.0) -> Tensor:
    """E₊ + [m − E₋]₊ (EBGAN's discriminator loss)."""
    return margin_d(e_pos, e_neg, margin)

