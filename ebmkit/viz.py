"""Plots: image grids, 2-D samples and energy/density landscapes (optional extra ``plot``).

Install with ``pip install 'torch-ebmkit[plot]'``. Figures are written atomically (a temp
file renamed into place), with the non-interactive Agg backend, so they work on servers.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["density_grid", "pyplot", "image_grid", "plot_density", "plot_history", "plot_images",
           "save_figure"]


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
    ax.imshow(grid.numpy(), cmap="gray_r" if grid.dim() == 2 else None, vmin=0, vmax=1,
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


_pyplot = pyplot  # the old private name, kept for callers not yet moved
