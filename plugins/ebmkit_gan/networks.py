"""DCGAN building blocks (Radford, Metz & Chintala 2016), sized from the image size.

The generator maps z ``[B, Z]`` to images ``[B, C, S, S]`` with transposed convolutions,
batch norm and ReLU (a sigmoid at the end: pixels live in [0, 1]); the discriminator
mirrors it with strided convolutions and LeakyReLU(0.2) down to one scalar per image.

Departure from DCGAN, on purpose: the discriminator is an *energy*, one scalar per sample
that depends on that sample alone, so it has **no batch norm** (DCGAN's discriminator
normalises with the statistics of the batch in training mode, which makes E(y) a function
of the rest of the batch). What stabilises training instead is the strategy's R1 penalty
(and, optionally, spectral normalisation of the layers, Miyato et al. 2018). EBGAN's
autoencoder discriminator normalises each sample on its own by default (``"sample"``: a
one-group GroupNorm), with an R1 penalty in training; the paper's batch norm is the
``"batch"`` option (then the model evaluates the energy it exposes with the running
statistics; see ``EBGAN.energy``). The generator keeps batch norm: it is not an energy, and
sampling runs it in eval mode. An image size S = b·2^k (k ≥ 1 stride-2 layers, base
side b in 2…7) is what the architecture can produce: 8 (b = 2), 16, 32, 64 (b = 4), 14, 28,
56 (b = 7), among others.

Axis letters in shape comments: B batch, Z latent, C channels, S image side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from einops import rearrange
from torch import Tensor, nn

from ebmkit.errors import ConfigError

__all__ = ["AutoencoderDiscriminator", "Discriminator", "Generator", "dcgan_discriminator",
           "dcgan_encoder", "dcgan_generator", "init_weights", "plan"]


def plan(image_size: int, who: str = "gan") -> tuple[int, int]:
    """``(base, k)`` with ``image_size == base · 2**k``: k stride-2 layers from a base side.

    The side is halved while it stays even and the base stays ≥ 4, or — for small images —
    while fewer than two layers are planned and the base stays ≥ 2 (8 → base 2, k = 2).
    Raises a ConfigError naming sizes that work when k = 0 or the base exceeds 7.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ConfigError(f"{who}: image_size must be a positive integer, got {image_size!r}")
    base, k = image_size, 0
    while base % 2 == 0 and (base // 2 >= 4 or (k < 2 and base // 2 >= 2)):
        base, k = base // 2, k + 1
    if k == 0 or base > 7:
        raise ConfigError(
            f"{who}: the DCGAN architecture cannot produce {image_size}×{image_size} images: "
            f"it needs image_size = b·2^k with k ≥ 1 stride-2 layers and a base side b in "
            f"2…7, e.g. 8, 16, 32, 64, 12, 14, 28, 56; got {image_size}")
    return base, k


def init_weights(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), normalisation scales ~ N(1, 0.02).

    Spectrally normalised layers keep PyTorch's default initialisation (the normalisation
    rescales whatever scale they start at)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if nn.utils.parametrize.is_parametrized(m):
                continue
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _widths(width: int, k: int) -> list[int]:
    """Channels at each resolution from the smallest (base) to the largest: w·2^(k-1) … w."""
    return [width * 2 ** (k - 1 - i) for i in range(k)]


class Generator(nn.Module):
    """G(z): ``[B, Z] -> [B, C, S, S]`` in [0, 1].

    Args:
        latent_dim: Z.
        image_shape: ``(C, S, S)``.
        width: Channels of the last hidden layer (doubling towards the base resolution).
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], width: int,
                 norm: str = "batch") -> None:
        super().__init__()
        c, s, _ = image_shape
        base, k = plan(s)
        ch = _widths(width, k)
        layers: list[nn.Module] = [  # [B, Z, 1, 1] -> [B, ch0, b, b]
            nn.ConvTranspose2d(latent_dim, ch[0], base, 1, 0, bias=False),
            _norm(norm, ch[0]), nn.ReLU(True)]
        for i in range(k - 1):  # doubles the side each time
            layers += [nn.ConvTranspose2d(ch[i], ch[i + 1], 4, 2, 1, bias=False),
                       _norm(norm, ch[i + 1]), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], c, 4, 2, 1, bias=False), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.latent_dim, self.image_shape = latent_dim, (c, s, s)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(rearrange(z, "b z -> b z 1 1"))  # [B, C, S, S]


def _norm(kind: str, channels: int) -> nn.Module:
    """``"batch"`` (across the batch: generators only), ``"sample"`` (GroupNorm with one
    group: over one sample's channels and pixels) or ``"none"``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "sample":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown normalisation {kind!r}; expected 'batch', 'sample' or 'none'")


class _Encoder(nn.Sequential):
    """Strided convolutions ``[B, C, S, S] -> [B, out]`` (the DCGAN discriminator body),
    with ``norm`` ``"none"``, ``"sample"`` (GroupNorm) or ``"batch"`` (for EBGAN, whose model
    evaluates its energy in eval mode), optionally spectrally normalised."""

    def __init__(self, image_shape: tuple[int, int, int], width: int, out: int,
                 norm: str = "none", spectral_norm: bool = False) -> None:
        sn: Callable[[nn.Module], nn.Module] = (
            nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m))
        c, s, _ = image_shape
        base, k = plan(s)
        ch = _widths(width, k)[::-1]  # w … w·2^(k-1)
        layers: list[nn.Module] = [sn(nn.Conv2d(c, ch[0], 4, 2, 1, bias=False)),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for i in range(k - 1):
            layers += [sn(nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1, bias=False)),
                       _norm(norm, ch[i + 1]), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(sn(nn.Conv2d(ch[-1], out, base, 1, 0, bias=False)))  # [B, out, 1, 1]
        super().__init__(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return super().forward(images).flatten(1)  # [B, out, 1, 1] -> [B, out]


class Discriminator(nn.Module):
    """The DCGAN discriminator read as an energy: E(y) = −logit D(y), shape ``[B]``.

    D(y) = σ(−E(y)) is the probability that y is data: low energy on data, high elsewhere.
    No batch norm; spectral normalisation by default (see the module docstring).
    """

    def __init__(self, image_shape: tuple[int, int, int], width: int,
                 spectral_norm: bool = True) -> None:
        super().__init__()
        self.net = _Encoder(image_shape, width, 1, norm="none", spectral_norm=spectral_norm)
        self.image_shape = tuple(image_shape)

    def forward(self, images: Tensor) -> Tensor:
        return -self.net(images).flatten()  # [B, 1] -> [B]


class AutoencoderDiscriminator(nn.Module):
    """EBGAN's discriminator: an autoencoder whose reconstruction error is the energy.

    E(y) = ‖y − Dec(Enc(y))‖², summed over pixels, shape ``[B]``; ``Enc(y)`` is a code of
    ``code_dim`` numbers (the embedding the pulling-away term decorrelates). ``norm``:
    ``"sample"`` (GroupNorm over each sample's channels and pixels: a per-sample function
    in every mode), ``"none"``, or ``"batch"`` (the paper's; a per-sample function only in
    eval mode).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder  # [B, C, S, S] -> [B, K] -> [B, C, S, S]

    def forward(self, images: Tensor, return_code: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        code = self.encoder(images).flatten(1)  # [B, code]
        rec = self.decoder(code).reshape(images.shape)  # [B, C, S, S]
        energy = (images - rec).square().flatten(1).sum(1)  # [B]
        return (energy, code) if return_code else energy


# -- the registered networks: a slot's shapes plus the options ------------------------------
def _square(shape: Any, what: str) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"{what}: expected square images (C, S, S), got {tuple(shape)}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _vector(shape: Any, what: str) -> int:
    if len(shape) != 1:
        raise ConfigError(f"{what}: expected a vector shape (K,), got {tuple(shape)}")
    return int(shape[0])


def dcgan_generator(*, in_shape: Any, out_shape: Any, width: int = 64,
                    norm: str = "batch") -> Generator:
    """DCGAN's generator: (Z,) → (C, S, S) in [0, 1], transposed convs with batch norm."""
    return Generator(_vector(in_shape, "network 'dcgan.generator': in_shape"),
                     _square(out_shape, "network 'dcgan.generator': out_shape"), width, norm)


def dcgan_discriminator(*, in_shape: Any, out_shape: Any, width: int = 64,
                        spectral_norm: bool = True) -> Discriminator:
    """DCGAN's discriminator as an energy: (C, S, S) → [B], −logit D (no batch norm)."""
    if tuple(out_shape) != ():
        raise ConfigError(f"network 'dcgan.discriminator': outputs one energy per image "
                          f"(out_shape ()), got out_shape {tuple(out_shape)}")
    return Discriminator(_square(in_shape, "network 'dcgan.discriminator': in_shape"), width,
                         spectral_norm)


def dcgan_encoder(*, in_shape: Any, out_shape: Any, width: int = 64, norm: str = "sample",
                  spectral_norm: bool = False) -> nn.Module:
    """DCGAN's discriminator body as an encoder: (C, S, S) → (K,) (EBGAN's encoder)."""
    return _Encoder(_square(in_shape, "network 'dcgan.encoder': in_shape"), width,
                    _vector(out_shape, "network 'dcgan.encoder': out_shape"), norm=norm,
                    spectral_norm=spectral_norm)
