"""Issue 21's generative rows on Fashion-MNIST: ``gan.dcgan``, ``gan.ebgan``, ``neural.conv``
(the issue's "gan" row, one row per family) and ``neural.jem``.

How the samples are judged. A small CNN classifier (``ebmkit_gan.scores.Classifier``,
trained by ``ebmkit_gan.scores.classifier_for("fashion-mnist")``) is trained inside the row
(its cache pointed at a fresh folder) on the 57,000 training images that ``ebmkit train``
trains on (the training split less its 3,000 validation rows; seed 0, Adam 1e-3, 2 epochs,
batch 128; deterministic, so every row gets the same one; its test accuracy is reported).
Its 128-unit penultimate layer, scaled to unit RMS on the training images, is the feature space.
Each seed's model draws ``n`` = 10,000 samples; the **Fréchet distance** of their features to
the 10,000 **test** images' features is

    FID = ‖μ_s − μ_t‖² + tr Σ_s + tr Σ_t − 2 tr (Σ_s^½ Σ_t Σ_s^½)^½

(float64; the matrix square roots by symmetric eigendecomposition). The baseline, drawn
in the same run for each seed: ``n`` samples of the full-covariance Gaussian fitted to the
training images (plus 1e-4·I), clamped to [0, 1]. The floor: 10,000 training images
against the test images. Class shares: the classifier's predicted class over the samples.

The paired comparison (model vs Gaussian, per seed) is a bootstrap over samples: each of
``B`` = 200 resamples redraws the model's samples, the Gaussian's samples (independently)
and the test images (the same redraw for both sides, which pairs them), and recomputes
both FIDs; the interval is the 2.5–97.5 percentile of ``FID_model − FID_Gaussian``.
"Below the Gaussian" means that interval lies below 0 on every seed.

``neural.jem``: test accuracy of the plain command against the same network trained as a
plain classifier by the plain command with ``--set generative=0`` (same seed), paired on
the 10,000 test images by exact McNemar per seed; the bar is read on the mean difference
over the seeds (−1.5 points or better), its Student-t interval printed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .quality_rows import Row, _epochs, _fashion, _train

#: The families judged by ``row_gan`` (one bench row each: ``python -m bench quality gan.dcgan``).
GAN_NAMES = ("gan.dcgan", "gan.ebgan", "neural.conv")
N_SAMPLES = 10_000
N_RESAMPLES = 200


# ----------------------------------------------------------------------------- pieces
def gaussian_samples(train_y: Tensor, n: int, seed: int) -> Tensor:
    """``n`` draws of the full-covariance Gaussian fitted to ``train_y`` ``[N, D]`` (plus
    1e-4·I), clamped to [0, 1], as float32 ``[n, D]``."""
    y = train_y.double()
    cov = torch.cov(y.T) + 1e-4 * torch.eye(y.shape[1], dtype=torch.float64)
    eps = torch.randn(n, y.shape[1], generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)
    return (y.mean(0) + eps @ torch.linalg.cholesky(cov).T).clamp(0, 1).float()


@torch.no_grad()
def classify(net: Any, images: Tensor, chunk: int = 2000) -> tuple[Tensor, Tensor]:
    """``(features [N, 128] float64, predicted class [N])`` of flat images."""
    shape = net.image_shape
    feats, preds = [], []
    for i in range(0, len(images), chunk):
        f = net.features(images[i:i + chunk].reshape(-1, *shape).float())
        feats.append(f.double())
        preds.append(net.head(f).argmax(1))
    return torch.cat(feats), torch.cat(preds)


def _stats(f: Tensor) -> tuple[Tensor, Tensor]:
    return f.mean(0), torch.cov(f.T)


def frechet(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Fréchet distance of N(μ1, Σ1) and N(μ2, Σ2):
    ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½, in float64."""
    w, v = torch.linalg.eigh(cov1.double())
    root = (v * w.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root @ cov2.double() @ root).clamp_min(0).sqrt().sum()
    diff = mu1.double() - mu2.double()
    return float(diff @ diff + cov1.double().trace() + cov2.double().trace() - 2 * cross)


def fid(features: Tensor, reference: Tensor) -> float:
    """FID of two feature sets ``[N, F]`` / ``[M, F]``."""
    return frechet(*_stats(features), *_stats(reference))


def fid_bootstrap(a: Tensor, b: Tensor, reference: Tensor, n_resamples: int = N_RESAMPLES,
                  seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """FIDs of ``a`` and ``b`` to ``reference`` and a percentile bootstrap interval of
    ``FID(a) − FID(b)``: ``a``, ``b`` resampled independently, ``reference`` once per
    resample for both (the pairing).

    Returns:
        ``{"fid_a", "fid_b", "difference", "low", "high"}``.
    """
    g = torch.Generator().manual_seed(seed)
    diffs = []
    for _ in range(n_resamples):
        ia = torch.randint(len(a), (len(a),), generator=g)
        ib = torch.randint(len(b), (len(b),), generator=g)
        ir = torch.randint(len(reference), (len(reference),), generator=g)
        ref = _stats(reference[ir])
        diffs.append(frechet(*_stats(a[ia]), *ref) - frechet(*_stats(b[ib]), *ref))
    d = torch.tensor(diffs, dtype=torch.float64)
    tail = (1 - confidence) / 2
    fa, fb = fid(a, reference), fid(b, reference)
    return {"fid_a": fa, "fid_b": fb, "difference": fa - fb,
            "low": float(d.quantile(tail)), "high": float(d.quantile(1 - tail))}


@torch.no_grad()
def draw(model: Any, n: int, seed: int, chunk: int = 1000) -> Tensor:
    """``n`` samples of a trained model in [0, 1], flat, in chunks (Langevin samplers hold
    a graph per chunk), from a generator seeded by ``seed``."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, chunk):
        with torch.enable_grad():  # Langevin needs ∇E; GAN sampling ignores it
            out.append(model.sample(min(chunk, n - s), generator=g).detach().float())
    return torch.cat(out).clamp(0, 1)


class _Judge:
    """The row's feature classifier and the test images' features, built once per row."""

    def __init__(self, quick: bool) -> None:
        import time

        train, test = _fashion()
        self.shape = tuple(train.image_shape)
        ty, tlab = test.y, test.labels.reshape(-1)
        start = time.process_time()
        if quick:
            from ebmkit_gan.scores import train_classifier

            self.net = train_classifier(train.y[:6000], train.labels.reshape(-1)[:6000],
                                        self.shape, epochs=2)
        else:  # the training ebmkit train uses (classifier_for, 57,000 images), cached (in
            # the row's fresh folder) for the runs' validation scores, so it is trained once
            from ebmkit_gan.scores import classifier_for

            self.net, _ = classifier_for("fashion-mnist", 0)
        self.fit_cpu_s = time.process_time() - start
        f_train, _ = classify(self.net, train.y[:20_000])
        self.scale = float(f_train.square().mean().rsqrt())  # unit RMS on training images
        self.test_f, pred = classify(self.net, ty)
        self.test_f *= self.scale
        self.accuracy = float((pred == tlab).double().mean())
        self.train_y = train.y
        n = min(N_SAMPLES, len(train.y))
        idx = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(0))[:n]
        self.floor = fid(classify(self.net, train.y[idx])[0] * self.scale, self.test_f)

    def judge(self, samples: Tensor, seed: int) -> tuple[dict[str, float], list[float]]:
        """The bootstrap comparison with this seed's Gaussian draw, and the class shares."""
        f, pred = classify(self.net, samples)
        g, _ = classify(self.net, gaussian_samples(self.train_y, len(samples), 10_000 + seed))
        cmp = fid_bootstrap(f * self.scale, g * self.scale, self.test_f, seed=seed)
        shares = (torch.bincount(pred, minlength=10).double() / len(pred)).tolist()
        return cmp, shares


def _own_cache() -> tuple[str, str | None]:
    """Point ``ebmkit_gan.scores``' cache (the training runs' validation scores) at a fresh
    folder, so nothing trained outside the row is read; returns (folder, old value)."""
    import ebmkit_gan.scores as scores

    old = os.environ.get("EBMKIT_CACHE_DIR")
    folder = tempfile.mkdtemp(prefix="ebmkit-quality-gen-")
    os.environ["EBMKIT_CACHE_DIR"] = folder
    for fn in (scores.classifier_for, scores._reference, scores._ceiling):
        fn.cache_clear()
    return folder, old


def _restore(old: str | None) -> None:
    if old is None:
        os.environ.pop("EBMKIT_CACHE_DIR", None)
    else:
        os.environ["EBMKIT_CACHE_DIR"] = old


def _fmt_cmp(c: dict[str, float]) -> str:
    return (f"FID {c['fid_a']:.2f} vs the Gaussian's {c['fid_b']:.2f}: difference "
            f"{c['difference']:+.2f}, 95% bootstrap interval [{c['low']:+.2f}, {c['high']:+.2f}]")


# ----------------------------------------------------------------------------- rows
def row_dcgan(seeds: tuple[int, ...], quick: bool = False) -> Row:
    """The ``gan.dcgan`` row (``row_gan``)."""
    return row_gan(seeds, quick, ("gan.dcgan",))


def row_ebgan(seeds: tuple[int, ...], quick: bool = False) -> Row:
    """The ``gan.ebgan`` row (``row_gan``)."""
    return row_gan(seeds, quick, ("gan.ebgan",))


def row_conv(seeds: tuple[int, ...], quick: bool = False) -> Row:
    """The ``neural.conv`` row (``row_gan``)."""
    return row_gan(seeds, quick, ("neural.conv",))


def row_gan(seeds: tuple[int, ...], quick: bool = False,
            names: tuple[str, ...] = GAN_NAMES) -> Row:
    """Image generators by the plain command (``names``, default ``GAN_NAMES``): FID of
    10,000 samples to the test images in the row's classifier's features, against a
    Gaussian fitted to the training images (module docstring), and the share of each class."""
    import time

    n = 1000 if quick else N_SAMPLES
    folder, old = _own_cache()
    try:
        judge = _Judge(quick)
        figures: dict[str, list[float]] = {}
        tests, met, cpu = [], True, {}
        gauss_fid: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                fids, rarest = [], []
                for seed in seeds:
                    start = time.process_time()
                    model = _train(name, "fashion-mnist", seed, Path(tmp) / f"{name}{seed}",
                                   **_epochs(name, quick))
                    cpu[f"{name} seed {seed}"] = time.process_time() - start
                    cmp, shares = judge.judge(draw(model, n, seed), seed)
                    fids.append(cmp["fid_a"])
                    rarest.append(min(shares))
                    if len(gauss_fid) < len(seeds):
                        gauss_fid.append(cmp["fid_b"])
                    tests.append(f"{name}, seed {seed}: {_fmt_cmp(cmp)}; class shares % "
                                 f"[{' '.join(f'{100 * s:.1f}' for s in shares)}]")
                    met = met and cmp["high"] < 0 and min(shares) >= 0.05
                    print(f"  {tests[-1]} ({cpu[f'{name} seed {seed}']:.0f} CPU-s)",
                          flush=True)  # a long row shows its progress
                figures[f"{name}: FID"] = fids
                figures[f"{name}: rarest class share"] = rarest
    finally:
        _restore(old)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    figures["Gaussian fitted to the training images: FID"] = gauss_fid
    figures["floor: 10,000 training images: FID"] = [judge.floor]
    figures["feature classifier: test accuracy"] = [judge.accuracy]
    recipes = "; ".join(_recipe_text(nm) for nm in names)
    key = names[0] if len(names) == 1 else "gan"
    return Row(key, ", ".join(names), "Fréchet distance of 10,000 samples to the 10,000 test "
               "images in a Fashion-MNIST classifier's features; the rarest class's share",
               figures, tests, "FID below the Gaussian's (bootstrap interval below 0 on every "
               "seed); every class ≥ 5% on every seed", met, list(seeds),
               notes=f"feature classifier: ebmkit_gan.scores.Classifier trained in the row on "
                     f"the 57,000 training images ebmkit train uses (seed 0, 2 epochs; "
                     f"{judge.fit_cpu_s:.0f} CPU-s), test accuracy {judge.accuracy:.3f}; "
                     f"features scaled to unit RMS. Paired bootstrap over samples and test "
                     f"images, {N_RESAMPLES} resamples, percentile interval. Training CPU-s "
                     f"per run: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
                     + f". Recipe{'s' if len(names) > 1 else ''}: {recipes}.")


def _recipe_text(name: str) -> str:
    import ebmkit as ek
    from ebmkit.runs import choose_recipe

    return choose_recipe(ek.plugins.get_entry("models", name), "fashion-mnist").describe(name)


def row_jem(seeds: tuple[int, ...], quick: bool = False) -> Row:
    """``neural.jem`` by the plain command: test accuracy against the same network trained
    as a plain classifier (``--set generative=0``), McNemar per seed; its samples judged as
    in ``row_gan``."""
    import time

    import ebmkit as ek

    _, test = _fashion()
    ty, tlab = test.y, test.labels.reshape(-1)
    n = 1000 if quick else N_SAMPLES
    folder, old = _own_cache()
    try:
        judge = _Judge(quick)
        acc, plain_acc, fids, gfids, rarest, tests, cpu = [], [], [], [], [], [], {}
        met = True
        with tempfile.TemporaryDirectory() as tmp:
            for seed in seeds:
                runs = {}
                for label, opts in (("jem", {}), ("plain", {"generative": 0.0})):
                    start = time.process_time()
                    runs[label] = _train("neural.jem", "fashion-mnist", seed,
                                         Path(tmp) / f"{label}{seed}", options=opts or None,
                                         **_epochs("neural.jem", quick))
                    cpu[f"{label} seed {seed}"] = time.process_time() - start
                correct = {}
                for label, model in runs.items():
                    model.eval()
                    with torch.no_grad():
                        pred = torch.cat([model.predict(ty[s:s + 2000])
                                          for s in range(0, len(ty), 2000)])
                    correct[label] = pred.reshape(-1) == tlab
                mc = ek.stats.mcnemar(correct["jem"], correct["plain"])
                acc.append(mc.accuracy_a)
                plain_acc.append(mc.accuracy_b)
                cmp, shares = judge.judge(draw(runs["jem"], n, seed), seed)
                fids.append(cmp["fid_a"])
                gfids.append(cmp["fid_b"])
                rarest.append(min(shares))
                tests += [f"seed {seed}: JEM vs plain classifier: {mc}",
                          f"seed {seed}: samples: {_fmt_cmp(cmp)}; class shares % "
                          f"[{' '.join(f'{100 * s:.1f}' for s in shares)}]"]
                met = met and cmp["high"] < 0
                print(f"  {tests[-2]}\n  {tests[-1]}", flush=True)
    finally:
        _restore(old)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    diff = ek.stats.mean_interval([a - b for a, b in zip(acc, plain_acc)])
    tests.append(f"accuracy difference (paired by seed): {diff}")
    met = met and diff.mean >= -0.015
    return Row("neural.jem", "neural.jem", "test accuracy; FID of 10,000 samples to the test "
               "images in a Fashion-MNIST classifier's features",
               {"neural.jem: accuracy": acc, "plain classifier (generative=0): accuracy":
                plain_acc, "neural.jem: FID": fids, "Gaussian fitted to the training images: "
                "FID": gfids, "neural.jem: rarest class share": rarest,
                "feature classifier: test accuracy": [judge.accuracy]},
               tests, "accuracy within 1.5 points of the plain classifier (mean over seeds); "
               "FID below the Gaussian's on every seed", met, list(seeds),
               notes=f"recipe: {_recipe_text('neural.jem')}; the plain classifier is the same "
                     f"command with --set generative=0. Training CPU-s per run: "
                     + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
                     + f". Samples judged as in the gan row (bootstrap, {N_RESAMPLES} "
                       f"resamples).")


__all__ = ["GAN_NAMES", "classify", "draw", "fid", "fid_bootstrap", "frechet",
           "gaussian_samples", "row_conv", "row_dcgan", "row_ebgan", "row_gan", "row_jem"]

