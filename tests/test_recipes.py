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


def test_data_of_another_kind_drops_the_recipe_and_says_so(tmp_path, capsys, one_thread):
    # kmeans has no recipe for moons nor for vectors; its digits recipe is for images
    config, err = _trained(tmp_path, capsys, "--data", "moons", "--epochs", "1")
    assert config["data"]["name"] == "moons" and config["model"]["config"]["dim"] == 2
    assert config["trainer"]["batch_size"] == 128 and config["trainer"]["lr"] == 1e-3
    assert config["model"]["config"]["k"] == 8
    assert ("kmeans: no recipe for this data; its recipe for digits does not apply, dropped "
            "--epochs 3 --batch-size 256 --set k=10 (tuned for digits (images), not vectors)"
            in err)


def _toy_plugin(recipes):
    import ebmkit as ek

    class Toy:
        @ek.hookimpl
        def register_models(self, register):
            def build(k: int = 8, dim: int = 64):
                return ek.get_model("kmeans", k=k, dim=dim)

            register("toy.recipes", build, demo={"data": "digits", "epochs": 2,
                                                 "batch_size": 64, "options": {"k": 5}},
                     recipes=recipes)

    return Toy()


def _run_toy(tmp_path, capsys, *flags):
    out = tmp_path / f"toy{len(list(tmp_path.glob('toy*')))}"
    assert main(["train", "toy.recipes", "--out", str(out), "--no-plots", *flags]) == 0
    config = json.loads((out / "config.json").read_text())
    return config, json.loads((out / "data.json").read_text()), capsys.readouterr().err


def test_recipes_are_chosen_by_name_then_kind_then_what_applies(fresh_plugins, tmp_path,
                                                                capsys, one_thread):
    import numpy as np

    info = fresh_plugins.register_plugin(_toy_plugin(
        {"moons": {"epochs": 1, "batch_size": 32, "options": {"k": 3}},
         "vectors": {"epochs": 1, "batch_size": 16, "lr": 0.5, "options": {"k": 4}}}), "toy")
    assert info.error is None
    config, data, err = _run_toy(tmp_path, capsys, "--data", "moons")  # by name
    assert (config["trainer"]["batch_size"], config["model"]["config"]["k"]) == (32, 3)
    assert "toy.recipes: recipe for moons: --epochs 1 --batch-size 32 --set k=3" in err
    assert data["recipe"]["source"] == "moons"
    config, data, err = _run_toy(tmp_path, capsys, "--data", "rings")  # by kind
    assert (config["trainer"]["batch_size"], config["model"]["config"]["k"]) == (16, 4)
    assert config["trainer"]["lr"] == 0.5 and "recipe for vectors" in err
    # images with no "images" recipe: the digits recipe's fields that still apply
    images = tmp_path / "grey.npy"
    np.save(images, np.random.default_rng(0).integers(0, 256, (60, 12, 12), dtype=np.uint8))
    config, data, err = _run_toy(tmp_path, capsys, "--data", str(images))
    assert config["trainer"]["batch_size"] == 64 and config["model"]["config"]["k"] == 5
    assert config["trainer"]["epochs"] == 10  # the digits recipe's 2 epochs do not carry over
    assert config["model"]["config"]["dim"] == 144  # read from the data, not the recipe
    assert "recipe for digits (what applies to this data): --batch-size 64 --set k=5" in err
    assert "dropped --epochs 2 (tuned for the size of digits)" in err
    assert data["recipe"]["partial"] and data["source"] == str(images.resolve())


def test_bad_recipes_are_reported_against_the_plugin(fresh_plugins):
    info = fresh_plugins.register_plugin(_toy_plugin({"images": {"data": "digits"}}), "bad")
    assert "recipes['images']" in info.error and "no 'data'" in info.error


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
    assert ("recipe: --data rings --epochs 40 --batch-size 128 --lr 0.003 --schedule cosine"
            in out)  # neural.mlp
    assert main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["kmeans"]["recipe"] == {"data": "digits", "epochs": 3, "batch_size": 256,
                                          "options": {"k": 10}}
