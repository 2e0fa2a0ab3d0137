"""The networks every joint-embedding method shares: an encoder and MLP heads.

- [`ConvEncoder`][ebmkit_ssl.nets.ConvEncoder]: conv → conv (stride 2) → fc, for small grey
  images (8×8 digits, 28×28 Fashion-MNIST); its output is the representation ``encode(y)``.
- [`MLPEncoder`][ebmkit_ssl.nets.MLPEncoder]: the same role for plain vectors.
- [`head`][ebmkit_ssl.nets.head]: the projection head (representation → embedding) and
  BYOL's predictor, an MLP with batch norm in its hidden layers (MoCo's and PIRL's without).

Each is registered as a network (``ssl.conv_encoder``, ``ssl.mlp_encoder``, ``ssl.head``)
through the factories at the end of this module, so the families' slots default to them
by name and any family or user can reuse them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

import ebmkit as ek

__all__ = ["ConvEncoder", "MLPEncoder", "conv_encoder", "head", "mlp_encoder", "projection_head"]


class ConvEncoder(nn.Module):
    """``conv(c₁, 3×3) → ReLU → conv(c₂, 3×3, stride 2) → ReLU [→ max-pool 2 for sides
    ≥ 16] → flatten → fc(hidden) → ReLU → fc(rep_dim)`` (no hidden layer with ``hidden=0``).

    With ``channels=(32, 64)``, ``hidden=128`` and ``rep_dim=32`` on 8×8 images this is the
    conv32-conv64-fc128-fc32 encoder of the issue's reference SimCLR.

    Args:
        image_shape: ``(C, H, W)`` of the input.
        channels: Output channels of the two convolutions.
        rep_dim: Size of the representation.
        hidden: Width of the hidden fully connected layer (0: none).
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int] = (32, 64),
                 rep_dim: int = 32, hidden: int = 128) -> None:
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        c1, c2 = (int(s) for s in channels)
        self.image_shape = (c, h, w)
        layers: list[nn.Module] = [nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU()]
        h, w = (h + 1) // 2, (w + 1) // 2
        if min(h, w) >= 8:  # 28×28 → 14×14 → 7×7: keep the fc layer small
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = c2 * h * w
        self.fc = (nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, rep_dim))
                   if hidden else nn.Linear(flat, rep_dim))

    def forward(self, y: Tensor) -> Tensor:
        """``y`` ``[B, C·H·W]`` (flat) or ``[B, C, H, W]`` → representation ``[B, rep_dim]``."""
        if y.dim() == 2:
            y = y.reshape(y.shape[0], *self.image_shape)
        return self.fc(self.features(y))


class MLPEncoder(nn.Module):
    """``fc(hidden) → ReLU → fc(rep_dim)`` for vector data ``[B, dim]``."""

    def __init__(self, dim: int, hidden: int = 256, rep_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, rep_dim))

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y.reshape(y.shape[0], -1))


def head(in_dim: int, hidden: int, out_dim: int, layers: int = 2, *,
         batch_norm: bool = True) -> nn.Sequential:
    """An MLP head: ``layers − 1`` hidden blocks ``fc → [BN] → ReLU``, then ``fc(out_dim)``.

    With ``layers=1`` it is ``ReLU → fc(out_dim)``: one linear map of the (rectified)
    representation; with ``layers=0`` it is the identity (the embedding is the
    representation, as in the issue's reference SimCLR on digits).
    """
    if layers == 0:
        return nn.Sequential()
    if layers == 1:
        return nn.Sequential(nn.ReLU(), nn.Linear(in_dim, out_dim))
    blocks: list[nn.Module] = [nn.ReLU()]
    d = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(d, hidden)]
        if batch_norm:
            blocks.append(nn.BatchNorm1d(hidden))
        blocks.append(nn.ReLU())
        d = hidden
    blocks.append(nn.Linear(d, out_dim))
    return nn.Sequential(*blocks)


# ---------------------------------------------------------------------------- registered
def _vector(shape: Sequence[int], what: str) -> int:
    if len(shape) != 1:
        raise ek.errors.ConfigError(f"{what}: expected a vector shape (d,), got {tuple(shape)}")
    return int(shape[0])


def conv_encoder(*, in_shape: Sequence[int], out_shape: Sequence[int],
                 channels: Sequence[int] = (32, 64), hidden: int = 128) -> ConvEncoder:
    """SSL's small conv encoder: ``(C, H, W)`` → ``(d,)`` (see
    [`ConvEncoder`][ebmkit_ssl.nets.ConvEncoder])."""
    who = "network 'ssl.conv_encoder'"
    if len(in_shape) != 3:
        raise ek.errors.ConfigError(f"{who}: expected an image shape (C, H, W), got "
                                    f"{tuple(in_shape)}; use 'ssl.mlp_encoder' for vectors")
    if len(channels) != 2:
        raise ek.errors.ConfigError(f"{who}: channels must be two widths, got {list(channels)}")
    ek.config.at_least("hidden", hidden, 0, who=who)
    return ConvEncoder(in_shape, channels, _vector(out_shape, f"{who}: out_shape"), hidden)


def mlp_encoder(*, in_shape: Sequence[int], out_shape: Sequence[int],
                hidden: int = 256) -> MLPEncoder:
    """SSL's MLP encoder: any input (flattened) → ``(d,)``."""
    who = "network 'ssl.mlp_encoder'"
    ek.config.at_least("hidden", hidden, who=who)
    return MLPEncoder(math.prod(in_shape), hidden, _vector(out_shape, f"{who}: out_shape"))


def projection_head(*, in_shape: Sequence[int], out_shape: Sequence[int], hidden: int = 128,
                    layers: int = 2, batch_norm: bool = True) -> nn.Sequential:
    """SSL's projection head / predictor: ``(d_in,)`` → ``(d_out,)`` (see
    [`head`][ebmkit_ssl.nets.head]); ``layers=0`` is the identity and needs d_in = d_out."""
    who = "network 'ssl.head'"
    d_in, d_out = _vector(in_shape, f"{who}: in_shape"), _vector(out_shape, f"{who}: out_shape")
    ek.config.at_least("hidden", hidden, who=who)
    ek.config.at_least("layers", layers, 0, who=who)
    if layers == 0 and d_in != d_out:
        raise ek.errors.ConfigError(f"{who}: layers=0 (the identity) needs in and out sizes "
                                    f"equal, got {d_in} and {d_out}")
    return head(d_in, hidden, d_out, layers, batch_norm=bool(batch_norm))
