"""Pictures of attention as energy descent: retrieval, energy against update step, attention maps.

``plots(model, data, out)`` draws the pictures of one model into a run directory; ``ebmkit
train`` and ``ebmkit sample`` call it through the models' ``plots`` method. Every function
returns the PNG's path and needs the ``plot`` extra (matplotlib).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import ebmkit as ek

__all__ = ["plot_attention", "plot_energy", "plot_retrieval", "plot_token_attention", "plots"]


def _show(ax: Any, image: Tensor, title: str | None = None) -> None:
    """One grey image in [0, 1] as the data has it (0 black, 1 white); NaN (hidden) pixels
    drawn in a flat mid-blue."""
    import numpy as np

    img = image.detach().float().cpu().numpy()
    rgb = np.stack([np.clip(img, 0, 1)] * 3, axis=-1)  # the data's own grey scale: 0 black
    rgb[np.isnan(img)] = (0.55, 0.7, 0.95)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def plot_retrieval(columns: dict[str, Tensor], path: str | os.PathLike[str],
                   image_shape: tuple[int, int], title: str | None = None) -> Path:
    """A grid: one row per example, one column per named stage (e.g. original, query, after
    step 1, …). Each value is ``[rows, H·W]``; NaN pixels (hidden) are drawn in blue."""
    plt = ek.viz.pyplot()
    names = list(columns)
    rows = next(iter(columns.values())).shape[0]
    fig, axes = plt.subplots(rows, len(names), figsize=(1.1 * len(names), 1.1 * rows + 0.4),
                             squeeze=False)
    for j, name in enumerate(names):
        for i in range(rows):
            _show(axes[i][j], columns[name][i].reshape(image_shape), name if i == 0 else None)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return ek.viz.save_figure(fig, path)


def plot_energy(energies: Tensor, path: str | os.PathLike[str], title: str = "energy",
                max_lines: int = 16) -> Path:
    """Energy against update step: ``energies`` ``[steps + 1, B]``; a thin line per query (up
    to ``max_lines``) and the mean in black."""
    plt = ek.viz.pyplot()
    e = energies.detach().double().cpu()
    steps = range(e.shape[0])
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for b in range(min(e.shape[1], max_lines)):
        ax.plot(steps, e[:, b].numpy(), color="tab:blue", alpha=0.35, lw=1)
    ax.plot(steps, e.mean(dim=1).numpy(), color="black", lw=2, marker="o", label="mean")
    ax.set_xlabel("update step")
    ax.set_ylabel("E")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return ek.viz.save_figure(fig, path)


def plot_attention(weights: Tensor, path: str | os.PathLike[str], title: str = "attention",
                   xlabel: str = "stored pattern", ylabel: str = "query") -> Path:
    """A heat map of attention weights ``[queries, keys]`` (rows sum to one)."""
    plt = ek.viz.pyplot()
    w = weights.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(6, 0.25 * w.shape[0] + 1.4))
    im = ax.imshow(w, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return ek.viz.save_figure(fig, path)


def plot_token_attention(image: Tensor, attention: Tensor, grid: tuple[int, int], token: int,
                         path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Where one token (patch) attends, per head: the image (NaN = hidden) beside one map per
    head over the patch grid. ``attention`` is ``[heads, t, t]``."""
    plt = ek.viz.pyplot()
    heads = attention.shape[0]
    fig, axes = plt.subplots(1, heads + 1, figsize=(1.6 * (heads + 1), 1.9), squeeze=False)
    _show(axes[0][0], image, "input")
    r, c = divmod(token, grid[1])
    for h in range(heads):
        ax = axes[0][h + 1]
        ax.imshow(attention[h, token].detach().float().cpu().reshape(grid).numpy(), cmap="magma",
                  interpolation="nearest")
        ax.scatter([c], [r], marker="s", s=40, facecolors="none", edgecolors="cyan")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"head {h + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return ek.viz.save_figure(fig, path)


# ---------------------------------------------------------------------------------- per model
def plots(model: Any, data: Any, out: str | os.PathLike[str], n: int = 8) -> list[Path]:
    """The pictures of an attention-family model on ``data`` (a dataset with ``y`` and
    ``image_shape``), written into ``out``; returns the paths."""
    out = Path(out)
    shape = getattr(data, "image_shape", None)
    if not shape:
        return []
    image_hw = tuple(shape[-2:])
    y = data.y[:n].to(model.device)
    gen = torch.Generator().manual_seed(0)
    name = model.name
    if name == "attention.transformer":
        return _transformer(model, y, image_hw, out, gen)
    if name == "hopfield" and getattr(model, "size", 0):
        return _modern(model, y, image_hw, out, gen)
    if name == "hopfield.classical" and getattr(model, "size", 0):
        return _classical(model, y, image_hw, out, gen)
    return []


@torch.no_grad()
def _modern(model: Any, y: Tensor, hw: tuple[int, int], out: Path, gen: torch.Generator
            ) -> list[Path]:
    x = model.mask(y, generator=gen)
    q = model.fill(x)
    cols = {"original": y, "query": x}
    for t in (1, 2, 3):
        cols[f"step {t}"] = model.retrieve(q, t)
    trace = model.retrieve(q, 12, trace=True)
    kinds = ", ".join(f"{k}: {trace.kinds.count(k)}" for k in ("single", "metastable", "global"))
    first = model.retrieve(q, 1, trace=True).weights  # [B, N]: the attention of the first update
    order = first.argsort(dim=1, descending=True)[:, :40]  # the 40 strongest patterns
    return [
        plot_retrieval(cols, out / "retrieval.png", hw,
                       title=f"hopfield (β={model.cfg.beta:g}): half hidden (blue), retrieved"),
        plot_energy(trace.energies, out / "energy.png",
                    title=f"hopfield: energy per update (fixed points: {kinds})"),
        plot_attention(torch.gather(first, 1, order), out / "attention.png",
                       title="first update: softmax over stored patterns (40 largest, sorted)",
                       xlabel="stored pattern (rank)"),
    ]


@torch.no_grad()
def _classical(model: Any, y: Tensor, hw: tuple[int, int], out: Path, gen: torch.Generator
               ) -> list[Path]:
    x = model.mask(y, generator=gen)
    s, energies = model.retrieve(torch.nan_to_num(x, nan=0.0), trace=True)
    nearest = model.patterns[model.nearest(s)]
    show = {"original": model.binarize(y), "query": x, "retrieved": s, "nearest stored": nearest}
    show = {k: (v + 1) / 2 for k, v in show.items()}  # ±1 → [0, 1]
    return [plot_retrieval(show, out / "retrieval.png", hw,
                           title="classical Hopfield: half hidden (blue), retrieved"),
            plot_energy(energies, out / "energy.png", title="classical Hopfield: −½ sᵀWs per sweep")]


@torch.no_grad()
def _transformer(model: Any, y: Tensor, hw: tuple[int, int], out: Path, gen: torch.Generator
                 ) -> list[Path]:
    x = model.mask(y, generator=gen)
    pred, energies = model.predict(x, return_energies=True)
    paths = [plot_retrieval({"original": y, "masked": x, "completed": pred}, out / "completion.png",
                            hw, title="energy transformer: hidden patches (blue) filled"),
             plot_energy(energies, out / "energy.png", title="energy transformer: token energy "
                                                             "per descent step")]
    images, _ = model._images(x[:1], "x", nan_ok=True)
    tokens, visible = model.embed_tokens(images)
    hidden = (~visible.all(dim=-1))[0].nonzero().flatten()
    token = int(hidden[0]) if len(hidden) else 0
    p = model.cfg.patch_size
    grid = (hw[0] // p, hw[1] // p)
    paths.append(plot_token_attention(x[0].reshape(hw), model.attention(tokens)[0], grid, token,
                                      out / "attention.png",
                                      title=f"where hidden patch {token} attends (before descent)"))
    return paths
