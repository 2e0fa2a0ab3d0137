"""Callbacks: EarlyStopping, BestCheckpoint, SampleGrid, the protocol, the registry, and resume.

Each test compares against a plain run (the same model, seed and data without the callback),
so a callback that changed the training, or saved the wrong epoch, fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def digits(n: int = 192) -> Any:
    y = ek.get_dataset("digits").y[:n]
    return ek.data.from_arrays(y, image_shape=(1, 8, 8), name="digits-head")


def model() -> Any:
    torch.manual_seed(0)
    return ek.get_model("autoencoder", hidden=8, code=2, image_shape=[1, 8, 8])


def fit(epochs: int, run: Path | None = None, resume: bool = False, **kw: Any) -> tuple[Any, Any]:
    m = model()
    t = ek.Trainer(m, epochs=epochs, batch_size=64, device="cpu", checkpoint_dir=run,
                   resume=resume, progress=False, **kw)
    return m, t.fit(digits())


def weights(m: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Scores(ek.callbacks.Callback):
    """Adds a made-up ``score`` to each epoch's record (first, so the others see it)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def on_epoch_end(self, trainer, record) -> None:
        record["score"] = self.values[record["epoch"] - 1]


def test_early_stopping_stops_after_patience_with_the_plain_runs_weights() -> None:
    stop = ek.callbacks.EarlyStopping("score", mode="max", patience=2)
    m, history = fit(10, callbacks=[Scores([1, 3, 2, 2.5, 9, 9]), stop])
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]  # best at 2, two epochs without
    assert [r["early_stopping_wait"] for r in history] == [0, 0, 1, 2]
    assert (stop.best, stop.best_epoch, stop.stopped_epoch) == (3.0, 2, 4)
    plain, _ = fit(4)
    assert same(weights(m), weights(plain))  # the callback stopped the run, changed nothing


def test_early_stopping_min_delta_and_nan() -> None:
    stop = ek.callbacks.EarlyStopping("score", mode="min", patience=1, min_delta=0.5)
    _, history = fit(5, callbacks=[Scores([5, 4.6, 1, float("nan"), 0]), stop])
    assert len(history) == 2  # 4.6 is not 0.5 below 5
    stop = ek.callbacks.EarlyStopping("score", patience=1)
    _, history = fit(5, callbacks=[Scores([5, 4, float("nan"), 0, 0]), stop])
    assert len(history) == 3  # a NaN never improves


def test_best_checkpoint_keeps_the_best_epochs_weights(tmp_path: Path) -> None:
    best = ek.callbacks.BestCheckpoint("score", mode="min")
    _, history = fit(4, tmp_path / "run", callbacks=[Scores([4, 1, 3, 2]), best])
    assert [r["best_score"] for r in history] == [4, 1, 1, 1]
    assert [r["best_epoch"] for r in history] == [1, 2, 2, 2]
    saved = ek.load(tmp_path / "run" / "best")
    at_2, _ = fit(2)
    assert same(weights(saved), weights(at_2))
    last = ek.load(tmp_path / "run" / "model")
    assert not same(weights(saved), weights(last))  # the last model is kept beside it


def test_resume_with_callbacks_is_bit_exact(tmp_path: Path) -> None:
    def callbacks() -> list[Any]:
        return [Scores([5, 4, 4.5, 3, 3.5, 6]), ek.callbacks.EarlyStopping("score", patience=3),
                ek.callbacks.BestCheckpoint("score")]

    ref, ref_history = fit(6, tmp_path / "ref", callbacks=callbacks())
    fit(3, tmp_path / "crash", callbacks=callbacks())
    m, history = fit(6, tmp_path / "crash", resume=True, callbacks=callbacks())
    assert same(weights(m), weights(ref))
    strip = [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")}
             for r in history]
    assert strip == [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")}
                     for r in ref_history]
    assert [r["early_stopping_wait"] for r in history] == [0, 0, 1, 0, 1, 2]
    assert same(weights(ek.load(tmp_path / "crash" / "best")),
                weights(ek.load(tmp_path / "ref" / "best")))


def test_resuming_a_run_that_stopped_early_trains_nothing(tmp_path: Path) -> None:
    def callbacks() -> list[Any]:
        return [Scores([1, 2, 3, 4, 5, 6]), ek.callbacks.EarlyStopping("score", patience=1)]

    m1, h1 = fit(6, tmp_path, callbacks=callbacks())
    assert len(h1) == 2
    m2, h2 = fit(6, tmp_path, resume=True, callbacks=callbacks())
    assert len(h2) == 2 and same(weights(m1), weights(m2))


def test_resume_with_other_callbacks_is_refused(tmp_path: Path) -> None:
    fit(1, tmp_path, callbacks=[ek.callbacks.EarlyStopping()])
    with pytest.raises(ConfigError, match=r"callbacks \['0:EarlyStopping'\].*same order"):
        fit(2, tmp_path, resume=True, callbacks=[ek.callbacks.BestCheckpoint()])


def test_sample_grid_pictures_each_epoch_and_leaves_training_alone(tmp_path: Path) -> None:
    m, _ = fit(3, tmp_path, callbacks=[ek.callbacks.SampleGrid(every=2, n=8)])
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["epoch-002.png", "epoch-003.png", "summary.png"]  # every 2, and the last
    plain, _ = fit(3)
    assert same(weights(m), weights(plain))


def test_model_picture_shows_what_the_family_has() -> None:
    from ebmkit.viz import model_picture

    data = digits(32)
    for name, options, what in [
        ("autoencoder", {"hidden": 8, "code": 2}, "data | reconstruction"),
        ("autoencoder.denoising", {"hidden": 8, "code": 2}, "corrupted | denoised | data"),
        ("masked.image", {"d_model": 8, "n_head": 2, "n_layer": 1}, "hidden | completed | data"),
    ]:
        net = ek.get_model(name, image_shape=[1, 8, 8], **options)
        trainer = ek.Trainer(net, epochs=1, device="cpu", progress=False)
        trainer.train_data = data
        picture = model_picture(trainer, n=4)
        assert picture is not None and picture.what == what, (name, picture)
        columns = 3 if "|" in what and what.count("|") == 2 else 2
        assert picture.images.shape == (4 * columns, 1, 8, 8)
        if name == "autoencoder":  # data first, as it is (not inverted)
            assert torch.equal(picture.images[0].flatten(), data.y[0])


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ConfigError, match=r"monitor='val_x' is not in the epoch's record; it "
                                          r"holds .*loss"):
        fit(1, callbacks=[ek.callbacks.EarlyStopping("val_x")])
    with pytest.raises(ConfigError, match="mode must be 'min' or 'max', got 'low'"):
        ek.callbacks.EarlyStopping(mode="low")
    with pytest.raises(ConfigError, match="patience must be an integer >= 1"):
        ek.callbacks.EarlyStopping(patience=0)
    with pytest.raises(ConfigError, match="BestCheckpoint needs a directory"):
        fit(1, callbacks=[ek.callbacks.BestCheckpoint()])
    with pytest.raises(ConfigError, match="object has none of on_fit_start"):
        fit(1, callbacks=[object()])
    with pytest.raises(ConfigError, match="expects a list, got EarlyStopping"):
        fit(1, callbacks=ek.callbacks.EarlyStopping())


def test_callbacks_by_name_and_from_a_plugin(fresh_plugins) -> None:
    assert {"early_stopping", "best_checkpoint", "sample_grid", "csv",
            "tensorboard"} <= set(ek.callbacks.list_callbacks())
    stop = ek.callbacks.build_callback("early_stopping", monitor="loss", patience=5)
    assert isinstance(stop, ek.callbacks.EarlyStopping) and stop.patience == 5

    class Counter(ek.callbacks.Callback):
        def __init__(self, start: int = 0) -> None:
            self.seen = start

        def on_epoch_end(self, trainer, record) -> None:
            self.seen += 1
            record["seen"] = self.seen

    class Plugin:
        @ek.hookimpl
        def register_callbacks(self, register) -> None:
            register("counter", Counter, summary="counts epochs")

    ek.plugins.register_plugin(Plugin(), name="counter-plugin")
    counter = ek.callbacks.build_callback("counter", start=10)
    _, history = fit(2, callbacks=[counter])
    assert [r["seen"] for r in history] == [11, 12]


# ------------------------------------------------------------------------------ the CLI
def cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from ebmkit.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


def train_argv(run: Path, *extra: str) -> list[str]:
    return ["train", "autoencoder", "--data", "digits", "--epochs", "3", "--batch-size", "256",
            "--set", "hidden=8", "--set", "code=2", "--out", str(run), "--no-plots",
            "--device", "cpu", *extra]


def test_cli_callbacks_best_and_no_silent_overwrite(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, text = cli(*train_argv(run, "--callback", "early_stopping", "--set-callback",
                                 "monitor=val_free_energy", "--set-callback", "patience=1",
                                 "--callback", "best_checkpoint", "--set-callback",
                                 "monitor=val_free_energy", "--set-callback", "mode=max"))
    assert code == 0, text
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: r["val_free_energy"])  # mode=max: an early epoch
    assert records[-1]["best_epoch"] == best["epoch"] < records[-1]["epoch"]
    assert "early_stopping_wait" in records[-1]
    reports = {}
    for which in ("best", "last"):
        code, text = cli("eval", str(run), "--json", *(["--best"] if which == "best" else []))
        assert code == 0, text
        reports[which] = json.loads((run / "eval.json").read_text())["metrics"]["free_energy"]
    test = ek.get_dataset("digits", split="test")
    expected = ek.Trainer(ek.load(run / "best"), device="cpu", progress=False).evaluate(test)
    assert reports["best"] == pytest.approx(expected["free_energy"], rel=1e-6)
    assert reports["best"] != pytest.approx(reports["last"], rel=1e-3)
    # again without --resume: refused, with the command that continues it
    before = (run / "model.safetensors").read_bytes()
    code, text = cli(*train_argv(run))
    assert code == 2 and "already holds a run (3 epochs done)" in text
    assert "--resume`" in text and "--force" in text
    assert (run / "model.safetensors").read_bytes() == before
    code, text = cli(*train_argv(run, "--force"))
    assert code == 0 and "--force: starting over" in text
    code, text = cli(*train_argv(run, "--set-callback", "patience=1"))
    assert code == 2 and "give --callback NAME before its options" in text


def test_cli_interrupt_says_where_the_run_is_and_how_to_resume(tmp_path: Path,
                                                               fresh_plugins) -> None:
    class Interrupt(ek.callbacks.Callback):
        def __init__(self, at: int = 1) -> None:
            self.at = at

        def on_epoch_end(self, trainer, record) -> None:
            if record["epoch"] == self.at:
                raise KeyboardInterrupt

    class Plugin:
        @ek.hookimpl
        def register_callbacks(self, register) -> None:
            register("interrupt", Interrupt)

    ek.plugins.register_plugin(Plugin(), name="interrupt-plugin")
    run = tmp_path / "run"
    code, text = cli(*train_argv(run, "--callback", "interrupt"))
    assert code == 130 and "interrupted before the first epoch ended: nothing was saved" in text
    code, text = cli(*train_argv(run, "--callback", "interrupt", "--set-callback", "at=2"))
    assert code == 130 and f"the run in {run} holds 1 epochs; continue it with:" in text
    again = text.strip().splitlines()[-1].strip()
    assert again.startswith("ebmkit train autoencoder") and again.endswith("--resume")
    import shlex

    code, text = cli(*shlex.split(again)[1:-3], "--resume")  # without the interrupting callback
    assert code == 0 and f"resuming {run} after epoch 1" in text, text
