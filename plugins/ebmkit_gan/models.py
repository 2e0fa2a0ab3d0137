"""GANs as energy-based models: ``gan.dcgan`` and ``gan.ebgan``.

The discriminator is an energy E(y), low on data and high elsewhere; the generator G(z) is
a learned producer of contrastive samples, and training is a contrastive method whose
negatives are G's samples (see [`Adversarial`][ebmkit_gan.strategy.Adversarial]).

- ``gan.dcgan``: E(y) = −logit D(y) with the DCGAN discriminator, D(y) = σ(−E(y)).
- ``gan.ebgan``: E(y) = ‖y − AE(y)‖², an autoencoder's reconstruction error (Zhao, Mathieu
  & LeCun 2016), trained with the margin loss and the pulling-away term.

Axis letters in shape comments: B batch, Z latent, C channels, S image side, D = C·S·S.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

import ebmkit as ek
from ebmkit.config import at_least, number
from ebmkit.errors import ConfigError
from ebmkit.model import check_input

from .networks import AutoencoderDiscriminator, init_weights, plan

__all__ = ["DCGAN", "DCGANConfig", "EBGAN", "EBGANConfig", "GeneratorNegatives"]

# Data sets the classifier scores know, by image shape.
_EVAL_DATA = {(1, 8, 8): "digits", (1, 28, 28): "fashion-mnist"}


@dataclass
class DCGANConfig:
    """DCGAN: a transposed-convolution generator against a convolutional energy."""

    image_shape: list[int] | None = None  # [C, S, S]; filled from the data by `ebmkit train`
    image_size: int | None = None  # S (default 8); or give image_shape
    channels: int | None = None  # C (default 1)
    latent_dim: int = 32
    g_width: int = 64
    d_width: int = 64
    loss: str = "non_saturating"  # minimax | non_saturating | hinge
    d_steps: int = 1
    g_steps: int = 1
    lr_d: float = 1e-3
    lr_g: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    margin: float = 1.0  # hinge margin
    spectral_norm: bool = False  # on the discriminator's layers (it has no batch norm)
    r1: float = 1.0  # γ of the R1 penalty on the discriminator's gradient at the data
    ema: float = 0.995  # decay of the generator's moving average that samples; 0: off
    eval_data: str | None = None  # data set of the classifier scores; None: by image shape
    eval_samples: int = 1000
    # slots (`ek.networks`): None (DCGAN's nets, sized by the options above), a registered
    # network name, {"name": ..., **options} or an nn.Module
    generator: str | dict[str, Any] | nn.Module | None = None  # (latent_dim,) → image_shape
    discriminator: str | dict[str, Any] | nn.Module | None = None  # image_shape → [B] (dcgan)


@dataclass
class EBGANConfig(DCGANConfig):
    """EBGAN: an autoencoder energy with a margin, and the pulling-away term."""

    loss: str = "margin"
    code_dim: int = 32
    # m per pixel: the loss uses m·D against the summed squared error (1/64: the former
    # summed margin of 1 at 8×8)
    margin: float = 0.015625
    pt_weight: float = 2.0  # w of the pulling-away term (the paper: 0.1; see EBGAN)
    spectral_norm: bool = False  # on the encoder's layers
    r1: float = 1.0  # γ of R1 on ‖∇_y E(y)‖² at the data (the paper has none; see EBGAN)
    # the autoencoder's normalisation: "sample" (GroupNorm per sample: E(y) depends on y
    # alone, in training too), "none", or "batch" (the paper's; batch statistics in the
    # adversarial loss, running statistics in `energy`)
    d_norm: str = "sample"
    # the autoencoder discriminator's slots: image_shape → (code_dim,) and back
    encoder: str | dict[str, Any] | nn.Module | None = None
    decoder: str | dict[str, Any] | nn.Module | None = None


class _GAN(ek.EnergyModel):
    """What both GAN families share: shapes, sampling, the strategy and the metrics."""

    config_class: type[DCGANConfig] = DCGANConfig
    generator: nn.Module
    discriminator: nn.Module

    def _resolve(self, cfg: DCGANConfig) -> None:
        who = self.name
        if cfg.image_shape is not None:
            shape = list(cfg.image_shape)
            if (len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0
                                       for v in shape)):
                raise ConfigError(f"{who}: image_shape must be [C, S, S] (positive integers), "
                                  f"got {cfg.image_shape!r}; {who} models images")
            c, h, w = shape
            if h != w:
                raise ConfigError(f"{who}: expected square images [C, S, S], got image_shape "
                                  f"{shape}")
            for name, given, have in (("image_size", cfg.image_size, h), ("channels", cfg.channels, c)):
                if given is not None and given != have:
                    raise ConfigError(f"{who}: {name}={given} does not match image_shape={shape} "
                                      f"(filled from the data by `ebmkit train`); drop one of them")
        else:
            h = 8 if cfg.image_size is None else cfg.image_size
            c = 1 if cfg.channels is None else cfg.channels
        at_least("channels", c, who=who)
        plan(h, who)  # a size the architecture cannot produce fails here, with the sizes it can
        cfg.image_shape, cfg.image_size, cfg.channels = [c, h, h], h, c
        for name in ("latent_dim", "g_width", "d_width", "d_steps", "g_steps", "eval_samples"):
            at_least(name, getattr(cfg, name), who=who)
        self.image_shape: tuple[int, int, int] = (c, h, h)
        self.flat_dim = c * h * h

    def _generator_slot(self, cfg: DCGANConfig) -> nn.Module:
        return ek.networks.build_slot(
            "generator", cfg.generator, in_shape=(cfg.latent_dim,), out_shape=self.image_shape,
            who=self.name, default={"name": "dcgan.generator", "width": cfg.g_width})

    def _check_players(self) -> None:
        """A generator whose images the discriminator cannot read fails at construction."""
        z = torch.zeros(2, self.cfg.latent_dim)
        with torch.no_grad():
            was = self.training
            self.eval()
            try:
                out = self.generator(z)
                want = (2, *self.image_shape)
                if tuple(out.shape) != want:
                    raise ConfigError(f"{self.name}: the generator makes images of shape "
                                      f"{list(out.shape[1:])} but the discriminator expects "
                                      f"{list(self.image_shape)} ([C, S, S])")
                e = self.discriminate(out)
                if tuple(e.shape) != (2,):
                    raise ConfigError(f"{self.name}: the discriminator must return one energy per "
                                      f"image, shape [B], got {list(e.shape)}")
            except RuntimeError as exc:
                raise ConfigError(f"{self.name}: the generator's output {list(self.image_shape)} "
                                  f"does not fit the discriminator: {exc}") from exc
            finally:
                self.train(was)

    # ------------------------------------------------------------------ shapes
    def as_images(self, y: Tensor) -> Tensor:
        """``[B, D]`` or ``[B, C, S, S]`` → ``[B, C, S, S]``; a clear error for anything else."""
        c, s, _ = self.image_shape
        if isinstance(y, Tensor) and y.dim() == 4 and tuple(y.shape[1:]) == self.image_shape:
            return check_input(y, "y", shape=(None, c, s, s), device=self.device, finite="auto")
        if isinstance(y, Tensor) and y.dim() == 2 and y.shape[1] == self.flat_dim:
            check_input(y, "y", shape=(None, self.flat_dim), device=self.device, finite="auto")
            return rearrange(y, "b (c h w) -> b c h w", c=c, h=s, w=s)
        got = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ConfigError(f"{self.name} models {c}×{s}×{s} images: y must be [B, {c}, {s}, {s}] "
                          f"or flat [B, {self.flat_dim}]; got {got}. Non-image data needs another "
                          f"family; other image sizes need image_shape=[C, S, S]")

    # ------------------------------------------------------------------ the energy
    def discriminate(self, images: Tensor, return_code: bool = False) -> Any:
        """E on images ``[B, C, S, S]`` → ``[B]`` (no input checks: the training hot path)."""
        raise NotImplementedError

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y), shape ``[B]``: low on data, high on what does not look like it."""
        if z is not None:
            raise ConfigError(f"{self.name}: the energy E(y) has no latent; z belongs to the "
                              f"generator (use generate(z))")
        return self.discriminate(self.as_images(y))

    # ------------------------------------------------------------------ the generator
    def latent(self, n: int, device: torch.device | str | None = None,
               dtype: torch.dtype | None = None, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I), shape ``[n, Z]``."""
        device = self.device if device is None else device
        if generator is not None and generator.device != torch.device(device):
            return torch.randn(n, self.cfg.latent_dim, generator=generator,
                               device=generator.device, dtype=dtype).to(device)
        return torch.randn(n, self.cfg.latent_dim, device=device, dtype=dtype, generator=generator)

    def generate(self, z: Tensor) -> Tensor:
        """G(z): ``[B, Z] -> [B, C, S, S]`` in [0, 1] (with its graph): the trained generator."""
        check_input(z, "z", shape=(None, self.cfg.latent_dim), device=self.device, finite="auto")
        return self.generator(z)

    def _init_ema(self) -> None:
        """The generator's exponential moving average Ḡ (Yazıcı et al. 2019; Karras et al.
        2018), what ``decode``/``sample`` run when ``ema`` > 0: a GAN's generator oscillates
        around the equilibrium, and the average of its recent weights sits closer to it."""
        number("ema", self.cfg.ema, low=0.0, high=1.0, who=self.name)
        self.generator_ema = copy.deepcopy(self.generator) if self.cfg.ema > 0 else None
        if self.generator_ema is not None:
            self.generator_ema.requires_grad_(False)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Ḡ ← ema·Ḡ + (1 − ema)·G on the weights; batch-norm statistics copied. Called by
        the ``Adversarial`` strategy after each generator step."""
        if self.generator_ema is not None:
            ek.train.ema_(self.generator_ema, self.generator, self.cfg.ema)

    @property
    def sampler_network(self) -> nn.Module:
        """The network ``decode``/``sample`` run: Ḡ when ``ema`` > 0, else G."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def decode(self, z: Tensor) -> Tensor:
        """Ḡ(z) (G(z) with ``ema=0``) flat, ``[B, D]``, in eval mode and without a graph."""
        check_input(z, "z", shape=(None, self.cfg.latent_dim), device=self.device)
        net = self.sampler_network
        with torch.no_grad(), _eval(net):
            return net(z.to(self.device)).flatten(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples Ḡ(z) (G(z) with ``ema=0``), z ~ N(0, I), flat ``[n, D]`` like the
        data, in [0, 1]."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{self.name}.sample: n must be a positive integer, got {n!r}")
        return self.decode(self.latent(n, generator=generator))

    def interpolate(self, z0: Tensor, z1: Tensor, steps: int = 8) -> Tensor:
        """Samples along the great circle from z0 to z1 (slerp): ``[B, steps, D]``.

        Slerp keeps the interpolants at the norm Gaussian latents have, so the middle of the
        path is as typical a z as its ends.
        """
        check_input(z0, "z0", shape=(None, self.cfg.latent_dim))
        check_input(z1, "z1", shape=tuple(z0.shape))
        if steps < 2:
            raise ConfigError(f"interpolate: steps must be >= 2, got {steps}")
        t = torch.linspace(0, 1, steps, device=z0.device).view(1, steps, 1)  # [1, T, 1]
        a, b = z0.unsqueeze(1), z1.unsqueeze(1)  # [B, 1, Z]
        cos = nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1 + 1e-6, 1 - 1e-6)
        omega = torch.acos(cos).unsqueeze(-1)  # [B, 1, 1]
        so = torch.sin(omega)
        z = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so  # [B, T, Z]
        out = self.decode(rearrange(z, "b t z -> (b t) z"))
        return rearrange(out, "(b t) d -> b t d", t=steps)

    def negatives(self, k: int = 1) -> GeneratorNegatives:
        """The generator as an ``ek.negatives`` generator (samples shaped like y)."""
        return GeneratorNegatives(self, k=k)

    # ------------------------------------------------------------------ training
    def default_strategy(self) -> Any:
        from .strategy import Adversarial

        cfg = self.cfg
        return Adversarial(loss=cfg.loss, d_steps=cfg.d_steps, g_steps=cfg.g_steps,
                           lr_d=cfg.lr_d, lr_g=cfg.lr_g, betas=(cfg.beta1, cfg.beta2),
                           margin=self.loss_margin, pt_weight=getattr(cfg, "pt_weight", 0.0),
                           r1=cfg.r1)

    @property
    def loss_margin(self) -> float:
        """The margin m the loss uses, in the energy's units."""
        return float(self.cfg.margin)

    def eval_data(self) -> str | None:
        """The data set the classifier scores compare with (None: no scores)."""
        return self.cfg.eval_data or _EVAL_DATA.get(self.image_shape)

    def metrics(self) -> dict[str, Any]:
        metrics = super().metrics()
        data = self.eval_data()
        if data is not None:
            from .scores import SampleScores

            metrics["samples"] = SampleScores(data, n=self.cfg.eval_samples)
        return metrics

    def score(self, y: Tensor) -> Tensor:
        """Anomaly score: the free energy, here the energy E(y) (no latent), ``[B]``; high =
        unlike the training data."""
        with torch.no_grad(), _eval(self):
            return self.energy(y)


class _eval:
    """Context manager: a module in eval mode, restored after."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.was = module, module.training

    def __enter__(self) -> None:
        self.module.eval()

    def __exit__(self, *exc: Any) -> None:
        self.module.train(self.was)


class DCGAN(_GAN):
    """DCGAN (Radford et al. 2016) with the discriminator read as an energy E(y) = −logit D(y).

    Args:
        cfg: The options. ``generator`` / ``discriminator`` replace the built networks (the
            shapes are checked; ``ek.load`` rebuilds the built-in ones).
    """

    name = "gan.dcgan"
    config_class = DCGANConfig
    slots = {"generator": "dcgan.generator (width=g_width), (latent_dim,) → image_shape",
             "discriminator": "dcgan.discriminator (width=d_width, spectral_norm), image_shape "
                              "→ [] (the energy)"}

    def __init__(self, cfg: DCGANConfig | None = None, *, generator: nn.Module | None = None,
                 discriminator: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DCGANConfig()
        if generator is not None:  # the keyword arguments fill the slots
            cfg.generator = generator
        if discriminator is not None:
            cfg.discriminator = discriminator
        self._resolve(cfg)
        from .losses import get_gan_loss

        if get_gan_loss(cfg.loss).name == "margin":
            raise ConfigError("gan.dcgan: loss 'margin' is EBGAN's (a non-negative energy); use "
                              "gan.ebgan, or one of 'non_saturating', 'minimax', 'hinge'")
        self.generator = self._generator_slot(cfg)
        self.discriminator = ek.networks.build_slot(
            "discriminator", cfg.discriminator, in_shape=self.image_shape, out_shape=(),
            who=self.name, default={"name": "dcgan.discriminator", "width": cfg.d_width,
                                    "spectral_norm": cfg.spectral_norm})
        for slot in ("generator", "discriminator"):  # DCGAN's init on its own nets only
            if getattr(cfg, slot) is None:
                init_weights(getattr(self, slot))
        self._init_ema()
        self._check_players()

    def discriminate(self, images: Tensor, return_code: bool = False) -> Any:
        e = self.discriminator(images)  # [B]
        if return_code:
            raise ConfigError("gan.dcgan has no discriminator code (the pulling-away term is "
                              "EBGAN's); set pt_weight=0")
        return e

    def prob_data(self, y: Tensor) -> Tensor:
        """D(y) = σ(−E(y)): the discriminator's probability that y is data, ``[B]``."""
        return torch.sigmoid(-self.energy(y))


class EBGAN(_GAN):
    """EBGAN (Zhao, Mathieu & LeCun 2016): E(y) = ‖y − Dec(Enc(y))‖², summed over pixels.

    Trained with the margin loss E(y) + [m·D − E(G(z))]₊ for the discriminator and
    E(G(z)) + w·PT for the generator. The margin ``margin`` = m is per pixel (D pixels):
    the energy is a sum over pixels, so a fixed m would shrink relative to it as images
    grow (at 28×28 a summed margin of 1 is a per-pixel error of 0.0013, which samples
    almost always exceed, and the push-up term would almost never act).

    Departures from the paper, on purpose: the autoencoder normalises each sample on its own
    (``d_norm="sample"``, a one-group GroupNorm) instead of with batch norm, so E(y) is a
    function of y alone in training as in use — the energy trained is the energy exposed —
    and an R1 penalty (γ = ``r1``) on ‖∇_y E(y)‖² at the data stands in for the
    stabilisation that batch statistics gave (without it, per-sample EBGAN collapses onto a
    few digits). ``d_norm="batch"`` restores the paper's network: its adversarial loss then
    sees batch statistics, while ``energy`` runs on the running ones. The Fashion-MNIST
    recipe takes it (with ``margin=0.05``): chosen on validation for its samples, it trades
    the energy-trained-is-energy-exposed property for them.
    """

    name = "gan.ebgan"
    config_class = EBGANConfig
    slots = {"generator": "dcgan.generator (width=g_width), (latent_dim,) → image_shape",
             "encoder": "dcgan.encoder (width=d_width, norm=d_norm, spectral_norm), image_shape "
                        "→ (code_dim,)",
             "decoder": "dcgan.generator (width=d_width, norm=d_norm), (code_dim,) → image_shape"}

    def __init__(self, cfg: EBGANConfig | None = None, *, generator: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or EBGANConfig()
        if generator is not None:  # the keyword argument fills the slot
            cfg.generator = generator
        self._resolve(cfg)
        at_least("code_dim", cfg.code_dim, who=self.name)
        if not (isinstance(cfg.pt_weight, (int, float)) and cfg.pt_weight >= 0):
            raise ConfigError(f"gan.ebgan: pt_weight must be >= 0, got {cfg.pt_weight!r}")
        self.generator = self._generator_slot(cfg)
        encoder = ek.networks.build_slot(
            "encoder", cfg.encoder, in_shape=self.image_shape, out_shape=(cfg.code_dim,),
            who=self.name, default={"name": "dcgan.encoder", "width": cfg.d_width,
                                    "norm": cfg.d_norm, "spectral_norm": cfg.spectral_norm})
        decoder = ek.networks.build_slot(
            "decoder", cfg.decoder, in_shape=(cfg.code_dim,), out_shape=self.image_shape,
            who=self.name, default={"name": "dcgan.generator", "width": cfg.d_width,
                                    "norm": cfg.d_norm})
        self.discriminator = AutoencoderDiscriminator(encoder, decoder)
        if cfg.generator is None:
            init_weights(self.generator)
        if cfg.d_norm == "batch":
            # DCGAN's N(0, 0.02) goes with batch norm; without it the autoencoder keeps
            # PyTorch's default (Kaiming-uniform) scale, with which it trains far better
            for slot, net in (("encoder", encoder), ("decoder", decoder)):
                if getattr(cfg, slot) is None:
                    init_weights(net)
        self._init_ema()
        self._check_players()

    def discriminate(self, images: Tensor, return_code: bool = False) -> Any:
        """The training hot path: the same per-sample energy as ``energy`` by default; with
        ``d_norm="batch"`` it uses the batch's statistics in training mode, as the paper's
        discriminator loss does."""
        return self.discriminator(images, return_code=return_code)

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(y) = ‖y − Dec(Enc(y))‖², ``[B]``, each sample on its own. With the default
        per-sample normalisation this is exactly what training descends; with
        ``d_norm="batch"`` batch norm runs on its running statistics here, whatever the
        module's mode (the adversarial loss, through ``discriminate``, then trains with batch
        statistics, as the paper's discriminator does)."""
        with _eval(self.discriminator):
            return super().energy(y, x=x, z=z)

    @property
    def loss_margin(self) -> float:
        """m·D: the per-pixel margin in units of the summed squared error."""
        return float(self.cfg.margin) * self.flat_dim

    def reconstruct(self, y: Tensor) -> Tensor:
        """The discriminator's reconstruction of y, flat ``[B, D]``."""
        images = self.as_images(y)
        with torch.no_grad(), _eval(self.discriminator):
            code = self.discriminator.encoder(images).flatten(1)
            return self.discriminator.decoder(code).flatten(1)


class GeneratorNegatives:
    """A GAN's generator as an ``ek.negatives`` generator: ``gen(y) -> G(z)`` shaped like y.

    Detached samples (the generator is not trained through them), drawn in the generator's
    current mode. Works with any contrastive strategy, e.g.
    ``ek.strategies.Contrastive(negatives=gan.negatives(), loss="hinge")``.

    Args:
        gan: A ``gan.dcgan`` / ``gan.ebgan`` model (its generator is used).
        k: Negatives per sample: ``[B, ...]`` for 1, ``[B, K, ...]`` for more.
    """

    def __init__(self, gan: _GAN, k: int = 1) -> None:
        if not isinstance(gan, _GAN):
            raise ConfigError(f"GeneratorNegatives: expected a gan.dcgan or gan.ebgan model, got "
                              f"{type(gan).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"GeneratorNegatives: k must be an int >= 1, got {k!r}")
        self.gan, self.k = gan, k

    def __call__(self, y: Tensor, model: Any = None, x: Tensor | None = None) -> Tensor:
        gan = self.gan
        if not isinstance(y, Tensor) or y.dim() < 2:
            raise ConfigError(f"GeneratorNegatives: y must be a batch [B, ...], got "
                              f"{list(y.shape) if isinstance(y, Tensor) else type(y).__name__}")
        tail = tuple(y.shape[1:])
        if math.prod(tail) != gan.flat_dim:
            raise ConfigError(f"GeneratorNegatives: the generator makes {list(gan.image_shape)} "
                              f"images ({gan.flat_dim} values) but y is {list(y.shape)}; expected "
                              f"y of shape [B, {gan.flat_dim}] or [B, "
                              f"{', '.join(map(str, gan.image_shape))}]")
        b = y.shape[0]
        with torch.no_grad():
            z = gan.latent(b * self.k, device=y.device, dtype=y.dtype)
            out = gan.generator(z).to(y.dtype)  # [B·K, C, S, S]
        out = out.reshape(b, *tail) if self.k == 1 else out.reshape(b, self.k, *tail)
        return out

    def __repr__(self) -> str:
        return f"GeneratorNegatives({self.gan.name}, k={self.k})"
