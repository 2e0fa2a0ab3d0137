"""Plots: image grids, 2-D samples and energy/density landscapes (optional extra ``plot``).

Install with ``pip install 'torch-ebmkit[plot]'``. Figures are written atomically (a temp
file renamed into place), with the non-interactive Agg backend, so they work on servers.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Picture", "corrupted_trio", "density_grid", "forked_rng", "image_grid",
           "model_picture", "plot_density", "plot_history", "plot_images", "pyplot",
           "save_figure", "save_picture", "save_summary"]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a ConfigError naming the ``plot`` extra."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'torch-ebmkit[plot]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` atomically (temp file + rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _pyplot().close(fig)
    return path


def image_grid(images: Tensor, image_shape: Sequence[int] | None = None, nrow: int = 8,
               pad: int = 1) -> Tensor:
    """Tile images into one ``[H', W']`` (grey) or ``[H', W', 3]`` (RGB) tensor in [0, 1].

    Args:
        images: ``[N, C, H, W]``, or ``[N, D]`` with ``image_shape=(C, H, W)``.
        image_shape: The shape of one image when ``images`` is flat.
        nrow: Images per row.
        pad: Pixels of padding between images (drawn at 1, white).
    """
    images = images.detach().float().cpu()
    if image_shape is not None:
        images = images.reshape(-1, *image_shape)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"image_grid: expected images [N, C, H, W] with C in (1, 3), or flat "
                          f"[N, D] with image_shape; got {list(images.shape)}")
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    grid = torch.ones(c, rows * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top:top + h, left:left + w] = images[i].clamp(0, 1)
    return grid[0] if c == 1 else grid.permute(1, 2, 0)


def plot_images(images: Tensor, path: str | os.PathLike[str], *,
                image_shape: Sequence[int] | None = None, nrow: int = 8,
                title: str | None = None) -> Path:
    """Save a grid of images as a PNG."""
    plt = _pyplot()
    grid = image_grid(images, image_shape=image_shape, nrow=nrow)
    fig, ax = plt.subplots(figsize=(max(2.0, grid.shape[1] / 12), max(2.0, grid.shape[0] / 12)))
    # The data's own grey scale: 0 is black, 1 white (a white-on-black digit stays one).
    ax.imshow(grid.numpy(), cmap="gray" if grid.dim() == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def density_grid(fn: Callable[[Tensor], Tensor], bounds: Sequence[Sequence[float]],
                 resolution: int = 200, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """Evaluate ``fn`` ([B, 2] → [B]) on a regular grid over ``bounds``.

    Returns:
        ``(xs [R], ys [R], values [R, R])`` with ``values[i, j] = fn((xs[j], ys[i]))``.
    """
    (x0, x1), (y0, y1) = bounds
    xs = torch.linspace(x0, x1, resolution, device=device)
    ys = torch.linspace(y0, y1, resolution, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    with torch.no_grad():
        values = fn(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)).reshape(resolution,
                                                                                  resolution)
    return xs, ys, values


def plot_density(log_prob: Callable[[Tensor], Tensor], bounds: Sequence[Sequence[float]],
                 path: str | os.PathLike[str], *, samples: Tensor | None = None,
                 title: str | None = None, resolution: int = 200, normalize: bool = False) -> Path:
    """Save a density heat map (``exp`` of ``log_prob``), with samples beside it.

    Args:
        log_prob: ``[B, 2] -> [B]`` log-density, or −energy with ``normalize=True``.
        bounds: ``((x0, x1), (y0, y1))``.
        path: The PNG to write.
        samples: Points drawn beside the density.
        title: Figure title.
        resolution: Grid points per axis.
        normalize: Normalise ``exp(log_prob)`` to integrate to 1 over the box (for energies).
    """
    plt = _pyplot()
    xs, ys, values = density_grid(log_prob, bounds, resolution)
    if normalize:
        cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
        values = values - torch.logsumexp(values.reshape(-1), 0) - cell.log()
    ncols = 2 if samples is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4 * ncols, 4), squeeze=False)
    (x0, x1), (y0, y1) = bounds
    axes[0, 0].imshow(values.exp().cpu().numpy(), origin="lower", extent=(x0, x1, y0, y1),
                      cmap="viridis", aspect="equal")
    axes[0, 0].set_title("density")
    if samples is not None:
        s = samples.detach().float().cpu()
        axes[0, 1].scatter(s[:, 0].numpy(), s[:, 1].numpy(), s=2, alpha=0.5)
        axes[0, 1].set_xlim(x0, x1)
        axes[0, 1].set_ylim(y0, y1)
        axes[0, 1].set_aspect("equal")
        axes[0, 1].set_title(f"{len(s)} samples")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Training curves: the loss, and the energies of data and negatives when logged."""
    plt = _pyplot()
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
    keys = [k for k in ("e_pos", "e_neg") if all(k in r for r in history)]
    fig, axes = plt.subplots(1, 1 + bool(keys), figsize=(4.5 * (1 + bool(keys)), 3.2), squeeze=False)
    axes[0, 0].plot(epochs, [r["loss"] for r in history], marker="o")
    axes[0, 0].set_xlabel("epoch")
    axes[0, 0].set_title("loss")
    if keys:
        for k in keys:
            axes[0, 1].plot(epochs, [r[k] for r in history], marker="o",
                            label={"e_pos": "E on data", "e_neg": "E on negatives"}[k])
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].legend()
        axes[0, 1].set_title("energies")
    return save_figure(fig, path)


# ------------------------------------------------------- pictures of a model during a run
@dataclass
class Picture:
    """What [`model_picture`][ebmkit.viz.model_picture] shows: ``images`` ``[N, C, H, W]``
    (rows of ``columns`` images: e.g. input | output), or ``points`` ``[N, 2]``."""

    what: str
    images: Tensor | None = None
    points: Tensor | None = None
    columns: int = 8
    bounds: Sequence[Sequence[float]] | None = None


def _first_rows(data: Any, n: int) -> Tensor | None:
    y = getattr(data, "y", None)
    if isinstance(y, Tensor):
        return y[:n]
    try:
        rows = [data[i] for i in range(min(n, len(data)))]
    except (TypeError, IndexError, KeyError):
        return None
    rows = [r["y"] if isinstance(r, Mapping) else r[0] if isinstance(r, (tuple, list)) else r
            for r in rows]
    return torch.stack(rows) if rows and all(isinstance(r, Tensor) for r in rows) else None


def model_picture(trainer: Any, n: int = 32, seed: int = 0, points: bool = True
                  ) -> Picture | None:
    """A picture of ``trainer.model`` on a fixed batch: completions, samples or
    reconstructions, whichever the family has (None when it has none for this data).

    Runs under ``no_grad`` in eval mode with the global RNGs forked, so training goes on
    exactly as without the picture. ``points=False`` skips 2-D data (whose picture is a
    scatter of 500 samples, drawn by the family's own sampler: long Langevin chains for an
    energy network).
    """
    model = trainer.model
    data = trainer.val_data if getattr(trainer, "val_data", None) is not None else getattr(
        trainer, "train_data", None)
    image_shape = getattr(data, "image_shape", None)
    y = _first_rows(data, n) if data is not None else None
    if y is None or not y.is_floating_point():
        return None
    flat2d = y.dim() == 2 and y.shape[1] == 2
    if not (image_shape or (flat2d and points)):
        return None
    device = trainer.device
    y = y.to(device)
    was_training = model.training
    model.eval()
    try:
        with forked_rng(device), torch.no_grad():
            torch.manual_seed(seed)
            gen = torch.Generator(device=device).manual_seed(seed)
            if flat2d:
                if not callable(getattr(model, "sample", None)):
                    return None
                return Picture("samples", points=_sample(model, 500, gen).float().cpu(),
                               bounds=getattr(data, "bounds", None))
            if callable(getattr(model, "corrupt", None)):
                trio, what = corrupted_trio(model, y, gen)
                if trio is not None:
                    return Picture(what, images=_images(trio, image_shape), columns=6)
            if callable(getattr(model, "sample", None)):
                return Picture("samples", images=_images(_sample(model, n, gen), image_shape))
            if callable(getattr(model, "reconstruct", None)):
                rec = model.reconstruct(y).reshape(y.shape)
                pairs = torch.stack([y, rec], 1)
                return Picture("data | reconstruction", images=_images(pairs, image_shape))
            return None
    finally:
        model.train(was_training)


def forked_rng(device: torch.device) -> Any:
    """``torch.random.fork_rng`` for the CPU and ``device``'s accelerator (CUDA, MPS, …):
    what runs inside leaves every global generator as it found it."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device], device_type=device.type)


def corrupted_trio(model: Any, y: Tensor, gen: torch.Generator | None = None
                   ) -> tuple[Tensor | None, str]:
    """``[B, 3, ...]``: the corrupted input, the model's answer, and the data, for a family
    with ``corrupt(y)``: completions (``predict``: masked models, NaN shown as grey) or
    denoising (``reconstruct`` of the corrupted input)."""
    try:
        x = model.corrupt(y, generator=gen)
    except TypeError:  # a corruption without a generator argument: the (forked) global RNG
        x = model.corrupt(y)
    x = x.reshape(y.shape)
    if callable(getattr(model, "predict", None)):
        out, what = model.predict(x), "hidden | completed | data"
    elif callable(getattr(model, "reconstruct", None)):
        out, what = model.reconstruct(x), "corrupted | denoised | data"
    else:
        return None, ""
    shown = torch.nan_to_num(x, nan=0.5)
    return torch.stack([shown, out.reshape(y.shape).to(y.dtype), y], 1), what


def _sample(model: Any, n: int, gen: torch.Generator) -> Tensor:
    try:
        return model.sample(n, generator=gen)
    except TypeError:  # a family whose sample() takes no generator: the forked global RNG
        return model.sample(n)


def _images(t: Tensor, image_shape: Sequence[int]) -> Tensor:
    return t.detach().float().cpu().reshape(-1, *image_shape)


def save_picture(picture: Picture, path: str | os.PathLike[str], title: str | None = None
                 ) -> Path:
    """Write a [`Picture`][ebmkit.viz.Picture] as a PNG."""
    if picture.images is not None:
        return plot_images(picture.images, path, nrow=picture.columns, title=title)
    plt = _pyplot()
    assert picture.points is not None
    s = picture.points
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(s[:, 0].numpy(), s[:, 1].numpy(), s=2, alpha=0.5)
    if picture.bounds:
        ax.set_xlim(*picture.bounds[0])
        ax.set_ylim(*picture.bounds[1])
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def save_summary(pictures: Mapping[int, Picture], path: str | os.PathLike[str],
                 title: str | None = None, per_row: int = 8) -> Path:
    """Tile the pictures of several epochs: one row per epoch (images: its first
    ``per_row``; points: one scatter panel per epoch)."""
    plt = _pyplot()
    epochs = sorted(pictures)
    first = pictures[epochs[0]]
    if first.images is not None:
        fig, axes = plt.subplots(len(epochs), 1, figsize=(per_row * 0.9, 1.0 * len(epochs) + 0.4),
                                 squeeze=False)
        for ax, epoch in zip(axes[:, 0], epochs):
            imgs = pictures[epoch].images
            assert imgs is not None
            grid = image_grid(imgs[:per_row], nrow=per_row)
            ax.imshow(grid.numpy(), cmap="gray" if grid.dim() == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(f"{epoch}", rotation=0, labelpad=12, va="center")
    else:
        fig, axes = plt.subplots(1, len(epochs), figsize=(2.2 * len(epochs), 2.4), squeeze=False)
        for ax, epoch in zip(axes[0], epochs):
            pts = pictures[epoch].points
            assert pts is not None
            ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), s=1, alpha=0.5)
            ax.set_title(f"epoch {epoch}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


_pyplot = pyplot  # the old private name, kept for callers not yet moved
