"""The networks every joint-embedding method shares: an encoder and MLP heads.

- [`ConvEncoder`][ebmkit_ssl.nets.ConvEncoder]: conv → conv (stride 2) → fc, for small grey
  images (8×8 digits, 28×28 Fashion-MNIST); its output is the representation ``encode(y)``.
- [`MLPEncoder`][ebmkit_ssl.nets.MLPEncoder]: the same role for plain vectors.
- [`head`][ebmkit_ssl.nets.head]: the projection head (representation → embedding) and
  BYOL's predictor, an MLP with batch norm in its hidden layers.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["ConvEncoder", "MLPEncoder", "head"]


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
