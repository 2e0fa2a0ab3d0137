"""Embedded image datasets: scikit-learn's digits and Debian's Fashion-MNIST.

Both return [`TensorData`][ebmkit.data.base.TensorData] with ``y`` the flattened image in
[0, 1] (float32) and ``label`` the class (int64). Nothing is downloaded: digits ships inside
scikit-learn, Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist``.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ConfigError, DatasetUnavailableError
from .base import TensorData

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DEBIAN_DIR", "digits", "fashion_mnist"]

_SPLITS = ("train", "test", "all")

FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the idx files."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST class names, indexed by label."""


def _check_split(dataset: str, split: str) -> None:
    if split not in _SPLITS:
        raise ConfigError(
            f"{dataset} split must be one of {', '.join(map(repr, _SPLITS))}; got {split!r}."
        )


# ---------------------------------------------------------------------------- digits
@functools.lru_cache(maxsize=1)
def _digits_all() -> tuple[Tensor, Tensor, Tensor]:
    """All 1,797 digits in scikit-learn's order, and the fixed test mask."""
    from sklearn.datasets import load_digits  # deferred: sklearn is slow to import

    raw = load_digits()
    y = torch.as_tensor(raw.data, dtype=torch.float32) / 16.0  # pixel values are 0..16
    label = torch.as_tensor(raw.target, dtype=torch.int64)
    # Stratified 80/20 split that never changes: one seeded generator walks the classes in
    # order, and the first round(20%) of each class's permutation is held out.
    gen = torch.Generator().manual_seed(0)
    test = torch.zeros(len(label), dtype=torch.bool)
    for c in range(10):
        idx = (label == c).nonzero().squeeze(1)
        perm = idx[torch.randperm(len(idx), generator=gen)]
        test[perm[: round(0.2 * len(idx))]] = True
    return y, label, test


def digits(split: str = "train") -> TensorData:
    """scikit-learn's handwritten digits: 1,797 8×8 grey images of 0-9, scaled to [0, 1].

    The split is fixed and stratified: for each class, a permutation drawn from
    ``torch.Generator().manual_seed(0)`` (one generator, classes taken in order 0-9) puts the
    first ``round(20%)`` of that class in ``"test"`` and the rest in ``"train"``. Within a
    split, rows keep scikit-learn's order.

    | split | images |
    |---|---|
    | ``"train"`` | 1,438 |
    | ``"test"`` | 359 (35-37 per class) |
    | ``"all"`` | 1,797 (scikit-learn's order) |

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.

    Returns:
        TensorData with ``y`` float32 ``[N, 64]`` in [0, 1] (flattened row-major 8×8),
        ``label`` int64 ``[N]``, ``image_shape=(1, 8, 8)``, ``num_classes=10``.

    Raises:
        ConfigError: ``split`` is not one of the above.

    Examples:
        >>> from ebmkit.data import digits
        >>> digits("test").describe()
        'digits[test]: 359 × (64,) float32, 10 classes, image 1×8×8'
    """
    _check_split("digits", split)
    y, label, test = _digits_all()
    if split == "all":
        y, label = y.clone(), label.clone()  # never hand out the cached tensors
    else:
        keep = test if split == "test" else ~test
        y, label = y[keep], label[keep]  # boolean indexing copies
    return TensorData(
        {"y": y, "label": label},
        name="digits",
        split=split,
        image_shape=(1, 8, 8),
        num_classes=10,
        meta={"classes": tuple(str(c) for c in range(10))},
    )


# --------------------------------------------------------------------- fashion-mnist
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_UBYTE = 0x08  # idx type code for unsigned bytes


def _fashion_dir(root: str | os.PathLike[str] | None) -> Path:
    """Resolve the directory to read, first of: ``root``, the env var, the Debian path.

    The first location that is *given* is authoritative: an explicit ``root`` or
    ``EBMKIT_FASHION_MNIST_DIR`` that lacks the files is an error, not a silent fallback to
    another copy.
    """
    env = os.environ.get("EBMKIT_FASHION_MNIST_DIR")
    if root is not None:
        where, source = Path(root), "the root argument"
    elif env:
        where, source = Path(env), "EBMKIT_FASHION_MNIST_DIR"
    else:
        where, source = FASHION_MNIST_DEBIAN_DIR, "the Debian package's path"
    needed = [name for pair in _FILES.values() for name in pair]
    missing = [name for name in needed if not (where / name).is_file()]
    if missing:
        raise DatasetUnavailableError(
            f"Fashion-MNIST files not found: tried {where} (from {source}), which lacks "
            f"{', '.join(missing)}. Install it with `apt-get install dataset-fashion-mnist` "
            f"(files land in {FASHION_MNIST_DEBIAN_DIR}) or set EBMKIT_FASHION_MNIST_DIR to a "
            f"directory holding {', '.join(needed)}."
        )
    return where


def _read_idx(path: Path, ndim: int) -> Tensor:
    """Parse one gzipped idx file of unsigned bytes with ``ndim`` dimensions."""
    expected = f"a gzipped idx file of unsigned bytes with {ndim} dimension(s)"
    try:
        with gzip.open(path, "rb") as f:
            buf = bytearray(f.read())  # writable, so frombuffer shares it without a warning
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DatasetUnavailableError(f"cannot read {path}: {e}; expected {expected}.") from e
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DatasetUnavailableError(
            f"{path} is truncated: {len(buf)} bytes, shorter than the {header}-byte header "
            f"of {expected}."
        )
    zero, dtype_code, dims_in_file = struct.unpack(">HBB", buf[:4])
    if zero != 0 or dtype_code != _IDX_UBYTE or dims_in_file != ndim:
        raise DatasetUnavailableError(
            f"{path} has a bad magic number 0x{bytes(buf[:4]).hex()}; expected "
            f"0x0000{_IDX_UBYTE:02x}{ndim:02x} ({expected})."
        )
    shape = struct.unpack(f">{ndim}I", buf[4:header])
    count = math.prod(shape)
    if len(buf) - header != count:
        raise DatasetUnavailableError(
            f"{path} holds {len(buf) - header} data bytes but its header announces shape "
            f"{shape} = {count} bytes; the file is truncated or corrupt."
        )
    return torch.frombuffer(buf, dtype=torch.uint8, offset=header, count=count).view(shape)


@functools.lru_cache(maxsize=4)
def _fashion_split(directory: str, split: str) -> tuple[Tensor, Tensor]:
    """Raw uint8 images ``[N, 28, 28]`` and int64 labels of one split (cached per path).

    The cache keeps uint8 (47 MB for train) and callers convert, so every call hands out
    fresh float tensors and the cache cannot be mutated through them.
    """
    img_file, lbl_file = (Path(directory) / f for f in _FILES[split])
    images, labels = _read_idx(img_file, 3), _read_idx(lbl_file, 1)
    if tuple(images.shape[1:]) != (28, 28) or images.shape[0] != labels.shape[0]:
        raise DatasetUnavailableError(
            f"{img_file} and {lbl_file} do not fit together: images {tuple(images.shape)}, "
            f"labels {tuple(labels.shape)}; expected [N, 28, 28] images and N labels."
        )
    if labels.numel() and int(labels.max()) >= 10:
        raise DatasetUnavailableError(
            f"{lbl_file} holds label {int(labels.max())}; expected labels 0-9."
        )
    return images, labels.long()


def fashion_mnist(split: str = "train", root: str | os.PathLike[str] | None = None) -> TensorData:
    """Fashion-MNIST: 70,000 28×28 grey images of clothing in 10 classes, scaled to [0, 1].

    Read from the idx files that Debian's ``dataset-fashion-mnist`` installs. The directory
    is the first given of: ``root``, the environment variable ``EBMKIT_FASHION_MNIST_DIR``,
    then ``/usr/share/datasets/fashion-mnist``. Parsed files are cached in-process per
    directory.

    | split | images |
    |---|---|
    | ``"train"`` | 60,000 |
    | ``"test"`` | 10,000 |
    | ``"all"`` | 70,000 (train then test) |

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        root: Directory holding the four ``*-idx?-ubyte.gz`` files.

    Returns:
        TensorData with ``y`` float32 ``[N, 784]`` in [0, 1], ``label`` int64 ``[N]``,
        ``image_shape=(1, 28, 28)``, ``num_classes=10``, ``meta["classes"]`` the class names.

    Raises:
        ConfigError: ``split`` is not one of the above.
        DatasetUnavailableError: the files are missing (the message says where it looked and
            how to install them), unreadable, or corrupt (bad magic number, truncated).
    """
    _check_split("fashion_mnist", split)
    directory = str(_fashion_dir(root).resolve())
    parts = ("train", "test") if split == "all" else (split,)
    loaded = [_fashion_split(directory, p) for p in parts]
    images = torch.cat([im.reshape(len(im), -1) for im, _ in loaded])  # cat copies
    labels = torch.cat([lb for _, lb in loaded])
    return TensorData(
        {"y": images.to(torch.float32).div_(255.0), "label": labels},
        name="fashion-mnist",
        split=split,
        image_shape=(1, 28, 28),
        num_classes=10,
        meta={"classes": FASHION_MNIST_CLASSES, "root": directory},
    )
