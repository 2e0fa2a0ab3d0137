"""Offline sample quality: classifier FID / KID, their floor and ceiling, mode coverage.

Inception weights would have to be downloaded, and an ImageNet network says little about
8×8 digits anyway. Instead ebmkit trains a small classifier on the **training split of the
same data set** (less the validation rows ``ebmkit train`` holds out:
[`split_validation`][ebmkit.data.split.split_validation]), caches it in the user's cache
directory, and uses its penultimate layer as the feature network of torchmetrics'
``FrechetInceptionDistance`` and ``KernelInceptionDistance``. The scores are called *classifier
FID* and *classifier KID*: comparable between models on one data set, not with published
Inception FIDs.

Every score comes with two reference points, computed with the same features against the
same reference set (the training split less its validation rows):

- the **floor**: the real validation images vs the rest (what a perfect generator would
  score, up to sample size: a small validation set, e.g. 72 digits, gives a higher floor);
- the **ceiling**: uniform noise vs the same reference (what no learning scores).

Mode coverage is the histogram of the classifier's predicted classes over the samples.

Nothing here reads a test split: these scores run inside ``ebmkit train`` (``val`` metrics
of the GAN family), and a training run never sees the test images. The classifier's
accuracy is measured on the validation rows. Judging on the test split is the quality
bench's job (``bench/quality_gen.py``).

Cache directory: ``$EBMKIT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/ebmkit``, else
``~/.cache/ebmkit``; classifiers live under ``classifiers/``. Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ebmkit.errors import ConfigError

__all__ = ["ClassifierFeatures", "SampleReport", "SampleScores", "cache_dir", "classifier_for",
           "evaluate_samples", "train_classifier"]

_VERSION = 2  # bump when the classifier or its training changes: old caches are ignored
_EPOCHS = {"digits": 10, "fashion-mnist": 2}


def cache_dir() -> Path:
    """``$EBMKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ebmkit``, else ``~/.cache/ebmkit``."""
    if os.environ.get("EBMKIT_CACHE_DIR"):
        return Path(os.environ["EBMKIT_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ebmkit"


class Classifier(nn.Module):
    """A small CNN: 3×3 convolutions (stride 2 until the side is ≤ 7), 128 features, logits."""

    num_features = 128

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        c, s, _ = image_shape
        layers: list[nn.Module] = [nn.Conv2d(c, 32, 3, padding=1), nn.ReLU()]
        ch = 32
        while s > 7 or ch == 32:
            layers += [nn.Conv2d(ch, 64, 3, stride=2, padding=1), nn.ReLU()]
            ch, s = 64, (s + 1) // 2
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * s * s, 128), nn.ReLU())
        self.head = nn.Linear(128, num_classes)
        self.image_shape, self.num_classes = tuple(image_shape), num_classes

    def features(self, images: Tensor) -> Tensor:
        return self.body(images)  # [B, 128]

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.body(images))  # [B, K]


class ClassifierFeatures(nn.Module):
    """The classifier's penultimate layer as a torchmetrics feature network."""

    num_features = Classifier.num_features

    def __init__(self, classifier: Classifier, scale: float = 1.0) -> None:
        super().__init__()
        self.classifier, self.scale = classifier, scale

    def forward(self, images: Tensor) -> Tensor:
        shape = self.classifier.image_shape
        images = images.reshape(-1, *shape).float()
        return self.classifier.features(images) * self.scale


def train_classifier(images: Tensor, labels: Tensor, image_shape: Sequence[int],
                     num_classes: int | None = None, seed: int = 0, epochs: int = 5,
                     batch_size: int = 128) -> Classifier:
    """A feature [`Classifier`][ebmkit_gan.scores.Classifier] trained by Adam (lr 1e-3) on
    flat or image-shaped ``images`` with integer ``labels``, seeded by ``seed`` (the global
    RNG is left as it was); returned in eval mode."""
    shape = tuple(image_shape)
    k = int(num_classes or int(labels.max()) + 1)
    x = images.reshape(-1, *shape).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Classifier(shape, k)  # type: ignore[arg-type]
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), batch_size):
                idx = perm[i:i + batch_size]
                loss = nn.functional.cross_entropy(net(x[idx]), labels[idx].long())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net.eval()


def _split(data: str) -> tuple[Any, Any]:
    """The training split of ``data`` less its validation rows, and those rows (the split
    ``ebmkit train`` uses); the test split is never read."""
    import ebmkit as ek
    from ebmkit.data import split_validation

    train = ek.get_dataset(data, split="train")
    if train.image_shape is None or train.labels is None:
        raise ConfigError(f"classifier scores need labelled images; {data!r} has "
                          f"{'no image_shape' if train.image_shape is None else 'no labels'}")
    return split_validation(train)


def _train(data: str, seed: int) -> tuple[Classifier, float]:
    train, val = _split(data)
    shape = tuple(train.image_shape)
    net = train_classifier(train.y, train.labels, shape, train.num_classes, seed,
                           epochs=_EPOCHS.get(data, 5),
                           batch_size=64 if len(train.y) < 10_000 else 128)
    net.eval()
    with torch.no_grad():
        xv = val.y.reshape(-1, *shape)
        pred = torch.cat([net(xv[i:i + 1000]).argmax(1) for i in range(0, len(xv), 1000)])
        accuracy = float((pred == val.labels.reshape(-1)).float().mean())
    return net, accuracy


@functools.lru_cache(maxsize=8)
def classifier_for(data: str = "digits", seed: int = 0) -> tuple[Classifier, float]:
    """The feature classifier of ``data`` and its validation accuracy: loaded from the
    cache, or trained on the training split less its validation rows (a few seconds for
    digits, about a minute for Fashion-MNIST on a CPU) and cached.

    Raises:
        ConfigError: ``data`` is not a labelled image data set.
    """
    from safetensors.torch import load_file, save_file

    stem = cache_dir() / "classifiers" / f"{data}-v{_VERSION}-seed{seed}"
    weights, meta_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if weights.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            # Its random initialisation is overwritten at once, but would advance the global
            # RNG of the training run that asked for scores - once per process, so a resumed
            # run would draw other noise than an uninterrupted one (not crash-exact).
            with torch.random.fork_rng(devices=[]):
                net = Classifier(tuple(meta["image_shape"]), int(meta["num_classes"]))
            net.load_state_dict(load_file(str(weights)))
            net.eval()
            return net, float(meta["accuracy"])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # a damaged cache: retrain
            warnings.warn(f"ignoring the damaged classifier cache {weights}: {exc}", stacklevel=2)
    net, accuracy = _train(data, seed)
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = {"data": data, "version": _VERSION, "seed": seed, "accuracy": accuracy,
            "image_shape": list(net.image_shape), "num_classes": net.num_classes}
    for path, write in ((weights, lambda p: save_file(dict(net.state_dict()), p)),
                        (meta_path, lambda p: Path(p).write_text(json.dumps(meta, indent=1)))):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return net, accuracy


@dataclass
class SampleReport:
    """Classifier FID / KID of samples with their floor and ceiling, and mode coverage.

    Attributes:
        data: The data set whose training split (less its validation rows) is the reference.
        n: Samples scored.
        fid, kid: The samples' classifier FID and KID (vs the reference).
        fid_floor, kid_floor: The real validation images vs the reference.
        fid_ceiling, kid_ceiling: ``n`` uniform-noise images vs the reference.
        class_shares: Fraction of samples the classifier puts in each class.
        classes_covered: Classes with at least ``min_share`` of the samples.
        classifier_accuracy: The feature classifier's accuracy on the validation rows.
    """

    data: str
    n: int
    fid: float
    fid_floor: float
    fid_ceiling: float
    kid: float
    kid_floor: float
    kid_ceiling: float
    class_shares: list[float] = field(default_factory=list)
    classes_covered: int = 0
    min_share: float = 0.01
    classifier_accuracy: float = math.nan

    @property
    def class_share_min(self) -> float:
        return min(self.class_shares) if self.class_shares else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "class_share_min": self.class_share_min}

    def metrics(self) -> dict[str, float]:
        """Flat numbers for ``Trainer.evaluate`` (``classifier_fid``, …)."""
        return {"classifier_fid": self.fid, "classifier_fid_floor": self.fid_floor,
                "classifier_fid_ceiling": self.fid_ceiling, "classifier_kid": self.kid,
                "classifier_kid_floor": self.kid_floor, "classifier_kid_ceiling": self.kid_ceiling,
                "classes_covered": float(self.classes_covered),
                "class_share_min": self.class_share_min}

    def __str__(self) -> str:
        shares = " ".join(f"{100 * s:.0f}" for s in self.class_shares)
        return (f"{self.data}, {self.n} samples: classifier FID {self.fid:.3g} "
                f"(floor {self.fid_floor:.3g}, noise ceiling {self.fid_ceiling:.3g}); "
                f"classifier KID {self.kid:.3g} (floor {self.kid_floor:.3g}, ceiling "
                f"{self.kid_ceiling:.3g}); {self.classes_covered}/{len(self.class_shares)} "
                f"classes covered, shares % [{shares}]")


class _Reference:
    """FID / KID metrics holding the reference features (the training split less its
    validation rows), plus the floor (the validation rows)."""

    def __init__(self, data: str, seed: int) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.classifier, self.accuracy = classifier_for(data, seed)
        train, val = _split(data)
        self.shape = tuple(train.image_shape)
        self.num_classes = self.classifier.num_classes
        with torch.no_grad():  # features scaled to unit RMS per dimension on the reference
            f = torch.cat([self.classifier.features(train.y[i:i + 2000].reshape(-1, *self.shape))
                           for i in range(0, len(train), 2000)])
            scale = float(f.square().mean().rsqrt())
        features = ClassifierFeatures(self.classifier, scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # KID's note that it keeps every feature
            self.fid = FrechetInceptionDistance(features, reset_real_features=False,
                                                normalize=True, input_img_size=self.shape)
            self.kid = KernelInceptionDistance(features, reset_real_features=False,
                                               normalize=True, subsets=50, subset_size=100)
        with torch.no_grad():
            for metric in (self.fid, self.kid):
                for i in range(0, len(train), 2000):
                    metric.update(train.y[i:i + 2000].reshape(-1, *self.shape), real=True)
        self.floor = self.score(val.y)

    def score(self, images: Tensor) -> tuple[float, float]:
        # KID draws random subsets: from a fixed seed, and never from the training run's RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return self._score(images)

    def _score(self, images: Tensor) -> tuple[float, float]:
        images = images.detach().float().cpu().reshape(-1, *self.shape)
        subset = min(100, len(images))
        out = []
        for metric in (self.fid, self.kid):
            metric.reset()
            if metric is self.kid:
                metric.subset_size = subset
            with torch.no_grad():
                for i in range(0, len(images), 2000):
                    metric.update(images[i:i + 2000], real=False)
                value = metric.compute()
            out.append(float(value[0] if isinstance(value, tuple) else value))
        return out[0], out[1]


@functools.lru_cache(maxsize=4)
def _reference(data: str, seed: int) -> _Reference:
    return _Reference(data, seed)


@functools.lru_cache(maxsize=16)
def _ceiling(data: str, seed: int, n: int) -> tuple[float, float]:
    ref = _reference(data, seed)
    noise = torch.rand((n, *ref.shape), generator=torch.Generator().manual_seed(seed + 1))
    return ref.score(noise)


def evaluate_samples(samples: Any, data: str = "digits", n: int = 1000, *, seed: int = 0,
                     min_share: float = 0.01) -> SampleReport:
    """Score samples (a tensor ``[N, D]`` / ``[N, C, S, S]``, or a model with ``sample(n)``).

    Args:
        samples: The images in [0, 1], or a model whose ``sample(n, generator=...)`` is
            called with a generator seeded by ``seed`` (the global RNG is left alone).
        data: The labelled image data set whose training split (less its validation rows)
            is the reference.
        n: How many samples to draw from a model.
        seed: Seeds the classifier's training, the noise ceiling and the model's samples.
        min_share: A class is covered when it holds at least this fraction of the samples.

    Returns:
        A [`SampleReport`][ebmkit_gan.scores.SampleReport].
    """
    if hasattr(samples, "sample") and not isinstance(samples, Tensor):
        samples = samples.sample(n, generator=torch.Generator(
            device=getattr(samples, "device", "cpu")).manual_seed(seed))
    if not isinstance(samples, Tensor):
        raise ConfigError(f"evaluate_samples: expected images as a tensor or a model with "
                          f"sample(n), got {type(samples).__name__}")
    ref = _reference(data, seed)
    if samples.numel() == 0 or samples.numel() % math.prod(ref.shape):
        raise ConfigError(f"evaluate_samples: {data} images are {list(ref.shape)}; got samples "
                          f"of shape {list(samples.shape)}")
    images = samples.detach().float().cpu().reshape(-1, *ref.shape)
    if len(images) < 2:
        raise ConfigError("evaluate_samples: needs at least 2 samples")
    fid, kid = ref.score(images)
    fid_c, kid_c = _ceiling(data, seed, len(images))
    with torch.no_grad():
        pred = torch.cat([ref.classifier(images[i:i + 2000]).argmax(1)
                          for i in range(0, len(images), 2000)])
    shares = (torch.bincount(pred, minlength=ref.num_classes).float() / len(pred)).tolist()
    return SampleReport(data=data, n=len(images), fid=fid, fid_floor=ref.floor[0],
                        fid_ceiling=fid_c, kid=kid, kid_floor=ref.floor[1], kid_ceiling=kid_c,
                        class_shares=shares, classes_covered=sum(s >= min_share for s in shares),
                        min_share=min_share, classifier_accuracy=ref.accuracy)


def _metric_base() -> type:
    from torchmetrics import Metric

    return Metric


class SampleScores(_metric_base()):  # type: ignore[misc]
    """A torchmetrics metric for ``model.metrics()``: classifier FID / KID of the model's samples.

    ``update(model, batch)`` notes the model (the real reference is the training split less
    its validation rows, not the evaluated batches); ``compute()`` draws ``n`` samples with a
    fixed seed and returns the numbers of
    [`SampleReport.metrics`][ebmkit_gan.scores.SampleReport.metrics].
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, data: str, n: int = 1000, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data, self.n, self.seed = data, n, seed
        self.add_state("seen", default=torch.zeros(()), dist_reduce_fx="sum")
        self._model: Any = None

    def update(self, model: Any, batch: Any) -> None:  # type: ignore[override]
        self._model = model
        self.seen += 1

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        if self._model is None:
            raise ConfigError("SampleScores: update(model, batch) was never called")
        report = evaluate_samples(self._model, self.data, self.n, seed=self.seed)
        return {k: torch.tensor(v) for k, v in report.metrics().items()}
