"""The count model that ``masked.lm`` is measured against: a hidden token from its neighbours.

[`CountModel`][ebmkit_masked.baseline.CountModel] predicts the token at a position from the
two tokens on each side in the *corrupted* sequence x, interpolating with Witten–Bell
smoothing (Witten & Bell 1991; Chen & Goodman 1998, §2.5) along a chain of ever shorter
contexts, by default ``(x₋₂, x₋₁, x₊₁, x₊₂) → (x₋₁, x₊₁) → ()``:

    P_k(w | h) = (c(h, w) + T(h) · P_{k-1}(w | h')) / (c(h) + T(h)),

where c counts training occurrences, T(h) is the number of distinct tokens seen after h,
h' the next shorter context, and the chain ends at the add-one unigram. Counts come from
the training blocks corrupted the same way as the evaluation (so contexts that hold a
``<mask>`` have counts too), each block padded with ``<pad>`` at both ends.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .corruption import BertCorruption

__all__ = ["CountModel"]

DEFAULT_CHAIN: tuple[tuple[int, ...], ...] = ((-2, -1, 1, 2), (-1, 1), ())
PAD_ID = 0


def _contexts(x: Tensor, offsets: Sequence[int], vocab_size: int) -> Tensor:
    """Context keys ``[B, T]``: the tokens at ``offsets`` around each position, base-V encoded
    (``<pad>`` beyond the block's ends)."""
    reach = max((abs(o) for o in offsets), default=0)
    padded = torch.nn.functional.pad(x, (reach, reach), value=PAD_ID)         # [B, T + 2r]
    t = x.shape[1]
    key = torch.zeros_like(x)
    for o in offsets:
        key = key * vocab_size + padded[:, reach + o: reach + o + t]
    return key


class CountModel:
    """A Witten–Bell interpolated count model of a token given its neighbours in x.

    Args:
        vocab_size: Number of token ids.
        chain: Context offsets from the longest to the shortest; each is a tuple of
            relative positions (the last should be ``()``, the unigram).
    """

    def __init__(self, vocab_size: int,
                 chain: Sequence[Sequence[int]] = DEFAULT_CHAIN) -> None:
        self.vocab_size = int(vocab_size)
        self.chain = [tuple(c) for c in chain]
        self.tables: list[dict[str, Tensor]] = []
        self.unigram = torch.ones(self.vocab_size)

    def fit(self, y: Tensor, corruption: BertCorruption | None = None, passes: int = 1,
            seed: int = 0) -> CountModel:
        """Count on training blocks ``y`` (int64 ``[N, T]``), whose contexts are corrupted by
        ``corruption`` in each of ``passes`` independent passes (clean when None)."""
        y = y.cpu()
        gen = torch.Generator().manual_seed(seed)
        xs = [y] if corruption is None else [corruption.corrupt(y, gen)[0] for _ in range(passes)]
        v = self.vocab_size
        self.unigram = torch.bincount(y.reshape(-1), minlength=v).double() + 1.0
        self.unigram /= self.unigram.sum()
        self.tables = []
        for offsets in [c for c in self.chain if c]:
            full = torch.cat([(_contexts(x, offsets, v) * v + y).reshape(-1) for x in xs])
            pairs, pair_counts = torch.unique(full, return_counts=True)        # (h, w) sorted
            ctx, ctx_counts = torch.unique(full // v, return_counts=True)      # h sorted
            ctx_of_pair, types = torch.unique_consecutive(pairs // v, return_counts=True)
            assert torch.equal(ctx_of_pair, ctx)
            self.tables.append({"pairs": pairs, "pair_counts": pair_counts.double(),
                                "ctx": ctx, "ctx_counts": ctx_counts.double(),
                                "types": types.double()})
        return self

    @staticmethod
    def _lookup(sorted_keys: Tensor, values: Tensor, queries: Tensor) -> Tensor:
        idx = torch.searchsorted(sorted_keys, queries).clamp_(max=len(sorted_keys) - 1)
        hit = sorted_keys[idx] == queries
        return torch.where(hit, values[idx], torch.zeros((), dtype=values.dtype))

    def probs(self, x: Tensor) -> Tensor:
        """P(w | neighbours of each position in x), float64 ``[B, T, V]``."""
        x = x.cpu()
        v = self.vocab_size
        p = self.unigram.expand(*x.shape, v).clone()                          # [B, T, V]
        words = torch.arange(v)
        offsets = [o for o in self.chain if o]
        for offsets_k, table in reversed(list(zip(offsets, self.tables))):
            h = _contexts(x, offsets_k, v)                                    # [B, T]
            c_h = self._lookup(table["ctx"], table["ctx_counts"], h)
            t_h = self._lookup(table["ctx"], table["types"], h)
            c_hw = self._lookup(table["pairs"], table["pair_counts"],
                                h.unsqueeze(-1) * v + words)                   # [B, T, V]
            seen = (c_h > 0).unsqueeze(-1)
            interp = (c_hw + t_h.unsqueeze(-1) * p) / (c_h + t_h).clamp(min=1).unsqueeze(-1)
            p = torch.where(seen, interp, p)
        return p

    def evaluate(self, y: Tensor, x: Tensor, where: Tensor) -> dict[str, float]:
        """Accuracy and perplexity at the positions ``where`` (bool ``[B, T]``) of x."""
        p = self.probs(x)[where.cpu()]                                         # [N, V]
        target = y.cpu()[where.cpu()]
        acc = (p.argmax(-1) == target).double().mean()
        nll = -p.gather(1, target.unsqueeze(1)).log().mean()
        return {"accuracy": float(acc), "perplexity": float(nll.exp()), "n": int(where.sum())}
