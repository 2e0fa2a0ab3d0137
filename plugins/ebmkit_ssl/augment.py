"""Views of images: batched, seeded, composable transforms on the data's device.

Two sets: for small grey images (digits, Fashion-MNIST) a shift, a small affine warp,
random erasing and noise; for RGB photographs the SimCLR/BYOL set — random resized crop with
a horizontal flip, colour jitter, random grey-scale and Gaussian blur
([`photo_views`][ebmkit_ssl.augment.photo_views]).

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

__all__ = ["Affine", "Blur", "ColorJitter", "Compose", "Erase", "Grayscale", "MultiCrop", "Noise",
           "ResizedCrop", "Shift", "Transform", "jigsaw", "photo_views"]


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


class ResizedCrop(Transform):
    """Random resized crop and horizontal flip in one resampling (torchvision's
    ``RandomResizedCrop`` + ``RandomHorizontalFlip``, batched): each image takes a window of
    area fraction U(``scale``, 1) of its own and aspect ratio log-uniform in [3/4, 4/3]
    (clipped to the image), flipped left-right with probability ``flip``, resized back to the
    full size (bilinear).

    Args:
        scale: The smallest area fraction (SimCLR: 0.08 on ImageNet; 0.2 on CIFAR-sized
            images, as solo-learn uses).
        flip: Probability of a horizontal flip.
    """

    def __init__(self, scale: float = 0.2, flip: float = 0.5) -> None:
        self.scale = ek.config.number("crop_scale", scale, low=0.0, high=1.0, low_open=True)
        self.flip = ek.config.number("flip", flip, low=0.0, high=1.0)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        b = images.shape[0]
        area = _uniform(b, self.scale, 1.0, g, images)
        ratio = torch.exp(_uniform(b, math.log(3 / 4), math.log(4 / 3), g, images))
        w = torch.sqrt(area * ratio).clamp(max=1.0)                             # side fractions
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = _uniform(b, -1.0, 1.0, g, images) * (1 - w)                      # window centre
        cy = _uniform(b, -1.0, 1.0, g, images) * (1 - h)
        sign = torch.where(torch.rand(b, generator=g, device=images.device) < self.flip, -1.0, 1.0)
        zero = torch.zeros_like(w)
        theta = torch.stack([torch.stack([w * sign.to(w.dtype), zero, cx], 1),
                             torch.stack([zero, h, cy], 1)], 1)                 # [b, 2, 3]
        grid = nnf.affine_grid(theta, list(images.shape), align_corners=False)
        return nnf.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)


def _grey(images: Tensor) -> Tensor:
    """``[B, 1, H, W]`` luma (ITU-R 601, torchvision's weights) of RGB ``[B, 3, H, W]``."""
    w = images.new_tensor([0.299, 0.587, 0.114])
    return (images * w[None, :, None, None]).sum(dim=1, keepdim=True)


class ColorJitter(Transform):
    """Colour jitter with probability ``p``: brightness × U(1 ± brightness), contrast about
    each image's mean grey × U(1 ± contrast), saturation about each pixel's grey ×
    U(1 ± saturation), hue rotated by U(± hue) of a turn in YIQ's chroma plane (torchvision
    shifts hue in HSV; the YIQ rotation is a cheaper approximation), then clipped to [0, 1].
    Applied in this fixed order (torchvision draws a random order). Grey images pass
    unchanged.

    Args:
        brightness, contrast, saturation: Relative ranges (SimCLR/BYOL: 0.4, 0.4, 0.2–0.4).
        hue: Range as a fraction of a full turn (SimCLR/BYOL: 0.1).
        p: Probability that an image is jittered (SimCLR/BYOL: 0.8).
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, p: float = 0.8) -> None:
        number = ek.config.number
        self.brightness = number("brightness", brightness, low=0.0, high=1.0)
        self.contrast = number("contrast", contrast, low=0.0, high=1.0)
        self.saturation = number("saturation", saturation, low=0.0, high=1.0)
        self.hue = number("hue", hue, low=0.0, high=0.5)
        self.p = number("jitter", p, low=0.0, high=1.0)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        b, c = images.shape[:2]
        if c != 3 or self.p == 0:
            return images
        u = torch.rand(5, b, generator=g, device=images.device, dtype=images.dtype) * 2 - 1

        def per_image(t: Tensor) -> Tensor:
            return t[:, None, None, None]

        x = images * per_image(1 + self.brightness * u[0])
        mean = _grey(x).mean(dim=(2, 3), keepdim=True)                         # [b, 1, 1, 1]
        x = (x - mean) * per_image(1 + self.contrast * u[1]) + mean
        grey = _grey(x)
        x = (x - grey) * per_image(1 + self.saturation * u[2]) + grey
        if self.hue > 0:  # rotate (I, Q) about the luma axis
            to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                                   [0.211, -0.523, 0.312]])
            yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
            angle = u[3] * self.hue * 2 * math.pi
            cos, sin = per_image(torch.cos(angle))[:, 0], per_image(torch.sin(angle))[:, 0]
            i, q = yiq[:, 1], yiq[:, 2]
            yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
            x = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)
        x = x.clamp(0.0, 1.0)
        on = per_image((u[4] + 1) / 2 < self.p)
        return torch.where(on, x, images)


class Grayscale(Transform):
    """With probability ``p`` replace an RGB image by its luma in all three channels
    (SimCLR/BYOL: 0.2). Grey images pass unchanged."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = ek.config.number("grayscale", p, low=0.0, high=1.0)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        b, c = images.shape[:2]
        if c != 3 or self.p == 0:
            return images
        on = torch.rand(b, generator=g, device=images.device) < self.p
        return torch.where(on[:, None, None, None], _grey(images).expand_as(images), images)


class Blur(Transform):
    """Gaussian blur with probability ``p``, σ ~ U(``sigma``), kernel side about a tenth of
    the image's (odd, at least 3), as SimCLR; one separable, grouped convolution for the
    batch (each image its own σ), reflect-padded.

    Args:
        p: Probability that an image is blurred (SimCLR: 0.5).
        sigma: ``(low, high)`` of σ in pixels (SimCLR: 0.1 to 2.0).
    """

    def __init__(self, p: float = 0.5, sigma: Sequence[float] = (0.1, 2.0)) -> None:
        self.p = ek.config.number("blur", p, low=0.0, high=1.0)
        lo, hi = (float(s) for s in sigma)
        if not 0 < lo <= hi:
            raise ek.errors.ConfigError(f"blur: sigma must be (low, high) with 0 < low <= high, "
                                        f"got {tuple(sigma)}")
        self.sigma = (lo, hi)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        if self.p == 0:
            return images
        b, c, h, w = images.shape
        k = max(3, (min(h, w) // 10) | 1)
        sigma = _uniform(b, *self.sigma, g, images)                             # [b]
        on = torch.rand(b, generator=g, device=images.device) < self.p
        r = torch.arange(k, device=images.device, dtype=images.dtype) - k // 2
        kernel = torch.exp(-r[None, :] ** 2 / (2 * sigma[:, None] ** 2))       # [b, k]
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        kernel = kernel.repeat_interleave(c, dim=0)                             # [b·c, k]
        x = images.reshape(1, b * c, h, w)
        pad = k // 2
        x = nnf.conv2d(nnf.pad(x, (pad, pad, 0, 0), mode="reflect"),
                       kernel[:, None, None, :], groups=b * c)
        x = nnf.conv2d(nnf.pad(x, (0, 0, pad, pad), mode="reflect"),
                       kernel[:, None, :, None], groups=b * c)
        return torch.where(on[:, None, None, None], x.reshape(b, c, h, w), images)


def photo_views(crop_scale: float = 0.2, flip: float = 0.5, jitter: float = 0.8,
                grayscale: float = 0.2, blur: float = 0.5) -> Compose:
    """The SimCLR/BYOL views for RGB photographs: resized crop and flip, colour jitter
    (0.4, 0.4, 0.4, 0.1 with probability ``jitter``), grey-scale, Gaussian blur.

    Args:
        crop_scale: Smallest crop area fraction.
        flip: Probability of a horizontal flip.
        jitter: Probability of colour jitter.
        grayscale: Probability of grey-scale.
        blur: Probability of blur.
    """
    return Compose([ResizedCrop(crop_scale, flip), ColorJitter(p=jitter), Grayscale(grayscale),
                    Blur(blur)])


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
