"""``resnet``: a pure-PyTorch ResNet (He et al. 2016) with basic blocks, sized for small images.

The stem is the one SSL libraries use on CIFAR-sized inputs (solo-learn, lightly): one 3×3
stride-1 convolution and no max-pool, so a 32×32 image keeps its resolution into the first
stage; ``stem="imagenet"`` gives torchvision's 7×7 stride-2 convolution and max-pool. Four
stages of basic blocks with ``width``, 2×, 4×, 8× channels (stride 2 from the second stage),
global average pooling, then a linear read-out to ``out_shape``. ``depth`` 10, 18 or 34 sets
the blocks per stage as in the paper's table 1 (18: 2-2-2-2, 34: 3-4-6-3; 10: 1-1-1-1).

``norm="batch"`` (the paper's) makes a sample's output depend on its batch in training
mode; for an energy, which must be a function of its own sample, use ``"group"`` (GroupNorm,
one group per 8 channels at most 32 groups) or ``"none"``.

Axis letters in shape comments: B batch, C channels, H height, W width, F features.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..config import at_least, one_of
from .layers import Readout, image_shape

__all__ = ["BasicBlock", "ResNet", "resnet"]

BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, max(1, channels // 8)), channels)
    return nn.Identity()


class BasicBlock(nn.Module):
    """relu(x + F(x)), F = conv3×3 → norm → relu → conv3×3 → norm; a 1×1 projection on
    the shortcut when the stride or the channels change."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _norm(norm, cout))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.shortcut(x) + self.f(x))


class ResNet(nn.Module):
    """``[B, C, H, W] -> [B, *out_shape]``; ``features(y)`` gives the pooled ``[B, F]``."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], depth: int = 18,
                 width: int = 64, stem: str = "small", norm: str = "batch") -> None:
        super().__init__()
        who = "network 'resnet'"
        c, _, _ = image_shape(in_shape, f"{who}: in_shape")
        one_of("depth", depth, tuple(BLOCKS), who=who)
        at_least("width", width, 1, who=who)
        one_of("stem", stem, ("small", "imagenet"), who=who)
        one_of("norm", norm, ("batch", "group", "none"), who=who)
        if stem == "small":
            self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False),
                                      _norm(norm, width), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(c, width, 7, 2, 3, bias=False),
                                      _norm(norm, width), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        cin = width
        for stage, n in enumerate(BLOCKS[depth]):
            cout = width * 2 ** stage
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (i == 0 and stage > 0) else 1, norm))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = cin
        self.head = Readout(cin, out_shape)

    def features(self, y: Tensor) -> Tensor:
        return self.pool(self.stages(self.stem(y)))  # [B, C, H, W] -> [B, F]

    def forward(self, y: Tensor) -> Tensor:
        return self.head(self.features(y))


def resnet(*, in_shape: Sequence[int], out_shape: Sequence[int], depth: int = 18,
           width: int = 64, stem: str = "small", norm: str = "batch") -> ResNet:
    """A pure-PyTorch ResNet (basic blocks, small-image stem), depth 10/18/34."""
    return ResNet(in_shape, out_shape, depth, width, stem, norm)
