"""``hopfield``: the modern continuous Hopfield network (Ramsauer et al. 2020), as an energy.

Stored patterns X (``[N, D]``, rows x_i) and an inverse temperature β define, for a state
(query) y,

    E(y) = −β⁻¹ log Σ_i exp(β x_iᵀ y) + ½ yᵀy + β⁻¹ log N + ½ max_i ‖x_i‖²,

and the concave-convex procedure (CCCP) on it gives the update

    y ← Xᵀ softmax(β X y),

which is one step of softmax attention with the query y and the stored patterns as both keys
and values. Ramsauer et al. (2020, Theorem 1) show that this update never raises E: the
log-sum-exp part is convex in y, so its linearisation at y is a lower bound, and the update
is the exact minimiser of ½‖y‖² minus that bound. The energy comes for free during retrieval:
the logits β X y that the update needs are also what the log-sum-exp needs.

With ``normalize=True`` the patterns are centred by their mean μ and L2-normalised (the keys
x̂_i = (x_i − μ)/‖x_i − μ‖), the query likewise, once, at the start; each update then moves
the state to ξ = X̂ᵀp, a convex combination of the keys (norm ≤ 1, not re-normalised), and
E and its guarantee are about these states. The attention weights p = softmax(β X̂ ξ) mix
the *raw* patterns, so the output is Xᵀp in the inputs' units (the keys are normalised, the
values are not). ``energy(y)`` normalises its argument, so ``energy(retrieve(y))`` (the
re-normalised raw output) is not the trace's last energy. Without it, raw
pixel dot products favour patterns of large norm (bright digits), whatever the query.

Completion (``predict``) of queries with NaN entries uses the same energy restricted to
each query's visible entries, in the distance form −½‖x_{i,vis} − y_vis‖² (a dot product
plus the per-pattern bias −½‖x_{i,vis}‖²), without ``normalize``: as β → ∞ it returns the
stored pattern nearest on the visible entries (see ``predict``).

Axis letters in shape comments: B queries, N stored patterns, D features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.errors import ConfigError

from .store import Store, _StoreStrategy  # re-exported: the storing strategies live in store

__all__ = ["FIXED_POINTS", "ModernHopfield", "ModernHopfieldConfig", "Retrieval", "Store",
           "fixed_point_kind", "stored_recall"]

#: The kinds of fixed point (Ramsauer et al. 2020, section 2): the softmax of the last update
#: puts its weight on one pattern, on a subset (a metastable state), or on nearly all of them.
FIXED_POINTS = ("single", "metastable", "global")


@dataclass
class ModernHopfieldConfig:
    """The modern Hopfield network's options.

    ``beta`` is the inverse temperature β: large β makes the softmax pick one pattern (single
    fixed points; with ``normalize=True`` on digits, β ≥ 64 does), small β averages many
    (metastable and global fixed points). ``patterns`` > 0 learns that many patterns by
    gradient descent on the energy of the data instead of storing the data.
    """

    dim: int = 64
    beta: float = 1.0
    normalize: bool = False
    steps: int = 1  # update steps of retrieve() when none are given
    tol: float | None = None  # stop retrieve() once no query's energy falls by more than tol·(|E|+1)
    patterns: int = 0  # 0: the memory is what store() (or training) put there; K > 0: K learned
    stored: int = 0  # N, kept up to date by store(): how a saved memory is rebuilt before loading
    hidden: float = 0.5  # fraction of pixels the retrieval metrics hide
    seed: int = 0  # the metrics' masks


@dataclass
class Retrieval:
    """What ``retrieve(..., trace=True)`` returns.

    Attributes:
        y: The output ``[B, D]`` in the inputs' units and dtype.
        energies: The energy of the state before each update and after the last,
            ``[steps + 1, B]``; it never rises (up to rounding).
        weights: The softmax of the last update ``[B, N]``: the attention over the patterns.
        entropy: Its entropy in nats ``[B]``; exp(entropy) is the effective number of
            patterns averaged.
        kinds: One of ``FIXED_POINTS`` per query (see ``fixed_point_kind``).
        steps: Updates applied (fewer than asked when ``tol`` stopped them).
        states: The state after each update ``[steps + 1, B, D]`` (normalised space when the
            model normalises), only when asked for with ``states=True``.
    """

    y: Tensor
    energies: Tensor
    weights: Tensor
    entropy: Tensor
    kinds: list[str]
    steps: int
    states: Tensor | None = field(default=None, repr=False)


def fixed_point_kind(entropy: Tensor, n: int) -> list[str]:
    """Name the fixed point from the entropy H of the softmax over ``n`` patterns.

    exp(H) is the effective number of patterns averaged: below 1.5 it is a single pattern,
    above n/2 (and more than 1.5) a global average, in between a metastable state averaging
    a subset. These thresholds are ours: Ramsauer et al. describe the three regimes, not
    cut-offs.
    """
    k = entropy.exp().tolist()
    return ["single" if v < 1.5 else ("global" if v > n / 2 else "metastable") for v in k]


def _check_memory_options(cfg: Any, who: str) -> None:
    """The options both Hopfield memories (``hopfield``, ``hopfield.classical``) have:
    ``dim`` ≥ 1, ``steps`` ≥ 1, ``hidden`` in (0, 1), ``stored`` ≥ 0."""
    ek.config.at_least("dim", cfg.dim, 1, who=who)
    ek.config.at_least("steps", cfg.steps, 1, who=who)
    ek.config.number("hidden", cfg.hidden, low=0.0, high=1.0, low_open=True, high_open=True,
                     who=who)
    ek.config.at_least("stored", cfg.stored, 0, who=who)


class ModernHopfield(ek.EnergyModel):
    """The modern continuous Hopfield network: an associative memory whose one update is
    softmax attention.

    ``store(X)`` replaces the memory with the rows of X; ``retrieve(y, steps)`` runs the
    update y ← Xᵀ softmax(β X y), which never raises ``energy(y)``. Outputs keep the queries'
    dtype (float64 in, float64 out).

    Example:
        >>> import torch, ebmkit as ek
        >>> X = torch.eye(4, dtype=torch.float64)
        >>> net = ek.get_model("hopfield", dim=4, beta=8.0).store(X)
        >>> net.retrieve(torch.tensor([[0.9, 0.2, 0.0, 0.0]], dtype=torch.float64)).argmax(1)
        tensor([0])
    """

    name = "hopfield"
    config_class = ModernHopfieldConfig

    def __init__(self, cfg: ModernHopfieldConfig) -> None:
        super().__init__()
        who = "hopfield"
        _check_memory_options(cfg, who)
        ek.config.number("beta", cfg.beta, low=0.0, low_open=True, who=who)
        ek.config.at_least("patterns", cfg.patterns, 0, who=who)
        if cfg.patterns and cfg.stored:
            raise ConfigError(f"hopfield: a model learns its patterns (patterns={cfg.patterns}) "
                              f"or stores data (stored={cfg.stored}), not both")
        if cfg.tol is not None:
            ek.config.number("tol", cfg.tol, low=0.0, who=who)
        if not isinstance(cfg.normalize, bool):
            raise ConfigError(f"hopfield: normalize must be True or False, got {cfg.normalize!r}")
        self.cfg = cfg
        if cfg.patterns > 0:  # learned patterns, trained by gradient on the energy of the data
            g = torch.Generator().manual_seed(cfg.seed)
            self.memory = nn.Parameter(0.1 * torch.randn(cfg.patterns, cfg.dim, generator=g))
        else:
            # X [N, D]: zeros until store() or loading a saved model fills it
            self.register_buffer("memory", torch.zeros(cfg.stored, cfg.dim))
        # (memory, (version, dtype), keys, μ) of the last normalisation: see keys()
        self._keys_cache: tuple[Tensor, tuple[int, torch.dtype], Tensor, Tensor] | None = None
        self._dist_cache: tuple[Tensor, tuple[int, torch.dtype], Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ the memory
    @property
    def size(self) -> int:
        """N, the number of patterns in the memory."""
        return int(self.memory.shape[0])

    def _check_patterns(self, X: Any, who: str) -> Tensor:
        if not isinstance(X, Tensor):
            try:
                X = torch.as_tensor(X)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"hopfield.{who}: expected patterns as a tensor [N, "
                                  f"{self.cfg.dim}], got {type(X).__name__}") from exc
        if X.dim() != 2 or X.shape[1] != self.cfg.dim or X.shape[0] == 0:
            raise ConfigError(f"hopfield.{who}: expected patterns of shape [N, {self.cfg.dim}] "
                              f"with N ≥ 1, got {list(X.shape)}")
        ek.model.check_input(X, f"hopfield.{who}: X", floating=False, finite=False)
        if not X.is_floating_point():
            X = X.to(torch.get_default_dtype())
        if not bool(torch.isfinite(X).all()):
            raise ConfigError(f"hopfield.{who}: the patterns contain NaN or infinite values; "
                              f"expected finite numbers")
        return X

    @torch.no_grad()
    def store(self, X: Any) -> ModernHopfield:
        """Replace the memory with the rows of ``X`` ``[N, D]`` (kept in X's dtype). Returns self.

        Raises:
            ConfigError: X is not ``[N, dim]`` with N ≥ 1, or holds NaN/inf; or the model
                learns its patterns (``patterns > 0``).
        """
        if isinstance(self.memory, nn.Parameter):
            raise ConfigError(f"hopfield.store: this model learns its {self.cfg.patterns} "
                              f"patterns (patterns={self.cfg.patterns}); build it with "
                              f"patterns=0 to store data")
        X = self._check_patterns(X, "store")
        self.memory = X.detach().clone().to(self.memory.device)
        self.cfg.stored = self.size
        return self

    @torch.no_grad()
    def append(self, X: Any, distinct: bool = False) -> ModernHopfield:
        """Add the rows of ``X`` to the memory; with ``distinct``, only rows not already in it
        and not repeated within X (exact identity of the values, see ``distinct_rows``)."""
        X = self._check_patterns(X, "append").to(self.memory.device, self.memory.dtype)
        if not distinct:
            self.memory = torch.cat([self.memory, X])
        else:
            table = self._hash_table()
            X, new = self._distinct(X, table)
            self.memory = torch.cat([self.memory, X])
            for h, idx in new.items():  # the table now describes the grown memory
                table.setdefault(h, []).extend(idx)
            self._hashes = (self._ident(), table)
        self.cfg.stored = self.size
        return self

    @torch.no_grad()
    def distinct_rows(self, X: Tensor) -> Tensor:
        """The rows of ``X`` (in the memory's dtype) that are neither in the memory nor earlier
        in X, in their order: exact identity of the values, not a distance
        (``torch.cdist``'s matrix-product path gives self-distances up to 7e-3 on float rows,
        so ``cdist == 0`` misses copies).

        Each row is hashed once (O(B·D) per call and one host copy of X, no pass over the
        memory); a matching hash is confirmed by comparing the rows themselves, so a hash
        collision never drops a new row. The memory's hashes are kept between calls and
        rebuilt only when the memory was replaced or edited in place.
        """
        return self._distinct(X.to(self.memory.device, self.memory.dtype), self._hash_table())[0]

    def _distinct(self, X: Tensor, table: dict[int, list[int]]
                  ) -> tuple[Tensor, dict[int, list[int]]]:
        n, keep = self.size, []
        new: dict[int, list[int]] = {}  # hashes of the kept rows → their future indices
        for i, row in enumerate(X.detach().cpu().contiguous().numpy()):
            h = hash(row.tobytes())
            if any(torch.equal(X[i], self.memory[j]) for j in table.get(h, ())) or any(
                    torch.equal(X[i], X[keep[j - n]]) for j in new.get(h, ())):
                continue
            new.setdefault(h, []).append(n + len(keep))
            keep.append(i)
        return X[torch.tensor(keep, dtype=torch.long, device=X.device)], new

    def _ident(self) -> tuple[int, int, int]:
        return (self.memory.data_ptr(), self.memory._version, self.size)

    def _hash_table(self) -> dict[int, list[int]]:
        """Hash of each stored row's bytes → its indices (rebuilt when the memory changed)."""
        cached = getattr(self, "_hashes", None)
        if cached is not None and cached[0] == self._ident():
            return cached[1]
        table: dict[int, list[int]] = {}
        for j, row in enumerate(self.memory.detach().cpu().contiguous().numpy()):
            table.setdefault(hash(row.tobytes()), []).append(j)
        self._hashes = (self._ident(), table)
        return table

    def keys(self, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor | None]:
        """The patterns as the update sees them ``[N, D]``, and the stored mean μ ``[D]`` (None
        without ``normalize``)."""
        if self.size == 0:
            raise ConfigError("hopfield: the memory is empty; call store(X) with patterns "
                              "[N, D] first (or train the model on data)")
        if not self.cfg.normalize:
            return (self.memory if dtype is None else self.memory.to(dtype)), None
        # Normalised keys are computed once per memory and dtype, not per call: the cache holds
        # the memory tensor itself and its version, so store(), append(), .to() and in-place
        # edits (load_state_dict) all miss it. Learned patterns under autograd are never
        # cached (the keys must stay in the graph).
        cacheable = not (self.memory.requires_grad and torch.is_grad_enabled())
        key = (self.memory._version, self.memory.dtype if dtype is None else dtype)
        hit = self._keys_cache
        if cacheable and hit is not None and hit[0] is self.memory and hit[1] == key:
            return hit[2], hit[3]
        X = self.memory if dtype is None else self.memory.to(dtype)
        mu = X.mean(dim=0)  # [D]
        keys = _unit(X - mu)  # [N, D]
        if cacheable:
            self._keys_cache = (self.memory, key, keys, mu)
        return keys, mu

    # ------------------------------------------------------------------ queries
    def _check_query(self, y: Any, who: str, finite: bool = True) -> Tensor:
        if not isinstance(y, Tensor):
            raise ConfigError(f"hopfield.{who}: expected queries as a tensor [B, {self.cfg.dim}], "
                              f"got {type(y).__name__}")
        if y.dim() != 2 or y.shape[1] != self.cfg.dim or y.shape[0] == 0:
            raise ConfigError(f"hopfield.{who}: expected queries of shape [B, {self.cfg.dim}] "
                              f"(the width of the stored patterns, B ≥ 1), got {list(y.shape)}")
        ek.model.check_input(y, f"hopfield.{who}: y", device=self.memory.device, finite=False)
        # NaN and ±inf make the sum non-finite: one reduction and one host sync instead of
        # isfinite() over every entry (1.4% of a 4,096-query update on one CPU core). Only a
        # non-finite sum (or finite entries whose sum overflows) pays for the full check.
        # As check_input's finite="auto": not on an accelerator while autograd is on (the
        # learned-pattern training step calls energy() every step; a sync there stalls it).
        if finite and (y.device.type == "cpu" or not torch.is_grad_enabled()) \
                and not bool(torch.isfinite(y.sum())):
            ek.model.check_input(y, f"hopfield.{who}: y", finite=True)
        return y

    def _state(self, y: Tensor, mu: Tensor | None) -> Tensor:
        """The query as a state of the update: itself, or centred and L2-normalised."""
        return y if mu is None else _unit(y - mu)

    def _energy_from_logits(self, logits: Tensor, xi: Tensor, X: Tensor) -> Tensor:
        """E from the logits β X ξ ``[B, N]`` (shared with the update) and the state ξ ``[B, D]``."""
        beta, n = self.cfg.beta, X.shape[0]
        const = math.log(n) / beta + 0.5 * X.square().sum(dim=1).max()
        return -torch.logsumexp(logits, dim=1) / beta + 0.5 * xi.square().sum(dim=1) + const

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y) = −β⁻¹ log Σ_i exp(β x_iᵀy) + ½yᵀy + β⁻¹ log N + ½ max_i ‖x_i‖², ``[B]``.

        With ``normalize=True``, x_i and y are the centred, L2-normalised pattern and query.
        Differentiable in y and, for learned patterns, in the patterns.
        """
        y = self._check_query(y, "energy")
        X, mu = self.keys(y.dtype)
        xi = self._state(y, mu)
        return self._energy_from_logits(self.cfg.beta * xi @ X.t(), xi, X)

    def retrieve(self, y: Tensor, steps: int | None = None, *, tol: float | None = None,
                 trace: bool = False, states: bool = False) -> Tensor | Retrieval:
        """Run the update y ← Xᵀ softmax(β X y) ``steps`` times (one step is attention).

        Args:
            y: Queries ``[B, D]``.
            steps: Updates; the config's ``steps`` when None.
            tol: Stop early once no query's energy fell by more than ``tol·(|E| + 1)`` in the
                last update (one host sync per step); the config's ``tol`` when None.
            trace: Return a ``Retrieval`` with the energy
                after every step, the last attention weights and the kind of fixed point.
            states: With ``trace``, also keep every intermediate state.

        Returns:
            The retrieved patterns ``[B, D]`` in y's dtype, or a ``Retrieval``.
        """
        y = self._check_query(y, "retrieve")
        steps = self.cfg.steps if steps is None else ek.config.at_least("steps", steps, 1,
                                                                         who="hopfield.retrieve")
        return self._retrieve(y, steps, self.cfg.tol if tol is None else tol, trace, states)

    def _retrieve(self, y: Tensor, steps: int, tol: float | None, trace: bool, states: bool,
                  centred: bool = False) -> Tensor | Retrieval:
        """``retrieve`` on checked queries (``centred``: y is already y − μ)."""
        X, mu = self.keys(y.dtype)
        V = X if mu is None else self.memory.to(y.dtype)  # values: the raw patterns
        beta = self.cfg.beta
        xi = _unit(y) if centred else self._state(y, mu)  # [B, D]
        energies, kept = [], [xi]
        done = 0
        p = None
        stopped = False
        want_energy = trace or tol is not None
        # With normalize the output is p @ V (raw patterns), so the last state p @ X is needed
        # only for the trace: skipping it saves one [B, N]·[N, D] product (9-14% of a
        # 4,096-query, one-step retrieval of 1,797 digits; bench/bench_attention.py).
        need_last_state = mu is None or trace or states
        for i in range(steps):
            logits = beta * xi @ X.t()  # [B, N]
            if want_energy:
                energies.append(self._energy_from_logits(logits, xi, X))
                if tol is not None and len(energies) > 1:
                    fall = energies[-2] - energies[-1]
                    if not bool((fall > tol * (energies[-1].abs() + 1)).any()):
                        stopped = True
                        break
            p = torch.softmax(logits, dim=1)  # [B, N]
            done += 1
            if i + 1 < steps or need_last_state or tol is not None:
                xi = p @ X  # [B, D]: the CCCP update
            if states:
                kept.append(xi)
        out = xi if mu is None else p @ V
        if not trace:
            return out
        if not stopped:
            energies.append(self._energy_from_logits(beta * xi @ X.t(), xi, X))
        entropy = -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(dim=1)
        return Retrieval(out, torch.stack(energies), p, entropy, fixed_point_kind(entropy, len(X)),
                         done, torch.stack(kept) if states else None)

    # ------------------------------------------------------------------ completion (NaN = hidden)
    def mask(self, y: Tensor, hidden: float | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """y with ``hidden`` (default: the config's) of each row's entries set to NaN ``[B, D]``:
        the same number per row, at random places (drawn on the generator's device, else on
        y's)."""
        hidden = self.cfg.hidden if hidden is None else hidden
        k = round(hidden * y.shape[1])
        device = generator.device if generator is not None else y.device
        order = torch.rand(y.shape, generator=generator, device=device).to(y.device).argsort(dim=1)
        x = y.clone()
        x.scatter_(1, order[:, :k], float("nan"))
        return x

    def _mean(self, dtype: torch.dtype) -> Tensor:
        """The stored mean ``[D]`` (the normalised keys' μ when the model normalises: cached)."""
        if self.cfg.normalize:
            return self.keys(dtype)[1]
        return self.memory.to(dtype).mean(dim=0)

    def fill(self, x: Tensor) -> Tensor:
        """x with its NaN entries set to the stored mean (after centring, a hidden entry is 0):
        a full query for ``retrieve``/``nearest``. ``predict`` does not use it; it drops the
        hidden entries from the energy instead."""
        return torch.where(torch.isnan(x), self._mean(x.dtype), x)

    def _distance_keys(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``predict``'s keys ``[N, 2D]``, rows [x_i − μ, (x_i − μ)²], and μ ``[D]`` (cached like
        ``keys``): one product with [m ⊙ (y − μ), −½m] gives x_{i,vis}·y_vis − ½‖x_{i,vis}‖²,
        centred so that data far from 0 lose no float32 digits to cancellation."""
        if self.size == 0:
            raise ConfigError("hopfield: the memory is empty; call store(X) with patterns "
                              "[N, D] first (or train the model on data)")
        cacheable = not (self.memory.requires_grad and torch.is_grad_enabled())
        key = (self.memory._version, dtype)
        hit = getattr(self, "_dist_cache", None)
        if cacheable and hit is not None and hit[0] is self.memory and hit[1] == key:
            return hit[2], hit[3]
        X = self.memory.to(dtype)
        mu = X.mean(dim=0)  # [D]
        Xc = X - mu
        K = torch.cat([Xc, Xc.square()], dim=1)  # [N, 2D]
        if cacheable:
            self._dist_cache = (self.memory, key, K, mu)
        return K, mu

    @torch.no_grad()
    def predict(self, x: Tensor, steps: int | None = None) -> Tensor:
        """Complete partial patterns by the Hopfield energy restricted to the visible entries.

        x is ``[B, D]`` with NaN where an entry is unknown; m_b marks row b's visible entries.
        Each row's state ξ lives on its visible coordinates, and the energy is

            E_m(ξ) = −β⁻¹ log Σ_i exp(−½β ‖m ⊙ (x_i − ξ)‖²)
                   = −β⁻¹ log Σ_i exp(β (x_{i,vis}·ξ_vis − ½‖x_{i,vis}‖²)) + ½‖ξ_vis‖²,

        the modern Hopfield energy over the visible sub-vectors (up to its constant), with the
        per-pattern bias −½‖x_{i,vis}‖² that the dot product alone lacks. Its CCCP update is
        ξ_vis ← Σ_i p_i x_{i,vis} with p = softmax(β (X_vis ξ_vis − ½‖x_{i,vis}‖²)), starting
        from the visible entries of x; it never raises E_m. The output is Xᵀp with the last
        weights, every entry (hidden and visible) taken from the memory in the inputs' units.
        As β → ∞ one update returns the stored pattern nearest to x on its visible entries.

        ``normalize`` does not apply here: distances are in the inputs' units on the visible
        entries (centring changes no distance; L2 normalisation would scale each score by the
        pattern's *full* norm, hidden half included), so β is on the scale of squared pixel
        distances (the recipe's β = 64 picks the nearest). A row with no NaN is matched by
        full Euclidean distance; a row with no visible entry gets the patterns' mean.

        Args:
            x: Partial patterns ``[B, D]``, NaN where unknown (±inf is an error).
            steps: Updates; the config's ``steps`` when None. The config's ``tol`` stops
                early as in ``retrieve`` (one host sync per step).

        Returns:
            The retrieved patterns ``[B, D]`` in x's dtype.
        """
        self._check_query(x, "predict", finite=False)
        steps = self.cfg.steps if steps is None else ek.config.at_least("steps", steps, 1,
                                                                         who="hopfield.predict")
        K, mu = self._distance_keys(x.dtype)
        d, beta, tol = self.cfg.dim, self.cfg.beta, self.cfg.tol
        hidden = torch.isnan(x)  # [B, D]
        # centred visible entries, 0 where hidden; ±inf survive for the check below
        y = torch.nan_to_num(x - mu, nan=0.0, posinf=math.inf, neginf=-math.inf)
        # NaN is allowed (unknown), ±inf is not: one reduction and one host sync
        if not bool(torch.isfinite(y.sum())):
            if bool(torch.isinf(x).any()):
                raise ConfigError("hopfield.predict: x contains infinite values; expected "
                                  "numbers, with NaN where an entry is unknown")
            ek.model.check_input(y, "hopfield.predict: x", finite=True)
        # the query row [m ⊙ ξ, −½ m]: one [B, 2D]·[2D, N] product gives the logits
        q = torch.cat([y, (~hidden).to(x.dtype).mul_(-0.5)], dim=1)  # [B, 2D]
        Xc = K[:, :d]
        last = None
        for i in range(steps):
            logits = (q @ K.t()).mul_(beta)  # [B, N]
            if tol is not None:
                # E_m(ξ) = −β⁻¹ lse(logits) + ½‖ξ_vis‖²
                e = -torch.logsumexp(logits, dim=1) / beta + 0.5 * q[:, :d].square().sum(1)
                if last is not None and not bool((last - e > tol * (e.abs() + 1)).any()):
                    break
                last = e
            p = torch.softmax(logits, dim=1)  # [B, N]
            if i + 1 < steps:
                q[:, :d] = (p @ Xc).masked_fill_(hidden, 0.0)  # ξ_vis ← Σ p_i x_{i,vis}
        return p @ self.memory.to(x.dtype)

    @torch.no_grad()
    def reconstruct(self, y: Tensor) -> Tensor:
        """What the memory returns for y with ``hidden`` of each row hidden (masks seeded by
        ``seed``): the pictures of ``ebmkit train`` / ``ebmkit sample``."""
        self._check_query(y, "reconstruct")
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        return self.predict(self.mask(y, generator=gen))

    def nearest(self, y: Tensor) -> Tensor:
        """Index of the nearest stored pattern ``[B]`` (in the normalised space when the model
        normalises): what the retrieval metrics compare."""
        X, mu = self.keys(y.dtype)
        return torch.cdist(self._state(y, mu), X).argmin(dim=1)

    def plots(self, data: Any, out: Any) -> list[Any]:
        """The family's pictures of this model on ``data`` into directory ``out`` (what
        ``ebmkit train`` and ``ebmkit sample`` write): see ``ebmkit_attention.plots``."""
        from .plots import plots

        return plots(self, data, out)

    # ------------------------------------------------------------------ training
    def default_strategy(self) -> Any:
        if self.cfg.patterns > 0:
            return ek.strategies.Architectural()
        return Store()

    def metrics(self) -> dict[str, Any]:
        from .metrics import HiddenError, RetrievalAccuracy

        out = super().metrics()
        out["retrieval_accuracy"] = RetrievalAccuracy()
        out["hidden_mse"] = HiddenError()
        return out


@torch.no_grad()
def stored_recall(model: Any, hidden: float = 0.5, seeds: tuple[int, ...] = (0, 1, 2),
                  steps: int | None = 1) -> float:
    """Share of the stored patterns that come back from half-hidden queries (the docs' table).

    Every stored pattern is queried with ``hidden`` of its entries hidden (``mask`` with a
    generator seeded by each of ``seeds``, so the same number per row at random places) and
    completed by ``predict``; a query is correct when the nearest stored
    pattern to the output is the pattern itself. ``steps=None`` counts the query itself
    (no update): nearest-neighbour lookup of the query with its hidden entries set to the
    stored mean (``fill``), in the normalised space when the model normalises. Works for
    ``hopfield`` and ``hopfield.classical`` (whose hidden entries are 0, "unknown").
    """
    X = model.memory if hasattr(model, "memory") else model.patterns
    index = torch.arange(X.shape[0], device=X.device)
    hits = []
    for seed in seeds:
        x = model.mask(X, hidden, generator=torch.Generator().manual_seed(seed))
        if steps is None:
            out = model.fill(x) if hasattr(model, "fill") else torch.nan_to_num(x, nan=0.0)
        else:
            out = model.predict(x, steps)
        hits.append((model.nearest(out) == index).double().mean())
    return float(torch.stack(hits).mean())


def _unit(v: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).eps)
