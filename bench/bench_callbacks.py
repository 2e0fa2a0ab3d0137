"""Callbacks and loggers: a run with them against the same run without.

``neural.mlp`` on ``rings`` (contrastive divergence with Langevin chains and a replay buffer,
the family whose energy histograms matter most), two epochs per timed fit, checkpoints on in
both runs (the run directory is what the callbacks write beside). The watched run has
``EarlyStopping`` (patience long enough not to stop), ``BestCheckpoint`` on the validation
free energy (it saves whenever it improves), ``CSV`` and ``TensorBoard`` with its scalars
every ``check_every`` steps, the e_pos/e_neg histograms and the picture once per epoch.
The time inside the hooks is measured in the watched run itself, as a share of its fit
(an A/B of two runs on a shared machine is noisier than the 2% checked); a plain run from
the same weights and seed must end with the same loss (the callbacks change no training).
With no callbacks the loop runs no callback code at all (one empty-list check per
``check_every`` steps and per epoch). The target: at most 2% of the run's time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from .harness import Result

SEED = 0


def run(smoke: bool) -> list[Result]:
    import ebmkit as ek
    from ebmkit.callbacks import Callbacks

    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        print("  skipped: the tensorboard extra is not installed")
        return []
    rings = ek.get_dataset("rings")
    n = 1024 if smoke else 8192
    data = ek.data.from_arrays(rings.y[:n], name="rings")
    val = ek.data.from_arrays(ek.get_dataset("rings", split="test").y[:512], name="rings-val")
    options = {"hidden": 32, "langevin_steps": 5} if smoke else {}
    root = Path(tempfile.mkdtemp(prefix="ebmkit-bench-callbacks-"))
    epochs = 2

    # Time spent inside the hooks, measured in the run itself: on a shared machine the
    # run-to-run noise of an A/B comparison is larger than the 2% being checked.
    spent = [0.0]

    def timed(fn):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
        return wrapper

    def fit(watched: bool) -> tuple[float, float]:
        torch.manual_seed(SEED)
        model = ek.get_model("neural.mlp", **options)
        callbacks = [ek.callbacks.EarlyStopping("loss", patience=100),
                     ek.callbacks.BestCheckpoint("val_free_energy")] if watched else []
        loggers = [ek.loggers.CSV(), ek.loggers.TensorBoard()] if watched else []
        trainer = ek.Trainer(model, epochs=epochs, batch_size=256, device="cpu", seed=SEED,
                             checkpoint_dir=root / ("watched" if watched else "plain"),
                             progress=False, callbacks=callbacks, loggers=loggers)
        start = time.perf_counter()
        loss = trainer.fit(data, val=val)[-1]["loss"]
        return loss, time.perf_counter() - start

    saved = {name: getattr(Callbacks, name) for name in ("fit_start", "epoch_end", "fit_end")}
    check = ek.loggers.TensorBoard.on_check
    try:
        for name, fn in saved.items():
            setattr(Callbacks, name, timed(fn))
        ek.loggers.TensorBoard.on_check = timed(check)
        loss, total = fit(True)
    finally:
        for name, fn in saved.items():
            setattr(Callbacks, name, fn)
        ek.loggers.TensorBoard.on_check = check
    plain, _ = fit(False)
    if loss != plain:
        raise AssertionError(f"callbacks changed the training: loss {loss} vs {plain}")
    return [Result(f"Callbacks + CSV + TensorBoard ({epochs} epochs, neural.mlp on rings)",
                   spent[0], total, "the whole run", target=0.02,
                   notes=f"{n} rows, batch 256, checkpoints on; time inside the hooks over "
                         f"the fit's time, measured in one run; the same final loss as "
                         f"without them")]
