"""GAN pictures: sample grids, latent interpolation grids and both players' training curves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from einops import rearrange

import ebmkit as ek
from ebmkit.errors import ConfigError

__all__ = ["plot_interpolations", "plot_samples", "plot_training"]


def plot_samples(model: Any, path: str | os.PathLike[str], n: int = 64, seed: int = 0) -> Path:
    """A grid of ``n`` samples G(z) (what ``ebmkit sample`` writes for a GAN run)."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    return ek.viz.plot_images(model.sample(n, generator=gen), path, image_shape=model.image_shape,
                              title=f"{n} samples of {model.name}")


def plot_interpolations(model: Any, path: str | os.PathLike[str], rows: int = 8,
                        steps: int = 10, seed: int = 0) -> Path:
    """Latent interpolation grid: each row walks (slerp) between two random z."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    z0, z1 = model.latent(rows, generator=gen), model.latent(rows, generator=gen)
    images = rearrange(model.interpolate(z0, z1, steps), "b t d -> (b t) d")
    return ek.viz.plot_images(images, path, image_shape=model.image_shape, nrow=steps,
                              title=f"{model.name}: latent interpolations")


def plot_training(history: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Both players' losses, and the energy on data vs on samples, per epoch."""
    if not history or not all("loss_d" in r and "loss_g" in r for r in history):
        raise ConfigError("plot_training: expected the history of an Adversarial run (records "
                          "with loss_d and loss_g)")
    plt = ek.viz.pyplot()
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
    panels = [("losses", [("loss_d", "discriminator"), ("loss_g", "generator")]),
              ("energies", [("e_pos", "E on data"), ("e_neg", "E on samples G(z)")])]
    if all("diversity" in r for r in history):
        panels.append(("monitors", [("diversity", "sample spread / data spread"),
                                    ("grad_g", "‖∇G‖")]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key, label in keys:
            if all(key in r for r in history):
                ax.plot(epochs, [r[key] for r in history], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
    return ek.viz.save_figure(fig, path)
