"""K-means as a latent-variable energy-based model.

The energy of a sample y and a one-hot code z over K prototypes (the columns of W) is

    E(y, z) = ‖y − W z‖²,

built from the core term ``ek.energies.Reconstruction`` with a bias-free linear decoder.
Inference is exhaustive: ž is the nearest prototype. The free energy is F∞(y) = min_k
‖y − w_k‖² (hard K-means), or at inverse temperature β the soft minimum
F_β(y) = −1/β · log Σ_k exp(−β‖y − w_k‖²) (soft K-means; β is an inverse temperature).
Training is either closed-form (``fit``: Lloyd's algorithm, or with ``beta`` set, soft
K-means EM under an annealed temperature; the ``Lloyd`` strategy through ``ek.Trainer`` is
mini-batch K-means) or gradient descent on the free energy (``training="gradient"``).

Axis letters in shape comments: N/B samples, D features, K prototypes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as nnf
from einops import rearrange
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.config import at_least, number, one_of
from ebmkit.errors import ConfigError
from ebmkit.model import check_input

from . import lloyd as kernels

INITS = ("k-means++", "random")


@dataclass
class KMeansConfig:
    """K-means: K prototypes, exhaustive inference over one-hot codes.

    scikit-learn's names where they apply (``init``, ``max_iter``, ``tol``, ``n_init``,
    ``random_state``).
    """

    k: int = 8
    dim: int = 64
    init: Any = "k-means++"  # "k-means++", "random", or initial centroids [K, D] (tensor or lists)
    max_iter: int = 300
    tol: float = 1e-4  # relative to the data's mean variance, as in scikit-learn
    n_init: int = 1
    random_state: int | None = None
    beta: float | None = None  # None: hard F∞ and Lloyd; a number: soft K-means F_β, soft fit
    anneal: int = 30  # soft fit: iterations over which β rises geometrically from β/100 to β
    training: str = "lloyd"  # "lloyd" (closed form) or "gradient" (through the energy)
    chunk_size: int | None = None  # samples per chunk of exhaustive inference (None: cache-sized)


class KMeans(ek.EnergyModel):
    """K-means clustering as an energy-based model, with scikit-learn's interface.

    ``fit(y)`` runs Lloyd's algorithm ``n_init`` times from k-means++ (or random, or given)
    prototypes and keeps the run of lowest inertia (with ``beta`` set: soft K-means, see
    ``fit``); ``predict``, ``transform``, ``inertia_``, ``cluster_centers_``, ``labels_`` and
    ``n_iter_`` follow scikit-learn. ``score`` does not: it is ebmkit's per-sample anomaly
    score F(y), ``[N]``, as in every family; scikit-learn's ``KMeans.score(X)`` (−inertia,
    one number) is ``-model.score(X).sum()`` for the hard model.

    Example:
        >>> import torch, ebmkit as ek
        >>> km = ek.get_model("kmeans", k=3, dim=2, random_state=0).fit(torch.randn(100, 2))
        >>> km.predict(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    name = "kmeans"
    config_class = KMeansConfig
    cfg: KMeansConfig

    def __init__(self, cfg: KMeansConfig) -> None:
        super().__init__()
        self.cfg = cfg
        _check_config(cfg)
        given = None
        if not isinstance(cfg.init, str):
            given = torch.as_tensor(cfg.init, dtype=torch.float32)
            if given.shape != (cfg.k, cfg.dim):
                raise ConfigError(f"kmeans: init centroids must have shape [k, dim] = "
                                  f"[{cfg.k}, {cfg.dim}], got {list(given.shape)}")
            check_input(given, "kmeans init centroids")
        # W: the decoder's weight [D, K]; its columns are the prototypes.
        self.decoder = nn.Linear(cfg.k, cfg.dim, bias=False)
        with torch.no_grad():
            self.decoder.weight.copy_(given.t() if given is not None
                                      else torch.zeros(cfg.dim, cfg.k))
        self.decoder.weight.requires_grad_(cfg.training == "gradient")
        self.term = ek.energies.Reconstruction(self.decoder)  # ‖y − W z‖²
        self.register_buffer("fitted", torch.tensor(given is not None))
        self._fitted = given is not None  # a host copy, so that steps need no sync
        self.register_load_state_dict_post_hook(_sync_fitted)
        self.inertia_: float | None = None
        self.labels_: Tensor | None = None
        self.n_iter_: int = 0

    # ------------------------------------------------------------------ construction
    def config(self) -> dict[str, Any]:
        out = super().config()
        if not isinstance(self.cfg.init, str):
            out["init"] = torch.as_tensor(self.cfg.init, dtype=torch.float32).tolist()
        return out

    # ------------------------------------------------------------------ scikit-learn view
    @property
    def cluster_centers_(self) -> Tensor:
        """The prototypes ``[K, D]`` (the decoder's columns; a view, not a copy)."""
        return self.decoder.weight.t()

    def _check_y(self, y: Any, what: str = "y") -> Tensor:
        if not isinstance(y, Tensor):
            try:
                y = torch.as_tensor(y).to(self.device)  # numpy arrays, lists
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"kmeans: {what} must be a tensor [N, {self.cfg.dim}], got "
                                  f"{type(y).__name__}") from exc
        if y.dim() == 2 and y.shape[1] != self.cfg.dim:
            state = "was fitted on" if self._fitted else "expects"
            raise ConfigError(f"kmeans: {what} has {y.shape[1]} features but the model {state} "
                              f"dim={self.cfg.dim}; expected shape [N, {self.cfg.dim}]")
        check_input(y, what, shape=(None, self.cfg.dim), device=self.device, finite=False)
        # on an accelerator, a training step skips the value check (it would read the device
        # every step; the trainer's guard catches a non-finite loss); on the CPU it is free
        if y.is_floating_point() and (y.device.type == "cpu" or not self.training):
            rows = y.sum(dim=1)  # [N]: NaN/inf in a row shows in its sum, no N×D temporary
            if not bool(torch.isfinite(rows).all()):
                bad = (~torch.isfinite(rows)).nonzero().flatten()[:5].tolist()
                raise ConfigError(f"{what}: contains NaN or infinite values (rows {bad}"
                                  f"{', …' if len(bad) == 5 else ''})")
        w = self.decoder.weight
        return y if y.dtype == w.dtype else y.to(w.dtype)

    def _need_fitted(self, who: str) -> None:
        if not self._fitted:
            raise ConfigError(f"kmeans.{who}: the model is not fitted yet; call fit(y) first "
                              f"(or train it with ek.Trainer)")

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.cfg.random_state is None:
            return None
        return torch.Generator(device=device).manual_seed(int(self.cfg.random_state))

    def initial_centers(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Starting prototypes ``[K, D]`` by the ``init`` method (k-means++ by default)."""
        k = self.cfg.k
        if not isinstance(self.cfg.init, str):
            return torch.as_tensor(self.cfg.init, dtype=y.dtype, device=y.device).clone()
        if self.cfg.init == "random":
            where = generator.device if generator is not None else y.device
            idx = torch.randperm(y.shape[0], generator=generator, device=where)[:k]
            return y[idx.to(y.device)].clone()
        return kernels.kmeans_plusplus(y, k, generator)

    @torch.no_grad()
    def fit(self, y: Any) -> KMeans:
        """Lloyd's algorithm, ``n_init`` restarts; keeps the lowest inertia. Returns self.

        With ``beta`` set, soft K-means instead: EM on the mixture the soft free energy
        defines, responsibilities r_nk = softmax_k(−β_t ‖y_n − w_k‖²) and prototypes
        w_k = Σ_n r_nk y_n / Σ_n r_nk, with β_t rising geometrically from β/100 to β over
        ``anneal`` iterations (deterministic annealing, Rose 1998: at high temperature the
        prototypes feel all the data, so poor starts are smoothed out), then iterated at β
        until the prototypes move less than ``tol``. The run kept is the one of lowest
        Σ_n F_β(y_n); ``inertia_`` is still the hard Σ_n min_k ‖y_n − w_k‖².

        Raises:
            ConfigError: ``y`` is not ``[N, dim]``, has NaN rows, or has fewer rows than k.
        """
        y = self._check_y(y).contiguous()
        if y.shape[0] < self.cfg.k:
            raise ConfigError(f"kmeans.fit: k={self.cfg.k} prototypes need at least {self.cfg.k} "
                              f"samples, got {y.shape[0]}")
        tol = self.cfg.tol * _mean_variance(y) if self.cfg.tol > 0 else 0.0
        gen = self._generator(y.device)
        check = 1 if y.device.type == "cpu" else 5  # host syncs: free on CPU, few on CUDA
        runs = 1 if not isinstance(self.cfg.init, str) else self.cfg.n_init
        best = None
        for _ in range(runs):
            start = self.initial_centers(y, gen)
            if self.cfg.beta is None:
                centers, labels, inertia, n_iter = kernels.lloyd(
                    y, start, self.cfg.max_iter, tol, self.cfg.chunk_size, check_every=check)
                run = (centers, labels, inertia, n_iter, inertia)
            else:
                run = self._soft_fit(y, start, float(self.cfg.beta), tol)
            if best is None or run[4] < best[4]:
                best = run
        centers, self.labels_, self.inertia_, self.n_iter_, _ = best
        self.set_centers(centers)
        return self

    def _soft_fit(self, y: Tensor, centers: Tensor, beta: float,
                  tol: float) -> tuple[Tensor, Tensor, float, int, float]:
        """Annealed soft K-means from ``centers``: ``(centers, labels, inertia, iterations,
        Σ F_β)``."""
        anneal = max(1, min(self.cfg.anneal, self.cfg.max_iter))
        c = kernels.chunk_rows(self.cfg.k, self.cfg.chunk_size)
        y_sq = torch.einsum("nd,nd->n", y, y)  # [N]
        n_iter = 0
        for n_iter in range(1, self.cfg.max_iter + 1):
            b = beta * 100.0 ** (min(n_iter, anneal) / anneal - 1)  # β/100 → β, geometric
            w_sq = torch.einsum("kd,kd->k", centers, centers)
            sums, mass = torch.zeros_like(centers), centers.new_zeros(self.cfg.k)
            for start in range(0, y.shape[0], c):
                part = y[start:start + c]
                d = (y_sq[start:start + c, None] - 2 * part @ centers.t() + w_sq).clamp_min(0)
                r = torch.softmax(-b * d, dim=1)  # [C, K] responsibilities
                sums += r.t() @ part
                mass += r.sum(0)
            new = torch.where(mass[:, None] > 1e-12, sums / mass.clamp_min(1e-12)[:, None],
                              centers)  # a prototype no sample weighs on stays put
            shift = float((new - centers).square().sum())
            centers = new
            if n_iter >= anneal and shift <= tol:
                break
        labels, dist = kernels.assign(y, centers, chunk=self.cfg.chunk_size)
        self.set_centers(centers)
        soft = float(self.soft_free_energy(y, beta).sum())
        return centers, labels, float(dist.sum()), n_iter, soft

    def fit_predict(self, y: Any) -> Tensor:
        """``fit(y).labels_``."""
        return self.fit(y).labels_

    def set_centers(self, centers: Tensor) -> None:
        """Replace the prototypes (``[K, D]``) and mark the model fitted."""
        with torch.no_grad():
            self.decoder.weight.copy_(rearrange(centers, "k d -> d k"))
        self.fitted.fill_(True)
        self._fitted = True

    @torch.no_grad()
    def predict(self, y: Any) -> Tensor:
        """Index of the nearest prototype, ``[N]`` int64 (the argmin of exhaustive inference)."""
        self._need_fitted("predict")
        y = self._check_y(y)
        return kernels.assign(y, self.cluster_centers_, chunk=self.cfg.chunk_size)[0]

    @torch.no_grad()
    def transform(self, y: Any) -> Tensor:
        """Energies E(y, e_k) = ‖y − w_k‖² to every prototype, ``[N, K]``."""
        self._need_fitted("transform")
        return kernels.distances(self._check_y(y), self.cluster_centers_, self.cfg.chunk_size)

    def score(self, y: Tensor) -> Tensor:
        """Anomaly score: the free energy F(y) per sample, ``[N]`` (squared distance to the
        nearest prototype, or F_β with ``beta``); high = unlike the training data.

        The same meaning as every family's ``score``; *not* scikit-learn's
        ``KMeans.score(X)``, which is one number, −inertia (``-model.score(X).sum()`` here).
        """
        with torch.no_grad():
            return self.free_energy(y)

    @torch.no_grad()
    def reconstruct(self, y: Tensor) -> Tensor:
        """Each sample replaced by its prototype: W ž, ``[B, D]``."""
        return self.decoder(self.infer(y))

    # ------------------------------------------------------------------ the energy view
    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y, z) = ‖y − W z‖², shape ``[B]``; z is one-hot ``[B, K]`` (or indices ``[B]``)."""
        y = self._check_y(y)
        if z is None:
            raise ConfigError("kmeans.energy needs z (one-hot [B, K] or indices [B]); "
                              "use free_energy(y) to minimise over it")
        k, what = self.cfg.k, "kmeans.energy: z"
        if not isinstance(z, Tensor) or (z.dim() == 1 and z.is_floating_point()):
            got = f"{z.dtype} {list(z.shape)}" if isinstance(z, Tensor) else type(z).__name__
            raise ConfigError(f"{what}: expected integer cluster ids [B] or a one-hot [B, {k}], "
                              f"got {got}")
        if z.dim() == 1:
            check_input(z, what, shape=(y.shape[0],), floating=False, device=self.device)
            if z.device.type == "cpu" or not torch.is_grad_enabled():  # no sync in a step
                lo, hi = (int(t) for t in torch.aminmax(z))
                if lo < 0 or hi >= k:
                    raise ConfigError(f"{what}: expected cluster ids in [0, {k - 1}], got "
                                      f"values in [{lo}, {hi}]")
            z = nnf.one_hot(z, k).to(y.dtype)
        else:
            check_input(z, what, shape=(y.shape[0], k), device=self.device, finite="auto")
        return self.term(y, z=z)

    def infer(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """ž: the one-hot code of the nearest prototype, ``[B, K]`` (exhaustive search)."""
        self._need_fitted("infer")
        labels = self.predict(y)
        return nnf.one_hot(labels, self.cfg.k).to(self.decoder.weight.dtype)

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F∞(y) = min_k ‖y − w_k‖², or the soft minimum F_β when ``beta`` is set. ``[B]``.

        Differentiable with respect to the prototypes (the minimiser is found without a
        graph; by the envelope theorem that is the gradient of F∞).
        """
        return self.soft_free_energy(y, self.cfg.beta)

    def soft_free_energy(self, y: Tensor, beta: float | None) -> Tensor:
        """F_β(y) = −1/β · log Σ_k exp(−β ‖y − w_k‖²); ``beta=None`` gives F∞. ``[B]``."""
        self._need_fitted("free_energy")
        y = self._check_y(y)
        w = self.cluster_centers_  # [K, D]
        if beta is None:
            labels = kernels.assign(y.detach(), w.detach(), chunk=self.cfg.chunk_size)[0]
            return (y - w[labels]).square().sum(dim=1)  # exact, with a graph to W
        if not beta > 0:
            raise ConfigError(f"kmeans: beta must be positive (or None for F∞), got {beta!r}")
        c = kernels.chunk_rows(self.cfg.k, self.cfg.chunk_size)
        parts = []
        for start in range(0, y.shape[0], c):
            part = y[start:start + c]
            d = (torch.einsum("bd,bd->b", part, part).unsqueeze(1) - 2 * part @ w.t()
                 + torch.einsum("kd,kd->k", w, w)).clamp_min(0)  # [C, K]
            parts.append(-torch.logsumexp(-beta * d, dim=1) / beta)
        return torch.cat(parts)

    def default_strategy(self) -> Any:
        if self.cfg.training == "gradient":
            return GradientKMeans()
        return Lloyd()

    def metrics(self) -> dict[str, Any]:
        metrics = super().metrics()
        metrics["nmi"] = ClusterNMI()
        return metrics


def _mean_variance(y: Tensor) -> float:
    """Mean over features of the per-feature variance, without an N×D temporary."""
    n = y.shape[0]
    mean = y.mean(dim=0)  # [D]
    total = torch.einsum("nd,nd->", y, y) - n * mean.square().sum()
    return float(total) / (y.shape[1] * max(n - 1, 1))


def _sync_fitted(module: KMeans, incompatible: Any) -> None:
    module._fitted = bool(module.fitted)


def _check_config(cfg: KMeansConfig) -> None:
    for key in ("k", "dim", "max_iter", "n_init", "anneal"):
        at_least(key, getattr(cfg, key), who="kmeans")
    if isinstance(cfg.init, str) and cfg.init not in INITS:
        raise ConfigError(f"kmeans: init must be 'k-means++', 'random' or initial centroids "
                          f"[k, dim], got {cfg.init!r}")
    number("tol", cfg.tol, low=0.0, who="kmeans")
    if cfg.beta is not None and (not isinstance(cfg.beta, (int, float)) or not cfg.beta > 0):
        raise ConfigError(f"kmeans: beta must be a positive number or None, got {cfg.beta!r}")
    one_of("training", cfg.training, ("lloyd", "gradient"), who="kmeans")
    if cfg.chunk_size is not None:
        at_least("chunk_size", cfg.chunk_size, who="kmeans")


# ---------------------------------------------------------------------------------- training
def _world() -> int:
    """Processes in the initialised default process group (1 without one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def _global_batch(y: Tensor, world: int) -> Tensor:
    """Every rank's batch in one ``[world·B, D]``, in the order one process would have had.

    Rank r holds positions r, r + W, r + 2W, ... of the global batch (the trainer's
    ``DistributedSampler`` layout), so the gathered ``[W, B, D]`` is interleaved back.
    """
    sizes = [torch.zeros(1, dtype=torch.long, device=y.device) for _ in range(world)]
    torch.distributed.all_gather(sizes, torch.tensor([y.shape[0]], device=y.device))
    if len({int(s) for s in sizes}) != 1:
        raise ConfigError(f"kmeans: the first batches of the {world} processes have "
                          f"{[int(s) for s in sizes]} samples; expected equally many (shard "
                          f"the data as ek.Trainer or a padded DistributedSampler does)")
    parts = [torch.empty_like(y) for _ in range(world)]
    torch.distributed.all_gather(parts, y.contiguous())
    return rearrange(torch.stack(parts), "w b d -> (b w) d")


def _ensure_started(model: KMeans, y: Tensor) -> None:
    """First step: prototypes from the first batch by the ``init`` method.

    Distributed (a process group is initialised): from the union of every rank's first
    batch, drawn on rank 0 and broadcast, so all ranks start from the prototypes one process
    would draw from the whole global batch.
    """
    if model._fitted:
        return
    world = _world()
    if world > 1:
        y = _global_batch(y, world)
    if y.shape[0] < model.cfg.k:
        raise ConfigError(f"kmeans: the first batch has {y.shape[0]} samples, fewer than "
                          f"k={model.cfg.k}; use a batch size of at least k")
    centers = model.initial_centers(y, model._generator(y.device))
    if world > 1:
        torch.distributed.broadcast(centers, src=0)  # the ranks' RNGs differ: rank 0's draw
    model.set_centers(centers)


class Lloyd(ek.strategies.Strategy):
    """Architectural training by closed-form updates, one batch at a time: mini-batch
    K-means (Sculley 2010), not Lloyd's algorithm.

    Each batch is assigned to its nearest prototypes and every prototype moves towards the
    batch's mean of its samples with a per-prototype rate that decays as 1/N_k:
    w_k ← w_k + (s_k − n_k w_k)/N_k with batch sums s_k, batch counts n_k and running counts
    N_k over every batch so far. So w_k is the mean of all samples ever assigned to it,
    each under the prototypes of *its* step (stale assignments are never revised). Only
    the very first step, if it sees the whole data, equals one Lloyd M-step; later epochs
    are not further Lloyd iterations (``fit`` runs those). Hard assignments even when
    ``beta`` is set. Nothing is learned by gradient, so the trainer builds no optimizer.
    Logs ``e_pos`` (the batch's mean F∞).

    Distributed (``Trainer(distributed=...)``, any process group): the batch sums and counts
    are summed over the ranks (one ``all_reduce`` of ``[K, D + 1]`` per step) and the first
    prototypes come from the union of the ranks' first batches, so every rank holds the same
    prototypes, those of one process on the global batch (up to the order of the sums).
    """

    def __init__(self) -> None:
        self.counts: Tensor | None = None

    def __call__(self, model: KMeans, batch: dict[str, Tensor]) -> ek.StepOutput:
        y = model._check_y(batch["y"]).detach()
        _ensure_started(model, y)
        w = model.cluster_centers_
        labels, dist = kernels.assign(y, w, chunk=model.cfg.chunk_size)
        k = model.cfg.k
        if self.counts is None or self.counts.device != y.device:
            self.counts = torch.zeros(k, dtype=y.dtype, device=y.device)
        sums = torch.zeros_like(w).index_add_(0, labels, y)  # [K, D]
        n = torch.bincount(labels, minlength=k).to(y.dtype)  # [K]
        if _world() > 1:  # the global batch's sums and counts, one collective
            stats = torch.cat([sums, n.unsqueeze(1)], dim=1)  # [K, D + 1]
            torch.distributed.all_reduce(stats)
            sums, n = stats[:, :-1], stats[:, -1]
        self.counts += n
        new = w + (sums - n.unsqueeze(1) * w) / self.counts.clamp(min=1).unsqueeze(1)
        model.set_centers(new)
        e = dist.mean()
        return ek.StepOutput(e, {"e_pos": e})

    def state_dict(self) -> dict[str, Any]:
        return {} if self.counts is None else {"counts": self.counts.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = state.get("counts")

    def __repr__(self) -> str:
        return "Lloyd()"


class GradientKMeans(ek.strategies.Architectural):
    """Gradient descent on the free energy (F∞, or F_β with ``beta``): the same energy as
    Lloyd's, minimised by the trainer's optimizer (prototypes start from ``init``)."""

    def __call__(self, model: KMeans, batch: dict[str, Tensor]) -> ek.StepOutput:
        _ensure_started(model, batch["y"])
        return super().__call__(model, batch)

    def __repr__(self) -> str:
        return "GradientKMeans()"


# ---------------------------------------------------------------------------------- metrics
def normalized_mutual_info(preds: Tensor, target: Tensor) -> Tensor:
    """NMI between two labelings, arithmetic normalisation (scikit-learn's default).

    The contingency table is a dense ``[K, C]`` count from one ``bincount``: torchmetrics'
    version builds it as a sparse tensor, which makes PyTorch warn about sparse invariant
    checks on every run (and is no faster at these sizes).
    """
    preds, target = preds.reshape(-1).long(), target.reshape(-1).long()
    _, p = torch.unique(preds, return_inverse=True)
    classes, t = torch.unique(target, return_inverse=True)
    k, c = int(p.max()) + 1 if p.numel() else 0, classes.numel()
    counts = torch.bincount(p * c + t, minlength=k * c).reshape(k, c).double()  # [K, C]
    n = counts.sum()
    pk, pc = counts.sum(1) / n, counts.sum(0) / n
    joint = counts / n
    nz = joint > 0
    mi = (joint[nz] * (joint[nz].log() - (pk[:, None] * pc[None, :])[nz].log())).sum()
    hk = -(pk[pk > 0] * pk[pk > 0].log()).sum()
    hc = -(pc[pc > 0] * pc[pc > 0].log()).sum()
    denom = (hk + hc) / 2
    if denom <= 0:  # one cluster and one class: identical labelings
        return torch.ones((), dtype=torch.float32)
    return (mi / denom).clamp(0, 1).float()


def _nmi_metric() -> Any:
    from torchmetrics import Metric

    class ClusterNMI(Metric):
        """Normalised mutual information between clusters and labels (when batches have
        ``label``; nothing is reported for unlabelled data)."""

        higher_is_better = True
        full_state_update = False

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.add_state("preds", default=[], dist_reduce_fx="cat")
            self.add_state("target", default=[], dist_reduce_fx="cat")

        def update(self, model: Any, batch: dict[str, Tensor]) -> None:  # type: ignore[override]
            if batch.get("label") is None:
                return
            self.preds.append(model.predict(batch["y"]))
            self.target.append(batch["label"])

        def compute(self) -> Any:
            if len(self.preds) == 0:  # a list; after a distributed sync, one tensor
                return {}
            preds = torch.cat(self.preds) if isinstance(self.preds, list) else self.preds
            target = torch.cat(self.target) if isinstance(self.target, list) else self.target
            return normalized_mutual_info(preds, target)

    return ClusterNMI


def ClusterNMI(**kwargs: Any) -> Any:  # noqa: N802 - a class, built on first use
    """A torchmetrics metric: NMI between predicted clusters and the batch's ``label``."""
    return _nmi_metric()(**kwargs)


__all__ = ["ClusterNMI", "GradientKMeans", "KMeans", "KMeansConfig", "Lloyd"]
