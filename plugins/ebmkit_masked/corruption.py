"""Corruptions that turn a clean y into the observed x of a masked model.

- [`BertCorruption`][ebmkit_masked.corruption.BertCorruption]: BERT's token corruption
  (Devlin et al. 2019, §3.1): each position (``<pad>`` excepted) is *selected* with
  probability ``rate``; a selected position becomes ``<mask>`` with probability ``mask``, a
  random ordinary token with probability ``random``, and keeps its token otherwise (0.15;
  80/10/10 by default).
- [`hide_patches`][ebmkit_masked.corruption.hide_patches]: hide a fraction of the square
  patches of images by setting their pixels to NaN (the convention of ``masked.image``).

Both follow the ``ek.negatives`` call convention (``gen(y, model=None, x=None)``, ``k = 1``):
they return a corrupted configuration shaped like ``y``, created on ``y``'s device with no
host sync, so they can serve as negatives of a contrastive strategy too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import ebmkit as ek

__all__ = ["BertCorruption", "hide_patches", "patch_mask"]

PAD_ID = 0  # where a shorter sequence ends: never selected, never attended
MASK_ID = 2
N_SPECIAL = 3  # <pad>, <unk>, <mask>: never drawn as random replacements


class BertCorruption:
    """BERT's corruption of token ids: select, then mask / replace / keep.

    Args:
        vocab_size: Number of token ids (special tokens included); random replacements are
            drawn uniformly from the ordinary ids ``[3, vocab_size)``.
        rate: Probability that a position is selected, in (0, 1).
        mask: Probability that a selected position becomes ``<mask>``.
        random: Probability that a selected position becomes a random ordinary token. The
            rest (``1 - mask - random``) keep their token.
        mask_id: The id of ``<mask>`` (2 in ebmkit's vocabularies).

    Raises:
        ConfigError: a rate outside (0, 1), or ``mask``/``random`` not probabilities that sum
            to at most 1.

    Example:
        >>> corrupt = BertCorruption(vocab_size=106)
        >>> x, selected = corrupt.corrupt(torch.randint(3, 106, (4, 64)))
        >>> x.shape, selected.dtype
        (torch.Size([4, 64]), torch.bool)
    """

    k = 1

    def __init__(self, vocab_size: int, rate: float = 0.15, mask: float = 0.8,
                 random: float = 0.1, mask_id: int = MASK_ID) -> None:
        who = "BertCorruption"
        self.vocab_size = ek.config.at_least("vocab_size", vocab_size, N_SPECIAL + 1, who=who)
        self.rate = ek.config.number("mask_rate", rate, low=0.0, high=1.0, low_open=True,
                                     high_open=True, who=who)
        self.mask = ek.config.number("mask_prob", mask, low=0.0, high=1.0, who=who)
        self.random = ek.config.number("random_prob", random, low=0.0, high=1.0, who=who)
        if self.mask + self.random > 1.0 + 1e-9:
            raise ek.errors.ConfigError(
                f"{who}: mask_prob + random_prob must be at most 1 (the rest keep their "
                f"token), got {self.mask:g} + {self.random:g} = {self.mask + self.random:g}")
        self.mask_id = mask_id

    def corrupt(self, y: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Corrupt ``y`` (int64 ``[B, T]``).

        Args:
            y: Clean token ids.
            generator: Optional generator on ``y``'s device (for a fixed evaluation corruption).

        Returns:
            ``(x, selected)``: the corrupted ids ``[B, T]`` and the bool mask of selected
            positions (masked, replaced or kept), ``[B, T]``.
        """
        u = torch.rand(y.shape, device=y.device, generator=generator)       # [B, T]
        v = torch.rand(y.shape, device=y.device, generator=generator)       # [B, T]
        selected = (u < self.rate) & (y != PAD_ID)                          # padding: never
        masked = selected & (v < self.mask)
        replaced = selected & (v >= self.mask) & (v < self.mask + self.random)
        noise = torch.randint(N_SPECIAL, self.vocab_size, y.shape, device=y.device,
                              generator=generator)
        x = torch.where(replaced, noise, y).masked_fill_(masked, self.mask_id)
        return x, selected

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        """The corrupted ``x`` alone (the ``ek.negatives`` convention)."""
        return self.corrupt(y)[0]

    def __repr__(self) -> str:
        return (f"BertCorruption(vocab_size={self.vocab_size}, rate={self.rate:g}, "
                f"mask={self.mask:g}, random={self.random:g})")


def patch_mask(batch: int, image_shape: tuple[int, int, int], patch_size: int, ratio: float,
               device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> Tensor:
    """A bool mask ``[B, C, H, W]`` that hides ``round(ratio · P)`` of the P patches of
    each image (exactly that many, chosen uniformly; every channel of a patch alike).

    ``H`` and ``W`` must be multiples of ``patch_size``.
    """
    c, h, w = image_shape
    gh, gw = h // patch_size, w // patch_size
    n_patches = gh * gw
    n_hidden = min(max(int(round(ratio * n_patches)), 1), n_patches)
    scores = torch.rand(batch, n_patches, device=device, generator=generator)
    hidden_idx = scores.argsort(dim=1)[:, :n_hidden]                      # [B, n_hidden]
    hidden = torch.zeros(batch, n_patches, dtype=torch.bool, device=device)
    hidden.scatter_(1, hidden_idx, True)                                   # [B, P]
    grid = hidden.view(batch, 1, gh, 1, gw, 1)
    return grid.expand(batch, c, gh, patch_size, gw, patch_size).reshape(batch, c, h, w)


def hide_patches(y: Tensor, image_shape: tuple[int, int, int], patch_size: int,
                 ratio: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """``y`` with ``ratio`` of its square patches set to NaN, in ``y``'s shape.

    Args:
        y: Images, flat ``[B, C·H·W]`` or ``[B, C, H, W]``.
        image_shape: ``(C, H, W)``.
        patch_size: Side of a square patch in pixels.
        ratio: Fraction of patches hidden, in (0, 1).
        generator: Optional generator on ``y``'s device.

    Returns:
        x: ``y`` with the hidden pixels NaN.
    """
    ek.config.number("ratio", ratio, low=0.0, high=1.0, low_open=True, high_open=True,
                     who="hide_patches")
    hidden = patch_mask(y.shape[0], image_shape, patch_size, ratio, y.device, generator)
    return y.masked_fill(hidden.reshape(y.shape), float("nan"))
