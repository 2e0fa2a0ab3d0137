"""`ebmkit train MODEL` uses the family's registered recipe; the user's flags override it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebmkit.cli import main


@pytest.fixture(autouse=True)
def _only_builtins(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_LOAD_PLUGINS", "")  # the built-ins, nothing installed
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "ebmkit_worldmodels")  # not used here


def _trained(tmp_path: Path, capsys, *flags: str) -> tuple[dict, str]:
    out = tmp_path / "run"
    assert main(["train", "kmeans", "--out", str(out), "--no-plots", *flags]) == 0
    return json.loads((out / "config.json").read_text()), capsys.readouterr().err


def test_no_flags_means_the_recipe(tmp_path, capsys, one_thread):
    # kmeans registers demo={"data": "digits", "epochs": 3, "batch_size": 256, "options": {"k": 10}}
    config, err = _trained(tmp_path, capsys)
    assert config["data"]["name"] == "digits"
    assert config["trainer"]["epochs"] == 3 and config["trainer"]["batch_size"] == 256
    assert config["model"]["config"]["k"] == 10  # the class default is 8
    assert "kmeans: recipe: --data digits --epochs 3 --batch-size 256 --set k=10" in err


def test_flags_override_the_recipe_one_by_one(tmp_path, capsys, one_thread):
    config, _ = _trained(tmp_path, capsys, "--epochs", "1", "--set", "k=4", "--lr", "0.5")
    assert config["trainer"]["epochs"] == 1 and config["trainer"]["lr"] == 0.5
    assert config["model"]["config"]["k"] == 4
    assert config["trainer"]["batch_size"] == 256  # not given: still the recipe's


def test_another_data_set_drops_the_recipe(tmp_path, capsys, one_thread):
    config, err = _trained(tmp_path, capsys, "--data", "moons", "--epochs", "1")
    assert config["data"]["name"] == "moons" and config["model"]["config"]["dim"] == 2
    assert config["trainer"]["batch_size"] == 128 and config["trainer"]["lr"] == 1e-3
    assert config["model"]["config"]["k"] == 8 and "recipe" not in err


def test_resume_keeps_the_saved_options(tmp_path, capsys, one_thread):
    _trained(tmp_path, capsys, "--epochs", "1", "--set", "k=4")
    config, _ = _trained(tmp_path, capsys, "--epochs", "2", "--resume")
    assert config["model"]["config"]["k"] == 4  # not the recipe's k=10
    assert config["trainer"]["epochs"] == 2


def test_help_and_models_show_the_recipe(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "gan.dcgan", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "gan.dcgan: recipe: --data digits --epochs" in out
    assert main(["models", "-v"]) == 0
    out = capsys.readouterr().out
    assert "recipe: --data rings --epochs 15 --batch-size 256 --lr 0.003" in out  # neural.mlp
    assert main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["kmeans"]["recipe"] == {"data": "digits", "epochs": 3, "batch_size": 256,
                                          "options": {"k": 10}}
