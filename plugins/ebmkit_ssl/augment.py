"""Views of small grey images: batched, seeded, composable transforms on the data's device.

Every transform maps a batch ``[B, C, H, W]`` to a batch of the same shape with one random
draw per image, made by tensor ops on the whole batch (no per-image Python loop), from a
``torch.Generator`` the caller owns, so a seeded pipeline gives the same views on every run.

Axis legend: ``b`` batch, ``c`` channels, ``h``/``w`` image height/width.

::

    aug = Compose([Shift(1), Affine(degrees=10, scale=0.1), Erase(p=0.5), Noise(0.05)])
    g = torch.Generator(device=y.device).manual_seed(0)
    view = aug(images, g)                      # [B, C, H, W]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor

import ebmkit as ek

__all__ = ["Affine", "Compose", "Erase", "MultiCrop", "Noise", "Shift", "Transform", "jigsaw"]


def _uniform(b: int, low: float, high: float, g: torch.Generator, like: Tensor) -> Tensor:
    """``[B]`` draws from U(low, high) on ``like``'s device and dtype."""
    return torch.rand(b, generator=g, device=like.device, dtype=like.dtype) * (high - low) + low


class Transform:
    """One random transform: ``transform(images [B, C, H, W], generator) -> [B, C, H, W]``."""

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Shift(Transform):
    """Translate by a whole number of pixels in ``[-pixels, pixels]`` on each axis: pad with
    zeros, then crop each image at its own offset (one gather for the batch).

    Args:
        pixels: The largest shift.
    """

    def __init__(self, pixels: int = 1) -> None:
        self.pixels = ek.config.at_least("shift", pixels, 0)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        p = self.pixels
        if p == 0:
            return images
        b, c, h, w = images.shape
        padded = nnf.pad(images, (p, p, p, p))                                  # [b, c, h+2p, w+2p]
        off = torch.randint(0, 2 * p + 1, (2, b), generator=g, device=images.device)
        rows = off[0, :, None] + torch.arange(h, device=images.device)          # [b, h]
        cols = off[1, :, None] + torch.arange(w, device=images.device)          # [b, w]
        idx_r = rows[:, None, :, None].expand(b, c, h, w + 2 * p)
        picked = padded.gather(2, idx_r)                                         # [b, c, h, w+2p]
        return picked.gather(3, cols[:, None, None, :].expand(b, c, h, w))       # [b, c, h, w]


class Affine(Transform):
    """A small random rotation and scaling about the centre (bilinear, zeros outside).

    Args:
        degrees: Rotation drawn from U(−degrees, degrees).
        scale: Zoom factor drawn from U(1 − scale, 1 + scale).
    """

    def __init__(self, degrees: float = 10.0, scale: float = 0.1) -> None:
        self.degrees = ek.config.number("degrees", degrees, low=0.0, high=180.0)
        self.scale = ek.config.number("scale", scale, low=0.0, high=1.0, high_open=True)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        if self.degrees == 0 and self.scale == 0:
            return images
        b = images.shape[0]
        angle = _uniform(b, -self.degrees, self.degrees, g, images) * (math.pi / 180)
        zoom = _uniform(b, 1 - self.scale, 1 + self.scale, g, images)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                             torch.stack([sin, cos, zero], 1)], 1)              # [b, 2, 3]
        grid = nnf.affine_grid(theta, list(images.shape), align_corners=False)
        return nnf.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)


class Erase(Transform):
    """Random erasing (Zhong et al., 2020): with probability ``p`` zero one rectangle whose
    sides are drawn from ``[1, max(1, round(size · side))]`` pixels, at a random place.

    Args:
        p: Probability that an image is erased.
        size: Largest side of the rectangle as a fraction of the image's side.
    """

    def __init__(self, p: float = 0.5, size: float = 0.4) -> None:
        self.p = ek.config.number("erase", p, low=0.0, high=1.0)
        self.size = ek.config.number("erase_size", size, low=0.0, high=1.0, low_open=True)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        if self.p == 0:
            return images
        b, _, h, w = images.shape
        dev = images.device
        u = torch.rand(5, b, generator=g, device=dev)
        eh = 1 + (u[0] * max(1, round(self.size * h))).long().clamp(max=h - 1)   # [b]
        ew = 1 + (u[1] * max(1, round(self.size * w))).long().clamp(max=w - 1)
        top = (u[2] * (h - eh + 1)).long()
        left = (u[3] * (w - ew + 1)).long()
        on = u[4] < self.p
        r = torch.arange(h, device=dev)[None, :]
        c = torch.arange(w, device=dev)[None, :]
        in_r = (r >= top[:, None]) & (r < (top + eh)[:, None])                  # [b, h]
        in_c = (c >= left[:, None]) & (c < (left + ew)[:, None])                # [b, w]
        hole = in_r[:, :, None] & in_c[:, None, :] & on[:, None, None]          # [b, h, w]
        return images.masked_fill(hole[:, None], 0.0)


class Noise(Transform):
    """Add Gaussian noise of standard deviation ``std``."""

    def __init__(self, std: float = 0.05) -> None:
        self.std = ek.config.number("noise", std, low=0.0)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        if self.std == 0:
            return images
        noise = torch.randn(images.shape, generator=g, device=images.device, dtype=images.dtype)
        return images + self.std * noise


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        for t in self.transforms:
            images = t(images, g)
        return images

    def __repr__(self) -> str:
        return f"Compose([{', '.join(map(repr, self.transforms))}])"


class MultiCrop(Transform):
    """SwAV's multi-crop (Caron et al., 2020), for small images: a low-resolution view made by
    cropping a random ``crop`` × ``crop`` window (a fraction of the side) and resizing it back
    to the full size, so every view batches with the global ones.

    Args:
        crop: The window's side as a fraction of the image's side.
    """

    def __init__(self, crop: float = 0.6) -> None:
        self.crop = ek.config.number("crop", crop, low=0.0, high=1.0, low_open=True)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        b = images.shape[0]
        s = self.crop
        # The window's centre in normalised coordinates, so that it stays inside the image.
        tx = _uniform(b, -(1 - s), 1 - s, g, images)
        ty = _uniform(b, -(1 - s), 1 - s, g, images)
        zero, scale = torch.zeros_like(tx), torch.full_like(tx, s)
        theta = torch.stack([torch.stack([scale, zero, tx], 1),
                             torch.stack([zero, scale, ty], 1)], 1)             # [b, 2, 3]
        grid = nnf.affine_grid(theta, list(images.shape), align_corners=False)
        return nnf.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)


def jigsaw(images: Tensor, g: torch.Generator, tiles: int = 2) -> Tensor:
    """PIRL's pretext transform (Misra & van der Maaten, 2020): cut each image into
    ``tiles`` × ``tiles`` patches and shuffle them with one random permutation per image.

    Args:
        images: ``[B, C, H, W]`` with H and W divisible by ``tiles``.
        g: The generator.
        tiles: Patches per side.

    Returns:
        ``[B, C, H, W]``, the patches of each image in a new order.
    """
    b, c, h, w = images.shape
    if h % tiles or w % tiles:
        raise ek.errors.ConfigError(f"jigsaw: image sides {h}×{w} must be divisible by "
                                    f"tiles={tiles}")
    ph, pw, n = h // tiles, w // tiles, tiles * tiles
    patches = images.reshape(b, c, tiles, ph, tiles, pw).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(b, n, c, ph, pw)                                   # [b, n, c, ph, pw]
    order = torch.rand(b, n, generator=g, device=images.device).argsort(dim=1)   # [b, n]
    shuffled = patches.gather(1, order[:, :, None, None, None].expand_as(patches))
    shuffled = shuffled.reshape(b, tiles, tiles, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
    return shuffled.reshape(b, c, h, w)
