"""The user's data from files: a folder of images, arrays, a text corpus.

| loader | reads | gives |
|---|---|---|
| [`from_folder`][ebmkit.data.folder.from_folder] | PNG/JPEG, grey or RGB; class sub-folders | images in [0, 1], ``label`` |
| [`from_arrays`][ebmkit.data.files.from_arrays] | a tensor / array, or ``.npy`` / ``.npz`` / ``.safetensors`` | vectors, images or token ids |
| [`from_text`][ebmkit.data.files.from_text] | a UTF-8 ``.txt`` corpus | blocks of token ids, a vocabulary |
| [`from_path`][ebmkit.data.files.from_path] | any of the above, by what the path is | what its loader gives |

Every loader returns what the embedded data sets return — a
[`TensorData`][ebmkit.data.base.TensorData] with ``y`` (images flattened row-major from
``(C, H, W)``, with ``image_shape``), so every family and ``ebmkit train MODEL --data PATH``
take them unchanged — except a folder too big for memory, which stays on disk as an
[`ImageFolderData`][ebmkit.data.folder.ImageFolderData] decoded by ``DataLoader`` workers.
Pillow decodes the images.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import TensorData
from .folder import from_folder
from .text import Vocabulary, build_vocabulary, read_corpus

__all__ = ["ARRAY_SUFFIXES", "from_arrays", "from_path", "from_text"]

#: File suffixes [`from_arrays`][ebmkit.data.files.from_arrays] reads.
ARRAY_SUFFIXES = (".npy", ".npz", ".safetensors")


def from_path(path: str | os.PathLike[str], **options: Any) -> Any:
    """The data at ``path``: a folder of images, an array file or a text corpus.

    Args:
        path: A folder ([`from_folder`][ebmkit.data.folder.from_folder]), a ``.npy`` /
            ``.npz`` / ``.safetensors`` file ([`from_arrays`][ebmkit.data.files.from_arrays])
            or a ``.txt`` file ([`from_text`][ebmkit.data.files.from_text]).
        **options: That loader's options (``image_size``, ``channels``, ``level``, …);
            ``None`` values are dropped.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ConfigError: a file of another kind, or an option its loader does not take.
    """
    path = Path(path).expanduser()
    options = {k: v for k, v in options.items() if v is not None}
    if path.is_dir():
        loader, takes = from_folder, {"image_size", "channels", "in_memory", "workers"}
    elif path.suffix.lower() in ARRAY_SUFFIXES:
        loader, takes = from_arrays, {"image_shape"}
    elif path.suffix.lower() == ".txt":
        loader, takes = from_text, {"level", "block_size", "vocab"}
    elif not path.exists():
        raise FileNotFoundError(f"--data {path}: no such file or folder; expected a registered "
                                f"data set (ebmkit datasets), a folder of images, a "
                                f"{'/'.join(ARRAY_SUFFIXES)} file or a .txt corpus")
    else:
        raise ConfigError(f"{path}: expected a folder of images, a {'/'.join(ARRAY_SUFFIXES)} "
                          f"file or a .txt corpus; got a {path.suffix or 'suffix-less'} file")
    unknown = sorted(set(options) - takes)
    if unknown:
        raise ConfigError(f"{path}: option(s) {', '.join(unknown)} do not apply to "
                          f"{loader.__name__}, which takes {', '.join(sorted(takes))}")
    return loader(path, **options)


# ------------------------------------------------------------------------------ arrays
def _read_arrays(path: Path) -> dict[str, Tensor]:
    """``{"y": ..., "label": ...}`` from a ``.npy`` (``y`` only), ``.npz`` or ``.safetensors``."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            found = dict(load_file(str(path)))
        else:
            import numpy as np

            if suffix == ".npy":  # never unpickle a data file
                return {"y": torch.from_numpy(np.load(path, allow_pickle=False))}
            with np.load(path, allow_pickle=False) as loaded:
                found = {k: torch.from_numpy(loaded[k]) for k in loaded.files}
    except (ValueError, OSError, RuntimeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigError(f"{path}: cannot read it as a {suffix} file ({exc}); expected "
                          f"arrays saved by numpy.save / numpy.savez or safetensors' save_file, "
                          f"without pickled objects") from None
    if "y" not in found:
        raise ConfigError(f"{path}: expected an array named 'y' (and optionally 'label'); "
                          f"got {sorted(found) or 'no arrays'}")
    extra = sorted(set(found) - {"y", "label"})
    if extra:
        raise ConfigError(f"{path}: expected arrays 'y' and optionally 'label'; got also "
                          f"{', '.join(extra)}")
    return found


def _as_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    try:
        import numpy as np

        return torch.from_numpy(np.ascontiguousarray(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"from_arrays: {what} must be a tensor, a NumPy array or a path; "
                          f"got {type(value).__name__} ({exc})") from None


def from_arrays(y: Any, labels: Any = None, *, image_shape: tuple[int, ...] | None = None,
                name: str | None = None) -> TensorData:
    """Data from arrays, or from an array file.

    ``y``'s rank says what it holds:

    | ``y`` | kind | ``y`` of the result |
    |---|---|---|
    | ``[N, D]`` floating | vectors | float32 ``[N, D]`` (``image_shape`` if given) |
    | ``[N, T]`` integer | token ids | int64 ``[N, T]`` |
    | ``[N, H, W]`` | grey images | float32 ``[N, H·W]``, ``image_shape=(1, H, W)`` |
    | ``[N, C, H, W]`` (C = 1 or 3), or ``[N, H, W, C]`` | images | float32 ``[N, C·H·W]`` |

    Images stored as ``uint8`` are scaled to [0, 1]; floating images are kept as they are
    (scale them to [0, 1] yourself: the image families assume that box).

    Args:
        y: A tensor or NumPy array, or a path to a ``.npy`` (``y``), ``.npz`` or
            ``.safetensors`` file (arrays ``y`` and optionally ``label``).
        labels: Integer class labels ``[N]`` (with arrays; a file brings its own).
        image_shape: ``(C, H, W)`` of each ``[N, D]`` row, when rows are flattened images.
        name: The data set's name (default: the file's stem, or ``"arrays"``).

    Raises:
        ConfigError: ``y`` of another rank or an empty one, labels that are not ``[N]``
            integers, an ``image_shape`` that does not match ``D``, or an unreadable file.
    """
    source = None
    if isinstance(y, (str, os.PathLike)):
        source = Path(y).expanduser()
        found = _read_arrays(source)
        if labels is not None and "label" in found:
            raise ConfigError(f"{source}: holds 'label' already; pass labels=None")
        y, labels = found["y"], found.get("label", labels)
        name = name or source.stem
    t = _as_tensor(y, "y")
    where = str(source) if source else "from_arrays"
    if t.dim() not in (2, 3, 4) or t.shape[0] == 0:
        raise ConfigError(f"{where}: expected y of shape [N, D] (vectors or token ids), "
                          f"[N, H, W] (grey images) or [N, C, H, W] / [N, H, W, C] (images, "
                          f"C = 1 or 3) with N ≥ 1; got shape {list(t.shape)}")
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.dim() == 4:
        if t.shape[1] not in (1, 3) and t.shape[-1] in (1, 3):
            t = t.permute(0, 3, 1, 2)  # channels last -> first
        if t.shape[1] not in (1, 3):
            raise ConfigError(f"{where}: expected images with 1 or 3 channels, as [N, C, H, W] "
                              f"or [N, H, W, C]; got shape {list(t.shape)}")
        if image_shape is not None and tuple(image_shape) != tuple(t.shape[1:]):
            raise ConfigError(f"{where}: image_shape={tuple(image_shape)} does not match the "
                              f"images' {tuple(t.shape[1:])}")
        image_shape = tuple(int(s) for s in t.shape[1:])
        t = t.reshape(len(t), -1)
    is_image = image_shape is not None
    if t.dtype == torch.uint8 and is_image:
        t = t.to(torch.float32).div_(255.0)
    elif t.is_floating_point() or t.dtype == torch.bool:
        t = t.to(torch.float32)
    elif is_image:
        raise ConfigError(f"{where}: expected images as uint8 (0-255) or floats in [0, 1]; got "
                          f"{str(t.dtype).removeprefix('torch.')}")
    else:
        t = t.to(torch.int64)  # token ids
    if is_image and math.prod(image_shape) != t.shape[1]:
        raise ConfigError(f"{where}: image_shape={tuple(image_shape)} holds "
                          f"{math.prod(image_shape)} values, but each row of y has {t.shape[1]}")
    tensors = {"y": t.contiguous()}
    num_classes = None
    if labels is not None:
        lab = _as_tensor(labels, "labels")
        if lab.dim() != 1 or len(lab) != len(t) or lab.is_floating_point() or lab.dtype == \
                torch.bool:
            raise ConfigError(f"{where}: expected labels as integers of shape [{len(t)}]; got "
                              f"{str(lab.dtype).removeprefix('torch.')} of shape {list(lab.shape)}")
        lab = lab.to(torch.int64)
        if len(lab) and int(lab.min()) < 0:
            raise ConfigError(f"{where}: expected labels ≥ 0; got {int(lab.min())}")
        tensors["label"] = lab
        num_classes = int(lab.max()) + 1 if len(lab) else 0
    meta = {"source": str(source.resolve())} if source else {}
    return TensorData(tensors, name=name or "arrays", split="train",
                      image_shape=image_shape, num_classes=num_classes, meta=meta)


# -------------------------------------------------------------------------------- text
def from_text(path: str | os.PathLike[str], level: str = "char", block_size: int = 64,
              vocab: Vocabulary | list[str] | None = None) -> TensorData:
    """A text corpus as blocks of token ids, for ``masked.lm``.

    The file is tokenised (characters, or lower-cased words and punctuation) and cut into
    non-overlapping blocks of ``block_size`` ids (a trailing partial block is dropped), as
    the built-in ``text`` data set is.

    Args:
        path: A UTF-8 text file.
        level: ``"char"`` or ``"word"``.
        block_size: Tokens per block.
        vocab: The vocabulary (a [`Vocabulary`][ebmkit.data.text.Vocabulary] or a list of
            tokens); ``None`` builds it from the file with
            [`build_vocabulary`][ebmkit.data.text.build_vocabulary].

    Returns:
        TensorData with ``y`` int64 ``[n_blocks, block_size]`` and ``.vocab`` (also
        ``meta["vocab"]``), which ``ebmkit train masked.lm --data FILE`` passes to the model.

    Raises:
        ConfigError: an empty or non-UTF-8 file, a bad level or block size, or a file shorter
            than one block.
    """
    path = Path(path).expanduser()
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"from_text: block_size must be a positive integer, got {block_size!r}")
    corpus = read_corpus(path)
    if vocab is None:
        vocab = build_vocabulary(path, level=level)
    elif not isinstance(vocab, Vocabulary):
        vocab = build_vocabulary(vocab, level=level)
    ids = torch.tensor(vocab.encode(corpus), dtype=torch.int64)
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        raise ConfigError(f"{path}: holds {len(ids)} {vocab.level} tokens, fewer than one block "
                          f"of block_size={block_size}; expected a longer text or a smaller "
                          f"block_size")
    data = TensorData({"y": ids[: n_blocks * block_size].reshape(n_blocks, block_size).clone()},
                      name=path.stem, split="train",
                      meta={"vocab": vocab, "level": vocab.level, "block_size": block_size,
                            "source": str(path.resolve())})
    data.vocab = vocab  # type: ignore[attr-defined]  # as the built-in text data set has it
    return data
