"""The built-in `neural` family end to end: learned densities, the CLI run directory."""

from __future__ import annotations

import json

import pytest
import torch

import ebmkit as ek
from ebmkit.cli import main
from ebmkit.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_thread")


def _gaussian_log_likelihood(train: torch.Tensor, test: torch.Tensor) -> float:
    mu, cov = train.mean(0), torch.cov(train.T)
    return torch.distributions.MultivariateNormal(mu, cov).log_prob(test).mean().item()


@pytest.mark.parametrize(("toy", "epochs"), [("rings", 30), ("eight-gaussians", 15)])
def test_learned_density_beats_a_gaussian_on_held_out_data(toy, epochs):
    """Exact held-out log-likelihood: the energy is normalised on a fine grid."""
    torch.manual_seed(0)
    train, test = ek.get_dataset(toy, n=8000), ek.get_dataset(toy, split="test")
    model = ek.get_model("neural.mlp", dim=2, hidden=64, langevin_steps=20, step_size=0.01)
    ek.Trainer(model, epochs=epochs, batch_size=256, lr=3e-3, progress=False).fit(train)
    metric = model.metrics()["log_likelihood"]
    metric.update(model, {"y": test.y})
    learned = metric.compute().item()
    gaussian = _gaussian_log_likelihood(train.y, test.y)
    true = test.log_prob(test.y).mean().item()
    print(f"{toy}: learned {learned:.3f}, Gaussian {gaussian:.3f}, true density {true:.3f}")
    assert learned > gaussian + 0.4
    assert learned <= true + 0.05  # no model beats the true density (up to grid error)


def test_cli_train_eval_sample_and_resume(tmp_path, capsys, monkeypatch, fresh_plugins):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    run = tmp_path / "run"
    argv = ["train", "neural.mlp", "--data", "rings", "--epochs", "1", "--set", "hidden=16",
            "--set", "langevin_steps=3", "--batch-size", "512", "--out", str(run)]
    assert main(argv) == 0
    for name in ("config.json", "model.json", "model.safetensors", "trainer.pt",
                 "metrics.jsonl", "landscape.png", "curve.png"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["config"]["dim"] == 2 and config["model"]["config"]["low"] < -3
    assert config["data"]["name"] == "rings"
    capsys.readouterr()

    assert main(["eval", str(run)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report) >= {"free_energy", "log_likelihood"}
    assert report["log_likelihood"] < 0
    assert json.loads((run / "eval.json").read_text())["metrics"] == report

    assert main(["sample", str(run), "-n", "32"]) == 0
    assert (run / "samples.png").stat().st_size > 1000

    assert main(argv[:4] + ["--epochs", "2"] + argv[6:] + ["--resume"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_conv_energy_separates_digits_from_noise_and_samples(tmp_path):
    torch.manual_seed(0)
    digits = ek.get_dataset("digits")
    model = ek.get_model("neural.conv", image_shape=[1, 8, 8], channels=16, langevin_steps=10,
                         step_size=0.01)
    ek.Trainer(model, epochs=3, batch_size=128, lr=1e-3, progress=False).fit(digits)
    test = ek.get_dataset("digits", split="test").y
    with torch.no_grad():
        on_data, on_noise = model(test).mean(), model(torch.rand_like(test)).mean()
    assert on_data < on_noise
    samples = model.sample(64, steps=20, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (64, 64)
    with torch.no_grad():  # the chains descend: samples sit lower than the noise they left
        assert model(samples).mean() < on_noise
    model.save(tmp_path / "conv")
    again = ek.load(tmp_path / "conv")
    with torch.no_grad():
        torch.testing.assert_close(again(test[:5]), model(test[:5]))


def test_energies_on_every_device(device):
    model = ek.get_model("neural.mlp", dim=3, hidden=8).to(device)
    e = model(torch.randn(4, 3, device=device))
    assert e.shape == (4,) and e.device.type == device.type


def test_bad_input_is_explained():
    model = ek.get_model("neural.mlp", dim=2, hidden=8)
    with pytest.raises(ConfigError, match=r"y: expected shape \[B, 2\], got \[4, 3\]"):
        model(torch.zeros(4, 3))
    with pytest.raises(ConfigError, match=r"image_shape must be \[C, H, W\], got \[8, 8\]"):
        ek.get_model("neural.conv", image_shape=[8, 8])
    with pytest.raises(ConfigError, match="expected high > low"):
        ek.get_model("neural.mlp", low=1.0, high=0.0)
    with pytest.raises(ConfigError, match="no option 'hiden'"):
        ek.get_model("neural.mlp", hiden=3)


def test_demo_trains_the_family(tmp_path, monkeypatch, fresh_plugins):
    """`ebmkit demo` trains every model with a demo recipe (shortened here to one epoch)."""
    import dataclasses

    from ebmkit.demo import run_demo

    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")
    registry = fresh_plugins.host().registries["models"]
    for name, entry in list(registry._entries.items()):
        if name in ("neural.mlp", "neural.conv"):
            recipe = {k: v for k, v in entry.demo.items() if k != "tour"}  # no tour override
            short = {**recipe, "epochs": 1, "options": {**entry.demo.get("options", {}),
                                                         "langevin_steps": 2}}
        else:
            short = None  # other families' demos are checked by their own tests
        registry._entries[name] = dataclasses.replace(entry, demo=short)
    commands = fresh_plugins.host().registries["commands"]  # e.g. worldmodels' short run
    for name, entry in list(commands._entries.items()):
        commands._entries[name] = dataclasses.replace(entry, demo=None)
    report = run_demo(tmp_path, plots=True).read_text()
    assert "### `neural.mlp` on `rings`" in report and "### `neural.conv` on `digits`" in report
    assert "| log_likelihood |" in report
    assert (tmp_path / "neural.mlp" / "landscape.png").is_file()
    assert (tmp_path / "neural.conv" / "samples.png").is_file()
