"""``masked.image``: masked-patch modelling of images, read as an energy-based model.

x is y with its hidden pixels set to NaN (scikit-learn imputers' convention), in y's shape;
the network ŷ(x) rebuilds every pixel from the visible ones, and

    E(x, y) = Σ_{i : x_i is NaN} (ŷ_i(x) − y_i)²          (one value per image)

so ``predict(x)`` = argmin_y E fills the NaN entries with ŷ and leaves the visible ones
unchanged (inpainting). Training hides a random ``mask_ratio`` of the ``patch_size`` ×
``patch_size`` patches of each image and minimises the mean of E over the batch.

The network is the ``net`` slot: it receives ``[b, 2c, H, W]``, the values with NaN → 0
and the per-pixel hidden flags stacked on the channels, and returns ŷ ``[b, c, H, W]``
(any registered image-to-image network fits, e.g. ``net="conv"``). The default,
``masked.patch_transformer``, is BERT on patches (not MAE: the encoder sees every
position, hidden ones included), axis legend ``b`` batch, ``c`` channels, ``g``/``w``
patch-grid rows/columns, ``p``/``q`` pixels within a patch, ``n`` patches, ``d`` width:

    [b, 2c, H, W] → patches [b, n, 2c·p·q] → linear + position embedding [b, n, d]
      → n_layer pre-LN transformer blocks → LN → linear [b, n, c·p·q] → ŷ [b, c, H, W]

Feeding the per-pixel hidden flags (not one learned mask token per patch) lets any NaN
pattern in, not only whole patches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

import ebmkit as ek

from .corruption import hide_patches
from .options import MaskedOptions

__all__ = ["MaskedImage", "MaskedImageConfig", "MaskedImageStrategy", "PatchTransformer",
           "patch_transformer"]

WHO = "masked.image"


@dataclass
class MaskedImageConfig(MaskedOptions):
    """Options of ``masked.image``.

    Attributes:
        image_shape: ``[C, H, W]`` (``ebmkit train`` reads it off the data).
        patch_size: Side of the square patches the model hides and reads, in pixels; None
            picks 2 for images of at most 16 × 16 pixels, else 4 (resolved in ``config()``).
        mask_ratio: Fraction of patches hidden in training and evaluation, in (0, 1).
        n_layer: Transformer blocks (of the default ``net``).
        n_head: Attention heads (of the default ``net``).
        d_model: Width (of the default ``net``).
        eval_seed: Seed of the fixed hiding that ``metrics()`` and ``reconstruct`` use.
        net: The slot (``ek.networks``): ``[2C, H, W]`` (values, hidden flags) → ``[C, H, W]``;
            None: ``masked.patch_transformer`` with the options above.
    """

    image_shape: list[int] | None = None
    patch_size: int | None = None
    mask_ratio: float = 0.5
    net: str | dict[str, Any] | nn.Module | None = None


class _Block(nn.Module):
    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_attn, self.ln_mlp = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, h: Tensor) -> Tensor:                                  # h: [b, n, d]
        q, k, v = rearrange(self.qkv(self.ln_attn(h)), "b n (three h e) -> three b h n e",
                            three=3, h=self.n_head)
        a = F.scaled_dot_product_attention(q, k, v)
        h = h + self.proj(rearrange(a, "b h n e -> b n (h e)"))
        return h + self.mlp(self.ln_mlp(h))


class PatchTransformer(nn.Module):
    """``[b, 2c, H, W] -> [b, c, H, W]``: a pre-LN transformer over ``patch_size`` patches
    (see the module docstring)."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], patch_size: int,
                 n_layer: int = 2, n_head: int = 4, d_model: int = 64) -> None:
        super().__init__()
        who = "network 'masked.patch_transformer'"
        c_in, h, w = ek.config.image_shape(list(in_shape), who=who, name="in_shape")
        c, oh, ow = ek.config.image_shape(list(out_shape), who=who, name="out_shape")
        p = ek.config.at_least("patch_size", patch_size, 1, who=who)
        ek.config.attention_dims(n_layer, n_head, d_model, who=who)
        if (oh, ow) != (h, w) or h % p or w % p:
            raise ek.errors.ConfigError(f"{who}: patch_size {p} must divide the height and "
                                        f"width, the same in and out; got in_shape "
                                        f"{list(in_shape)}, out_shape {list(out_shape)}")
        self.p, self.grid, self.n_head = p, (h // p, w // p), n_head
        n = self.grid[0] * self.grid[1]
        self.embed = nn.Linear(c_in * p * p, d_model)
        self.pos = nn.Parameter(torch.randn(n, d_model))
        self.blocks = nn.ModuleList(_Block(d_model, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, c * p * p)

    def forward(self, t: Tensor) -> Tensor:
        p = self.p
        tokens = rearrange(t, "b c (g p) (w q) -> b (g w) (c p q)", p=p, q=p)
        h = self.embed(tokens) + self.pos                                      # [b, n, d]
        for block in self.blocks:
            h = block(h)
        out = self.out(self.ln_f(h))                                           # [b, n, c·p·q]
        return rearrange(out, "b (g w) (c p q) -> b c (g p) (w q)", g=self.grid[0], p=p, q=p)


def patch_transformer(*, in_shape: Sequence[int], out_shape: Sequence[int], patch_size: int = 2,
                      n_layer: int = 2, n_head: int = 4, d_model: int = 64) -> PatchTransformer:
    """masked.image's default net: a transformer over image patches, image → image."""
    return PatchTransformer(in_shape, out_shape, patch_size, n_layer, n_head, d_model)


class MaskedImage(ek.EnergyModel):
    """Masked-patch image model: E(x, y) = squared error of ŷ(x) on x's NaN pixels.

    Args:
        cfg: The options (see [`MaskedImageConfig`][ebmkit_masked.image.MaskedImageConfig]).
    """

    name = WHO
    config_class = MaskedImageConfig
    slots = {"net": "masked.patch_transformer (patch_size, n_layer, n_head, d_model), "
                    "[2C, H, W] (values with NaN → 0, hidden flags) → [C, H, W]"}

    def __init__(self, cfg: MaskedImageConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or MaskedImageConfig()
        shape = ek.config.image_shape(
            cfg.image_shape if cfg.image_shape is not None else [1, 8, 8], who=WHO)
        c, h, w = shape
        if cfg.patch_size is None:
            cfg.patch_size = 2 if h * w <= 256 else 4
        p = ek.config.at_least("patch_size", cfg.patch_size, 1, who=WHO)
        if h % p or w % p:
            raise ek.errors.ConfigError(f"{WHO}: patch_size {p} must divide the image's height "
                                        f"and width, got image_shape {list(shape)}")
        ek.config.number("mask_ratio", cfg.mask_ratio, low=0.0, high=1.0, low_open=True,
                         high_open=True, who=WHO)
        cfg.check_transformer(WHO)
        cfg.image_shape = [c, h, w]
        self.cfg = cfg
        self.image_shape = (c, h, w)
        self.grid = (h // p, w // p)
        self.net = ek.networks.build_slot(
            "net", cfg.net, in_shape=(2 * c, h, w), out_shape=(c, h, w), who=WHO,
            default={"name": "masked.patch_transformer", "patch_size": p,
                     "n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.d_model})

    # ------------------------------------------------------------------ input checks
    def _images(self, t: Tensor, what: str, hidden: bool = False) -> Tensor:
        """t as ``[B, C, H, W]`` (from flat ``[B, C·H·W]`` or image shape), checked: a
        non-empty batch on the model's device, finite (``hidden``: NaN marks hidden pixels,
        only ±inf is refused). The value check is skipped on an accelerator while autograd is
        on (a training step), where it would be a host sync per step."""
        if not isinstance(t, Tensor):
            raise ek.errors.ConfigError(f"{WHO}: {what} must be a tensor, got {type(t).__name__}")
        c, h, w = self.image_shape
        if not t.is_floating_point():
            raise ek.errors.ConfigError(f"{WHO}: {what} must be a floating-point image tensor, "
                                        f"got {t.dtype}")
        if tuple(t.shape[1:]) == (c * h * w,) and t.dim() == 2:
            img = t.view(-1, c, h, w)
        elif tuple(t.shape[1:]) == (c, h, w) and t.dim() == 4:
            img = t
        else:
            raise ek.errors.ConfigError(f"{WHO}: {what} must have shape [B, {c * h * w}] or "
                                        f"[B, {c}, {h}, {w}], got {list(t.shape)}")
        if img.shape[0] == 0:
            raise ek.errors.ConfigError(f"{WHO}: {what} is an empty batch {list(t.shape)}; "
                                        "expected at least one image")
        ek.model.check_input(img, f"{WHO}: {what}", device=self.device, finite=False)
        if t.device.type == "cpu" or not torch.is_grad_enabled():
            if bool(torch.isinf(img).any() if hidden else ~torch.isfinite(img).all()):
                raise ek.errors.ConfigError(
                    f"{WHO}: {what} contains " + ("infinite values; expected numbers, with NaN "
                                                  "where a pixel is hidden" if hidden else
                                                  "NaN or infinite values; expected finite "
                                                  "pixels"))
        return img

    # ------------------------------------------------------------------ the network
    def reconstruction(self, x: Tensor) -> Tensor:
        """ŷ(x): every pixel rebuilt from x's visible ones, in x's shape (unchecked)."""
        img = self._images(x, "x", hidden=True)
        hidden = torch.isnan(img)
        values = torch.nan_to_num(img, nan=0.0)
        tokens = torch.cat([values, hidden.to(values.dtype)], dim=1)           # [b, 2c, H, W]
        return self.net(tokens).reshape(x.shape)                               # ŷ

    def corrupt(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x: ``y`` with ``mask_ratio`` of its patches NaN (random, or fixed by ``generator``)."""
        img = self._images(y, "y")
        return hide_patches(img, self.image_shape, self.cfg.patch_size, self.cfg.mask_ratio,
                            generator).reshape(y.shape)

    # ------------------------------------------------------------------ the energy
    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(x, y) = Σ over the NaN entries of x of (ŷ(x) − y)², ``[B]``.

        Raises:
            ConfigError: x missing, or y / x of the wrong shape or dtype.
        """
        if x is None:
            raise ek.errors.ConfigError(
                f"{WHO}: energy(y, x=x) needs x, y with its hidden pixels set to NaN; e.g. "
                f"x = model.corrupt(y)")
        self._images(y, "y")
        if not isinstance(x, Tensor) or x.shape != y.shape:
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ek.errors.ConfigError(f"{WHO}: x must be a tensor of y's shape "
                                        f"{list(y.shape)}, got {got}")
        if x.shape != y.shape:
            raise ek.errors.ConfigError(f"{WHO}: x and y must have the same shape, got x "
                                        f"{list(x.shape)} and y {list(y.shape)}")
        self._images(x, "x", hidden=True)  # before any arithmetic on x
        hidden = torch.isnan(x)
        err = (self.reconstruction(x) - y).square().masked_fill(~hidden, 0.0)
        return err.flatten(1).sum(1)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Inpainting: x with every NaN replaced by ŷ(x); visible entries unchanged."""
        self._images(x, "x", hidden=True)
        return torch.where(torch.isnan(x), self.reconstruction(x), x)

    @torch.no_grad()
    def reconstruct(self, y: Tensor) -> Tensor:
        """Hide ``mask_ratio`` of y's patches (fixed by ``eval_seed``) and inpaint them."""
        self._images(y, "y")
        gen = torch.Generator(device=y.device).manual_seed(self.cfg.eval_seed)
        return self.predict(self.corrupt(y, generator=gen))

    @torch.no_grad()
    def plots(self, data: Any, out: str | os.PathLike[str], n: int = 8) -> list[Path]:
        """``inpainting.png``: n images of ``data`` as masked input (hidden pixels red) /
        inpainting / truth, one row each; what ``ebmkit train`` and ``ebmkit sample`` draw."""
        plt = ek.viz.pyplot()
        y = data.y[:n].to(self.device)
        gen = torch.Generator(device=y.device).manual_seed(self.cfg.eval_seed)
        x = self.corrupt(y, generator=gen)
        rows = {"masked input": x, "inpainting": self.predict(x), "truth": y}
        c, h, w = self.image_shape
        cmap = plt.get_cmap("gray").copy()  # the data's grey scale: 0 black, 1 white
        cmap.set_bad("tab:red")
        fig, axes = plt.subplots(3, len(y), figsize=(1.1 * len(y), 3.6), squeeze=False)
        for r, (label, imgs) in enumerate(rows.items()):
            imgs = imgs.detach().float().cpu().reshape(-1, c, h, w)
            for i, ax in enumerate(axes[r]):
                img = imgs[i].permute(1, 2, 0).squeeze(-1).numpy()
                ax.imshow(img if c == 1 else img.clip(0, 1), cmap=cmap, vmin=0, vmax=1,
                          interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            axes[r][0].set_ylabel(label, fontsize=8)
        fig.suptitle(f"{WHO}: {self.cfg.mask_ratio:.0%} of {self.cfg.patch_size}×"
                     f"{self.cfg.patch_size} patches hidden", fontsize=9)
        return [ek.viz.save_figure(fig, Path(out) / "inpainting.png")]

    def default_strategy(self) -> MaskedImageStrategy:
        return MaskedImageStrategy()

    def metrics(self) -> dict:
        """PSNR on the hidden pixels and the mean energy, on a hiding fixed by ``eval_seed``."""
        from .metrics import HiddenPSNR

        return {"hidden": HiddenPSNR(self.cfg.eval_seed)}


class MaskedImageStrategy(ek.strategies.Strategy):
    """Hide a random ``mask_ratio`` of each image's patches; minimise the mean energy
    (the squared error on the hidden pixels, summed per image). Logs ``e_pos``."""

    def __call__(self, model: MaskedImage, batch: dict[str, Tensor]) -> ek.StepOutput:
        y = batch["y"]
        e = model.energy(y, x=model.corrupt(y))
        loss = e.mean()
        return ek.StepOutput(loss, {"e_pos": loss.detach()})

    def __repr__(self) -> str:
        return "MaskedImageStrategy()"
