"""``torchvision.<name>``: torchvision's classification backbones, adapted to a slot's shapes.

Registered only when torchvision imports cleanly (the ``vision`` extra; see
[`torchvision_status`][ebmkit.networks.catalog.torchvision_status]). The backbone is built
without weights (ebmkit downloads nothing at run time), its first convolution is replaced
when the images do not have 3 channels or when ``stem="small"`` (a 3×3 stride-1
convolution and no max-pool, for 32×32-sized images, as solo-learn and lightly do), and its
classifier ``fc`` becomes a linear projection to ``out_shape``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..config import one_of
from ..errors import ConfigError
from .layers import Readout, image_shape

__all__ = ["ARCHS", "TorchvisionBackbone", "torchvision_backbone"]

#: The backbones registered as ``torchvision.<name>`` (ResNets: one ``conv1``, one ``fc``).
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "wide_resnet50_2")


class TorchvisionBackbone(nn.Module):
    """``[B, C, H, W] -> [B, *out_shape]`` through a torchvision ResNet without its classifier."""

    def __init__(self, arch: str, in_shape: Sequence[int], out_shape: Sequence[int],
                 stem: str = "imagenet") -> None:
        super().__init__()
        import torchvision

        who = f"network 'torchvision.{arch}'"
        c, _, _ = image_shape(in_shape, f"{who}: in_shape")
        one_of("stem", stem, ("imagenet", "small"), who=who)
        try:
            net = getattr(torchvision.models, arch)(weights=None)
        except AttributeError:
            raise ConfigError(f"{who}: this torchvision has no model {arch!r}") from None
        width = net.conv1.out_channels
        if stem == "small":
            net.conv1 = nn.Conv2d(c, width, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif c != net.conv1.in_channels:
            net.conv1 = nn.Conv2d(c, width, 7, 2, 3, bias=False)
        self.num_features = net.fc.in_features
        net.fc = nn.Identity()
        self.backbone = net
        self.head = Readout(self.num_features, out_shape)

    def forward(self, y: Tensor) -> Tensor:
        return self.head(self.backbone(y))  # [B, C, H, W] -> [B, F] -> [B, *out]


def torchvision_backbone(arch: str, *, in_shape: Sequence[int], out_shape: Sequence[int],
                         stem: str = "imagenet") -> TorchvisionBackbone:
    """torchvision's ``arch`` (no weights), channels adapted, ``fc`` projected to ``out_shape``."""
    return TorchvisionBackbone(arch, in_shape, out_shape, stem)
