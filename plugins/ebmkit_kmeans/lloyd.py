"""The K-means kernels: fused, chunked exhaustive inference, k-means++ and Lloyd iterations.

Functions (and two small stateful helpers) on tensors, device-agnostic, float32 throughout
(or the data's dtype). No
function here keeps an N×K matrix: distances are computed chunk by chunk into one
preallocated ``[chunk, K]`` buffer as ‖w‖² − 2·y Wᵀ (one ``addmm``), reduced to the
minimum over the prototypes straight into the output slices, and ‖y‖² is added to the
K-fold smaller result. No host sync happens inside these loops.

Two CPU-specific kernels, chosen by device (the same minima and sums everywhere; among
exactly tied distances the index picked may differ):

- **Packed argmin.** ``torch.min(dim=1)`` with indices runs a scalar loop on the CPU, while
  ``amin`` is vectorised. A float32 value widened to float64 has 29 zero low mantissa bits;
  writing the column index there makes one ``amin`` over the widened buffer return both the
  minimum (bit-exact once the index is masked off) and an index attaining it (among exactly
  equal values either may be chosen: both are argmins). About 1.6× faster than ``min``.
- **Incremental sums.** After the first iteration few labels change, so the per-cluster
  sums (float64) are updated by the rows that moved instead of re-summed with
  ``index_add_`` over all N rows, which costs a tensor call per row on the CPU. Sums are
  re-done in full when many labels change.

Axis letters in shape comments: N samples, D features, K prototypes, C chunk of samples.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Float32 elements of the distance buffer per chunk: ~4 MiB (measured best on a 2-core CPU).
_BUFFER_ELEMENTS = 1 << 20


def chunk_rows(k: int, requested: int | None = None) -> int:
    """Samples per chunk so that the ``[C, K]`` buffer stays cache-sized."""
    if requested:
        return int(requested)
    return int(min(65_536, max(256, _BUFFER_ELEMENTS // max(k, 1))))


#: Samples per chunk of the packed CPU argmin: its float64 buffer stays in the L2/L3 caches.
_PACKED_CHUNK = 2048
_LOW_BITS = 29  # zero low mantissa bits of a float32 widened to float64


class Assigner:
    """Nearest-prototype search over fixed samples, with buffers and chunk views made once.

    Lloyd's algorithm searches the same ``y`` every iteration: the chunks, the ``[C, K]``
    buffers and their views are built here once, so an iteration is a few tensor calls per
    chunk and nothing else.

    Args:
        y: ``[N, D]`` samples.
        k: Number of prototypes.
        y_sq: ``‖y‖²`` per sample ``[N]`` (computed when None).
        chunk: Samples per chunk (cache-sized by default).
    """

    def __init__(self, y: Tensor, k: int, y_sq: Tensor | None = None,
                 chunk: int | None = None) -> None:
        n, device = y.shape[0], y.device
        self.y, self.k = y, k
        self.y_sq = torch.einsum("nd,nd->n", y, y) if y_sq is None else y_sq
        self.packed = y.dtype == torch.float32 and device.type == "cpu" and k < 1 << _LOW_BITS
        c = (chunk or _PACKED_CHUNK) if self.packed else chunk_rows(k, chunk)
        self.chunk = c
        self.y_parts = y.split(c)
        buf = torch.empty(min(c, n), k, dtype=y.dtype, device=device)  # [C, K]
        self.buf_parts = [buf[: len(part)] for part in self.y_parts]
        if self.packed:
            wide = torch.empty(buf.shape, dtype=torch.float64, device=device)  # [C, K]
            self.wide_parts = [wide[: len(part)] for part in self.y_parts]
            self.bit_parts = [w.view(torch.int64) for w in self.wide_parts]
            self.column = torch.arange(k, device=device)  # [K] int64
            self.best = torch.empty(n, dtype=torch.float64, device=device)  # [N]
            self.best_parts = self.best.split(c)

    def __call__(self, centers: Tensor, labels: Tensor | None = None,
                 min_dist: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(labels [N] int64, squared distance [N])`` to the nearest of ``centers [K, D]``.

        Args:
            labels, min_dist: Optional output buffers, reused across iterations.
        """
        y = self.y
        n = y.shape[0]
        if labels is None:
            labels = torch.empty(n, dtype=torch.long, device=y.device)
        if min_dist is None:
            min_dist = torch.empty(n, dtype=y.dtype, device=y.device)
        c_sq = torch.einsum("kd,kd->k", centers, centers)  # [K]
        w_t = centers.t().contiguous()  # [D, K]
        if self.packed:
            # ‖w‖² − 2yᵀw per chunk, then one vectorised amin of the values widened to
            # float64 with the column index in their 29 zero low mantissa bits (CPU: min
            # with indices is a scalar loop there).
            column = self.column
            for y_part, b, wide, bits, best in zip(self.y_parts, self.buf_parts,
                                                  self.wide_parts, self.bit_parts,
                                                  self.best_parts):
                torch.addmm(c_sq, y_part, w_t, beta=1, alpha=-2, out=b)
                wide.copy_(b)  # exact
                bits.bitwise_or_(column)
                torch.amin(wide, 1, out=best)
            best_bits = self.best.view(torch.int64)
            torch.bitwise_and(best_bits, (1 << _LOW_BITS) - 1, out=labels)
            best_bits.bitwise_and_(-(1 << _LOW_BITS))  # the values, bit-exact again
            min_dist.copy_(self.best)
        else:
            for y_part, b, d_part, l_part in zip(self.y_parts, self.buf_parts,
                                                 min_dist.split(self.chunk),
                                                 labels.split(self.chunk)):
                torch.addmm(c_sq, y_part, w_t, beta=1, alpha=-2, out=b)  # ‖w‖² − 2yᵀw
                torch.min(b, 1, out=(d_part, l_part))
        min_dist.add_(self.y_sq).clamp_(min=0)  # + ‖y‖²: rounding can dip just below zero
        return labels, min_dist


@torch.no_grad()
def assign(y: Tensor, centers: Tensor, y_sq: Tensor | None = None, chunk: int | None = None,
           labels: Tensor | None = None, min_dist: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Nearest prototype of every sample: ``(labels [N] int64, squared distance [N])``.

    Args:
        y: ``[N, D]`` samples.
        centers: ``[K, D]`` prototypes.
        y_sq: ``‖y‖²`` per sample ``[N]`` (computed when None; pass it when iterating).
        chunk: Samples per chunk (cache-sized by default).
        labels, min_dist: Optional output buffers.
    """
    return Assigner(y, centers.shape[0], y_sq, chunk)(centers, labels, min_dist)


@torch.no_grad()
def distances(y: Tensor, centers: Tensor, chunk: int | None = None) -> Tensor:
    """All squared distances ``[N, K]`` (materialised: this is what ``transform`` returns)."""
    n, k = y.shape[0], centers.shape[0]
    c = chunk_rows(k, chunk)
    out = torch.empty(n, k, dtype=y.dtype, device=y.device)
    c_sq = torch.einsum("kd,kd->k", centers, centers)
    for start in range(0, n, c):
        part = y[start:start + c]
        block = out[start:start + c]
        torch.addmm(c_sq, part, centers.t(), beta=1, alpha=-2, out=block)
        block.add_(torch.einsum("nd,nd->n", part, part).unsqueeze(1)).clamp_(min=0)
    return out


class ClusterSums:
    """Per-cluster sums of the samples ``[K, D]`` (float64), kept in step with the labels.

    ``update(labels, previous)`` re-sums in full the first time (and on any device but the
    CPU, where ``index_add_`` is one kernel), and otherwise adds the rows whose label changed
    to their new cluster and subtracts them from their old one — unless more than a third of
    them changed, when a full pass is cheaper. The float64 accumulator keeps the incremental
    sums within rounding of a fresh float32 sum over many iterations.
    """

    def __init__(self, y: Tensor, k: int, chunk: int = 2048) -> None:
        self.y, self.k, self.chunk = y, k, chunk
        wide = torch.float32 if y.device.type == "mps" else torch.float64  # MPS: no float64
        self.sums = torch.zeros(k, y.shape[1], dtype=wide, device=y.device)
        self.incremental = y.device.type == "cpu"
        self.ready = False

    def update(self, labels: Tensor, previous: Tensor | None) -> Tensor:
        """The sums for ``labels``, given the ``previous`` labels they were last updated for."""
        y, sums = self.y, self.sums
        if self.ready and self.incremental and previous is not None:
            moved = (labels != previous).nonzero().squeeze(1)  # free on the CPU
            if 3 * moved.numel() <= labels.numel():
                for part in moved.split(self.chunk):  # bounded temporaries
                    rows = y.index_select(0, part).to(sums.dtype)  # [C, D]
                    sums.index_add_(0, labels.index_select(0, part), rows)
                    sums.index_add_(0, previous.index_select(0, part), rows, alpha=-1)
                return sums
        sums.zero_()
        for start in range(0, y.shape[0], self.chunk):  # float64 one chunk at a time
            stop = start + self.chunk
            sums.index_add_(0, labels[start:stop], y[start:stop].to(sums.dtype))
        self.ready = True
        return sums


@torch.no_grad()
def update_centers(y: Tensor, labels: Tensor, centers: Tensor, min_dist: Tensor,
                   sums: Tensor) -> Tensor:
    """The closed-form M-step: each prototype becomes the mean of its samples.

    An empty cluster is re-seeded, as scikit-learn does, at one of the samples farthest
    from their prototypes (the i-th empty cluster takes the i-th farthest sample); without
    a host sync on accelerators.

    Args:
        sums: The per-cluster sums of ``y`` for ``labels``, ``[K, D]`` (``ClusterSums``).
    """
    k = centers.shape[0]
    counts = torch.bincount(labels, minlength=k).to(sums.dtype)  # [K]
    new = (sums / counts.clamp(min=1).unsqueeze(1)).to(y.dtype)
    empty = counts == 0  # [K]
    if y.device.type == "cpu" and not bool(empty.any()):
        return new  # the usual case; the check is free on the CPU (no device to wait for)
    far = torch.topk(min_dist, min(k, min_dist.shape[0])).indices  # [K] farthest samples
    rank = (torch.cumsum(empty.long(), 0) - 1).clamp(min=0, max=far.shape[0] - 1)
    return torch.where(empty.unsqueeze(1), y[far[rank]], new)


@torch.no_grad()
def kmeans_plusplus(y: Tensor, k: int, generator: torch.Generator | None = None,
                    y_sq: Tensor | None = None, n_local_trials: int | None = None) -> Tensor:
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, as scikit-learn runs it).

    Each new prototype is the best of ``2 + ⌊log K⌋`` candidates drawn with probability
    proportional to the squared distance to the nearest prototype chosen so far.
    """
    n = y.shape[0]
    trials = n_local_trials or 2 + int(math.log(k))
    if y_sq is None:
        y_sq = torch.einsum("nd,nd->n", y, y)
    gen_device = generator.device if generator is not None else y.device
    first = torch.randint(n, (1,), generator=generator, device=gen_device).to(y.device)
    centers = torch.empty(k, y.shape[1], dtype=y.dtype, device=y.device)
    centers[0] = y[first[0]]
    closest = _dist_to(y, y_sq, centers[:1]).squeeze(0)  # [N]
    for i in range(1, k):
        cum = torch.cumsum(closest.double(), 0)
        u = torch.rand(trials, generator=generator, device=gen_device, dtype=torch.float64)
        cand = torch.searchsorted(cum, u.to(y.device) * cum[-1]).clamp(max=n - 1)  # [T]
        d = torch.minimum(_dist_to(y, y_sq, y[cand]), closest)  # [T, N]
        best = torch.argmin(d.sum(1))
        closest = d[best]
        centers[i] = y[cand[best]]
    return centers


def _dist_to(y: Tensor, y_sq: Tensor, points: Tensor) -> Tensor:
    """Squared distances from a few points to every sample: ``[P, N]``."""
    p_sq = torch.einsum("pd,pd->p", points, points).unsqueeze(1)
    return torch.addmm(p_sq + y_sq, points, y.t(), alpha=-2).clamp_(min=0)


@torch.no_grad()
def lloyd(y: Tensor, centers: Tensor, max_iter: int, tol: float, chunk: int | None = None,
          check_every: int = 1) -> tuple[Tensor, Tensor, float, int]:
    """Lloyd's algorithm from ``centers``: ``(centers, labels, inertia, iterations run)``.

    Stops after ``max_iter`` updates, when no label changed (strict convergence), or when
    the total squared shift of the prototypes is at most ``tol`` (an absolute tolerance;
    the model scales scikit-learn's relative ``tol`` by the data's mean variance). Either
    test costs one host sync, made every ``check_every`` iterations. As in scikit-learn,
    the labels and inertia returned are those of the final prototypes.
    """
    n = y.shape[0]
    search = Assigner(y, centers.shape[0], chunk=chunk)
    labels = torch.empty(n, dtype=torch.long, device=y.device)
    previous = torch.full((n,), -1, dtype=torch.long, device=y.device)
    min_dist = torch.empty(n, dtype=y.dtype, device=y.device)
    centers = centers.clone()
    sums = ClusterSums(y, centers.shape[0])
    it = 0
    while it < max_iter:
        search(centers, labels, min_dist)
        new = update_centers(y, labels, centers, min_dist,
                             sums.update(labels, previous if it else None))
        it += 1
        if it % check_every == 0 or it == max_iter:
            shift = (new - centers).square().sum()
            same = torch.equal(labels, previous)  # one sync (bool)
            centers = new
            if same or float(shift) <= tol:
                break
        else:
            centers = new
        labels, previous = previous, labels
    search(centers, labels, min_dist)
    inertia = float(min_dist.sum(dtype=torch.float64))
    return centers, labels, inertia, it
