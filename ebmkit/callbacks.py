"""Callbacks: code that watches or steers a [`Trainer`][ebmkit.train.trainer.Trainer] run.

A callback is a small object with any of three methods, called on the process that writes
the run (rank 0) and on every other process alike:

- ``on_fit_start(trainer)``: once per ``fit``, after a resume has restored the run;
- ``on_epoch_end(trainer, record)``: after each epoch, with its record (``loss``, the
  strategy's logs, ``val_*`` metrics) *before* it is appended to the history and written to
  ``metrics.jsonl``, so a callback may add entries; setting ``trainer.should_stop = True``
  ends the run after this epoch;
- ``on_fit_end(trainer)``: once, when ``fit`` returns.

There are no per-step hooks: the training step stays free of host syncs, and the one
per-window hook, ``on_check(trainer, step, means)`` (the running means read back every
``check_every`` steps, which the loop reads anyway), is only called on callbacks that
define it. ``state_dict()`` / ``load_state_dict(state)`` (plain tensors, numbers and
strings) go into ``trainer.pt``, so ``resume=True`` continues a run with its callbacks
exactly where they were, as Lightning's callbacks do.

Built-ins: [`EarlyStopping`][ebmkit.callbacks.EarlyStopping],
[`BestCheckpoint`][ebmkit.callbacks.BestCheckpoint] and
[`SampleGrid`][ebmkit.callbacks.SampleGrid]; plugins add more through the
``register_callbacks`` hook, and ``ebmkit train --callback NAME --set-callback key=value``
selects them by name.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import ConfigError

if TYPE_CHECKING:
    from .train.trainer import Trainer

__all__ = ["BestCheckpoint", "Callback", "CallbackLike", "Callbacks", "EarlyStopping",
           "SampleGrid", "build_callback", "list_callbacks"]

log = logging.getLogger("ebmkit.train")

_HOOKS = ("on_fit_start", "on_epoch_end", "on_fit_end", "on_check")


@runtime_checkable
class CallbackLike(Protocol):
    """What the trainer calls; every method is optional (see the module docstring)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None: ...


class Callback:
    """A base class with every hook a no-op: subclass it and override what you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once per ``fit``, after a resume has restored the run."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Called after each epoch with its record, before it is saved (add to it freely)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once when ``fit`` returns (also after an early stop)."""

    def state_dict(self) -> dict[str, Any]:
        """What ``trainer.pt`` keeps of this callback (plain values only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({opts})"


class Callbacks:
    """The trainer's list of callbacks and loggers, dispatched by hook.

    Each hook's list is built once, so a run without callbacks pays one empty-list check per
    epoch and none per step.
    """

    def __init__(self, callbacks: Iterable[Any] = (), loggers: Iterable[Any] = ()) -> None:
        items: list[Any] = []
        for what, given in (("callbacks", callbacks), ("loggers", loggers)):
            if given is None:
                continue
            if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
                raise ConfigError(f"Trainer({what}=...) expects a list, got "
                                  f"{type(given).__name__}")
            for cb in given:
                if not any(callable(getattr(cb, h, None)) for h in _HOOKS):
                    raise ConfigError(f"Trainer({what}=...): {type(cb).__name__} has none of "
                                      f"{', '.join(_HOOKS)}; expected an ek.callbacks.Callback "
                                      f"or an ek.loggers logger")
                items.append(cb)
        # Loggers come last: they see what the callbacks added to a record.
        self.items = items
        self.hooks = {h: [getattr(cb, h) for cb in items if callable(getattr(cb, h, None))]
                      for h in _HOOKS}

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Any:
        return iter(self.items)

    def fit_start(self, trainer: Trainer) -> None:
        for fn in self.hooks["on_fit_start"]:
            fn(trainer)

    def epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        for fn in self.hooks["on_epoch_end"]:
            fn(trainer, record)

    def fit_end(self, trainer: Trainer) -> None:
        for fn in self.hooks["on_fit_end"]:
            fn(trainer)

    def keys(self) -> list[str]:
        """One key per callback for ``trainer.pt``: position and class name."""
        return [f"{i}:{type(cb).__name__}" for i, cb in enumerate(self.items)]

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, cb in zip(self.keys(), self.items):
            fn = getattr(cb, "state_dict", None)
            state = fn() if callable(fn) else None
            if state:
                out[key] = dict(state)
        return out

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        state = dict(state or {})
        keys = self.keys()
        unknown = sorted(set(state) - set(keys))
        if unknown:
            raise ConfigError(f"the checkpoint holds the state of callbacks {unknown}, which "
                              f"this trainer does not have (it has {keys or 'none'}); resume "
                              f"with the same callbacks, in the same order")
        for key, cb in zip(keys, self.items):
            fn = getattr(cb, "load_state_dict", None)
            if key in state and callable(fn):
                fn(state[key])


# ----------------------------------------------------------------------- monitoring
def _check_mode(who: str, mode: str) -> str:
    if mode not in ("min", "max"):
        raise ConfigError(f"{who}: mode must be 'min' or 'max', got {mode!r}")
    return mode


def _monitored(who: str, monitor: str, record: Mapping[str, Any]) -> float:
    if monitor not in record:
        numeric = sorted(k for k, v in record.items() if isinstance(v, (int, float)))
        raise ConfigError(f"{who}: monitor={monitor!r} is not in the epoch's record; it holds "
                          f"{', '.join(numeric)} (val_* metrics need fit(data, val=...))")
    value = record[monitor]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{who}: {monitor!r} is a {type(value).__name__}, expected a number")
    return float(value)


class _Monitor(Callback):
    """Tracks the best value of one record entry (shared by EarlyStopping and BestCheckpoint)."""

    who = "callback"

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"{self.who}: monitor must be a record key such as 'loss' or "
                              f"'val_free_energy', got {monitor!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ConfigError(f"{self.who}: min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor, self.mode = monitor, _check_mode(self.who, mode)
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.best_epoch = 0

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else float(best)
        self.best_epoch = int(state.get("best_epoch", 0))


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    An epoch improves when its value beats the best so far by more than ``min_delta``
    (below it for ``mode="min"``, above for ``"max"``); a NaN never improves. The record of
    every epoch gains ``early_stopping_wait``, the epochs since the last improvement.

    Args:
        monitor: A key of the epoch record: ``"loss"``, a strategy log (``"e_pos"``) or a
            validation metric (``"val_free_energy"``, with ``fit(data, val=...)``).
        mode: ``"min"`` or ``"max"``.
        patience: Epochs without improvement before stopping (``>= 1``).
        min_delta: The smallest change that counts as an improvement.

    Example:
        >>> stop = ek.callbacks.EarlyStopping("val_free_energy", patience=3)  # doctest: +SKIP
        >>> ek.Trainer(model, epochs=100, callbacks=[stop]).fit(train, val=val)  # doctest: +SKIP
    """

    who = "EarlyStopping"

    def __init__(self, monitor: str = "loss", mode: str = "min", patience: int = 3,
                 min_delta: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"EarlyStopping: patience must be an integer >= 1, got "
                              f"{patience!r}")
        self.patience = patience
        self.wait = 0
        self.stopped_epoch = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.stopped_epoch:  # resumed after an early stop: nothing left to do
            trainer.should_stop = True

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        value = _monitored(self.who, self.monitor, record)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, int(record["epoch"]), 0
        else:
            self.wait += 1
        record["early_stopping_wait"] = self.wait
        if self.wait >= self.patience:
            self.stopped_epoch = int(record["epoch"])
            trainer.should_stop = True
            log.info("early stopping at epoch %d: %s has not improved on %.6g (epoch %d) for "
                     "%d epochs", self.stopped_epoch, self.monitor, self.best, self.best_epoch,
                     self.wait)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait = int(state.get("wait", 0))
        self.stopped_epoch = int(state.get("stopped_epoch", 0))


class BestCheckpoint(_Monitor):
    """Keep the best model beside the last: ``best.safetensors`` + ``best.json``.

    Written (atomically, like ``model.*``) whenever ``monitor`` improves; load it with
    ``ek.load(run_dir / "best")`` or ``ebmkit eval DIR --best`` / ``ebmkit sample DIR
    --best``. The record of every epoch gains ``best_<monitor>`` and ``best_epoch``.

    Args:
        monitor: A key of the epoch record (see [`EarlyStopping`][ebmkit.callbacks.EarlyStopping]).
        mode: ``"min"`` or ``"max"``.
        dir: Where to write; default the trainer's ``checkpoint_dir``.
        name: The file prefix (default ``"best"``).
    """

    who = "BestCheckpoint"

    def __init__(self, monitor: str = "loss", mode: str = "min", dir: str | Path | None = None,
                 name: str = "best") -> None:
        super().__init__(monitor, mode)
        if not isinstance(name, str) or not name or "/" in name or name == "model":
            raise ConfigError(f"BestCheckpoint: name must be a file prefix other than 'model', "
                              f"got {name!r}")
        self.dir, self.name = (None if dir is None else Path(dir)), name

    def path(self, trainer: Trainer) -> Path:
        """The prefix the best model is written to."""
        d = self.dir if self.dir is not None else trainer.checkpoint_dir
        if d is None:
            raise ConfigError("BestCheckpoint needs a directory: give the Trainer a "
                              "checkpoint_dir or BestCheckpoint(dir=...)")
        return Path(d) / self.name

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path(trainer)  # fail before the first epoch, not after it

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        value = _monitored(self.who, self.monitor, record)
        if self._improved(value):
            self.best, self.best_epoch = value, int(record["epoch"])
            if trainer.dist.main:
                from .checkpoint import save_model

                save_model(trainer.model, self.path(trainer))
        record[f"best_{self.monitor}"] = self.best if self.best is not None else math.nan
        record["best_epoch"] = self.best_epoch


class SampleGrid(Callback):
    """Pictures of the model every ``every`` epochs, and a summary of them at the end.

    What is pictured depends on what the family has: completions (``corrupt`` + ``predict``:
    hidden patches | completed | data), else samples (``sample(n)``), else reconstructions
    (``reconstruct``: data | reconstruction), of a fixed batch of the validation data (else
    the training data) and with a fixed seed, so the pictures of two epochs differ only by the
    model. Images go to ``DIR/samples/epoch-NNN.png``; 2-D data gives scatter plots of samples.
    At the end ``DIR/samples/summary.png`` tiles the pictures of every epoch, one row each.
    The global RNGs are left as they were (``torch.random.fork_rng``), so a run with this
    callback trains the same weights as one without it.

    Args:
        every: Epochs between pictures (the last epoch is always pictured).
        n: Images per picture.
        dir: Where to write; default ``checkpoint_dir / "samples"``.
        seed: The seed of the pictures' own generator.
    """

    def __init__(self, every: int = 1, n: int = 32, dir: str | Path | None = None,
                 seed: int = 0) -> None:
        for key, value in (("every", every), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SampleGrid: {key} must be an integer >= 1, got {value!r}")
        self.every, self.n, self.seed = every, n, int(seed)
        self.dir = None if dir is None else Path(dir)
        self.epochs: list[int] = []  # the epochs pictured so far (checkpointed)
        self._grids: dict[int, Any] = {}  # epoch -> image tensor, this process only

    def folder(self, trainer: Trainer) -> Path:
        d = self.dir if self.dir is not None else (
            None if trainer.checkpoint_dir is None else trainer.checkpoint_dir / "samples")
        if d is None:
            raise ConfigError("SampleGrid needs a directory: give the Trainer a checkpoint_dir "
                              "or SampleGrid(dir=...)")
        return Path(d)

    def on_fit_start(self, trainer: Trainer) -> None:
        self.folder(trainer)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        epoch = int(record["epoch"])
        if not trainer.dist.main or (epoch % self.every and epoch != trainer.epochs):
            return
        from .viz import model_picture, save_picture

        picture = model_picture(trainer, n=self.n, seed=self.seed)
        if picture is None:
            return
        save_picture(picture, self.folder(trainer) / f"epoch-{epoch:03d}.png",
                     title=f"{trainer.model.name}: {picture.what}, epoch {epoch}")
        self._grids[epoch] = picture
        if epoch not in self.epochs:
            self.epochs.append(epoch)

    def on_fit_end(self, trainer: Trainer) -> None:
        if not trainer.dist.main or not self._grids:
            return
        from .viz import save_summary

        save_summary(self._grids, self.folder(trainer) / "summary.png",
                     title=f"{trainer.model.name}, epoch by epoch")

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epochs = [int(e) for e in state.get("epochs", [])]


# -------------------------------------------------------------------- the registry
def list_callbacks() -> list[str]:
    """Sorted names of every registered callback, e.g. ``["best_checkpoint", …]``."""
    from .plugins import list_entries

    return [e.name for e in list_entries("callbacks")]


def build_callback(name: str, /, **options: Any) -> Any:
    """Build a registered callback by name: ``build_callback("early_stopping", patience=5)``."""
    from .plugins import build

    return build("callbacks", name, **options)


def from_specs(specs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Any]:
    """Callbacks from ``(name, options)`` pairs, as the CLI's ``--callback`` gives them."""
    return [build_callback(name, **dict(options)) for name, options in specs]
