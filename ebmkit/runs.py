"""Run directories: what ``ebmkit train``, ``eval`` and ``sample`` do, callable from Python.

A run directory holds ``config.json`` (resolved), ``model.safetensors`` + ``model.json``,
``trainer.pt``, ``metrics.jsonl`` and plots (``curve.png``; ``landscape.png`` for 2-D data;
``samples.png`` / ``reconstructions.png`` for images).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["RecipeChoice", "choose_recipe", "data_defaults", "evaluate_run", "open_data",
           "plot_run", "recipe", "recipe_text", "sample_run", "train_run"]

#: What a run uses when neither the user nor the family's recipe says.
FALLBACK = {"data": "digits", "epochs": 10, "batch_size": 128, "lr": 1e-3}


def data_defaults(options: list[str], data: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Model options read off the data when the user did not set them.

    ``dim`` (features), ``image_shape`` (for image data), ``low``/``high`` (the box the
    data lives in) and ``vocab``/``level`` (token data's vocabulary), each only where the
    model has that option.
    """
    import math

    out: dict[str, Any] = {}
    y = getattr(data, "y", None)
    image_shape = getattr(data, "image_shape", None)
    if "dim" in options and "dim" not in given:
        if y is not None and y.dim() == 2:
            out["dim"] = int(y.shape[1])
        elif image_shape:  # images on disk: no y to look at
            out["dim"] = math.prod(image_shape)
    if "image_shape" in options and "image_shape" not in given and image_shape:
        out["image_shape"] = list(image_shape)
    vocab = getattr(data, "vocab", None)
    if vocab is not None and "vocab" in options and "vocab" not in given:
        out["vocab"] = list(vocab.itos[3:])  # after <pad>, <unk>, <mask>: saved with the model
        if "level" in options and "level" not in given:
            out["level"] = vocab.level
    if {"low", "high"} <= set(options) and not {"low", "high"} & set(given):
        bounds = getattr(data, "bounds", None)
        if bounds:
            out["low"] = float(min(b[0] for b in bounds))
            out["high"] = float(max(b[1] for b in bounds))
        elif image_shape:
            out["low"], out["high"] = 0.0, 1.0
    return out


def recipe(entry: Any, data: str | None = None) -> dict[str, Any]:
    """The family's registered recipe for the data set ``data``, with its ``"data"`` key:
    ``recipes[data]`` when the family registered one for that name, else its ``demo=``
    without the ``"tour"`` override (which only ``ebmkit demo`` uses) when ``demo`` is for
    that data set, else ``{}``. Recipes by data kind are chosen by
    [`choose_recipe`][ebmkit.runs.choose_recipe], which sees the data.

    Args:
        entry: A model's registry entry (``ek.plugins.get_entry("models", name)``).
        data: A registered data set's name; ``None`` means the demo recipe's own.
    """
    demo = {k: v for k, v in (getattr(entry, "demo", None) or {}).items() if k != "tour"}
    if data is None:
        return demo
    name = _dataset_name(data)
    for key, plan in (getattr(entry, "recipes", None) or {}).items():
        if name is not None and _dataset_name(key) == name:
            return {"data": data, **plan}
    if demo and name is not None and _dataset_name(demo["data"]) == name:
        return demo
    return {}  # tuned for another data set: its epochs and options would mislead


def _dataset_name(text: str) -> str | None:
    """The registered data set's canonical name, or ``None`` (a path, a kind, unknown)."""
    from .errors import UnknownNameError
    from .plugins import DATA_KINDS, get_entry

    if text in DATA_KINDS or _is_path(text):
        return None
    try:
        return get_entry("datasets", text).name
    except UnknownNameError:
        return None


@dataclass(frozen=True)
class RecipeChoice:
    """Which recipe a run takes, and what it left out.

    Attributes:
        fields: What the run takes from it: some of ``epochs``, ``batch_size``, ``lr``,
            ``schedule``, ``warmup``, ``options``.
        source: Which recipe: a data set's name, a data kind (``"images"``, ``"vectors"``,
            ``"tokens"``), or ``""`` for none.
        dropped: The recipe's fields that do not apply, as flags (``"--epochs 8"``,
            ``"--set image_shape=[1, 8, 8]"``), and why.
        partial: Whether the fields are what still applies of the recipe for another data
            set (the family registered none for this data's name or kind).
    """

    fields: dict[str, Any]
    source: str = ""
    dropped: tuple[str, ...] = ()
    partial: bool = False

    def describe(self, model: str) -> str:
        """One line for ``ebmkit train``'s stderr: which recipe, and which fields it dropped."""
        if not self.source:
            return (f"{model}: no recipe; epochs {FALLBACK['epochs']}, batch size "
                    f"{FALLBACK['batch_size']}, lr {FALLBACK['lr']:g}")
        if self.partial and not self.fields:
            return (f"{model}: no recipe for this data; its recipe for {self.source} does not "
                    f"apply, dropped " + ", ".join(self.dropped))
        used = _flags(self.fields) or "nothing"
        text = (f"{model}: recipe for {self.source}"
                + (" (what applies to this data)" if self.partial else "") + f": {used}")
        if self.dropped:
            text += "; dropped " + ", ".join(self.dropped)
        return text + " (the flags you give override it)"


def choose_recipe(entry: Any, data: str | None = None, dataset: Any = None) -> RecipeChoice:
    """The recipe ``ebmkit train MODEL --data DATA`` takes, chosen by the data.

    In order: the family's recipe for that data set's name (``recipes={"fashion-mnist":
    ...}``, or its ``demo=`` when that is for this data set); else its recipe for the data's
    kind and shape (``"images"`` of any size, ``"vectors"``, ``"tokens"``); else the fields of
    its ``demo=`` recipe that still apply: when the demo's data is of the same kind, its
    batch size, learning rate, schedule, warm-up and the options the data does not
    determine (``dim``, ``image_shape``, a vocabulary, … come from the data); never its
    epochs, which were tuned to the size of another data set; and nothing when the kinds
    differ.

    Args:
        entry: A model's registry entry.
        data: The data set's registered name or a path; ``None`` means the demo's own.
        dataset: The training data itself (for its kind); loaded from ``data`` when
            ``None`` and needed.
    """
    demo = recipe(entry)
    if data is None:
        return RecipeChoice(_without_data(demo), demo.get("data", ""))
    named = recipe(entry, data)
    if named:
        return RecipeChoice(_without_data(named), _dataset_name(data) or data)
    kinds = getattr(entry, "recipes", None) or {}
    if not kinds and not demo:
        return RecipeChoice({})
    if dataset is None:
        dataset = open_data(data)
    from .data.split import data_kind

    kind = data_kind(dataset)
    if kind is not None and kind in kinds:
        return RecipeChoice(dict(kinds[kind]), kind)
    if not demo:
        return RecipeChoice({})
    from .plugins import get_dataset

    demo_kind = data_kind(get_dataset(demo["data"]))
    if demo_kind != kind or kind is None:
        why = f"tuned for {demo['data']} ({demo_kind or 'unknown kind'}), not {kind or 'this data'}"
        return RecipeChoice({}, demo["data"], (_flags(_without_data(demo)) + f" ({why})",),
                            partial=True)
    derived = set(data_defaults([o.name for o in entry.options()], dataset, {}))
    fields = {k: v for k, v in demo.items() if k not in ("data", "epochs", "options")}
    options = {k: v for k, v in demo.get("options", {}).items() if k not in derived}
    if options:
        fields["options"] = options
    dropped = []
    if "epochs" in demo:
        dropped.append(f"--epochs {demo['epochs']} (tuned for the size of {demo['data']})")
    dropped += [f"--set {k}={v} (read from the data)" for k, v in demo.get("options", {}).items()
                if k in derived]
    return RecipeChoice(fields, demo["data"], tuple(dropped), partial=True)


def _without_data(plan: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k not in ("data", "tour")}


def _flags(plan: Mapping[str, Any]) -> str:
    parts = [f"--data {plan['data']}"] if "data" in plan else []
    parts += [f"--{k.replace('_', '-')} {plan[k]:g}" if isinstance(plan[k], float) else
              f"--{k.replace('_', '-')} {plan[k]}"
              for k in ("epochs", "batch_size", "lr", "schedule", "warmup") if k in plan]
    parts += [f"--set {k}={v}" for k, v in plan.get("options", {}).items()]
    return " ".join(parts)


def recipe_text(entry: Any) -> str:
    """One line for ``ebmkit models -v`` and ``ebmkit train MODEL --help``."""
    r = recipe(entry)
    if not r:
        text = (f"no recipe: epochs {FALLBACK['epochs']}, batch size {FALLBACK['batch_size']}, "
                f"lr {FALLBACK['lr']:g}")
    else:
        text = "recipe: " + _flags(r)
    for key, plan in (getattr(entry, "recipes", None) or {}).items():
        text += f"; for {key}: {_flags(plan) or 'the defaults'}"
    return text


_FILE_SUFFIXES = (".npy", ".npz", ".safetensors", ".txt")


def _is_path(text: str) -> bool:
    """Whether ``--data TEXT`` names a file or folder rather than a registered data set:
    it has a path separator, starts with ``.`` or ``~``, or ends in a data file's suffix."""
    return (os.sep in text or "/" in text or text.startswith((".", "~"))
            or Path(text).suffix.lower() in _FILE_SUFFIXES)


def open_data(data: str, split: str = "train", **options: Any) -> Any:
    """A registered data set's split, or the data in a file or folder.

    Args:
        data: A registered name (``ebmkit datasets``) or a path (see
            [`ek.data.from_path`][ebmkit.data.files.from_path]); a name that is not
            registered but exists on disk is read as a path.
        split: The registered data set's split (files have one, ``"train"``).
        **options: The file loader's options (``image_size``, ``channels``, ``level``, …).

    Raises:
        UnknownNameError: neither a registered name nor an existing path.
    """
    from .plugins import get_dataset, get_entry

    if not _is_path(data):
        from .errors import UnknownNameError

        try:
            entry = get_entry("datasets", data)
        except UnknownNameError:
            if not Path(data).exists():
                raise
        else:
            if any(v is not None for v in options.values()):
                given = ", ".join(k for k, v in options.items() if v is not None)
                raise ConfigError(f"--data {data}: {given} apply to data from files, not to "
                                  f"the registered data set {entry.name!r}")
            has_split = "split" in {o.name for o in entry.options()}
            return get_dataset(entry.name, split=split) if has_split else get_dataset(entry.name)
    from .data.files import from_path

    return from_path(data, **options)


def _test_split(name: str) -> Any:
    """A registered data set's test split, or ``None`` (a path, or no ``split`` option)."""
    from .plugins import get_dataset, get_entry

    if _is_path(name) or (_dataset_name(name) is None and Path(name).exists()):
        return None
    if "split" not in {o.name for o in get_entry("datasets", name).options()}:
        return None
    return get_dataset(name, split="test")


def _source(data: str) -> str | None:
    """The absolute path of file data, or ``None`` for a registered data set."""
    if _is_path(data) or (_dataset_name(data) is None and Path(data).exists()):
        return str(Path(data).expanduser().resolve())
    return None


def train_run(model: str, data: str | None = None, *, options: Mapping[str, Any] | None = None,
              epochs: int | None = None, out: str | os.PathLike[str] | None = None,
              device: str = "auto", resume: bool = False, batch_size: int | None = None,
              lr: float | None = None, schedule: str | None = None, warmup: int | None = None,
              plots: bool = True, progress: bool | None = None, seed: int = 0,
              val_fraction: float | None = None, data_options: Mapping[str, Any] | None = None,
              announce: Callable[[str], None] | None = None,
              callbacks: Sequence[Any] = (), loggers: Sequence[Any] = (),
              amp: bool | str = False, accumulate: int = 1, distributed: str = "auto",
              ) -> tuple[Path, list[dict[str, Any]]]:
    """Train a registered model on a registered data set or on files, and write a run directory.

    What is not given comes from the family's recipe for that data (see
    [`choose_recipe`][ebmkit.runs.choose_recipe]: by the data set's name, else by the
    data's kind, else what applies of its demo recipe), field by field: ``data``,
    ``epochs``, ``batch_size``, ``lr``, ``schedule``, ``warmup``, and each model option not
    in ``options``. Without a recipe: ``digits``, 10 epochs, batch size 128, lr 1e-3, a
    constant rate, no warm-up. On ``resume`` the saved model's config replaces the
    recipe's options. ``seed`` seeds every RNG before the model is built (its initial
    weights) and is the trainer's seed, so two identical calls give bit-identical weights
    on one machine. ``amp``, ``accumulate`` and ``distributed`` are the
    [`Trainer`][ebmkit.train.trainer.Trainer]'s; under ``torchrun`` every rank trains and
    rank 0 writes the run directory.

    The run never reads a test split: its ``val`` is ``val_fraction`` of the training rows
    (default [`VAL_FRACTION`][ebmkit.data.split.VAL_FRACTION], 5%, drawn with a fixed seed
    by [`split_validation`][ebmkit.data.split.split_validation]), and the model trains on
    the rest. ``data.json`` in the run directory records where the data came from, its
    loader options, the validation split and the recipe taken.

    Args:
        data: A registered data set or a path (a folder of images, an array file, a
            ``.txt`` corpus).
        val_fraction: The share of the training rows held out as ``val`` (0: none).
        data_options: The file loader's options (``image_size``, ``channels``, ``level``).
        announce: Called with one line saying which recipe the run took and what it
            dropped (``ebmkit train`` prints it).
        callbacks: Given to the [`Trainer`][ebmkit.train.trainer.Trainer]
            (``ebmkit train --callback``).
        loggers: Given to the Trainer (``ebmkit train --logger``).

    Returns:
        ``(run directory, history)``.
    """
    from .checkpoint import atomic_write_json
    from .data.split import VAL_FRACTION, VAL_SEED, data_kind, split_validation
    from .plugins import get_entry, get_model
    from .train import Trainer, seed_everything

    options = dict(options or {})
    data_options = {k: v for k, v in (data_options or {}).items() if v is not None}
    val_fraction = VAL_FRACTION if val_fraction is None else val_fraction
    entry = get_entry("models", model)
    entry.check_options(options)
    given = data
    data = data or recipe(entry).get("data", FALLBACK["data"])
    record = Path(out if out is not None else Path("runs") / model) / "data.json"
    if resume and not data_options and record.is_file():  # the loader options it trained with
        saved = json.loads(record.read_text())
        if data in (saved.get("data"), saved.get("source")):
            data_options = dict(saved.get("options") or {})
    full = open_data(data, "train", **data_options)
    choice = choose_recipe(entry, given, full)
    if announce is not None:
        announce(choice.describe(entry.name))
    plan = choice.fields
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
    train_data, val = split_validation(full, val_fraction)
    config = {**data_defaults([o.name for o in entry.options()], full, options), **options}
    seed_everything(seed)  # before the model is built: its initial weights come from the RNG
    net = get_model(entry.name, **config)
    check_data = getattr(net, "check_data", None)
    if callable(check_data):  # e.g. a MoCo queue must not outgrow the data set
        check_data(train_data)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "data.json", {
        "data": data, "source": _source(data), "name": getattr(full, "name", None),
        "kind": data_kind(full), "image_shape": getattr(full, "image_shape", None),
        "options": data_options, "val_fraction": val_fraction, "val_seed": VAL_SEED,
        "rows": {"train": len(train_data), "val": 0 if val is None else len(val)},
        "recipe": {"source": choice.source, "fields": choice.fields,
                   "dropped": list(choice.dropped), "partial": choice.partial}})
    trainer = Trainer(net, epochs=epochs, device=device, checkpoint_dir=out, resume=resume,
                      batch_size=batch_size, lr=lr, schedule=schedule, warmup=warmup,
                      progress=progress, seed=seed, callbacks=callbacks, loggers=loggers,
                      amp=amp, accumulate=accumulate, distributed=distributed)
    history = trainer.fit(train_data, val=val)
    from .train.parallel import gathered

    # under torchrun rank 0 writes the extras; FSDP's weights are gathered for it (every rank)
    with gathered(trainer._ddp if trainer.mode == "fsdp" else None):
        if trainer.dist.main:
            extra = _downstream(net, train_data, val)
            if extra and history:
                history[-1].update({f"val_{k}": v for k, v in extra.items()})
                atomic_write_json(out / "downstream.json", {"data": data, "metrics": extra})
            if plots:
                plot_run(net, val if val is not None else train_data, out, history=history)
    return out, history


def _downstream(model: Any, train: Any, test: Any) -> dict[str, float]:
    """A family's evaluation of its representation on a labelled task (e.g. the SSL family's
    k-NN and linear probe): ``model.downstream(train, test)`` when the model has one and
    both splits have labels (and are in memory), else ``{}``."""
    fn = getattr(model, "downstream", None)
    if not callable(fn) or test is None or getattr(train, "labels", None) is None or getattr(
            test, "labels", None) is None or not hasattr(train, "y") or not hasattr(test, "y"):
        return {}
    return dict(fn(train, test))


def _load(run: Path, which: str = "model") -> tuple[Any, dict[str, Any]]:
    """The run's model (``which="best"``: the one ``BestCheckpoint`` kept) and config."""
    from .checkpoint import load

    config = json.loads((run / "config.json").read_text())
    if which != "model" and not (run / f"{which}.safetensors").is_file():
        raise ConfigError(f"{run} holds no {which}.safetensors: train it with "
                          f"`--callback best_checkpoint` to keep the best model beside the last")
    return load(run / which, map_location="cpu"), config


def _run_data(run: Path, config: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The data a run trained on (a registered name or a path) and its ``data.json``."""
    record = run / "data.json"
    if record.is_file():
        info = json.loads(record.read_text())
        return info.get("source") or info.get("data"), info
    return (config.get("data") or {}).get("name"), {}  # a run from before data.json


def _held_out(data: str, info: Mapping[str, Any]) -> tuple[Any, Any, str]:
    """``(train, test, rows)``: a registered data set's train and test splits, or for data
    from files (which has no test split) the training rows and the held-out rows the run
    never trained on (the same ``val_fraction`` and seed)."""
    from .data.split import VAL_FRACTION, VAL_SEED, split_validation

    test = _test_split(data)
    if test is not None:
        return open_data(data, "train"), test, "test"
    full = open_data(data, "train", **info.get("options", {}))
    if not info:  # data the run never saw: all of it is held out
        return full, full, "all rows (not the run's data)"
    fraction = info.get("val_fraction", VAL_FRACTION)
    if not fraction:
        return full, full, "all rows (the run held none out)"
    train, held = split_validation(full, fraction, info.get("val_seed", VAL_SEED))
    return train, held, f"the held-out {fraction:g}"


def evaluate_run(run: str | os.PathLike[str], data: str | None = None, *,
                 which: str = "model") -> dict[str, float]:
    """Metrics of a trained run on the test split of its data set (or ``data``): for data
    from files, which has no test split, on the rows the run held out. Also written to
    ``eval.json`` in the run directory, with which rows were used."""
    from .checkpoint import atomic_write_json
    from .train import Trainer

    run = Path(run)
    model, config = _load(run, which)
    name, info = _run_data(run, config)
    if data is not None:
        own = data in (info.get("data"), info.get("source")) or _source(data) == info.get(
            "source", False)
        name, info = data, (info if own else {})
    if not name:
        raise ConfigError(f"{run}: config.json does not say which dataset it was trained on; "
                          f"pass --data NAME")
    train, test, rows = _held_out(name, info)
    report = Trainer(model, device="cpu", progress=False, strategy=_NoStrategy()).evaluate(test)
    if rows == "test" or rows.startswith("the held-out"):
        report.update(_downstream(model, train, test))
    atomic_write_json(run / "eval.json", {"data": name, "rows": rows, "metrics": report})
    return report


class _NoStrategy:
    """Evaluation never steps: a placeholder so models without a default strategy evaluate."""

    def __call__(self, model: Any, batch: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("evaluation does not train")


def _first_rows(data: Any, n: int) -> Any:
    """``y`` of the first ``n`` rows, in memory (decoding them when the data is on disk)."""
    import torch

    y = getattr(data, "y", None)
    if y is not None:
        return y[:n]
    return torch.stack([data[i]["y"] for i in range(min(n, len(data)))])


def sample_run(run: str | os.PathLike[str], n: int = 64, out: str | os.PathLike[str] | None = None,
               *, which: str = "model") -> Path:
    """Samples (or, for models that cannot sample, reconstructions) of a run as a PNG."""
    from . import viz

    run = Path(run)
    model, config = _load(run, which)
    model.eval()
    out = Path(out) if out is not None else run / "samples.png"
    data_name, info = _run_data(run, config)
    data = open_data(data_name, "train", **info.get("options", {})) if data_name else None
    image_shape = getattr(data, "image_shape", None)
    if hasattr(model, "sample"):
        ys = model.sample(n)
        title = f"{n} samples of {model.name}"
    elif hasattr(model, "reconstruct") and data is not None:
        ys = model.reconstruct(_first_rows(data, n).to(model.device))
        title = f"reconstructions by {model.name}"
    elif callable(getattr(model, "plots", None)) and data is not None:
        # neither samples nor reconstructions (e.g. ssl.*): the family's own pictures
        if not hasattr(data, "y"):
            data = data.load()  # images on disk: the pictures need them in memory
        written = model.plots(data, out.parent)
        if written:
            return Path(written[0])
        raise ConfigError(f"model {model.name!r} can neither sample(n) nor reconstruct(y), and "
                          f"its plots() drew nothing for this data")
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
        if callable(family_plots) and hasattr(data, "y"):  # the family's own pictures
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
    y = _first_rows(data, 1000)
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
    if callable(family_plots) and hasattr(data, "y"):  # e.g. the SSL family's embedding.png
        written += family_plots(data, out)
    model.train()
    return written
