"""A folder of PNG/JPEG images as a data set, in memory or decoded lazily by workers.

The layout is torchvision's ``ImageFolder``: either the images sit directly in the folder
(no labels), or each sub-folder is a class (its images, searched recursively, get the
sub-folder's index in sorted order as ``label``). Pillow decodes them. Every image is
converted to one channel count and stretched to one size (no crop), so the data has one
``image_shape`` ``(C, H, W)``, and scaled to [0, 1].

A folder whose pixels fit in [`IN_MEMORY_LIMIT`][ebmkit.data.folder.IN_MEMORY_LIMIT] bytes
as float32 is decoded once, by ``DataLoader`` workers, into a
[`TensorData`][ebmkit.data.base.TensorData]: every later epoch slices tensors and decodes
nothing. A bigger one stays on disk as an
[`ImageFolderData`][ebmkit.data.folder.ImageFolderData], which the trainer reads through a
``DataLoader`` with its ``num_workers`` workers, decoding each image every epoch.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import TensorData

__all__ = ["IMAGE_SUFFIXES", "IN_MEMORY_LIMIT", "ImageFolderData", "from_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""The image files a folder may hold (case-insensitive)."""
IN_MEMORY_LIMIT = 1 << 30
"""A folder whose float32 pixels take at most this many bytes (1 GiB) is loaded in memory."""
# Pillow modes that are grey (with or without alpha, any depth); every other mode is colour.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# Below this many images the workers' start-up costs more than they save.
_WORKERS_FROM = 2000


def _image_module() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        raise ConfigError("reading a folder of images needs Pillow: pip install Pillow") from None
    return Image


def _open(path: str, mode: str | None, size: tuple[int, int] | None) -> tuple[Any, Any, str]:
    """``(pixels [H, W] or [H, W, 3] uint8, native (width, height), native mode)`` of one
    image, converted to ``mode`` (``None``: ``"L"`` for grey modes, else ``"RGB"``) and
    resized to ``size`` (width, height; ``None`` keeps it)."""
    import numpy as np

    Image = _image_module()
    try:
        with Image.open(path) as im:
            native, native_mode = im.size, im.mode
            target = mode or ("L" if im.mode in _GREY_MODES else "RGB")
            if im.mode != target:
                im = im.convert(target)
            if size is not None and im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            return np.array(im, dtype=np.uint8), native, native_mode  # writable: torch shares it
    except OSError as exc:  # UnidentifiedImageError, truncated data
        raise ConfigError(f"{path}: cannot read it as an image ({exc}); expected a PNG or "
                          f"JPEG file") from None


def _decode(path: str, mode: str, size: tuple[int, int], floats: bool = False) -> Tensor:
    """One image as ``[C·H·W]`` (row-major from ``(C, H, W)``), converted and resized: uint8,
    or float32 in [0, 1] (converted in NumPy, as a hand-written pipeline does)."""
    import numpy as np

    arr = _open(path, mode, size)[0]
    if floats:
        arr = arr.astype(np.float32)
        arr /= np.float32(255.0)  # exactly the in-memory path's division
    t = torch.from_numpy(arr)
    return (t.permute(2, 0, 1) if t.dim() == 3 else t).reshape(-1)


class ImageFolderData(torch.utils.data.Dataset):
    """A folder of images decoded on access: items ``{"y": float32 [C·H·W], "label": int64}``.

    Built by [`from_folder`][ebmkit.data.folder.from_folder]; the trainer reads it through a
    ``DataLoader`` with ``num_workers`` worker processes.

    Attributes:
        files: The image paths, in label then path order.
        image_shape: ``(C, H, W)`` of every item.
        num_classes: The number of class sub-folders, or ``None`` without labels.
        num_workers: The ``DataLoader`` workers that decode it.
    """

    def __init__(self, files: Sequence[str], labels: Tensor | None, *, image_shape: tuple[int, int, int],
                 name: str, split: str = "train", num_workers: int = 0,
                 meta: dict[str, Any] | None = None) -> None:
        self.files = list(files)
        self._labels = labels
        self.image_shape = tuple(image_shape)
        self.name, self.split, self.num_workers = name, split, num_workers
        self.meta: dict[str, Any] = dict(meta or {})
        classes = self.meta.get("classes")
        self.num_classes = len(classes) if classes else None
        c, h, w = self.image_shape
        self._mode, self._size = ("L" if c == 1 else "RGB"), (w, h)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = {"y": _decode(self.files[i], self._mode, self._size, floats=True)}
        if self._labels is not None:
            item["label"] = self._labels[i]
        return item

    def raw(self, i: int) -> Tensor:
        """Image ``i`` as decoded: uint8 ``[C·H·W]``."""
        return _decode(self.files[i], self._mode, self._size)

    @property
    def labels(self) -> Tensor | None:
        """Class labels ``[N]`` (int64), or ``None`` for a folder without class sub-folders."""
        return self._labels

    def subset(self, indices: Tensor, split: str) -> ImageFolderData:
        """The images at ``indices`` (e.g. a validation split), same shape and workers."""
        idx = indices.tolist()
        return ImageFolderData([self.files[i] for i in idx],
                               None if self._labels is None else self._labels[indices],
                               image_shape=self.image_shape, name=self.name, split=split,
                               num_workers=self.num_workers, meta=self.meta)

    def load(self) -> TensorData:
        """Decode every image (with ``num_workers`` workers) into an in-memory TensorData."""
        n = len(self)
        y = torch.empty(n, math.prod(self.image_shape), dtype=torch.uint8)
        loader = torch.utils.data.DataLoader(_Raw(self), batch_size=256,
                                             num_workers=self.num_workers)
        start = 0
        for batch in loader:
            y[start : start + len(batch)] = batch
            start += len(batch)
        tensors = {"y": y.to(torch.float32).div_(255.0)}
        if self._labels is not None:
            tensors["label"] = self._labels.clone()
        return TensorData(tensors, name=self.name, split=self.split,
                          image_shape=self.image_shape, num_classes=self.num_classes,
                          meta=self.meta)

    def describe(self) -> str:
        """One line, like [`TensorData.describe`][ebmkit.data.base.TensorData.describe]."""
        parts = [f"{self.name}[{self.split}]: {len(self)} images on disk"]
        if self.num_classes is not None:
            parts.append(f"{self.num_classes} classes")
        parts.append("image " + "×".join(map(str, self.image_shape)))
        return ", ".join(parts)

    def __repr__(self) -> str:
        return (f"ImageFolderData(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"image_shape={self.image_shape}, num_workers={self.num_workers})")


class _Chunks(torch.utils.data.Dataset):
    """Chunks of a file list, each decoded in one worker call: ``[(pixels, size, mode)]``,
    or the error message of a file that does not decode (raised by the main process, so it
    reads as one line rather than a worker's traceback)."""

    CHUNK = 64

    def __init__(self, files: Sequence[str], mode: str | None, size: tuple[int, int] | None) -> None:
        self.files, self.mode, self.size = files, mode, size

    def __len__(self) -> int:
        return math.ceil(len(self.files) / self.CHUNK)

    def __getitem__(self, k: int) -> list[Any] | str:
        try:
            return [_open(f, self.mode, self.size)
                    for f in self.files[k * self.CHUNK : (k + 1) * self.CHUNK]]
        except ConfigError as exc:
            return str(exc)


def _decode_all(files: Sequence[str], mode: str | None, size: tuple[int, int] | None,
                workers: int) -> tuple[list[Any], list[tuple[int, int]], list[str]]:
    """Every image decoded once (by ``workers`` processes): pixels, native sizes and modes."""
    loader = torch.utils.data.DataLoader(_Chunks(files, mode, size), batch_size=None,
                                         num_workers=workers, collate_fn=_identity)
    pixels, sizes, modes = [], [], []
    for chunk in loader:
        if isinstance(chunk, str):
            raise ConfigError(chunk)
        for arr, native, native_mode in chunk:
            pixels.append(arr)
            sizes.append(native)
            modes.append(native_mode)
    return pixels, sizes, modes


def _identity(x: Any) -> Any:
    return x


class _Raw(torch.utils.data.Dataset):
    """The uint8 view ``load`` decodes through (a quarter of float32's bytes between processes)."""

    def __init__(self, data: ImageFolderData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Tensor:
        return self.data.raw(i)


def _scan(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """Image files and their labels: class sub-folders (recursive) or the folder itself."""
    def images(where: Path, recursive: bool) -> list[Path]:
        found = where.rglob("*") if recursive else where.iterdir()
        return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                      and not p.name.startswith("."))

    top = images(root, recursive=False)
    by_class = {d.name: images(d, recursive=True) for d in sorted(root.iterdir())
                if d.is_dir() and not d.name.startswith(".")}
    by_class = {k: v for k, v in by_class.items() if v}
    if top and by_class:
        raise ConfigError(f"{root}: expected images either directly in the folder (no labels) or "
                          f"in one sub-folder per class; got {len(top)} at the top and "
                          f"{len(by_class)} class sub-folders ({', '.join(list(by_class)[:3])}…)")
    if not top and not by_class:
        others = sum(1 for p in root.rglob("*") if p.is_file())
        raise ConfigError(f"{root}: expected PNG or JPEG images ({', '.join(IMAGE_SUFFIXES)}), "
                          f"directly or in one sub-folder per class; found none"
                          + (f" ({others} other files)" if others else " (the folder is empty)"))
    if top:
        return top, None, []
    classes = list(by_class)
    files = [p for c in classes for p in by_class[c]]
    labels = [i for i, c in enumerate(classes) for _ in by_class[c]]
    return files, labels, classes


def _probe(files: Sequence[Path]) -> tuple[list[tuple[int, int]], list[str]]:
    """Every image's (width, height) and Pillow mode, from its header alone."""
    Image = _image_module()
    sizes, modes = [], []
    for path in files:
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
                modes.append(im.mode)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it as an image ({exc}); expected a PNG or "
                              f"JPEG file") from None
    return sizes, modes


def _checked_size(image_size: Any) -> tuple[int, int] | None:
    """``None``, N (square) or (H, W) → ``(H, W)``."""
    if image_size is None:
        return None
    pair = (image_size, image_size) if isinstance(image_size, int) else image_size
    ok = (isinstance(pair, (tuple, list)) and len(pair) == 2
          and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair))
    if not ok:
        raise ConfigError(f"image_size must be a positive integer or (height, width); got "
                          f"{image_size!r}")
    return int(pair[0]), int(pair[1])


def from_folder(path: str | os.PathLike[str], image_size: int | tuple[int, int] | None = None,
                channels: int | None = None, *, in_memory: bool | None = None,
                workers: int | None = None) -> TensorData | ImageFolderData:
    """A folder of PNG/JPEG images, grey or RGB, with class sub-folders as labels.

    Args:
        path: The folder: images directly in it, or one sub-folder per class (sorted names
            give labels 0, 1, …; ``meta["classes"]`` keeps the names).
        image_size: Stretch every image to ``N × N`` (an int) or ``(H, W)`` with Pillow's
            bilinear filter; ``None`` requires one size throughout.
        channels: ``1`` (grey) or ``3`` (RGB); ``None`` gives 3 when any image is in colour,
            else 1. Alpha is dropped.
        in_memory: Decode everything once into memory (``True``), keep the images on disk
            and decode them every epoch (``False``), or decide by size (``None``: in memory
            when the float32 pixels fit in ``IN_MEMORY_LIMIT``, 1 GiB).
        workers: ``DataLoader`` worker processes that decode (default: up to 4, none below
            2,000 images).

    Returns:
        A [`TensorData`][ebmkit.data.base.TensorData] (in memory) or an
        [`ImageFolderData`][ebmkit.data.folder.ImageFolderData] (on disk): ``y`` float32
        ``[N, C·H·W]`` in [0, 1], ``label`` int64 when there are class sub-folders,
        ``image_shape=(C, H, W)``, ``meta["source"]`` the folder's absolute path.

    Raises:
        FileNotFoundError: no such folder.
        ConfigError: a folder with no images; images of several sizes without
            ``image_size``; a file that does not decode; a bad ``image_size``/``channels``.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: expected a folder of images, but there is no such "
                                f"folder")
    size = _checked_size(image_size)
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grey), 3 (RGB) or None (from the images); got "
                          f"{channels!r}")
    files, labels, classes = _scan(root)
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(files) >= _WORKERS_FROM else 0
    meta = {"source": str(root.resolve()), "classes": tuple(classes)} if classes else {
        "source": str(root.resolve())}
    label = None if labels is None else torch.tensor(labels, dtype=torch.int64)
    if in_memory is None:  # estimated from the first image (3 channels unless told)
        w, h = _probe(files[:1])[0][0] if size is None else size[::-1]
        in_memory = len(files) * (channels or 3) * h * w * 4 <= IN_MEMORY_LIMIT
    mode = None if channels is None else ("L" if channels == 1 else "RGB")
    if in_memory:  # one pass: decode every file once, then check what the headers said
        pixels, sizes, modes = _decode_all([str(f) for f in files], mode,
                                           None if size is None else size[::-1], workers)
    else:
        pixels, (sizes, modes) = None, _probe(files)
    if size is None:
        _one_size(root, files, sizes)
        w, h = sizes[0]
        size = (h, w)
    if channels is None:
        channels = 1 if all(m in _GREY_MODES for m in modes) else 3
    shape = (channels, *size)
    if pixels is None:
        return ImageFolderData([str(f) for f in files], label, image_shape=shape,
                               name=root.resolve().name, num_workers=workers, meta=meta)
    y = torch.empty(len(files), *size, channels, dtype=torch.uint8)  # [N, H, W, C]
    for i, arr in enumerate(pixels):  # grey ones in a colour folder: Pillow's L→RGB repeats L
        y[i] = torch.from_numpy(arr).reshape(*size, -1)
    y = y.permute(0, 3, 1, 2).reshape(len(files), -1).to(torch.float32).div_(255.0)
    tensors = {"y": y} if label is None else {"y": y, "label": label}
    return TensorData(tensors, name=root.resolve().name, split="train", image_shape=shape,
                      num_classes=len(classes) or None, meta=meta)


def _one_size(root: Path, files: Sequence[Path], sizes: Sequence[tuple[int, int]]) -> None:
    counts = Counter(sizes)
    if len(counts) > 1:
        (a, na), (b, nb) = counts.most_common(2)
        first = {s: files[sizes.index(s)].name for s in (a, b)}
        raise ConfigError(
            f"{root}: expected images of one size, got {len(counts)} sizes: "
            f"{a[1]}×{a[0]} ({na} images, e.g. {first[a]}) and {b[1]}×{b[0]} ({nb}, e.g. "
            f"{first[b]}); pass image_size=N (ebmkit train --image-size N) to resize them all")
