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
from typing import Any

import torch
import torch.nn.functional as nnf
from einops import rearrange
from torch import Tensor, nn

from ebmkit.errors import ConfigError

__all__ = ["Hopfield", "HopfieldLayer", "HopfieldPooling", "hopfield_energy"]


def hopfield_energy(xi: Tensor, keys: Tensor, beta: float) -> Tensor:
    """E(ξ) of the modern Hopfield network for states ``[..., m, d]`` and keys ``[..., n, d]``
    (leading axes broadcast), one energy per state ``[..., m]``."""
    n = keys.shape[-2]
    logits = beta * xi @ keys.transpose(-1, -2)  # [..., m, n]
    const = math.log(n) / beta + 0.5 * keys.square().sum(dim=-1).amax(dim=-1, keepdim=True)
    return -torch.logsumexp(logits, dim=-1) / beta + 0.5 * xi.square().sum(dim=-1) + const


def _check_int(name: str, value: Any, low: int, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{who}: {name} must be an integer >= {low}, got {value!r}")
    return value


class Hopfield(nn.Module):
    """Hopfield association between state (query) patterns and stored patterns.

    Args:
        input_size: Width of the queries.
        hidden_size: Associative dimension per head (default ``input_size // heads``).
        output_size: Width of the output (default ``input_size``).
        stored_size: Width of the stored patterns (default ``input_size``).
        heads: Number of heads, each with its own projections and β.
        beta: Inverse temperature β (default 1/√hidden_size, the transformer's scale).
        steps: Maximum updates; the last reads the values (``steps=1``: plain attention).
        tol: Stop the updates once no state's energy fell by more than ``tol·(|E|+1)``
            (one host sync per step); None runs all ``steps``.
        bias: Biases in the projections.

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
                 beta: float | None = None, steps: int = 1, tol: float | None = None,
                 bias: bool = False) -> None:
        super().__init__()
        who = type(self).__name__
        _check_int("input_size", input_size, 1, who)
        _check_int("heads", heads, 1, who)
        _check_int("steps", steps, 1, who)
        hidden_size = hidden_size if hidden_size is not None else max(input_size // heads, 1)
        _check_int("hidden_size", hidden_size, 1, who)
        if beta is None:
            beta = 1.0 / math.sqrt(hidden_size)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0 \
                or not math.isfinite(beta):
            raise ConfigError(f"{who}: beta must be a positive number, got {beta!r}")
        if tol is not None and (not isinstance(tol, (int, float)) or tol < 0):
            raise ConfigError(f"{who}: tol must be a number >= 0 or None, got {tol!r}")
        self.input_size, self.hidden_size, self.heads = input_size, hidden_size, heads
        self.stored_size = stored_size or input_size
        self.output_size = output_size or input_size
        self.beta, self.steps, self.tol = float(beta), steps, tol
        inner = heads * hidden_size
        self.q_proj = nn.Linear(input_size, inner, bias=bias)
        self.k_proj = nn.Linear(self.stored_size, inner, bias=bias)
        self.v_proj = nn.Linear(self.stored_size, inner, bias=bias)
        self.out_proj = nn.Linear(inner, self.output_size, bias=bias)

    # ---------------------------------------------------------------- projections
    def _check(self, t: Tensor, width: int, what: str) -> None:
        if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[-1] != width:
            got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ConfigError(f"{type(self).__name__}: expected {what} of shape [B, *, {width}], "
                              f"got {got}")

    def project(self, query: Tensor, stored: Tensor) -> tuple[Tensor, Tensor]:
        """Queries ``[b, h, m, d]`` and keys ``[b, h, n, d]`` in the associative space."""
        self._check(query, self.input_size, "queries")
        self._check(stored, self.stored_size, "stored patterns")
        q = rearrange(self.q_proj(query), "b m (h d) -> b h m d", h=self.heads)
        k = rearrange(self.k_proj(stored), "b n (h d) -> b h n d", h=self.heads)
        return q, k

    def _update(self, q: Tensor, k: Tensor, trace: bool) -> tuple[Tensor, list[Tensor]]:
        """``steps − 1`` Hopfield updates ξ ← Kᵀ softmax(β K ξ) of the projected queries."""
        energies = [hopfield_energy(q, k, self.beta).sum(dim=(1, 2))] if (
            trace or self.tol is not None) else []
        for _ in range(self.steps - 1):
            q = torch.softmax(self.beta * q @ k.transpose(-1, -2), dim=-1) @ k  # [b, h, m, d]
            if energies:
                energies.append(hopfield_energy(q, k, self.beta).sum(dim=(1, 2)))
                if self.tol is not None:
                    fall = energies[-2] - energies[-1]
                    if not bool((fall > self.tol * (energies[-1].abs() + 1)).any()):
                        break
        return q, energies

    def _read(self, q: Tensor, k: Tensor, values: Tensor) -> Tensor:
        """The last step: softmax(β q kᵀ) v through PyTorch's fused attention kernel."""
        v = rearrange(self.v_proj(values), "b n (h d) -> b h n d", h=self.heads)
        out = nnf.scaled_dot_product_attention(q, k, v, scale=self.beta)  # [b, h, m, d]
        return self.out_proj(rearrange(out, "b h m d -> b m (h d)"))

    # ---------------------------------------------------------------- the public calls
    def forward(self, query: Tensor, stored: Tensor, values: Tensor | None = None, *,
                return_energies: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Retrieve for each query: ``[B, M, output_size]``.

        Args:
            query: State patterns ``[B, M, input_size]``.
            stored: Stored patterns ``[B, N, stored_size]`` (keys; also values when
                ``values`` is None).
            values: Optional separate value inputs ``[B, N, stored_size]``.
            return_energies: Also return the energy before the updates and after each,
                ``[updates + 1, B]`` (non-increasing).
        """
        q, k = self.project(query, stored)
        q, energies = self._update(q, k, return_energies)
        out = self._read(q, k, stored if values is None else values)
        return (out, torch.stack(energies)) if return_energies else out

    def attention(self, query: Tensor, stored: Tensor) -> Tensor:
        """The attention of the last step ``[B, heads, M, N]``: which stored patterns each
        query reads."""
        q, k = self.project(query, stored)
        q, _ = self._update(q, k, False)
        return torch.softmax(self.beta * q @ k.transpose(-1, -2), dim=-1)

    def energy(self, query: Tensor, stored: Tensor) -> Tensor:
        """E of the projected queries against the projected keys, summed over heads and
        queries, ``[B]``."""
        q, k = self.project(query, stored)
        return hopfield_energy(q, k, self.beta).sum(dim=(1, 2))


class _QueryKeyLayer(nn.Module):
    """What ``HopfieldPooling`` and ``HopfieldLayer`` share: given their ``_qk(x)`` (queries
    and keys, ``[b, h, m, d]`` and ``[b, h, n, d]``), the attention weights and the energy."""

    hopfield: Hopfield

    def _qk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def attention(self, x: Tensor) -> Tensor:
        """Attention weights after the update steps, ``[B, heads, queries, keys]``
        (pooling: the learned queries over the set; layer: the inputs over the patterns)."""
        h = self.hopfield
        q, k = self._qk(x)
        q, _ = h._update(q, k, False)
        return torch.softmax(h.beta * q @ k.transpose(-1, -2), dim=-1)

    def energy(self, x: Tensor) -> Tensor:
        """The Hopfield energy of the queries against the keys, summed over heads and
        queries, ``[B]``."""
        q, k = self._qk(x)
        return hopfield_energy(q, k, self.hopfield.beta).sum(dim=(1, 2))


class HopfieldPooling(_QueryKeyLayer):
    """Pool a set ``[B, N, input_size]`` into ``queries`` vectors with learned state patterns.

    The learned queries live in the associative space directly (one per head and query) and
    retrieve from the projected set; this is attention pooling, read as a Hopfield network
    whose stored patterns are the set's elements.

    Args:
        input_size: Width of the set's elements.
        hidden_size, output_size, heads, beta, steps, tol, bias: as for ``Hopfield``.
        queries: Number of pooled vectors.

    Returns ``[B, output_size]`` when ``queries == 1``, else ``[B, queries, output_size]``.
    """

    def __init__(self, input_size: int, hidden_size: int | None = None,
                 output_size: int | None = None, heads: int = 1, queries: int = 1,
                 beta: float | None = None, steps: int = 1, tol: float | None = None,
                 bias: bool = False) -> None:
        super().__init__()
        _check_int("queries", queries, 1, type(self).__name__)
        self.hopfield = Hopfield(input_size, hidden_size, output_size, heads=heads, beta=beta,
                                 steps=steps, tol=tol, bias=bias)
        h = self.hopfield
        self.queries = nn.Parameter(torch.randn(h.heads, queries, h.hidden_size)
                                    / math.sqrt(h.hidden_size))  # [h, m, d]

    def _qk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.hopfield
        h._check(x, h.stored_size, "a set")
        k = rearrange(h.k_proj(x), "b n (h d) -> b h n d", h=h.heads)
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1, -1).to(k.dtype)
        return q, k

    def forward(self, x: Tensor, *, return_energies: bool = False) -> Any:
        h = self.hopfield
        q, k = self._qk(x)
        q, energies = h._update(q, k, return_energies)
        out = h._read(q, k, x)
        out = out.squeeze(1) if out.shape[1] == 1 else out
        return (out, torch.stack(energies)) if return_energies else out



class HopfieldLayer(_QueryKeyLayer):
    """A learned key-value store: inputs ``[B, M, input_size]`` query ``patterns`` learned
    keys and values (the memory is a parameter, shared by every sample).

    Args:
        input_size: Width of the inputs.
        patterns: Number of learned stored patterns.
        hidden_size, output_size, heads, beta, steps, tol, bias: as for ``Hopfield``.
    """

    def __init__(self, input_size: int, patterns: int = 32, hidden_size: int | None = None,
                 output_size: int | None = None, heads: int = 1, beta: float | None = None,
                 steps: int = 1, tol: float | None = None, bias: bool = False) -> None:
        super().__init__()
        _check_int("patterns", patterns, 1, type(self).__name__)
        self.hopfield = Hopfield(input_size, hidden_size, output_size, heads=heads, beta=beta,
                                 steps=steps, tol=tol, bias=bias)
        self.patterns = nn.Parameter(torch.randn(patterns, input_size) / math.sqrt(input_size))

    def _qk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Projected queries ``[b, h, m, d]`` and the shared keys ``[b, h, n, d]`` (a view:
        the patterns are projected once, not once per sample)."""
        h = self.hopfield
        h._check(x, h.input_size, "inputs")
        q = rearrange(h.q_proj(x), "b m (h d) -> b h m d", h=h.heads)
        k = rearrange(h.k_proj(self.patterns), "n (h d) -> h n d", h=h.heads)
        return q, k.unsqueeze(0).expand(x.shape[0], -1, -1, -1)

    def forward(self, x: Tensor, *, return_energies: bool = False) -> Any:
        h = self.hopfield
        q, k = self._qk(x)
        q, energies = h._update(q, k, return_energies)
        v = rearrange(h.v_proj(self.patterns), "n (h d) -> h n d", h=h.heads)
        out = nnf.scaled_dot_product_attention(q, k, v.unsqueeze(0).expand(x.shape[0], -1, -1, -1),
                                               scale=h.beta)  # [b, h, m, d]
        out = h.out_proj(rearrange(out, "b h m d -> b m (h d)"))
        return (out, torch.stack(energies)) if return_energies else out
