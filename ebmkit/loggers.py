"""Loggers: the run's records written where other tools read them.

``metrics.jsonl`` in the run directory stays the source of truth; a logger writes the same
records in another format, and may add pictures. Loggers are callbacks (see
[`ebmkit.callbacks`][ebmkit.callbacks]) given to ``Trainer(loggers=[...])``; they run after
the callbacks, so they see what a callback added to a record.

- [`CSV`][ebmkit.loggers.CSV]: ``metrics.csv``, the same table as ``metrics.jsonl``.
- [`TensorBoard`][ebmkit.loggers.TensorBoard]: event files with the scalars, and what is
  specific to energy-based models: histograms of the energies of data against those of
  negative samples (``energy/e_pos`` vs ``energy/e_neg``: the picture that shows an energy
  surface collapsing or diverging), per-term energies of composed energies, and the epoch's
  picture of the model.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .callbacks import Callback
from .errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

    from .train.monitor import EpochMonitor
    from .train.trainer import Trainer

__all__ = ["CSV", "TensorBoard", "energy_snapshot"]


def _log_dir(who: str, given: Path | None, trainer: Trainer) -> Path:
    d = given if given is not None else trainer.checkpoint_dir
    if d is None:
        raise ConfigError(f"{who} needs a directory: give the Trainer a checkpoint_dir or "
                          f"{who}(dir=...)")
    return Path(d)


class CSV(Callback):
    """The epoch records as a CSV table, ``metrics.csv`` (one row per epoch).

    Rewritten whole from the history each epoch (atomically), like ``metrics.jsonl``: a
    resumed run never repeats a row, and a column that appears later (a ``val_*`` metric)
    is filled in as empty for the earlier rows.

    Args:
        dir: Where to write; default the trainer's ``checkpoint_dir``.
        filename: The file's name.
    """

    def __init__(self, dir: str | Path | None = None, filename: str = "metrics.csv") -> None:
        self.dir, self.filename = (None if dir is None else Path(dir)), filename

    def path(self, trainer: Trainer) -> Path:
        return _log_dir("CSV", self.dir, trainer) / self.filename

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path(trainer)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if not trainer.dist.main:
            return
        from .checkpoint import atomic_write_text

        rows = [*trainer.history, record]
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path = self.path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, buf.getvalue())


def energy_snapshot(trainer: Trainer, n: int = 256) -> dict[str, Tensor]:
    """Per-sample energies for histograms: ``e_pos`` on a fixed batch of training data,
    ``e_neg`` on negatives where the run has them, and the per-term energies of a model
    with ``terms``.

    The negatives are the strategy's persistent chains (``strategy.buffer``, a replay
    buffer) when it keeps them, else ``model.sample(n)`` when the family samples; otherwise
    there is no ``e_neg`` (e.g. an autoencoder, which limits low energy by its architecture
    and has no negatives). Runs under ``no_grad`` in eval mode with the global RNGs forked.
    """
    import torch

    from .viz import _first_rows, forked_rng

    model, device = trainer.model, trainer.device
    y = _first_rows(getattr(trainer, "train_data", None), n)
    out: dict[str, Tensor] = {}
    if y is None or not y.is_floating_point():
        return out
    y = y.to(device)
    was_training = model.training
    model.eval()
    try:
        with forked_rng(device), torch.no_grad():
            torch.manual_seed(0)
            out["e_pos"] = model(y).float().cpu()
            neg = _negatives(trainer, n)
            if neg is not None:
                out["e_neg"] = model(neg.to(device)).float().cpu()
            terms = getattr(model, "terms", None)
            if callable(terms):
                z = model.infer(y) if callable(getattr(model, "infer", None)) else None
                with torch.enable_grad():  # latent solvers may need gradients
                    parts = terms(y, z=z)
                out.update({f"term/{k}": v.detach().float().cpu() for k, v in parts.items()})
    except (ConfigError, NotImplementedError, TypeError):  # a family without these: skip
        pass
    finally:
        model.train(was_training)
    return out


def _negatives(trainer: Trainer, n: int) -> Tensor | None:
    buffer = getattr(trainer.strategy, "buffer", None)
    storage, filled = getattr(buffer, "storage", None), getattr(buffer, "filled", None)
    if storage is not None and filled is not None:
        rows = storage[filled]  # once per epoch: the only host sync of this function
        return rows[:n] if len(rows) else None
    sample = getattr(trainer.model, "sample", None)
    if callable(sample):
        try:
            return sample(n)
        except TypeError:
            return None
    return None


class TensorBoard(Callback):
    """TensorBoard event files (``pip install 'torch-ebmkit[tensorboard]'``).

    Writes, with ``torch.utils.tensorboard``:

    - ``step/<key>``: the running means of the loss and the strategy's logs every
      ``check_every`` steps (the values the loop reads back anyway; no extra host sync),
      at the global step;
    - ``epoch/<key>``: every number of the epoch record (loss, ``e_pos``, ``e_neg``,
      per-term ``energy/<term>`` means, ``val_*`` metrics, lr, time), at the epoch;
    - histograms ``energy/e_pos`` and ``energy/e_neg`` (see
      [`energy_snapshot`][ebmkit.loggers.energy_snapshot]) and ``term/<name>`` for
      composed energies, at the epoch;
    - the epoch's picture of the model (``pictures``, as [`SampleGrid`][ebmkit.callbacks.SampleGrid]
      draws it), at the epoch.

    Args:
        dir: The log directory; default the trainer's ``checkpoint_dir``.
        histograms: Write the energy histograms.
        images: Write the epoch's picture.
        n: Samples in the histograms and images per picture.
    """

    def __init__(self, dir: str | Path | None = None, histograms: bool = True,
                 images: bool = True, n: int = 256) -> None:
        self.dir, self.histograms, self.images, self.n = (None if dir is None else Path(dir),
                                                          bool(histograms), bool(images), n)
        self._writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        d = _log_dir("TensorBoard", self.dir, trainer)
        if not trainer.dist.main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("the TensorBoard logger needs the tensorboard package: pip "
                              "install 'torch-ebmkit[tensorboard]'") from None
        # purge_step: events an interrupted session wrote after its last checkpoint are
        # hidden, so a resumed run's curves do not fold back on themselves.
        self._writer = SummaryWriter(log_dir=str(d), purge_step=trainer.step + 1
                                     if trainer.step else None)

    def on_check(self, trainer: Trainer, step: int, monitor: EpochMonitor) -> None:
        w = self._writer
        if w is None:
            return
        w.add_scalar("step/loss", monitor.running_loss(), step)
        for key, value in monitor.means().items():
            w.add_scalar(f"step/{key}", value, step)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        w = self._writer
        if w is None:
            return
        epoch = int(record["epoch"])
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                if math.isfinite(value):
                    w.add_scalar(f"epoch/{key}", value, epoch)
        if self.histograms:
            for key, values in energy_snapshot(trainer, self.n).items():
                tag = f"energy/{key}" if key in ("e_pos", "e_neg") else key
                if values.numel() and bool(values.isfinite().all()):
                    w.add_histogram(tag, values, epoch)
        if self.images:
            from .viz import image_grid, model_picture

            picture = model_picture(trainer, n=min(self.n, 32), points=False)
            if picture is not None and picture.images is not None:
                grid = image_grid(picture.images, nrow=picture.columns)
                w.add_image(f"pictures/{picture.what}", grid, epoch,
                            dataformats="HW" if grid.dim() == 2 else "HWC")
        w.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __repr__(self) -> str:
        return (f"TensorBoard(dir={self.dir!r}, histograms={self.histograms}, "
                f"images={self.images}, n={self.n})")

