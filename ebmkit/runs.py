"""Run directories: what ``ebmkit train``, ``eval`` and ``sample`` do, callable from Python.

A run directory holds ``config.json`` (resolved), ``model.safetensors`` + ``model.json``,
``trainer.pt``, ``metrics.jsonl`` and plots (``curve.png``; ``landscape.png`` for 2-D data;
``samples.png`` / ``reconstructions.png`` for images).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["data_defaults", "evaluate_run", "plot_run", "recipe", "recipe_text", "sample_run",
           "train_run"]

#: What a run uses when neither the user nor the family's recipe says.
FALLBACK = {"data": "digits", "epochs": 10, "batch_size": 128, "lr": 1e-3}


def data_defaults(options: list[str], data: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Model options read off the data when the user did not set them.

    ``dim`` (features), ``image_shape`` (for image data) and ``low``/``high`` (the box the
    data lives in), each only where the model has that option.
    """
    out: dict[str, Any] = {}
    y = getattr(data, "y", None)
    image_shape = getattr(data, "image_shape", None)
    if "dim" in options and "dim" not in given and y is not None and y.dim() == 2:
        out["dim"] = int(y.shape[1])
    if "image_shape" in options and "image_shape" not in given and image_shape:
        out["image_shape"] = list(image_shape)
    if {"low", "high"} <= set(options) and not {"low", "high"} & set(given):
        bounds = getattr(data, "bounds", None)
        if bounds:
            out["low"] = float(min(b[0] for b in bounds))
            out["high"] = float(max(b[1] for b in bounds))
        elif image_shape:
            out["low"], out["high"] = 0.0, 1.0
    return out


def recipe(entry: Any, data: str | None = None) -> dict[str, Any]:
    """The family's registered recipe for ``data`` (its ``demo=`` without the ``"tour"``
    override, which only ``ebmkit demo`` uses), or ``{}`` when it has none for that data set.

    Args:
        entry: A model's registry entry (``ek.plugins.get_entry("models", name)``).
        data: The data set the run will use; ``None`` means the recipe's own.
    """
    demo = getattr(entry, "demo", None)
    if not demo:
        return {}
    if data is not None:
        from .plugins import get_entry

        if get_entry("datasets", data).name != get_entry("datasets", demo["data"]).name:
            return {}  # tuned for another data set: its epochs and options would mislead
    return {k: v for k, v in demo.items() if k != "tour"}


def recipe_text(entry: Any) -> str:
    """One line for ``ebmkit models -v`` and ``ebmkit train MODEL --help``."""
    r = recipe(entry)
    if not r:
        return (f"no recipe: epochs {FALLBACK['epochs']}, batch size {FALLBACK['batch_size']}, "
                f"lr {FALLBACK['lr']:g}")
    parts = [f"--data {r['data']}"]
    parts += [f"--{k.replace('_', '-')} {r[k]:g}" if isinstance(r[k], float) else
              f"--{k.replace('_', '-')} {r[k]}"
              for k in ("epochs", "batch_size", "lr", "schedule", "warmup") if k in r]
    parts += [f"--set {k}={v}" for k, v in r.get("options", {}).items()]
    return "recipe: " + " ".join(parts)


def _test_split(name: str) -> Any:
    from .plugins import get_dataset, get_entry

    if "split" not in {o.name for o in get_entry("datasets", name).options()}:
        return None
    return get_dataset(name, split="test")


def train_run(model: str, data: str | None = None, *, options: Mapping[str, Any] | None = None,
              epochs: int | None = None, out: str | os.PathLike[str] | None = None,
              device: str = "auto", resume: bool = False, batch_size: int | None = None,
              lr: float | None = None, schedule: str | None = None, warmup: int | None = None,
              plots: bool = True, progress: bool | None = None,
              seed: int = 0) -> tuple[Path, list[dict[str, Any]]]:
    """Train a registered model on a registered dataset and write a run directory.

    What is not given comes from the family's recipe for that data set (see
    [`recipe`][ebmkit.runs.recipe]), field by field: ``data``, ``epochs``, ``batch_size``,
    ``lr``, ``schedule``, ``warmup``, and each model option not in ``options``. Without a
    recipe: ``digits``, 10 epochs, batch size 128, lr 1e-3, a constant rate, no warm-up. On
    ``resume`` the saved model's config replaces the recipe's options. ``seed`` seeds every RNG before the model is built (its initial
    weights) and is the trainer's seed, so two identical calls give bit-identical weights
    on one machine.

    Returns:
        ``(run directory, history)``.
    """
    from .plugins import get_dataset, get_entry, get_model
    from .train import Trainer, seed_everything

    options = dict(options or {})
    entry = get_entry("models", model)
    entry.check_options(options)
    plan = recipe(entry, data)
    data = data or plan.get("data", FALLBACK["data"])
    epochs = int(plan.get("epochs", FALLBACK["epochs"])) if epochs is None else epochs
    batch_size = (int(plan.get("batch_size", FALLBACK["batch_size"])) if batch_size is None
                  else batch_size)
    lr = float(plan.get("lr", FALLBACK["lr"])) if lr is None else lr
    schedule = str(plan.get("schedule", "constant")) if schedule is None else schedule
    warmup = int(plan.get("warmup", 0)) if warmup is None else warmup
    if not resume:
        options = {**plan.get("options", {}), **options}
    out = Path(out) if out is not None else Path("runs") / model
    if resume:
        saved = out / "model.json"
        if not saved.is_file():
            raise ConfigError(f"--resume: no checkpoint in {out} to resume from (missing "
                              f"{saved.name} / trainer.pt); train without --resume first")
        header = json.loads(saved.read_text())
        if header.get("name") != entry.name:
            raise ConfigError(f"--resume: {out} holds a {header.get('name')!r} model, not "
                              f"{entry.name!r}")
        options = {**header.get("config", {}), **options}
    train_data = get_dataset(data)
    val = _test_split(data)
    config = {**data_defaults([o.name for o in entry.options()], train_data, options), **options}
    seed_everything(seed)  # before the model is built: its initial weights come from the RNG
    net = get_model(entry.name, **config)
    check_data = getattr(net, "check_data", None)
    if callable(check_data):  # e.g. a MoCo queue must not outgrow the data set
        check_data(train_data)
    trainer = Trainer(net, epochs=epochs, device=device, checkpoint_dir=out, resume=resume,
                      batch_size=batch_size, lr=lr, schedule=schedule, warmup=warmup,
                      progress=progress, seed=seed)
    history = trainer.fit(train_data, val=val)
    extra = _downstream(net, train_data, val)
    if extra and history:
        from .checkpoint import atomic_write_json

        history[-1].update({f"val_{k}": v for k, v in extra.items()})
        atomic_write_json(out / "downstream.json", {"data": data, "metrics": extra})
    if plots:
        plot_run(net, val if val is not None else train_data, out, history=history)
    return out, history


def _downstream(model: Any, train: Any, test: Any) -> dict[str, float]:
    """A family's evaluation of its representation on a labelled task (e.g. the SSL family's
    k-NN and linear probe): ``model.downstream(train, test)`` when the model has one and
    both splits have labels, else ``{}``."""
    fn = getattr(model, "downstream", None)
    if not callable(fn) or test is None or getattr(train, "labels", None) is None or getattr(
            test, "labels", None) is None:
        return {}
    return dict(fn(train, test))


def _load(run: Path) -> tuple[Any, dict[str, Any]]:
    from .checkpoint import load

    config = json.loads((run / "config.json").read_text())
    return load(run / "model", map_location="cpu"), config


def evaluate_run(run: str | os.PathLike[str], data: str | None = None) -> dict[str, float]:
    """Metrics of a trained run on the test split of its dataset (or ``data``); also written
    to ``eval.json`` in the run directory."""
    from .checkpoint import atomic_write_json
    from .train import Trainer

    run = Path(run)
    model, config = _load(run)
    name = data or (config.get("data") or {}).get("name")
    if not name:
        raise ConfigError(f"{run}: config.json does not say which dataset it was trained on; "
                          f"pass --data NAME")
    from .plugins import get_dataset

    test = _test_split(name)
    if test is None:
        test = get_dataset(name)
    report = Trainer(model, device="cpu", progress=False, strategy=_NoStrategy()).evaluate(test)
    if test is not None and getattr(test, "split", None) != "train":
        report.update(_downstream(model, get_dataset(name), test))
    atomic_write_json(run / "eval.json", {"data": name, "metrics": report})
    return report


class _NoStrategy:
    """Evaluation never steps: a placeholder so models without a default strategy evaluate."""

    def __call__(self, model: Any, batch: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("evaluation does not train")


def sample_run(run: str | os.PathLike[str], n: int = 64, out: str | os.PathLike[str] | None = None) -> Path:
    """Samples (or, for models that cannot sample, reconstructions) of a run as a PNG."""
    from . import viz
    from .plugins import get_dataset

    run = Path(run)
    model, config = _load(run)
    model.eval()
    out = Path(out) if out is not None else run / "samples.png"
    data_name = (config.get("data") or {}).get("name")
    data = get_dataset(data_name) if data_name else None
    image_shape = getattr(data, "image_shape", None)
    if hasattr(model, "sample"):
        ys = model.sample(n)
        title = f"{n} samples of {model.name}"
    elif hasattr(model, "reconstruct") and data is not None:
        ys = model.reconstruct(data.y[:n].to(model.device))
        title = f"reconstructions by {model.name}"
    else:
        raise ConfigError(f"model {model.name!r} can neither sample(n) nor reconstruct(y)")
    if not ys.is_floating_point() and callable(getattr(model, "decode", None)):
        # token ids (e.g. masked.lm's Gibbs samples): a text file, one sample a line
        text = out.with_suffix(".txt")
        lines = [f"# {title}", *(line.replace("\n", " ") for line in model.decode(ys))]
        from .checkpoint import atomic_write_text

        atomic_write_text(text, "\n".join(lines) + "\n")
        return text
    if image_shape:
        path = viz.plot_images(ys, out, image_shape=image_shape, title=title)
        family_plots = getattr(model, "plots", None)
        if callable(family_plots):  # the family's own pictures, beside the grid
            family_plots(data, out.parent)
        return path
    if ys.shape[-1] == 2:
        bounds = getattr(data, "bounds", None) or _box(ys)
        return viz.plot_density(lambda p: -model(p.to(model.device)).cpu(), bounds, out,
                                samples=ys, title=title, normalize=True)
    raise ConfigError(f"cannot picture samples of shape {list(ys.shape)}: expected images or 2-D points")


def _box(points: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    lo, hi = points.min(0).values.tolist(), points.max(0).values.tolist()
    pad = [(h - low) * 0.1 for low, h in zip(lo, hi)]
    return ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))


def plot_run(model: Any, data: Any, out: str | os.PathLike[str],
             history: list[dict[str, Any]] | None = None) -> list[Path]:
    """The run's pictures: the training curve, and a landscape, samples or reconstructions
    depending on what the data and the model are."""
    import torch

    from . import viz

    out = Path(out)
    written: list[Path] = []
    if history:
        written.append(viz.plot_history(history, out / "curve.png"))
    model.eval()
    y = data.y
    image_shape = getattr(data, "image_shape", None)
    if y.dim() == 2 and y.shape[1] == 2:
        bounds = getattr(data, "bounds", None) or _box(y)
        samples = model.sample(1000) if hasattr(model, "sample") else y[:1000]
        with torch.no_grad():
            written.append(viz.plot_density(
                lambda p: -model(p.to(model.device)).cpu(), bounds, out / "landscape.png",
                samples=samples, title=f"{model.name}: exp(−E), normalised", normalize=True))
    elif image_shape:
        if hasattr(model, "sample"):
            written.append(viz.plot_images(model.sample(64), out / "samples.png",
                                           image_shape=image_shape, title="samples"))
        if hasattr(model, "reconstruct"):
            batch = y[:32].to(model.device)
            with torch.no_grad():
                trio, what = ((viz.corrupted_trio(model, batch)) if hasattr(model, "corrupt")
                              else (None, ""))
                if trio is None:  # data | reconstruction
                    trio = torch.stack([batch, model.reconstruct(batch).reshape(batch.shape)], 1)
                    what = "data | reconstruction"
            written.append(viz.plot_images(trio.detach().cpu().reshape(-1, *image_shape),
                                           out / "reconstructions.png", nrow=trio.shape[1] * 3
                                           if trio.shape[1] == 3 else 8, title=what))
    family_plots = getattr(model, "plots", None)
    if callable(family_plots):  # a family's own pictures, e.g. the SSL family's embedding.png
        written += family_plots(data, out)
    model.train()
    return written
