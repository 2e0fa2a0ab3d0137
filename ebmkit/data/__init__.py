"""Embedded datasets: offline, in memory, as [`TensorData`][ebmkit.data.base.TensorData].

| loader | what | splits |
|---|---|---|
| [`digits`][ebmkit.data.images.digits] | scikit-learn's 1,797 8×8 digits in [0, 1] | train 1,438 / test 359 |
| [`fashion_mnist`][ebmkit.data.images.fashion_mnist] | 70,000 28×28 images (Debian package) | train 60,000 / test 10,000 |
| [`toy`][ebmkit.data.toys.toy] | 2-D densities with known log-density ([`TOYS`][ebmkit.data.toys.TOYS]) | sampled: train 10,000 / test 2,000 |
| [`text`][ebmkit.data.text.text] | CPython's help topics as blocks of token ids | by topic, 9:1 |

The user's own data, from files ([`ebmkit.data.files`][ebmkit.data.files]):
[`from_folder`][ebmkit.data.folder.from_folder] (PNG/JPEG, class sub-folders as labels),
[`from_arrays`][ebmkit.data.files.from_arrays] (``.npy`` / ``.npz`` / ``.safetensors``),
[`from_text`][ebmkit.data.files.from_text] (a ``.txt`` corpus, with
[`build_vocabulary`][ebmkit.data.text.build_vocabulary]) and
[`from_path`][ebmkit.data.files.from_path], which picks one by what the path is.
[`split_validation`][ebmkit.data.split.split_validation] carves the validation set
``ebmkit train`` uses out of a training split.

Nothing is downloaded. Importing this package imports torch but not scikit-learn (the digits
loader imports it on first use).
"""

from __future__ import annotations

from .base import TensorData
from .files import from_arrays, from_path, from_text
from .folder import ImageFolderData, from_folder
from .images import FASHION_MNIST_CLASSES, digits, fashion_mnist
from .split import VAL_FRACTION, data_kind, split_validation
from .text import Vocabulary, build_vocabulary, text
from .toys import TOYS, ToyData, toy

__all__ = [
    "FASHION_MNIST_CLASSES",
    "TOYS",
    "VAL_FRACTION",
    "ImageFolderData",
    "TensorData",
    "ToyData",
    "Vocabulary",
    "build_vocabulary",
    "data_kind",
    "digits",
    "fashion_mnist",
    "from_arrays",
    "from_folder",
    "from_path",
    "from_text",
    "split_validation",
    "text",
    "toy",
]
