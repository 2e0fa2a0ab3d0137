"""Standard evaluations of a representation: k-NN, linear probe, and a 2-D picture.

Definitions (every test and report uses exactly these):

- **features**: ``model.encode(y)`` under ``no_grad`` in eval mode (frozen).
- **k-NN accuracy**: each test sample takes the majority label of its ``k`` nearest training
  samples by cosine similarity (ties to the smallest label, as scikit-learn does); ``k = 5``.
- **linear probe**: ``StandardScaler`` + ``LogisticRegression`` (scikit-learn, L2, C = 1)
  fitted on the training split's features and labels, scored on the test split.
- accuracies are computed with torchmetrics' multiclass accuracy (micro-averaged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor

import ebmkit as ek

__all__ = ["downstream_report", "features", "knn_accuracy", "labels_of", "linear_probe",
           "plot_pca"]


def labels_of(data: Any, what: str = "data") -> Tensor:
    """The labels of ``data`` (an ``ek.data.TensorData`` or anything with ``.labels``)."""
    labels = getattr(data, "labels", None)
    if labels is None:
        name = getattr(data, "name", type(data).__name__)
        raise ek.errors.ConfigError(
            f"{what}: the k-NN and linear-probe evaluations need class labels, but {name!r} has "
            f"none; use a labelled dataset (e.g. digits, fashion-mnist)")
    return labels.long().reshape(-1)


@torch.no_grad()
def features(fn: Any, y: Tensor, device: torch.device | None = None,
             batch_size: int = 1024) -> Tensor:
    """``fn(y)`` batch by batch on ``device``, as a CPU float tensor ``[N, d]``."""
    out = []
    for start in range(0, y.shape[0], batch_size):
        chunk = y[start:start + batch_size]
        out.append(fn(chunk if device is None else chunk.to(device)).float().cpu())
    return torch.cat(out)


def _accuracy(pred: Tensor, target: Tensor, num_classes: int) -> float:
    from torchmetrics.functional.classification import multiclass_accuracy

    return float(multiclass_accuracy(pred, target, num_classes=num_classes, average="micro"))


def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 k: int = 5, *, chunk: int = 1024) -> float:
    """Cosine k-NN accuracy (majority vote of the ``k`` nearest training samples).

    Test rows are scored ``chunk`` at a time, so memory holds a ``[chunk, n_train]`` block
    of similarities, never the whole test × train matrix (10,000 × 60,000 floats is 2.4 GB
    at Fashion-MNIST's size; a chunk of 1,024 is 0.25 GB).

    Args:
        train_x: ``[N, d]`` training features.
        train_y: ``[N]`` their labels.
        test_x: ``[M, d]`` test features.
        test_y: ``[M]`` their labels.
        k: Neighbours that vote.
        chunk: Test rows per block.

    Returns:
        The share of test rows whose vote is their label.
    """
    k = ek.config.at_least("k", k)
    chunk = ek.config.at_least("chunk", chunk)
    if k > train_x.shape[0]:
        raise ek.errors.ConfigError(f"k-NN: k={k} exceeds the {train_x.shape[0]} training "
                                    f"samples")
    classes = int(max(train_y.max(), test_y.max())) + 1
    b = nnf.normalize(train_x.float(), dim=1)
    preds = []
    for start in range(0, test_x.shape[0], chunk):
        a = nnf.normalize(test_x[start:start + chunk].float(), dim=1)
        nearest = (a @ b.T).topk(k, dim=1).indices                                # [chunk, k]
        votes = nnf.one_hot(train_y[nearest], classes).sum(dim=1)                 # [chunk, c]
        preds.append(votes.argmax(dim=1))
    return _accuracy(torch.cat(preds), test_y, classes)


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 max_iter: int = 2000) -> float:
    """StandardScaler + LogisticRegression on ``train``, accuracy on ``test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(train_x.double().numpy(), train_y.numpy())
    pred = torch.as_tensor(probe.predict(test_x.double().numpy()))
    classes = int(max(train_y.max(), test_y.max())) + 1
    return _accuracy(pred, test_y, classes)


def downstream_report(model: Any, train: Any, test: Any, *, k: int = 5) -> dict[str, float]:
    """``{"knn": ..., "linear_probe": ...}`` for ``model.encode`` features, plus the collapse
    meter of the test embeddings (``std``, ``rank``)."""
    from .collapse import effective_rank, normalized_std

    train_labels, test_labels = labels_of(train, "train"), labels_of(test, "test")
    was_training = model.training
    model.eval()
    try:
        dev = model.device
        tr = features(model.encode, train.y, dev)
        te = features(model.encode, test.y, dev)
        emb = features(model.embed, test.y, dev)
    finally:
        model.train(was_training)
    return {
        f"knn{k}": knn_accuracy(tr, train_labels, te, test_labels, k=k),
        "linear_probe": linear_probe(tr, train_labels, te, test_labels),
        "embedding_std": float(normalized_std(emb)),
        "embedding_rank": float(effective_rank(emb)),
    }


def plot_pca(feats: Tensor, labels: Tensor | None, path: str | Path, title: str = "") -> Path:
    """The first two principal components of ``feats`` ``[N, d]``, coloured by class."""
    plt = ek.viz.pyplot()
    x = feats.float() - feats.float().mean(dim=0, keepdim=True)
    _, s, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].T).numpy()
    share = (s[:2].square().sum() / s.square().sum()).item()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    colours = None if labels is None else labels.numpy()
    points = ax.scatter(xy[:, 0], xy[:, 1], c=colours, cmap="tab10", s=6, alpha=0.8)
    if labels is not None:
        ax.legend(*points.legend_elements(), title="class", fontsize=7, loc="best",
                  markerscale=0.8)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"{title} (PCA, {share:.0%} of the variance)" if title else
                 f"PCA ({share:.0%} of the variance)", fontsize=9)
    return ek.viz.save_figure(fig, path)
