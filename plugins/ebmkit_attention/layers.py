"""Hopfield layers: ``Hopfield``, ``HopfieldPooling``, ``HopfieldLayer``, each with an energy.

Self-attention is a soft key-value store: a query q is compared with keys k_i, and the values
v_i are mixed by softmax(β kᵢᵀq). Read as a modern Hopfield network (Ramsauer et al. 2020),
the keys are stored patterns, the query is the state, and the comparison step is the update
ξ ← Kᵀ softmax(β K ξ) that never raises

    E(ξ) = −β⁻¹ log Σ_i exp(β k_iᵀ ξ) + ½ ξᵀξ + β⁻¹ log N + ½ max_i ‖k_i‖².

The queries, keys and values are learned projections of the inputs ("rotations of the input"
into an associative space, one per head). A layer runs ``steps − 1`` Hopfield updates of the
projected queries against the keys (in the associative space, where E lives), then one last
attention that reads the values. With ``steps=1`` that is exactly multi-head attention with
scale β. ``tol`` stops the updates early once the energy stops falling — on the energy, not
on the change of the state. ``energy(...)`` returns E summed over heads and queries, ``[B]``.

The three layers follow the user-facing trio of hopfield-layers (``hflayers``):

- ``Hopfield``: queries from one set, keys and values from another (``forward(query, stored)``).
- ``HopfieldPooling``: learned queries that pool a set into a fixed number of vectors.
- ``HopfieldLayer``: learned keys and values (a lookup table the inputs query).

Axis legend for the einops patterns: b batch, h heads, m queries, n stored patterns,
d associative (per-head) dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as nnf
from einops import rearrange
from torch import Tensor, nn

from ebmkit.errors import ConfigError

__all__ = ["Hopfield", "HopfieldLayer", "HopfieldPooling", "hopfield_energy"]


def hopfield_energy(xi: Tensor, keys: Tensor, beta: float | Tensor,
                    mask: Tensor | None = None) -> Tensor:
    """E(ξ) of the modern Hopfield network for states ``[..., m, d]`` and keys ``[..., n, d]``
    (leading axes broadcast), one energy per state ``[..., m]``.

    ``beta`` is a number or a tensor broadcastable to ``[..., m, 1]`` (per head: ``[h, 1, 1]``).
    ``mask`` (additive, broadcastable to ``[..., m, n]``, −inf where a key is not associated)
    restricts each state's sum, N and max ‖k_i‖² to the keys it may see.
    """
    logits = beta * xi @ keys.transpose(-1, -2)  # [..., m, n]
    sq = keys.square().sum(dim=-1).unsqueeze(-2)  # [..., 1, n]
    if mask is None:
        n = torch.full((), keys.shape[-2], dtype=xi.dtype, device=xi.device)
        top = sq.amax(dim=-1)  # [..., 1]
    else:
        logits = logits + mask
        seen = torch.isfinite(mask).expand(logits.shape)
        n = seen.sum(dim=-1).to(xi.dtype)  # [..., m]
        top = torch.where(seen, sq.expand(logits.shape), -torch.inf).amax(dim=-1)
    const = (torch.log(n) / beta.squeeze(-1) if isinstance(beta, Tensor) else torch.log(n) / beta)
    return (-torch.logsumexp(logits, dim=-1) / (beta.squeeze(-1) if isinstance(beta, Tensor)
                                                  else beta)
            + 0.5 * xi.square().sum(dim=-1) + const + 0.5 * top)


def _check_int(name: str, value: Any, low: int, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{who}: {name} must be an integer >= {low}, got {value!r}")
    return value


def _betas(beta: Any, heads: int, hidden_size: int, who: str) -> list[float]:
    """β per head from a number, a sequence of ``heads`` numbers or None (1/√hidden_size)."""
    if beta is None:
        beta = 1.0 / math.sqrt(hidden_size)
    values = list(beta) if isinstance(beta, (list, tuple, Tensor)) else [beta] * heads
    values = [float(v) if isinstance(v, Tensor) else v for v in values]
    if len(values) != heads or not all(
            not isinstance(v, bool) and isinstance(v, (int, float)) and v > 0
            and math.isfinite(v) for v in values):
        raise ConfigError(f"{who}: beta must be a positive number or {heads} positive numbers "
                          f"(one per head), got {beta!r}")
    return [float(v) for v in values]


class Hopfield(nn.Module):
    """Hopfield association between state (query) patterns and stored patterns.

    Args:
        input_size: Width of the queries.
        hidden_size: Associative dimension per head (default ``input_size // heads``).
        output_size: Width of the output (default ``input_size``).
        stored_size: Width of the stored patterns (default ``input_size``).
        heads: Number of heads, each with its own projections.
        beta: Inverse temperature β: one number for every head, or a sequence of ``heads``
            numbers, one per head (hopfield-layers' ``scaling`` per head); default
            1/√hidden_size, the transformer's scale.
        steps: Maximum updates; the last reads the values (``steps=1``: plain attention).
        tol: Stop the updates once no state's energy fell by more than ``tol·(|E|+1)``
            (one host sync per step); None runs all ``steps``.
        bias: Biases in the projections.
        batch_first: Inputs and outputs as ``[B, M, width]`` (True, the default, as
            hopfield-layers) or ``[M, B, width]`` (False, ``nn.MultiheadAttention``'s default).
        dropout: Dropout on the association matrix (the softmax weights) of the last step,
            which reads the values, in training mode only.

    The calls take ``nn.MultiheadAttention``'s masks: ``key_padding_mask`` ``[B, N]`` (True:
    the stored pattern is padding, ignored; bags of different sizes in one batch) and
    ``attn_mask``, the association mask, ``[M, N]`` or ``[B·heads, M, N]`` (bool, True: not
    associated; or float, added to the logits). Each state's energy then sums over, counts
    and takes the max norm over the stored patterns it may see.

    Example:
        >>> import torch
        >>> from ebmkit_attention import Hopfield
        >>> layer = Hopfield(16, heads=2, steps=3)
        >>> q, stored = torch.randn(4, 5, 16), torch.randn(4, 9, 16)
        >>> layer(q, stored).shape, layer.energy(q, stored).shape
        (torch.Size([4, 5, 16]), torch.Size([4]))
    """

    def __init__(self, input_size: int, hidden_size: int | None = None,
                 output_size: int | None = None, stored_size: int | None = None, heads: int = 1,
                 beta: float | Sequence[float] | None = None, steps: int = 1,
                 tol: float | None = None, bias: bool = False, batch_first: bool = True,
                 dropout: float = 0.0, query_projection: bool = True) -> None:
        super().__init__()
        who = type(self).__name__
        _check_int("input_size", input_size, 1, who)
        _check_int("heads", heads, 1, who)
        _check_int("steps", steps, 1, who)
        hidden_size = hidden_size if hidden_size is not None else max(input_size // heads, 1)
        _check_int("hidden_size", hidden_size, 1, who)
        betas = _betas(beta, heads, hidden_size, who)
        if tol is not None and (not isinstance(tol, (int, float)) or tol < 0):
            raise ConfigError(f"{who}: tol must be a number >= 0 or None, got {tol!r}")
        if not isinstance(batch_first, bool):
            raise ConfigError(f"{who}: batch_first must be True or False, got {batch_first!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise ConfigError(f"{who}: dropout must be a number in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size, self.heads = input_size, hidden_size, heads
        self.stored_size = stored_size or input_size
        self.output_size = output_size or input_size
        self.steps, self.tol = steps, tol
        self.batch_first, self.dropout = batch_first, float(dropout)
        # β per head [h, 1, 1] (broadcasts over [b, h, m, n]); the scalar when all agree, so
        # the fused kernel's scale is used as is.
        self.register_buffer("betas", torch.tensor(betas).view(heads, 1, 1), persistent=False)
        self._scalar_beta = betas[0] if len(set(betas)) == 1 else None
        inner = heads * hidden_size
        # HopfieldPooling learns its queries in the associative space: no query projection
        self.q_proj = nn.Linear(input_size, inner, bias=bias) if query_projection else None
        self.k_proj = nn.Linear(self.stored_size, inner, bias=bias)
        self.v_proj = nn.Linear(self.stored_size, inner, bias=bias)
        self.out_proj = nn.Linear(inner, self.output_size, bias=bias)

    @property
    def beta(self) -> float | Tensor:
        """β: a number when every head has the same, else the tensor ``[heads, 1, 1]``."""
        return self.betas if self._scalar_beta is None else self._scalar_beta

    def _beta(self, like: Tensor) -> float | Tensor:
        return self._scalar_beta if self._scalar_beta is not None else self.betas.to(like.dtype)

    # ---------------------------------------------------------------- projections
    def _check(self, t: Tensor, width: int, what: str) -> None:
        if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[-1] != width:
            got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
            lead = "B, *" if self.batch_first else "*, B"
            raise ConfigError(f"{type(self).__name__}: expected {what} of shape [{lead}, "
                              f"{width}], got {got}")

    def _batch_first(self, t: Tensor) -> Tensor:
        return t if self.batch_first else t.transpose(0, 1)

    def _heads(self, t: Tensor) -> Tensor:
        return rearrange(t, "b n (h d) -> b h n d", h=self.heads)

    def project(self, query: Tensor, stored: Tensor) -> tuple[Tensor, Tensor]:
        """Queries ``[b, h, m, d]`` and keys ``[b, h, n, d]`` in the associative space."""
        self._check(query, self.input_size, "queries")
        self._check(stored, self.stored_size, "stored patterns")
        if self.q_proj is None:
            raise ConfigError(f"{type(self).__name__}: built without a query projection")
        q = self._heads(self.q_proj(self._batch_first(query)))
        k = self._heads(self.k_proj(self._batch_first(stored)))
        return q, k

    def association_mask(self, b: int, m: int, n: int, key_padding_mask: Tensor | None,
                         attn_mask: Tensor | None, like: Tensor) -> Tensor | None:
        """The masks as one additive float mask broadcastable to ``[b, h, m, n]`` (−inf where
        a state may not see a stored pattern), or None without masks. Shapes are checked;
        values are not read (no host sync)."""
        who = type(self).__name__
        out = None
        if key_padding_mask is not None:
            if not isinstance(key_padding_mask, Tensor) or tuple(key_padding_mask.shape) != (b, n):
                got = (list(key_padding_mask.shape) if isinstance(key_padding_mask, Tensor)
                       else type(key_padding_mask).__name__)
                raise ConfigError(f"{who}: key_padding_mask must be [B, N] = [{b}, {n}] (True: "
                                  f"padding), got {got}")
            out = _additive(key_padding_mask, like)[:, None, None, :]  # [b, 1, 1, n]
        if attn_mask is not None:
            shape = tuple(attn_mask.shape) if isinstance(attn_mask, Tensor) else None
            if shape == (m, n):
                a = _additive(attn_mask, like)  # [m, n]
            elif shape == (b * self.heads, m, n):
                a = _additive(attn_mask, like).view(b, self.heads, m, n)
            else:
                got = list(shape) if shape else type(attn_mask).__name__
                raise ConfigError(f"{who}: attn_mask must be [M, N] = [{m}, {n}] or "
                                  f"[B·heads, M, N] = [{b * self.heads}, {m}, {n}], got {got}")
            out = a if out is None else out + a
        return out

    def _update(self, q: Tensor, k: Tensor, trace: bool, mask: Tensor | None = None
                ) -> tuple[Tensor, list[Tensor]]:
        """``steps − 1`` Hopfield updates ξ ← Kᵀ softmax(β K ξ) of the projected queries."""
        beta = self._beta(q)
        energies = [hopfield_energy(q, k, beta, mask).sum(dim=(1, 2))] if (
            trace or self.tol is not None) else []
        for _ in range(self.steps - 1):
            logits = beta * q @ k.transpose(-1, -2)
            if mask is not None:
                logits = logits + mask
            q = torch.softmax(logits, dim=-1) @ k  # [b, h, m, d]
            if energies:
                energies.append(hopfield_energy(q, k, beta, mask).sum(dim=(1, 2)))
                if self.tol is not None:
                    fall = energies[-2] - energies[-1]
                    if not bool((fall > self.tol * (energies[-1].abs() + 1)).any()):
                        break
        return q, energies

    def _weights(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        logits = self._beta(q) * q @ k.transpose(-1, -2)
        return torch.softmax(logits if mask is None else logits + mask, dim=-1)

    def _read(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """The last step: softmax(β q kᵀ) v through PyTorch's fused attention kernel (values
        ``v`` already projected, ``[b, h, n, d]``); output ``[b, m, output_size]``."""
        p = self.dropout if self.training else 0.0
        if self._scalar_beta is None:  # β per head: scale the queries, kernel scale 1
            q, scale = q * self._beta(q), 1.0
        else:
            scale = self._scalar_beta
        out = nnf.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                               scale=scale)  # [b, h, m, d]
        return self.out_proj(rearrange(out, "b h m d -> b m (h d)"))

    def _out(self, t: Tensor) -> Tensor:
        return t if self.batch_first else t.transpose(0, 1)

    # ---------------------------------------------------------------- the public calls
    def forward(self, query: Tensor, stored: Tensor, values: Tensor | None = None, *,
                key_padding_mask: Tensor | None = None, attn_mask: Tensor | None = None,
                return_energies: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Retrieve for each query: ``[B, M, output_size]`` (``[M, B, …]`` unless
        ``batch_first``).

        Args:
            query: State patterns ``[B, M, input_size]``.
            stored: Stored patterns ``[B, N, stored_size]`` (keys; also values when
                ``values`` is None).
            values: Optional separate value inputs ``[B, N, stored_size]``.
            key_padding_mask: ``[B, N]``, True where a stored pattern is padding.
            attn_mask: The association mask, ``[M, N]`` or ``[B·heads, M, N]``.
            return_energies: Also return the energy before the updates and after each,
                ``[updates + 1, B]`` (non-increasing).
        """
        q, k = self.project(query, stored)
        mask = self.association_mask(q.shape[0], q.shape[2], k.shape[2], key_padding_mask,
                                     attn_mask, q)
        q, energies = self._update(q, k, return_energies, mask)
        if values is not None:
            self._check(values, self.stored_size, "values")
        v = self._heads(self.v_proj(self._batch_first(stored if values is None else values)))
        out = self._out(self._read(q, k, v, mask))
        return (out, torch.stack(energies)) if return_energies else out

    def attention(self, query: Tensor, stored: Tensor, *, key_padding_mask: Tensor | None = None,
                  attn_mask: Tensor | None = None) -> Tensor:
        """The attention of the last step ``[B, heads, M, N]``: which stored patterns each
        query reads (before dropout)."""
        q, k = self.project(query, stored)
        mask = self.association_mask(q.shape[0], q.shape[2], k.shape[2], key_padding_mask,
                                     attn_mask, q)
        q, _ = self._update(q, k, False, mask)
        return self._weights(q, k, mask)

    def energy(self, query: Tensor, stored: Tensor, *, key_padding_mask: Tensor | None = None,
               attn_mask: Tensor | None = None) -> Tensor:
        """E of the projected queries against the projected keys, summed over heads and
        queries, ``[B]``."""
        q, k = self.project(query, stored)
        mask = self.association_mask(q.shape[0], q.shape[2], k.shape[2], key_padding_mask,
                                     attn_mask, q)
        return hopfield_energy(q, k, self._beta(q), mask).sum(dim=(1, 2))


def _additive(mask: Tensor, like: Tensor) -> Tensor:
    """A bool mask (True: masked) as 0 / −inf, or a float mask as is, in ``like``'s dtype."""
    if mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        return torch.where(mask.to(like.device), -torch.inf, zero)
    return mask.to(like.device, like.dtype)


class _QueryKeyLayer(nn.Module):
    """What ``HopfieldPooling`` and ``HopfieldLayer`` share: given their ``_qk(x)`` (queries
    and keys, ``[b, h, m, d]`` and ``[b, h, n, d]``), the attention weights and the energy."""

    hopfield: Hopfield

    def __init__(self, count: tuple[str, int], input_size: int, hidden_size: int | None,
                 output_size: int | None, heads: int, beta: float | Sequence[float] | None,
                 steps: int, tol: float | None, bias: bool, batch_first: bool, dropout: float,
                 query_projection: bool = True) -> None:
        super().__init__()
        _check_int(*count, 1, type(self).__name__)  # ("queries", 4): the layer's own size
        self.hopfield = Hopfield(input_size, hidden_size, output_size, heads=heads, beta=beta,
                                 steps=steps, tol=tol, bias=bias, batch_first=batch_first,
                                 dropout=dropout, query_projection=query_projection)

    def _qk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _read(self, x: Tensor, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        """The output from the updated queries ``q`` and the keys ``k``."""
        raise NotImplementedError

    def _retrieve(self, x: Tensor, key_padding_mask: Tensor | None, attn_mask: Tensor | None,
                  return_energies: bool) -> tuple[Tensor, Tensor, Tensor | None, list[Tensor]]:
        """Queries after the update steps, keys, mask and (when asked) the energies."""
        q, k = self._qk(x)
        mask = self._mask(q, k, key_padding_mask, attn_mask)
        q, energies = self.hopfield._update(q, k, return_energies, mask)
        return q, k, mask, energies

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None,
                attn_mask: Tensor | None = None, return_energies: bool = False) -> Any:
        q, k, mask, energies = self._retrieve(x, key_padding_mask, attn_mask, return_energies)
        out = self._read(x, q, k, mask)
        return (out, torch.stack(energies)) if return_energies else out

    def _mask(self, q: Tensor, k: Tensor, key_padding_mask: Tensor | None,
              attn_mask: Tensor | None) -> Tensor | None:
        return self.hopfield.association_mask(q.shape[0], q.shape[2], k.shape[2],
                                              key_padding_mask, attn_mask, q)

    def attention(self, x: Tensor, *, key_padding_mask: Tensor | None = None,
                  attn_mask: Tensor | None = None) -> Tensor:
        """Attention weights after the update steps, ``[B, heads, queries, keys]``
        (pooling: the learned queries over the set; layer: the inputs over the patterns)."""
        q, k, mask, _ = self._retrieve(x, key_padding_mask, attn_mask, False)
        return self.hopfield._weights(q, k, mask)

    def energy(self, x: Tensor, *, key_padding_mask: Tensor | None = None,
               attn_mask: Tensor | None = None) -> Tensor:
        """The Hopfield energy of the queries against the keys, summed over heads and
        queries, ``[B]``."""
        q, k = self._qk(x)
        mask = self._mask(q, k, key_padding_mask, attn_mask)
        return hopfield_energy(q, k, self.hopfield._beta(q), mask).sum(dim=(1, 2))


class HopfieldPooling(_QueryKeyLayer):
    """Pool a set ``[B, N, input_size]`` into ``queries`` vectors with learned state patterns.

    The learned queries live in the associative space directly (one per head and query) and
    retrieve from the projected set; this is attention pooling, read as a Hopfield network
    whose stored patterns are the set's elements. There is no query projection (the queries
    are parameters already in the associative space), so every parameter gets a gradient
    and DDP needs no ``find_unused_parameters``.

    Args:
        input_size: Width of the set's elements.
        hidden_size, output_size, heads, beta, steps, tol, bias, batch_first, dropout: as
            for ``Hopfield``.
        queries: Number of pooled vectors.

    ``forward(x, key_padding_mask=...)`` pools bags of different sizes in one batch
    (``key_padding_mask`` ``[B, N]``, True where an element is padding), as in
    multiple-instance learning. Returns ``[B, output_size]`` when ``queries == 1``, else
    ``[B, queries, output_size]`` (``[queries, B, …]`` unless ``batch_first``).
    """

    def __init__(self, input_size: int, hidden_size: int | None = None,
                 output_size: int | None = None, heads: int = 1, queries: int = 1,
                 beta: float | Sequence[float] | None = None, steps: int = 1,
                 tol: float | None = None, bias: bool = False, batch_first: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__(("queries", queries), input_size, hidden_size, output_size, heads,
                         beta, steps, tol, bias, batch_first, dropout, query_projection=False)
        h = self.hopfield
        self.queries = nn.Parameter(torch.randn(h.heads, queries, h.hidden_size)
                                    / math.sqrt(h.hidden_size))  # [h, m, d]

    def _qk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.hopfield
        h._check(x, h.stored_size, "a set")
        k = h._heads(h.k_proj(h._batch_first(x)))
        q = self.queries.unsqueeze(0).expand(k.shape[0], -1, -1, -1).to(k.dtype)
        return q, k

    def _read(self, x: Tensor, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        h = self.hopfield
        out = h._read(q, k, h._heads(h.v_proj(h._batch_first(x))), mask)  # [b, m, out]
        return out.squeeze(1) if out.shape[1] == 1 else h._out(out)


class HopfieldLayer(_QueryKeyLayer):
    """A learned key-value store: inputs ``[B, M, input_size]`` query ``patterns`` learned
    keys and values (the memory is a parameter, shared by every sample).

    Args:
        input_size: Width of the inputs.
        patterns: Number of learned stored patterns.
        hidden_size, output_size, heads, beta, steps, tol, bias, batch_first, dropout: as
            for ``Hopfield``.

    The calls take ``key_padding_mask`` ``[B, patterns]`` and ``attn_mask`` ``[M, patterns]``
    as ``Hopfield`` does.
    """

    def __init__(self, input_size: int, patterns: int = 32, hidden_size: int | None = None,
                 output_size: int | None = None, heads: int = 1,
                 beta: float | Sequence[float] | None = None, steps: int = 1,
                 tol: float | None = None, bias: bool = False, batch_first: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__(("patterns", patterns), input_size, hidden_size, output_size, heads,
                         beta, steps, tol, bias, batch_first, dropout)
        self.patterns = nn.Parameter(torch.randn(patterns, input_size) / math.sqrt(input_size))

    def _qk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Projected queries ``[b, h, m, d]`` and the shared keys ``[b, h, n, d]`` (a view:
        the patterns are projected once, not once per sample)."""
        h = self.hopfield
        h._check(x, h.input_size, "inputs")
        q = h._heads(h.q_proj(h._batch_first(x)))
        k = rearrange(h.k_proj(self.patterns), "n (h d) -> h n d", h=h.heads)
        return q, k.unsqueeze(0).expand(q.shape[0], -1, -1, -1)

    def _read(self, x: Tensor, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        h = self.hopfield
        v = rearrange(h.v_proj(self.patterns), "n (h d) -> h n d", h=h.heads)
        return h._out(h._read(q, k, v.unsqueeze(0).expand(q.shape[0], -1, -1, -1), mask))
