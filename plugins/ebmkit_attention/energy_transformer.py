"""``attention.transformer``: an energy transformer (Hoover et al. 2023) on image patches.

Each image is cut into square patches of ``patch_size`` pixels; each patch becomes a token
x_C (its visible pixels, which of them are visible, and a position embedding). The tokens
then evolve by gradient descent on one energy,

    g_C = γ (x_C − mean(x_C)) / √(var(x_C) + ε) + δ                          (energy layer norm)
    E_att = −β⁻¹ Σ_h Σ_C log Σ_{B≠C} exp(β ⟨W_Q^h g_C, W_K^h g_B⟩)          (attention energy)
    E_hn  = −½ Σ_C Σ_μ relu(ξ_μᵀ g_C)²                                        (Hopfield memory)
    E(x)  = E_att + E_hn,        x ← x − α ∇_x E(x)    for ``steps`` steps,

and the final tokens' normalised states are decoded into pixels. One forward pass is thus
``steps`` descent steps on one scalar: the attention and the memory (MLP) blocks of a
transformer are the gradients of its two energy terms. The whole chain is trained through
the unrolled steps to fill in hidden patches (masked-image modelling).

Where this differs from the paper: Hoover et al. descend along −∂E/∂g (which lowers E in
continuous time because ∂g/∂x is positive semi-definite); we descend along the exact
gradient −∇_x E = −(∂g/∂x)ᵀ ∂E/∂g, plain gradient descent on one function, so a small
enough step size lowers E at every discrete step. The step size α is learned (kept in
(0, ``max_step``)); ``predict(x, return_energies=True)`` returns E after every step so the
descent can be checked, and the tests check it on held-out digits. Also simpler than the
paper: one shared block (the paper's default too), no CLS token, a small MLP decoder per token.

The masked-image conventions are ``masked.image``'s: x is y with hidden pixels set to NaN,
in y's shape; ``energy(y, x=x)`` is the squared error summed over x's NaN entries, ``[B]``;
``predict(x)`` returns y's shape with every NaN filled and the visible entries unchanged.

Axis legend: b batch, t tokens (patches), c channels, h heads, d per-head dimension,
k token dimension, m memories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as nnf
from einops import einsum, rearrange
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.errors import ConfigError

__all__ = ["EnergyTransformer", "EnergyTransformerConfig", "MaskedPatches", "patchify",
           "unpatchify"]


@dataclass
class EnergyTransformerConfig:
    """The energy transformer's options (defaults: 8×8 digits, 2×2 patches)."""

    image_shape: list[int] = field(default_factory=lambda: [1, 8, 8])  # [C, H, W]
    patch_size: int = 2
    dim: int = 64  # token width
    heads: int = 4
    head_dim: int = 16
    memories: int = 128  # Hopfield memory patterns ξ_μ
    steps: int = 6  # descent steps per forward pass
    step_size: float = 0.01  # initial α
    max_step: float = 0.5  # α stays in (0, max_step)
    beta: float | None = None  # attention inverse temperature (None: 1/√head_dim)
    mask_ratio: float = 0.5  # share of patches hidden in training and in the metrics
    decoder_hidden: int = 128  # width of the decoder's hidden layer (0: a linear decoder)
    seed: int = 0  # the metrics' masks


# ---------------------------------------------------------------------------------- patches
def patchify(images: Tensor, p: int) -> Tensor:
    """``[b, c, H, W]`` → ``[b, t, c·p·p]`` tokens, row-major over the patch grid."""
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=p, p2=p)


def unpatchify(tokens: Tensor, shape: tuple[int, int, int], p: int) -> Tensor:
    """Inverse of ``patchify``: ``[b, t, c·p·p]`` → ``[b, c, H, W]``."""
    c, hh, ww = shape
    return rearrange(tokens, "b (h w) (c p1 p2) -> b c (h p1) (w p2)", h=hh // p, w=ww // p,
                     c=c, p1=p, p2=p)


class EnergyTransformer(ek.EnergyModel):
    """An energy transformer that completes hidden image patches.

    Example:
        >>> import torch, ebmkit as ek
        >>> et = ek.get_model("attention.transformer", steps=3)
        >>> x = torch.rand(2, 64); x[:, :16] = float("nan")     # hide the top two rows
        >>> y_hat, energies = et.predict(x, return_energies=True)
        >>> y_hat.shape, energies.shape, bool(torch.isnan(y_hat).any())
        (torch.Size([2, 64]), torch.Size([4, 2]), False)
    """

    name = "attention.transformer"
    config_class = EnergyTransformerConfig

    def __init__(self, cfg: EnergyTransformerConfig) -> None:
        super().__init__()
        who = "attention.transformer"
        shape = list(cfg.image_shape)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ConfigError(f"{who}: image_shape must be [C, H, W] of positive ints, got "
                              f"{cfg.image_shape!r}")
        for key in ("patch_size", "dim", "heads", "head_dim", "memories", "steps"):
            ek.config.at_least(key, getattr(cfg, key), 1, who=who)
        p = cfg.patch_size
        if shape[1] % p or shape[2] % p:
            raise ConfigError(f"{who}: patch_size={p} must divide the image's height and width "
                              f"{shape[1]}×{shape[2]}")
        ek.config.number("max_step", cfg.max_step, low=0.0, low_open=True, who=who)
        ek.config.number("step_size", cfg.step_size, low=0.0, high=cfg.max_step, low_open=True,
                         high_open=True, who=who)
        ek.config.number("mask_ratio", cfg.mask_ratio, low=0.0, high=1.0, low_open=True,
                         high_open=True, who=who)
        if cfg.beta is not None:
            ek.config.number("beta", cfg.beta, low=0.0, low_open=True, who=who)
        self.cfg = cfg
        self.image_shape = tuple(shape)
        self.tokens = (shape[1] // p) * (shape[2] // p)
        self.patch_dim = shape[0] * p * p
        self.beta = cfg.beta if cfg.beta is not None else 1.0 / math.sqrt(cfg.head_dim)
        g = torch.Generator().manual_seed(0)
        k, hd = cfg.dim, cfg.heads * cfg.head_dim
        self.embed = nn.Linear(2 * self.patch_dim, k)  # [pixels · visible, visible] → token
        self.pos = nn.Parameter(0.5 * torch.randn(self.tokens, k, generator=g))  # [t, k]
        self.gamma = nn.Parameter(torch.ones(()))  # energy layer norm (scalar γ, vector δ)
        self.delta = nn.Parameter(torch.zeros(k))
        self.wq = nn.Parameter(torch.randn(cfg.heads, cfg.head_dim, k, generator=g) / math.sqrt(k))
        self.wk = nn.Parameter(torch.randn(cfg.heads, cfg.head_dim, k, generator=g) / math.sqrt(k))
        self.xi = nn.Parameter(torch.randn(cfg.memories, k, generator=g) / math.sqrt(k))  # [m, k]
        # α = max_step · sigmoid(a): positive and bounded, learned with the rest.
        r = cfg.step_size / cfg.max_step
        self.step_logit = nn.Parameter(torch.tensor(math.log(r / (1 - r))))
        ek.config.at_least("decoder_hidden", cfg.decoder_hidden, 0, who=who)
        if cfg.decoder_hidden:
            self.decode = nn.Sequential(nn.Linear(k, cfg.decoder_hidden), nn.GELU(),
                                        nn.Linear(cfg.decoder_hidden, self.patch_dim))
        else:
            self.decode = nn.Linear(k, self.patch_dim)
        self.register_buffer("no_self", torch.eye(self.tokens, dtype=torch.bool), persistent=False)
        del hd

    # ------------------------------------------------------------------ the energy of tokens
    @property
    def step_size(self) -> Tensor:
        """The learned step size α (a scalar tensor)."""
        return self.cfg.max_step * torch.sigmoid(self.step_logit)

    def layer_norm(self, x: Tensor) -> Tensor:
        """g = γ (x − mean) / √(var + ε) + δ over each token's width."""
        xc = x - x.mean(dim=-1, keepdim=True)
        return self.gamma * xc / torch.sqrt(xc.square().mean(dim=-1, keepdim=True) + 1e-5) \
            + self.delta

    def _attention_logits(self, g: Tensor) -> Tensor:
        q = einsum(self.wq, g, "h d k, b t k -> b h t d")
        kk = einsum(self.wk, g, "h d k, b t k -> b h t d")
        logits = self.beta * q @ kk.transpose(-1, -2)  # [b, h, t(query C), t(key B)]
        return logits.masked_fill(self.no_self, float("-inf"))  # B ≠ C

    def token_energy(self, tokens: Tensor, parts: bool = False) -> Tensor | dict[str, Tensor]:
        """E(x) = E_att + E_hn of tokens ``[b, t, k]``, one per image ``[b]`` (or both terms)."""
        g = self.layer_norm(tokens)
        e_att = -torch.logsumexp(self._attention_logits(g), dim=-1).sum(dim=(1, 2)) / self.beta
        e_hn = -0.5 * nnf.relu(g @ self.xi.t()).square().sum(dim=(1, 2))  # [b]
        if parts:
            return {"attention": e_att, "hopfield": e_hn}
        return e_att + e_hn

    def attention(self, tokens: Tensor) -> Tensor:
        """Attention weights of the energy's log-sum-exp at ``tokens``: ``[b, h, t, t]``."""
        return torch.softmax(self._attention_logits(self.layer_norm(tokens)), dim=-1)

    # ------------------------------------------------------------------ inputs and tokens
    def _images(self, t: Tensor, what: str, nan_ok: bool, values: bool = True
                ) -> tuple[Tensor, tuple[int, ...]]:
        """t as images ``[B, C, H, W]`` and its own shape; checks the shape, device and (when
        ``values``: one host sync, at the public entries only) the values."""
        c, hh, ww = self.image_shape
        if not isinstance(t, Tensor):
            raise ConfigError(f"attention.transformer: {what} must be a tensor, got "
                              f"{type(t).__name__}")
        flat = c * hh * ww
        if not ((t.dim() == 2 and t.shape[1] == flat) or (t.dim() == 4 and tuple(t.shape[1:])
                                                          == self.image_shape)) or not len(t):
            raise ConfigError(f"attention.transformer: {what} must be [B, {flat}] or "
                              f"[B, {c}, {hh}, {ww}] (image_shape={list(self.image_shape)}, "
                              f"B ≥ 1), got {list(t.shape)}")
        ek.model.check_input(t, f"attention.transformer: {what}", finite=False,
                             device=self.pos.device)
        if values and bool((torch.isinf(t) if nan_ok else ~torch.isfinite(t)).any()):
            raise ConfigError(f"attention.transformer: {what} contains "
                              f"{'infinite' if nan_ok else 'NaN or infinite'} values; expected "
                              f"finite numbers{', with NaN where hidden' if nan_ok else ''}")
        return t.reshape(t.shape[0], c, hh, ww), tuple(t.shape)

    def embed_tokens(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens ``[b, t, k]`` of images ``[b, c, H, W]`` with NaN where hidden, and the patch
        pixels' visibility ``[b, t, c·p·p]``."""
        patches = patchify(images, self.cfg.patch_size)  # [b, t, c p p]
        visible = ~torch.isnan(patches)
        vis = visible.to(self.pos.dtype)
        feats = torch.cat([torch.nan_to_num(patches, nan=0.0).to(self.pos.dtype), vis], dim=-1)
        return self.embed(feats) + self.pos, visible

    def descend(self, tokens: Tensor, steps: int | None = None, create_graph: bool = False
                ) -> tuple[Tensor, Tensor]:
        """``steps`` gradient-descent steps x ← x − α ∇_x E(x); returns the final tokens and the
        energy before each step and after the last ``[steps + 1, b]``."""
        steps = self.cfg.steps if steps is None else steps
        alpha = self.step_size
        energies = []
        x = tokens
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            for _ in range(steps):
                e = self.token_energy(x)  # [b]
                (grad,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
                energies.append(e if create_graph else e.detach())
                x = x - alpha * grad
                if not create_graph:
                    x = x.detach().requires_grad_(True)
            energies.append(self.token_energy(x) if create_graph else self.token_energy(x).detach())
        return x, torch.stack(energies)

    def complete(self, images: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """Images ``[b, c, H, W]`` with NaN where hidden → every pixel predicted (visible ones
        too) ``[b, c, H, W]``, and the energy trace ``[steps + 1, b]``."""
        tokens, _ = self.embed_tokens(images)
        final, energies = self.descend(tokens, create_graph=create_graph)
        pixels = self.decode(self.layer_norm(final))  # [b, t, c p p]
        return unpatchify(pixels, self.image_shape, self.cfg.patch_size), energies

    # ------------------------------------------------------------------ the masked-image contract
    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """Squared error of the completion of x summed over x's NaN entries, ``[B]``.

        Raises:
            ConfigError: x is missing or not y's shape.
        """
        if x is None:
            raise ConfigError("attention.transformer.energy needs x: y with the hidden pixels "
                              "set to NaN (mask(y) makes one)")
        yi, shape = self._images(y, "y", nan_ok=False)
        xi, xshape = self._images(x, "x", nan_ok=True)
        if xshape != shape:
            raise ConfigError(f"attention.transformer: x must have y's shape {list(shape)}, got "
                              f"{list(xshape)}")
        # Under autograd (train or eval mode alike) the descent keeps its graph, so E has a
        # gradient to every parameter; under no_grad nothing is recorded.
        pred, _ = self.complete(xi, create_graph=torch.is_grad_enabled())
        hidden = torch.isnan(xi)
        err = torch.where(hidden, pred - yi, torch.zeros((), dtype=pred.dtype, device=pred.device))
        return err.square().flatten(1).sum(dim=1)

    def predict(self, x: Tensor, return_energies: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """x with every NaN filled (visible entries unchanged), in x's shape; with
        ``return_energies`` also the token energy before and after each step ``[steps+1, B]``."""
        xi, shape = self._images(x, "x", nan_ok=True)
        with torch.no_grad():
            pred, energies = self.complete(xi)
        out = torch.where(torch.isnan(xi), pred.to(xi.dtype), xi).reshape(shape)
        return (out, energies) if return_energies else out

    def reconstruct(self, y: Tensor) -> Tensor:
        """The completion of ``mask(y)`` (the pictures of ``ebmkit train``/``sample``)."""
        self._images(y, "y", nan_ok=False)
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        return self.predict(self.mask(y, generator=gen))

    def mask(self, y: Tensor, ratio: float | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """y with ``ratio`` (default ``mask_ratio``) of its patches set to NaN, in y's shape;
        the same number of patches per image, at random places (drawn on the generator's
        device, else on y's)."""
        images, shape = self._images(y, "y", nan_ok=False)
        return self._mask(images, ratio, generator).reshape(shape)

    def _mask(self, images: Tensor, ratio: float | None = None,
              generator: torch.Generator | None = None) -> Tensor:
        """``mask`` on checked images ``[b, c, H, W]`` (no host sync)."""
        ratio = self.cfg.mask_ratio if ratio is None else ratio
        b, p = images.shape[0], self.cfg.patch_size
        k = max(1, round(ratio * self.tokens))
        device = generator.device if generator is not None else images.device
        order = torch.rand(b, self.tokens, generator=generator, device=device)
        order = order.to(images.device).argsort(dim=1)[:, :k]
        hide = torch.zeros(b, self.tokens, dtype=torch.bool, device=images.device)
        hide = hide.scatter_(1, order, True)[:, :, None].expand(b, self.tokens, self.patch_dim)
        pixels = unpatchify(hide.to(images.dtype), self.image_shape, p).bool()
        return images.masked_fill(pixels, float("nan"))

    def plots(self, data: Any, out: Any) -> list[Any]:
        """The family's pictures of this model on ``data`` into directory ``out`` (what
        ``ebmkit train`` and ``ebmkit sample`` write): see ``ebmkit_attention.plots``."""
        from .plots import plots

        return plots(self, data, out)

    # ------------------------------------------------------------------ training
    def default_strategy(self) -> Any:
        return MaskedPatches()

    def metrics(self) -> dict[str, Any]:
        from .metrics import MaskedPSNR

        return {"psnr": MaskedPSNR()}


class MaskedPatches(ek.strategies.Strategy):
    """Masked-patch training: hide ``mask_ratio`` of each image's patches, complete them through
    the unrolled descent, minimise the mean squared error on the hidden pixels (``energy(y,
    x=x)`` per image, averaged). Logs ``e_pos`` and the token energies before and after."""

    def __init__(self) -> None:
        self._checked = False

    def __call__(self, model: EnergyTransformer, batch: dict[str, Tensor]) -> ek.StepOutput:
        # shape and device checked per step, the values once per run (a host sync)
        y, _ = model._images(batch["y"], "batch['y']", nan_ok=False, values=not self._checked)
        self._checked = True
        images = model._mask(y)
        pred, energies = model.complete(images, create_graph=True)
        hidden = torch.isnan(images)
        loss = torch.where(hidden, pred - y, 0.0).square().sum() / hidden.sum()
        return ek.StepOutput(loss, {"e_pos": loss.detach(),
                                    "e_tokens_start": energies[0].mean().detach(),
                                    "e_tokens_end": energies[-1].mean().detach(),
                                    "step_size": model.step_size.detach()})

    def __repr__(self) -> str:
        return "MaskedPatches()"
