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


def _columns(x: Tensor, offsets: Sequence[int]) -> list[Tensor]:
    """The tokens at each of ``offsets`` around every position ``[B, T]`` (``<pad>`` beyond
    the block's ends)."""
    reach = max((abs(o) for o in offsets), default=0)
    padded = torch.nn.functional.pad(x, (reach, reach), value=PAD_ID)         # [B, T + 2r]
    t = x.shape[1]
    return [padded[:, reach + o: reach + o + t] for o in offsets]


def _index(sorted_keys: Tensor, queries: Tensor) -> Tensor:
    """Position of each query in ``sorted_keys``, −1 where absent."""
    if not len(sorted_keys):
        return torch.full_like(queries, -1)
    idx = torch.searchsorted(sorted_keys, queries.contiguous()).clamp_(max=len(sorted_keys) - 1)
    return torch.where(sorted_keys[idx] == queries, idx, -1)


def _context_ids(columns: list[Tensor], vocab_size: int, levels: list[Tensor]) -> Tensor:
    """Context ids ``[B, T]`` of the token tuples in ``columns``, −1 for a context unseen in
    training: a context is read one token at a time and re-numbered after each by its rank
    among the prefixes seen in training (``levels``), so ids stay below (distinct contexts)
    × V and never overflow int64 (base-V keys of four neighbours do for V > ~6,200)."""
    key = columns[0]
    for col, seen in zip(columns[1:], levels):
        rank = _index(seen, key)
        key = torch.where(rank >= 0, rank * vocab_size + col, -1)
    return key if len(levels) < len(columns) else _index(levels[-1], key)


def _fit_levels(columns: list[Tensor], vocab_size: int) -> list[Tensor]:
    """The sorted prefixes seen in training, one level per token of the context."""
    levels: list[Tensor] = []
    key = columns[0]
    for col in columns[1:] + [None]:
        seen = torch.unique(key)                                              # sorted
        levels.append(seen)
        if col is None:
            break
        key = torch.searchsorted(seen, key) * vocab_size + col
    return levels


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
            cols = [torch.cat([c.reshape(-1) for c in cs])
                    for cs in zip(*[_columns(x, offsets) for x in xs])]       # [N] per offset
            levels = _fit_levels(cols, v)
            ctx_id = _context_ids(cols, v, levels)                              # [N], all seen
            full = ctx_id * v + y.reshape(-1).repeat(len(xs))
            pairs, pair_counts = torch.unique(full, return_counts=True)        # (h, w) sorted
            ctx, ctx_counts = torch.unique(ctx_id, return_counts=True)         # h sorted
            ctx_of_pair, types = torch.unique_consecutive(pairs // v, return_counts=True)
            assert torch.equal(ctx_of_pair, ctx)
            self.tables.append({"pairs": pairs, "pair_counts": pair_counts.double(),
                                "ctx": ctx, "ctx_counts": ctx_counts.double(),
                                "types": types.double(), "levels": levels})
        return self

    @staticmethod
    def _lookup(sorted_keys: Tensor, values: Tensor, queries: Tensor) -> Tensor:
        idx = torch.searchsorted(sorted_keys, queries.contiguous()).clamp_(max=len(sorted_keys) - 1)
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
            h = _context_ids(_columns(x, offsets_k), v, table["levels"])     # [B, T], −1: unseen
            c_h = self._lookup(table["ctx"], table["ctx_counts"], h)
            t_h = self._lookup(table["ctx"], table["types"], h)
            c_hw = self._lookup(table["pairs"], table["pair_counts"],
                                h.clamp(min=0).unsqueeze(-1) * v + words)      # [B, T, V]
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
