"""The user's data from files: folders of images, arrays, text; the validation split; the CLI.

The folder fixture is ~300 RGB 32×32 PNGs in three class sub-folders (discs, squares,
stripes), written by the test with Pillow; every pixel value a loader returns is checked
against Pillow's own decoding of the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ebmkit as ek
from ebmkit.cli import main
from ebmkit.errors import ConfigError

Image = pytest.importorskip("PIL.Image")

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ("disc", "square", "stripe")


@pytest.fixture(autouse=True)
def _builtins_only(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_LOAD_PLUGINS", "")
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "ebmkit_worldmodels")


def _shape_image(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    cx, cy = rng.uniform(size * 0.3, size * 0.7, 2)
    r = rng.uniform(size * 0.15, size * 0.28)
    if kind == "disc":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    elif kind == "square":
        mask = (abs(xx - cx) < r) & (abs(yy - cy) < r)
    else:
        mask = ((xx + yy + int(r)) // 4) % 2 == 0
    colour, ground = rng.uniform(0.4, 1.0, 3), rng.uniform(0.0, 0.3, 3)
    img = np.where(mask[..., None], colour, ground) * 255 + rng.normal(0, 6, (size, size, 3))
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(0)
    for i in range(300):
        kind = CLASSES[i % 3]
        (root / kind).mkdir(exist_ok=True)
        Image.fromarray(_shape_image(kind, rng)).save(root / kind / f"{i:03d}.png")
    return root


def _pillow(path: Path, mode: str = "RGB", size: tuple[int, int] | None = None) -> torch.Tensor:
    """The reference: Pillow's decoding of one file, as float ``[C·H·W]`` in [0, 1]."""
    with Image.open(path) as im:
        im = im.convert(mode)
        if size is not None:
            im = im.resize(size, Image.Resampling.BILINEAR)
        arr = np.array(im, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr)
    return (t.permute(2, 0, 1) if t.dim() == 3 else t).reshape(-1)


# ------------------------------------------------------------------------ folders
def test_a_folder_of_rgb_pngs_is_images_with_class_labels(folder):
    data = ek.data.from_folder(folder)
    assert isinstance(data, ek.data.TensorData) and data.image_shape == (3, 32, 32)
    assert data.y.shape == (300, 3 * 32 * 32) and data.y.dtype == torch.float32
    assert data.meta["classes"] == CLASSES and data.num_classes == 3
    assert torch.bincount(data.labels).tolist() == [100, 100, 100]
    files = sorted((folder / "square").glob("*.png"))
    first_square = int((data.labels == 1).nonzero()[0])
    torch.testing.assert_close(data.y[first_square], _pillow(files[0]), rtol=0, atol=0)
    assert ek.data.data_kind(data) == "images"


def test_on_disk_items_equal_the_in_memory_rows_and_resize_and_grey_follow_pillow(folder):
    memory = ek.data.from_folder(folder)
    disk = ek.data.from_folder(folder, in_memory=False)
    assert isinstance(disk, ek.data.ImageFolderData) and len(disk) == 300
    for i in (0, 151, 299):
        torch.testing.assert_close(disk[i]["y"], memory.y[i], rtol=0, atol=0)
        assert disk[i]["label"] == memory.labels[i]
    small = ek.data.from_folder(folder, image_size=(16, 20), channels=1)
    assert small.image_shape == (1, 16, 20)
    path = Path(disk.files[7])
    torch.testing.assert_close(small.y[7], _pillow(path, "L", (20, 16)), rtol=0, atol=0)
    train, val = ek.data.split_validation(disk, 0.1)
    assert isinstance(val, ek.data.ImageFolderData) and (len(train), len(val)) == (270, 30)
    assert not set(train.files) & set(val.files)


def test_grey_and_colour_jpegs_and_pngs_mix_as_pillow_converts_them(tmp_path):
    rng = np.random.default_rng(2)
    Image.fromarray(_shape_image("disc", rng)).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(_shape_image("square", rng)[..., 0]).save(tmp_path / "b.png")  # grey
    data = ek.data.from_folder(tmp_path)
    assert data.image_shape == (3, 32, 32) and data.labels is None  # any colour: RGB
    for i, name in enumerate(("a.jpg", "b.png")):
        torch.testing.assert_close(data.y[i], _pillow(tmp_path / name), rtol=0, atol=0)
    (tmp_path / "a.jpg").unlink()
    grey = ek.data.from_folder(tmp_path)
    assert grey.image_shape == (1, 32, 32)
    torch.testing.assert_close(grey.y[0], _pillow(tmp_path / "b.png", "L"), rtol=0, atol=0)


def test_folder_errors_say_what_was_expected_and_what_came(tmp_path, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"expected PNG or JPEG images .* found none \(the "
                                          r"folder is empty\)"):
        ek.data.from_folder(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(_shape_image("disc", rng, 32)).save(mixed / "a.png")
    Image.fromarray(_shape_image("disc", rng, 28)).save(mixed / "b.png")
    with pytest.raises(ConfigError, match=r"expected images of one size, got 2 sizes: .*32×32"
                                          r".*28×28.*pass image_size=N"):
        ek.data.from_folder(mixed)
    assert ek.data.from_folder(mixed, image_size=24).image_shape == (3, 24, 24)
    (mixed / "c.png").write_bytes(b"not a png at all")
    with pytest.raises(ConfigError, match=r"c\.png: cannot read it as an image .* expected a "
                                          r"PNG or JPEG file"):
        ek.data.from_folder(mixed, image_size=24)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ek.data.from_folder(tmp_path / "nowhere")


# ------------------------------------------------------------------------- arrays
def test_array_files_give_vectors_images_and_token_ids(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)  # channels last
    np.savez(tmp_path / "img.npz", y=pixels, label=np.arange(10) % 2)
    data = ek.data.from_arrays(tmp_path / "img.npz")
    assert data.image_shape == (3, 8, 8) and data.name == "img" and data.num_classes == 2
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2).reshape(10, -1).float() / 255
    torch.testing.assert_close(data.y, expected, rtol=0, atol=0)
    from safetensors.torch import save_file

    save_file({"y": torch.randn(6, 5), "label": torch.arange(6)}, str(tmp_path / "v.safetensors"))
    vec = ek.data.from_path(tmp_path / "v.safetensors")
    assert ek.data.data_kind(vec) == "vectors" and vec.labels.tolist() == list(range(6))
    np.save(tmp_path / "ids.npy", rng.integers(3, 20, (4, 16)))
    assert ek.data.data_kind(ek.data.from_path(tmp_path / "ids.npy")) == "tokens"


def test_array_errors_name_expected_and_got(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(7))
    with pytest.raises(ConfigError, match=r"expected y of shape \[N, D\].*got shape \[7\]"):
        ek.data.from_arrays(tmp_path / "flat.npy")
    np.savez(tmp_path / "nolabel.npz", x=np.zeros((3, 2)))
    with pytest.raises(ConfigError, match=r"expected an array named 'y'.*got \['x'\]"):
        ek.data.from_arrays(tmp_path / "nolabel.npz")
    with pytest.raises(ConfigError, match=r"expected labels as integers of shape \[3\]"):
        ek.data.from_arrays(np.zeros((3, 2), np.float32), labels=np.zeros(4, np.int64))
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"bad\.npy: cannot read it as a \.npy file"):
        ek.data.from_arrays(tmp_path / "bad.npy")


# --------------------------------------------------------------------------- text
def test_text_files_and_the_vocabulary_builder(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("the cat sat on the mat. " * 20, encoding="utf-8")
    vocab = ek.data.build_vocabulary(corpus)
    assert vocab.itos[3:] == sorted(set("the cat sat on the mat. "))
    words = ek.data.build_vocabulary(corpus, level="word")
    assert words.itos[3:5] == ["the", "."]  # most frequent first, ties alphabetical
    assert ek.data.build_vocabulary(["b", "a", "b"], level="word").itos[3:] == ["b", "a"]
    data = ek.data.from_text(corpus, block_size=16)
    assert data.y.shape == (len("the cat sat on the mat. " * 20) // 16, 16)
    assert data.vocab == vocab and vocab.decode(data.y[0]) == ("the cat sat on the mat. " * 2)[:16]
    (tmp_path / "short.txt").write_text("abc", encoding="utf-8")
    with pytest.raises(ConfigError, match="fewer than one block of block_size=16"):
        ek.data.from_text(tmp_path / "short.txt", block_size=16)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ConfigError, match="expected UTF-8 text"):
        ek.data.from_text(tmp_path / "latin1.txt")


# --------------------------------------------------------------------- validation
def test_validation_is_carved_from_training_rows_with_a_fixed_seed():
    data = ek.data.TensorData({"y": torch.arange(200.0).unsqueeze(1),
                               "label": torch.arange(200) % 3}, name="rows", split="train")
    train, val = ek.data.split_validation(data, 0.05)
    assert (len(train), len(val)) == (190, 10) and (train.split, val.split) == ("train", "val")
    seen = sorted(train.y.flatten().tolist() + val.y.flatten().tolist())
    assert seen == list(range(200))  # disjoint, and nothing but the training rows
    assert torch.equal(val.labels, val.y.flatten().long() % 3)  # rows stay whole
    _, again = ek.data.split_validation(data, 0.05)
    assert torch.equal(val.y, again.y)  # the same rows every time, whatever the run's seed
    assert ek.data.split_validation(data, 0) == (data, None)
    with pytest.raises(ConfigError, match=r"val_fraction must be a number in \[0, 1\), got 1"):
        ek.data.split_validation(data, 1)


def test_train_never_reads_the_test_split_and_eval_does(tmp_path, monkeypatch, capsys):
    splits = []
    real = ek.data.toy
    monkeypatch.setattr(ek.data, "toy", lambda name, split="train", **kw: splits.append(split)
                        or real(name, split=split, **kw))
    out = tmp_path / "km"
    assert main(["train", "kmeans", "--data", "moons", "--epochs", "1", "--no-plots",
                 "--out", str(out), "--val-fraction", "0.1"]) == 0
    assert "test" not in splits and "train" in splits
    record = json.loads((out / "data.json").read_text())
    assert record["rows"] == {"train": 9000, "val": 1000} and record["val_fraction"] == 0.1
    splits.clear()
    assert main(["eval", str(out), "--json"]) == 0
    assert "test" in splits
    assert json.loads((out / "eval.json").read_text())["rows"] == "test"


# ---------------------------------------------------------------- the command line
def _ebmkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EBMKIT_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1",
           "EBMKIT_DISABLE_PLUGINS": "ebmkit_worldmodels"}
    done = subprocess.run([sys.executable, "-m", "ebmkit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_cli_trains_an_autoencoder_on_a_folder_then_eval_sample_and_reload(folder, tmp_path):
    run = tmp_path / "ae"
    done = _ebmkit("train", "autoencoder", "--data", str(folder), "--epochs", "15",
                   "--out", str(run), "--no-plots", cwd=tmp_path)
    assert "autoencoder: recipe for images" in done.stderr
    record = json.loads((run / "data.json").read_text())
    assert record["source"] == str(folder.resolve()) and record["image_shape"] == [3, 32, 32]
    assert json.loads((run / "model.json").read_text())["config"]["image_shape"] == [3, 32, 32]
    # eval and sample in this process: the same commands, without paying imports again
    assert main(["eval", str(run), "--json"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["rows"] == "the held-out 0.05"
    assert main(["sample", str(run), "-n", "16"]) == 0
    assert (run / "samples.png").stat().st_size > 0
    other = tmp_path / "other.npy"  # data the run never saw: eval scores all of it
    np.save(other, np.random.default_rng(1).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8))
    assert main(["eval", str(run), "--data", str(other), "--json"]) == 0
    assert json.loads((run / "eval.json").read_text())["rows"] == "all rows (not the run's data)"
    assert main(["eval", str(run), "--json"]) == 0  # back to the run's own held-out rows
    # the reloaded model's error on the 15 held-out images, against the mean image's
    model = ek.load(run / "model")
    _, held = ek.data.split_validation(ek.data.from_folder(folder), 0.05)
    with torch.no_grad():
        mse = (model.reconstruct(held.y) - held.y).pow(2).mean()
    mean_mse = (held.y.mean(0, keepdim=True) - held.y).pow(2).mean()
    assert float(mse) == pytest.approx(report["metrics"]["mse"], rel=1e-4)
    assert float(mse) < 0.8 * float(mean_mse)


def test_cli_trains_simclr_with_a_resnet_encoder_on_a_folder(folder, tmp_path):
    # `--set encoder=resnet` is ResNet-18 at width 64: ~2 min for one epoch of 285 images on
    # a busy 2-core machine. The same network at depth 10, width 16 keeps this test short.
    run = tmp_path / "simclr"
    _ebmkit("train", "ssl.simclr", "--data", str(folder), "--set",
            'encoder={"name": "resnet", "depth": 10, "width": 16}', "--epochs", "1",
            "--batch-size", "64", "--out", str(run), "--no-plots", cwd=tmp_path)
    config = json.loads((run / "model.json").read_text())["config"]
    assert config["image_shape"] == [3, 32, 32] and config["encoder"]["name"] == "resnet"
    assert main(["eval", str(run), "--json"]) == 0
    assert {"knn5", "linear_probe"} <= set(json.loads((run / "eval.json").read_text())["metrics"])
    assert main(["sample", str(run), "-n", "8"]) == 0  # SSL has no samples: its embedding.png
    assert (run / "embedding.png").is_file()
    model = ek.load(run / "model")
    data = ek.data.from_folder(folder)
    with torch.no_grad():
        z = model.encode(data.y[:4])
    assert z.shape[0] == 4 and torch.isfinite(z).all()


def test_masked_lm_trains_from_a_text_file_and_scores_its_sentences(tmp_path, capsys):
    sentences = ["the quick brown fox jumps over the lazy dog. ",
                 "a stitch in time saves nine. ", "all that glitters is not gold. "]
    corpus = tmp_path / "proverbs.txt"
    corpus.write_text("".join(sentences) * 40, encoding="utf-8")
    run = tmp_path / "lm"
    assert main(["train", "masked.lm", "--data", str(corpus), "--epochs", "15", "--no-plots",
                 "--set", "n_layer=1", "--set", "d_model=64", "--batch-size", "16",
                 "--lr", "3e-3", "--out", str(run)]) == 0
    assert "masked.lm: recipe for text (what applies to this data)" in capsys.readouterr().err
    model = ek.load(run / "model")
    assert model.config()["vocab"] == ek.data.build_vocabulary(corpus).itos[3:]  # saved with it
    sentence = sentences[1].strip()
    shuffled = "".join(np.random.default_rng(0).permutation(list(sentence)))
    ids = torch.tensor([model.vocab.encode(sentence), model.vocab.encode(shuffled)])
    score = model.score(ids)
    assert score.shape == (2,) and bool(torch.isfinite(score).all())
    assert float(score[0]) < 0.5 * float(score[1])  # the file's sentence is far likelier


def test_cli_data_errors_exit_2_with_the_reason(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "autoencoder", "--data", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "r")]) == 2
    assert "expected PNG or JPEG images" in capsys.readouterr().err
    assert main(["train", "autoencoder", "--data", str(tmp_path / "none.npy")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", "kmeans", "--data", "digits", "--image-size", "8",
                 "--out", str(tmp_path / "r2")]) == 2
    assert "apply to data from files" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


IMAGE_FAMILIES = ["autoencoder", "autoencoder.contractive", "autoencoder.denoising",
                  "autoencoder.sparse", "autoencoder.variational", "gan.dcgan", "gan.ebgan",
                  "neural.conv", "neural.jem", "masked.image", "attention.transformer",
                  "ssl.barlow", "ssl.byol", "ssl.moco", "ssl.pirl", "ssl.simclr", "ssl.swav",
                  "ssl.vicreg"]


@pytest.mark.parametrize("name", IMAGE_FAMILIES)
def test_image_families_take_rgb_32x32_from_the_data(name):
    from ebmkit.runs import data_defaults

    data = ek.data.from_arrays(torch.rand(4, 3, 32, 32))
    entry = ek.plugins.get_entry("models", name)
    config = data_defaults([o.name for o in entry.options()], data, {})
    assert config.get("image_shape") == [3, 32, 32]  # what `ebmkit train --data` passes
    model = ek.get_model(name, **config).eval()
    y = data.y[:2]
    corrupt = getattr(model, "corrupt", None) or getattr(model, "mask", None)
    with torch.no_grad():
        e = model.energy(y, x=corrupt(y)) if name.startswith(("masked", "attention")) \
            else model(y)
    assert e.shape == (2,) and bool(torch.isfinite(e).all())


def test_resume_reads_the_folder_as_the_run_did(folder, tmp_path):
    run = tmp_path / "km"
    common = ["train", "kmeans", "--data", str(folder), "--no-plots", "--out", str(run),
              "--set", "k=3"]
    assert main([*common, "--image-size", "16", "--epochs", "1"]) == 0
    assert json.loads((run / "data.json").read_text())["options"] == {"image_size": 16}
    assert main([*common, "--epochs", "2", "--resume"]) == 0  # no --image-size: the run's
    assert json.loads((run / "config.json").read_text())["model"]["config"]["dim"] == 3 * 16 * 16
