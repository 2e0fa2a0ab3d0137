"""Embedded data: TensorData, digits, Fashion-MNIST, the 2-D toys and the text corpus."""

from __future__ import annotations

import functools
import gzip
import json
import math
import re
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from ebmkit.data import TOYS, TensorData, Vocabulary, digits, fashion_mnist, text, toy
from ebmkit.data.images import FASHION_MNIST_DEBIAN_DIR
from ebmkit.errors import ConfigError, DatasetUnavailableError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]


def test_import_does_not_pull_in_sklearn() -> None:
    code = "import sys, ebmkit.data; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    env = {"PYTHONPATH": str(REPO), "PATH": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


# ----------------------------------------------------------------------- TensorData
def test_tensordata_length_mismatch_names_keys_and_lengths() -> None:
    with pytest.raises(ConfigError, match=r"y=5, label=4"):
        TensorData({"y": torch.zeros(5, 2), "label": torch.zeros(4)}, name="t", split="s")
    with pytest.raises(ConfigError, match="'y'"):
        TensorData({"x": torch.zeros(5, 2)}, name="t", split="s")


def test_tensordata_items_collate_and_describe() -> None:
    data = TensorData(
        {"y": torch.arange(12.0).view(6, 2), "label": torch.arange(6)},
        name="toy",
        split="train",
        num_classes=6,
    )
    assert len(data) == 6 and data[2]["y"].tolist() == [4.0, 5.0]
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert batch["y"].shape == (4, 2) and batch["label"].tolist() == [0, 1, 2, 3]
    assert data.describe() == "toy[train]: 6 × (2,) float32, 6 classes"
    assert "TensorData(name='toy'" in repr(data)


@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_cover_every_row_once(device: torch.device, drop_last: bool) -> None:
    n = 103
    data = TensorData(
        {"y": torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3), "label": torch.arange(n)},
        name="t",
        split="train",
    ).to(device)
    gen = torch.Generator().manual_seed(1)  # a CPU generator, whatever the data's device
    seen = []
    for b in data.batches(10, shuffle=True, generator=gen, drop_last=drop_last):
        assert b["y"].device.type == device.type
        assert torch.equal(b["y"][:, 0].long(), b["label"])  # rows stay aligned
        seen.append(b["label"].cpu())
    seen = torch.cat(seen)
    if drop_last:
        assert len(seen) == 100 and len(seen.unique()) == 100
    else:
        assert sorted(seen.tolist()) == list(range(n))
        assert seen.tolist() != list(range(n))  # actually shuffled
    plain = torch.cat([b["label"].cpu() for b in data.batches(10)])
    assert plain.tolist() == list(range(n))
    with pytest.raises(ConfigError, match="batch_size"):
        next(data.batches(0))


def test_to_keeps_class_and_attributes(device: torch.device) -> None:
    moved = toy("rings", n=50).to(device)
    assert type(moved).__name__ == "ToyData" and moved.y.device.type == device.type
    assert moved.log_prob(moved.y).device.type == device.type
    words = text("test").to(device)
    assert words.vocab is text("test").vocab and words.y.device.type == device.type


# --------------------------------------------------------------------------- digits
def test_digits_values_and_sizes() -> None:
    train, test, full = digits("train"), digits("test"), digits("all")
    assert (len(train), len(test), len(full)) == (1438, 359, 1797)
    for d in (train, test, full):
        assert d.y.dtype == torch.float32 and d.labels.dtype == torch.int64
        assert d.y.shape[1] == 64 and d.image_shape == (1, 8, 8) and d.num_classes == 10
        assert d.y.min() == 0 and d.y.max() == 1
    assert train.describe() == "digits[train]: 1438 × (64,) float32, 10 classes, image 1×8×8"


def test_digits_split_is_stratified_disjoint_and_complete() -> None:
    train, test, full = digits("train"), digits("test"), digits("all")
    share = test.labels.bincount(minlength=10) / full.labels.bincount(minlength=10)
    assert ((share - 0.2).abs() < 0.01).all(), share
    # disjoint and complete, compared on whole rows (digits has no duplicate images)
    def rows(d: TensorData) -> set[tuple[float, ...]]:
        return {tuple(r) for r in torch.cat([d.y, d.labels[:, None]], 1).tolist()}

    assert not rows(train) & rows(test)
    assert rows(train) | rows(test) == rows(full) and len(rows(full)) == 1797


def test_digits_is_deterministic_and_checks_split() -> None:
    assert torch.equal(digits("test").y, digits("test").y)
    digits("train").y.zero_()  # callers cannot corrupt the cache
    assert digits("train").y.max() == 1
    with pytest.raises(ConfigError, match=r"'train', 'test', 'all'.*'validation'"):
        digits("validation")


# --------------------------------------------------------------------- fashion-mnist
def _idx_bytes(array: torch.Tensor) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.dim()) + struct.pack(
        f">{array.dim()}I", *array.shape
    )
    return header + array.to(torch.uint8).numpy().tobytes()


def _write_fashion(root: Path, n: int = 3, images: bytes | None = None) -> None:
    pixels = torch.arange(n * 28 * 28).remainder(256).view(n, 28, 28)
    labels = torch.arange(n).remainder(10)
    for prefix in ("train", "t10k"):
        img = images if images is not None and prefix == "train" else _idx_bytes(pixels)
        (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(img))
        (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))


def test_fashion_mnist_parses_idx_files(tmp_path: Path) -> None:
    _write_fashion(tmp_path)
    d = fashion_mnist("all", root=tmp_path)
    assert d.y.shape == (6, 784) and d.y.dtype == torch.float32
    assert d.y[0, 255].item() == 1.0 and d.y[0, 1].item() == pytest.approx(1 / 255)
    assert d.labels.tolist() == [0, 1, 2, 0, 1, 2] and d.meta["classes"][9] == "Ankle boot"


def test_fashion_mnist_missing_files_say_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist") as e:
        fashion_mnist(root=tmp_path)
    assert str(tmp_path) in str(e.value) and "EBMKIT_FASHION_MNIST_DIR" in str(e.value)
    monkeypatch.setenv("EBMKIT_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetUnavailableError, match="nowhere"):
        fashion_mnist()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (struct.pack(">HBBIII", 0, 0x08, 1, 3, 28, 28), "bad magic number"),  # 1-D magic
        (struct.pack(">HBBIII", 0, 0x08, 3, 3, 28, 28) + b"\0" * 100, "truncated"),
        (b"\0\0", "truncated"),
    ],
)
def test_fashion_mnist_corrupt_file_is_named(tmp_path: Path, payload: bytes, message: str) -> None:
    _write_fashion(tmp_path, images=payload)
    with pytest.raises(DatasetUnavailableError, match=message) as e:
        fashion_mnist(root=tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(e.value)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetUnavailableError, match="train-images-idx3-ubyte.gz"):
        fashion_mnist(root=tmp_path)


@pytest.mark.skipif(
    not (FASHION_MNIST_DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian package dataset-fashion-mnist is not installed ({FASHION_MNIST_DEBIAN_DIR})",
)
def test_fashion_mnist_debian_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EBMKIT_FASHION_MNIST_DIR", raising=False)
    d = fashion_mnist("test")
    assert d.y.shape == (10_000, 784) and d.image_shape == (1, 28, 28)
    assert d.y.min() == 0 and d.y.max() == 1 and 0.2 < d.y.mean() < 0.4
    assert d.labels.bincount().tolist() == [1000] * 10


# ---------------------------------------------------------------------------- toys
@functools.lru_cache(maxsize=None)
def _grid(name: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Midpoints of a 100×100 grid over the toy's bounds, their densities, and cell area."""
    data = toy(name, n=10)
    (a, b), (c, d) = data.bounds
    hx, hy = (b - a) / 100, (d - c) / 100
    xs = a + hx * (torch.arange(100, dtype=torch.float64) + 0.5)
    ys = c + hy * (torch.arange(100, dtype=torch.float64) + 0.5)
    points = torch.cartesian_prod(xs, ys)  # row-major: x index * 100 + y index
    return points, data.log_prob(points).exp(), hx * hy


@pytest.mark.parametrize("name", TOYS)
def test_toy_density_integrates_to_one(name: str) -> None:
    _, density, area = _grid(name)
    total = float(density.sum() * area)
    assert total == pytest.approx(1.0, abs=1e-9 if name == "checkerboard" else 1e-2)


@pytest.mark.parametrize("name", TOYS)
def test_toy_samples_follow_log_prob(name: str) -> None:
    """The sampler and log_prob describe one distribution: 10×10-cell histograms agree."""
    points, density, area = _grid(name)
    expected = (density * area).view(10, 10, 10, 10).sum((1, 3)).flatten()  # [x cell, y cell]
    data = toy(name, n=200_000, seed=3)
    (a, b), (c, d) = data.bounds
    ix = ((data.y[:, 0] - a) / (b - a) * 10).floor().long()
    iy = ((data.y[:, 1] - c) / (d - c) * 10).floor().long()
    inside = (ix >= 0) & (ix < 10) & (iy >= 0) & (iy < 10)
    observed = torch.bincount(ix[inside] * 10 + iy[inside], minlength=100) / len(data)
    tv = 0.5 * float((observed.double() - expected).abs().sum())
    assert tv < 0.02, f"{name}: total variation {tv:.4f} between samples and log_prob"


@pytest.mark.parametrize("name", TOYS)
def test_toy_beats_gaussian_baseline(name: str) -> None:
    train, test = toy(name), toy(name, "test")
    assert (len(train), len(test)) == (10_000, 2_000)
    assert train.y.dtype == torch.float32 and train.y.shape[1] == 2
    assert train.y.abs().max() < 4.5 and train.image_shape is None
    assert torch.isfinite(train.log_prob(train.y[:2000])).all()
    assert torch.isfinite(test.log_prob(test.y)).all()
    y = train.y.double()
    gauss = torch.distributions.MultivariateNormal(y.mean(0), torch.cov(y.T))
    baseline = gauss.log_prob(test.y.double()).mean().item()
    truth = test.log_prob(test.y.double()).mean().item()
    assert truth > baseline + 0.5, (name, truth, baseline)


@pytest.mark.parametrize("name", TOYS)
def test_toy_determinism_and_splits(name: str) -> None:
    assert torch.equal(toy(name, n=500).y, toy(name, n=500).y)
    assert not torch.equal(toy(name, n=500).y, toy(name, "test", n=500).y)
    assert not torch.equal(toy(name, n=500).y, toy(name, n=500, seed=1).y)


@pytest.mark.parametrize("name", ["moons", "swiss-roll"])
def test_quadrature_converges(name: str) -> None:
    data = toy(name, "test", n=500)
    assert not data.exact
    y = data.y.double()
    default, fine = data.log_prob(y), data.log_prob(y, quadrature_points=16_384)
    assert (default - fine).abs().max() < 1e-3


@pytest.mark.parametrize("name", TOYS)
def test_toy_log_prob_device_and_dtype(name: str, device: torch.device) -> None:
    data = toy(name, n=300)
    ref = data.log_prob(data.y)
    got = data.log_prob(data.y.to(device))
    assert got.shape == (300,) and got.device.type == device.type and got.dtype == torch.float32
    torch.testing.assert_close(got.cpu(), ref, rtol=1e-4, atol=1e-4)
    assert data.log_prob(data.y.double().to(device)).dtype == torch.float64
    assert data.log_prob(data.y.half().to(device)).dtype == torch.float16


def test_toy_errors() -> None:
    with pytest.raises(UnknownNameError, match="moons"):
        toy("moon")
    with pytest.raises(ConfigError, match="positive"):
        toy("moons", n=0)
    with pytest.raises(ConfigError, match="split"):
        toy("moons", "all")
    data = toy("rings", n=10)
    with pytest.raises(ConfigError, match=r"\[B, 2\].*\(10, 3\)"):
        data.log_prob(torch.zeros(10, 3))
    with pytest.raises(ConfigError, match="floating"):
        data.log_prob(torch.zeros(10, 2, dtype=torch.long))


def test_checkerboard_is_uniform_on_black_squares() -> None:
    data = toy("checkerboard", n=10)
    lp = data.log_prob(torch.tensor([[-3.0, -3.0], [-1.0, -3.0], [3.9, 3.9], [4.0, 0.0]]))
    assert lp[0] == -math.log(32) and lp[2] == -math.log(32)
    assert lp[1] == -math.inf and lp[3] == -math.inf


# ---------------------------------------------------------------------------- text
def _split_text(split: str) -> str:
    from pydoc_data.topics import topics

    keys = sorted(topics)
    chosen = [k for i, k in enumerate(keys) if (i % 10 == 0) == (split == "test")]
    return "\n\n".join(topics[k] for k in chosen)


def test_char_vocabulary_round_trips_train_text() -> None:
    data = text("train", block_size=64)
    vocab, corpus = data.vocab, _split_text("train")
    assert vocab is data.meta["vocab"] is text("test").vocab  # one vocabulary for all splits
    assert vocab.itos[:3] == ["<pad>", "<unk>", "<mask>"] and vocab.mask_id == 2
    assert vocab.decode(vocab.encode(corpus)) == corpus
    assert data.y.dtype == torch.int64 and data.y.shape == (len(corpus) // 64, 64)
    assert vocab.decode(data.y) == corpus[: data.y.numel()]  # blocks are the text, in order
    assert (data.y != vocab.unk_id).all()


def test_word_vocabulary_has_unknowns_in_test() -> None:
    train, test = text("train", level="word"), text("test", level="word")
    vocab = train.vocab
    assert (train.y == vocab.unk_id).sum() == 0 and (test.y == vocab.unk_id).sum() > 0
    assert "<unk>" in vocab.decode(test.y[:20])
    counts = Counter(re.findall(r"\w+|[^\w\s]", _split_text("train").lower()))
    top = sorted(counts, key=lambda w: (-counts[w], w))[:50]
    small = text("train", level="word", max_words=50, block_size=16).vocab
    assert small.itos[3:] == top and "the" in top and "zzzq" not in top
    assert small.encode("The zzzq") == [small.stoi["the"], small.unk_id]
    assert small.decode([small.stoi["the"], 3]) == f"the {top[0]}"


def test_vocabulary_json_round_trip_and_errors() -> None:
    vocab = text("train", level="word", max_words=200).vocab
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again == vocab and again.stoi == vocab.stoi and again.level == "word"
    with pytest.raises(ConfigError, match="range"):
        vocab.decode([len(vocab)])
    with pytest.raises(ConfigError, match="level"):
        text(level="byte")
    with pytest.raises(ConfigError, match="block_size"):
        text(block_size=0)
    with pytest.raises(ConfigError, match="fewer than one block"):
        text("test", block_size=10**7)
