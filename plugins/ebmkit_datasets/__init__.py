"""Built-in plugin: the embedded, offline datasets.

Registered through ``register_datasets`` exactly as a third-party plugin would; each factory
imports ``ebmkit.data`` (and so torch) only when a dataset is actually loaded.
"""

from __future__ import annotations

from typing import Any

import ebmkit as ek

_TOYS = {
    "moons": "Two interleaved half circles with Gaussian noise (2-D; log-density by quadrature)",
    "rings": "Three concentric noisy rings (2-D; exact log-density)",
    "eight-gaussians": "Eight Gaussians on a circle (2-D; exact log-density)",
    "swiss-roll": "A noisy 2-D swiss roll (log-density by quadrature)",
    "checkerboard": "Uniform on the black squares of a 4x4 checkerboard (2-D; exact log-density)",
}


def _digits(split: str = "train") -> Any:
    """scikit-learn's 1,797 8x8 handwritten digits in [0, 1], with labels and a fixed split."""
    return ek.data.digits(split=split)


def _fashion_mnist(split: str = "train", root: str | None = None) -> Any:
    """70,000 28x28 Fashion-MNIST images from Debian's dataset-fashion-mnist package."""
    return ek.data.fashion_mnist(split=split, root=root)


def _text(split: str = "train", level: str = "char", block_size: int = 64,
          max_words: int = 5000) -> Any:
    """English prose from CPython's pydoc_data.topics, as blocks of char or word ids."""
    return ek.data.text(split=split, level=level, block_size=block_size, max_words=max_words)


def _toy(name: str) -> Any:
    def load(split: str = "train", n: int | None = None, seed: int = 0) -> Any:
        return ek.data.toy(name, split=split, n=n, seed=seed)

    load.__doc__ = _TOYS[name]
    load.__name__ = name.replace("-", "_")
    return load


@ek.hookimpl
def register_datasets(register: Any) -> None:
    register("digits", _digits)
    register("fashion-mnist", _fashion_mnist, aliases=("fashion_mnist",))
    register("text", _text)
    for name, summary in _TOYS.items():
        register(name, _toy(name), summary=summary)
