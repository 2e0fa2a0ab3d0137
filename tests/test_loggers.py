"""Loggers: CSV holds metrics.jsonl's table; TensorBoard's event files, read back with
TensorBoard's own reader, hold the expected tags at the expected steps; neither changes the
training."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import ebmkit as ek
from ebmkit.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def rings(n: int = 256) -> Any:
    return ek.data.from_arrays(ek.get_dataset("rings").y[:n], name="rings-head")


def cd_model() -> Any:
    torch.manual_seed(0)
    return ek.get_model("neural.mlp", hidden=8, langevin_steps=3, buffer_size=128)


def test_csv_holds_the_same_table_as_metrics_jsonl(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = ek.get_model("autoencoder", hidden=8, code=2)
    ek.Trainer(m, epochs=3, batch_size=64, device="cpu", checkpoint_dir=tmp_path, progress=False,
               loggers=[ek.loggers.CSV()]).fit(ek.get_dataset("digits").y[:192],
                                               val=ek.get_dataset("digits", split="test").y[:64])
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(records) == 3
    for row, record in zip(rows, records):
        assert row.keys() == record.keys()
        assert all(float(row[k]) == pytest.approx(v, rel=1e-12) for k, v in record.items())


def test_tensorboard_event_files_hold_scalars_histograms_and_pictures(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    m = cd_model()
    trainer = ek.Trainer(m, epochs=2, batch_size=64, device="cpu", checkpoint_dir=tmp_path,
                         progress=False, check_every=2, loggers=[ek.loggers.TensorBoard(n=64)])
    history = trainer.fit(rings())
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    # every check_every=2 steps (4 steps an epoch): steps 2, 4 | 6, 8
    assert [e.step for e in acc.Scalars("step/loss")] == [2, 4, 6, 8]
    assert [e.step for e in acc.Scalars("epoch/loss")] == [1, 2]
    assert [e.value for e in acc.Scalars("epoch/loss")] == pytest.approx(
        [r["loss"] for r in history], rel=1e-6)
    assert {"epoch/e_pos", "epoch/e_neg", "step/e_pos", "step/e_neg"} <= set(tags["scalars"])
    # e_pos on data, e_neg on the replay buffer's chains: the EBM picture
    assert {"energy/e_pos", "energy/e_neg"} <= set(tags["histograms"])
    pos = acc.Histograms("energy/e_pos")
    assert [e.step for e in pos] == [1, 2] and pos[-1].histogram_value.num == 64
    buffer_rows = int(trainer.strategy.buffer.filled.sum())
    neg = acc.Histograms("energy/e_neg")[-1].histogram_value
    assert neg.num == min(64, buffer_rows)
    with torch.no_grad():
        chains = trainer.strategy.buffer.storage[trainer.strategy.buffer.filled][:64]
        assert neg.sum == pytest.approx(float(m(chains).sum()), rel=1e-4)
    assert tags["images"] == ["pictures/samples"] or not tags["images"]  # 2-D: a scatter, no grid


def test_tensorboard_per_term_energies_and_images(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    m = ek.get_model("autoencoder.sparse", hidden=8, code=8, image_shape=[1, 8, 8])
    data = ek.data.from_arrays(ek.get_dataset("digits").y[:128], image_shape=(1, 8, 8))
    ek.Trainer(m, epochs=1, batch_size=64, device="cpu", checkpoint_dir=tmp_path, progress=False,
               loggers=[ek.loggers.TensorBoard(n=32)]).fit(data)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = acc.Tags()
    terms = [t for t in tags["histograms"] if t.startswith("term/")]
    assert len(terms) >= 2, tags["histograms"]  # a composed energy: one histogram per term
    assert "energy/e_pos" in tags["histograms"] and "energy/e_neg" not in tags["histograms"]
    assert tags["images"] and tags["images"][0].startswith("pictures/")


def test_loggers_leave_training_alone(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    runs = {}
    for name, loggers in (("plain", []), ("logged", [ek.loggers.TensorBoard(n=32),
                                                     ek.loggers.CSV()])):
        m = cd_model()
        ek.Trainer(m, epochs=2, batch_size=64, device="cpu", checkpoint_dir=tmp_path / name,
                   progress=False, check_every=1, loggers=loggers).fit(rings())
        runs[name] = m.state_dict()
    assert all(torch.equal(runs["plain"][k], runs["logged"][k]) for k in runs["plain"])


def test_logger_errors() -> None:
    m = cd_model()
    with pytest.raises(ConfigError, match="CSV needs a directory"):
        ek.Trainer(m, epochs=1, device="cpu", progress=False,
                   loggers=[ek.loggers.CSV()]).fit(rings(64))


def test_cli_loggers_runs_and_compare(tmp_path: Path, capsys) -> None:
    from ebmkit.cli import main

    for name, epochs in (("a", 2), ("b", 3)):
        code = main(["train", "neural.mlp", "--data", "rings", "--epochs", str(epochs),
                     "--batch-size", "512", "--set", "hidden=8", "--set", "langevin_steps=3",
                     "--out", str(tmp_path / name), "--no-plots", "--device", "cpu",
                     "--logger", "csv"] + (["--logger", "tensorboard"] if name == "b" else []))
        assert code == 0, capsys.readouterr().err
    assert (tmp_path / "a" / "metrics.csv").is_file()
    assert list((tmp_path / "b").glob("events.out.tfevents.*"))
    assert not list((tmp_path / "a").glob("events.out.tfevents.*"))
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = {Path(r["run"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert {k: (r["model"], r["data"], r["epochs"]) for k, r in rows.items()} == {
        "a": ("neural.mlp", "rings", "2/2"), "b": ("neural.mlp", "rings", "3/3")}
    last = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[-1])
    assert rows["b"]["loss"] == last["loss"]
    assert main(["runs", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["RUN", "MODEL", "DATA", "EPOCHS", "LOSS", "TIME_S",
                                             "BEST"]
    out = tmp_path / "cmp.png"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compare", str(tmp_path / "a"), "--metric", "nope", "--out", str(out)]) == 2
    assert "has no nope; its records hold" in capsys.readouterr().err
    assert main(["train", "neural.mlp", "--logger", "wandb", "--out", str(tmp_path / "c")]) == 2
    assert "--logger: expected csv or tensorboard, got 'wandb'" in capsys.readouterr().err
