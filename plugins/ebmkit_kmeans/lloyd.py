"""The K-means kernels: fused, chunked exhaustive inference, k-means++ and Lloyd iterations.

Pure functions on tensors, device-agnostic, float32 throughout (or the data's dtype). No
function here keeps an N×K matrix: distances are computed chunk by chunk into one
preallocated ``[chunk, K]`` buffer as ‖w‖² − 2·y Wᵀ (one ``addmm``), reduced to the
minimum over the prototypes straight into the output slices, and ‖y‖² is added to the
K-fold smaller result. No host sync happens inside these loops.

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


@torch.no_grad()
def assign(y: Tensor, centers: Tensor, y_sq: Tensor | None = None, chunk: int | None = None,
           labels: Tensor | None = None, min_dist: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Nearest prototype of every sample: ``(labels [N] int64, squared distance [N])``.

    Args:
        y: ``[N, D]`` samples.
        centers: ``[K, D]`` prototypes.
        y_sq: ``‖y‖²`` per sample ``[N]`` (computed when None; pass it when iterating).
        chunk: Samples per chunk (cache-sized by default).
        labels, min_dist: Optional output buffers, reused across iterations.
    """
    n, k = y.shape[0], centers.shape[0]
    c = chunk_rows(k, chunk)
    if y_sq is None:
        y_sq = torch.einsum("nd,nd->n", y, y)
    if labels is None:
        labels = torch.empty(n, dtype=torch.long, device=y.device)
    if min_dist is None:
        min_dist = torch.empty(n, dtype=y.dtype, device=y.device)
    c_sq = torch.einsum("kd,kd->k", centers, centers)  # [K]
    w_t = centers.t().contiguous()  # [D, K]
    buf = torch.empty(min(c, n), k, dtype=y.dtype, device=y.device)  # [C, K]
    for start in range(0, n, c):
        stop = min(start + c, n)
        b = buf[: stop - start]
        torch.addmm(c_sq, y[start:stop], w_t, beta=1, alpha=-2, out=b)  # ‖w‖² − 2yᵀw
        torch.min(b, 1, out=(min_dist[start:stop], labels[start:stop]))
    min_dist.add_(y_sq).clamp_(min=0)  # + ‖y‖²: rounding can dip just below zero
    return labels, min_dist


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


@torch.no_grad()
def update_centers(y: Tensor, labels: Tensor, centers: Tensor, min_dist: Tensor) -> Tensor:
    """The closed-form M-step: each prototype becomes the mean of its samples.

    An empty cluster is re-seeded, as scikit-learn does, at one of the samples farthest
    from their prototypes (the i-th empty cluster takes the i-th farthest sample); all of
    it without a host sync.
    """
    k = centers.shape[0]
    sums = torch.zeros_like(centers).index_add_(0, labels, y)  # [K, D]
    counts = torch.bincount(labels, minlength=k).to(y.dtype)  # [K]
    new = sums / counts.clamp(min=1).unsqueeze(1)
    empty = counts == 0  # [K]
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
    y_sq = torch.einsum("nd,nd->n", y, y)
    labels = torch.empty(n, dtype=torch.long, device=y.device)
    previous = torch.full((n,), -1, dtype=torch.long, device=y.device)
    min_dist = torch.empty(n, dtype=y.dtype, device=y.device)
    centers = centers.clone()
    it = 0
    while it < max_iter:
        assign(y, centers, y_sq, chunk, labels, min_dist)
        new = update_centers(y, labels, centers, min_dist)
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
    assign(y, centers, y_sq, chunk, labels, min_dist)
    inertia = float(min_dist.double().sum())
    return centers, labels, inertia, it
