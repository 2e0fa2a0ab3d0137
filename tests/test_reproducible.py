"""Runs are reproducible by default: `ebmkit train ... --seed N` (default 0) seeds before the
model is built, so two identical runs end with bit-identical weights on one machine."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import ebmkit as ek
from ebmkit.runs import train_run

pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(out):
    return load_file(str(out / "model.safetensors"))


def test_two_identical_runs_give_bit_identical_weights(tmp_path) -> None:
    torch.manual_seed(12345)  # whatever the global RNG held before: the run seeds itself
    a, _ = train_run("autoencoder", "digits", epochs=1, out=tmp_path / "a", device="cpu",
                     plots=False, progress=False)
    torch.rand(7)  # and whatever happened in between
    b, _ = train_run("autoencoder", "digits", epochs=1, out=tmp_path / "b", device="cpu",
                     plots=False, progress=False)
    c, _ = train_run("autoencoder", "digits", epochs=1, out=tmp_path / "c", device="cpu",
                     plots=False, progress=False, seed=1)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # the seed matters


def test_the_cli_has_a_seed_flag(tmp_path, capsys) -> None:
    from ebmkit.cli import main

    with pytest.raises(SystemExit):
        main(["train", "autoencoder", "--help"])
    assert "--seed" in capsys.readouterr().out


def test_seed_everything_then_build_then_train_repeats() -> None:
    from ebmkit.train import seed_everything

    def run():
        seed_everything(3)
        model = ek.get_model("autoencoder")
        data = ek.get_dataset("digits")
        small = ek.data.TensorData({"y": data.y[:128]}, name="digits", split="train")
        ek.Trainer(model, epochs=1, batch_size=64, device="cpu", seed=3,
                   progress=False).fit(small)
        return model.state_dict()

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)
