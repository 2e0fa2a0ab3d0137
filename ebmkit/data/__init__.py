"""Embedded datasets: offline, in memory, as [`TensorData`][ebmkit.data.base.TensorData].

| loader | what | splits |
|---|---|---|
| [`digits`][ebmkit.data.images.digits] | scikit-learn's 1,797 8×8 digits in [0, 1] | train 1,438 / test 359 |
| [`fashion_mnist`][ebmkit.data.images.fashion_mnist] | 70,000 28×28 images (Debian package) | train 60,000 / test 10,000 |
| [`toy`][ebmkit.data.toys.toy] | 2-D densities with known log-density ([`TOYS`][ebmkit.data.toys.TOYS]) | sampled: train 10,000 / test 2,000 |
| [`text`][ebmkit.data.text.text] | CPython's help topics as blocks of token ids | by topic, 9:1 |

Nothing is downloaded. Importing this package imports torch but not scikit-learn (the digits
loader imports it on first use).
"""

from __future__ import annotations

from .base import TensorData
from .images import FASHION_MNIST_CLASSES, digits, fashion_mnist
from .text import Vocabulary, text
from .toys import TOYS, ToyData, toy

__all__ = [
    "FASHION_MNIST_CLASSES",
    "TOYS",
    "TensorData",
    "ToyData",
    "Vocabulary",
    "digits",
    "fashion_mnist",
    "text",
    "toy",
]
