"""The core's built-in networks, registered through ``register_networks`` like a plugin's.

Each factory is lazy (imported, with torch, only when a network is built or its options
are read), so listing networks stays cheap. ``torchvision.<name>`` is registered only when
torchvision imports cleanly: measured here, the wheel pip finds beside the CPU build of
torch 2.13 fails on import (``operator torchvision::nms does not exist``), and a name that
fails when built is worse than a missing name that ``ebmkit networks`` explains.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ..hookspecs import Register
from ..registry import LazyFactory, lazy

__all__ = ["register_networks", "torchvision_status"]

_VISION_HINT = "pip install 'torch-ebmkit[vision]'"


def _find_torchvision() -> Any:
    try:
        return importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        return None


def _import_torchvision() -> Any:
    return importlib.import_module("torchvision")


def torchvision_status() -> str | None:
    """``None`` when torchvision imports cleanly, else why the ``torchvision.*`` networks are
    not registered (not installed, or the import error).

    Finding the package costs nothing; importing it (and so torch) happens only when it is
    installed.
    """
    if _find_torchvision() is None:
        return f"torchvision is not installed ({_VISION_HINT})"
    try:
        _import_torchvision()
    except Exception as exc:  # a broken wheel raises RuntimeError, not ImportError
        first = (str(exc).strip().splitlines() or [repr(exc)])[0]
        return (f"torchvision is installed but fails to import ({type(exc).__name__}: "
                f"{first}); install the torchvision build that matches your torch")
    return None


class _Backbone(LazyFactory):
    """``torchvision.<arch>``: a lazy factory with the architecture bound."""

    def __init__(self, arch: str) -> None:
        super().__init__("ebmkit.networks.vision:torchvision_backbone",
                         doc=f"torchvision's {arch} (no weights), channels adapted, small-image "
                             f"stem option, fc projected to out_shape")
        self.arch = arch

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(self.arch, *args, **kwargs)

    @property
    def __signature__(self) -> Any:
        sig = super().__signature__
        return sig.replace(parameters=[p for p in sig.parameters.values() if p.name != "arch"])


def register_networks(register: Register) -> None:
    """The core's networks: ``mlp``, ``conv``, ``resnet`` and, when possible, ``torchvision.*``."""
    register("mlp", lazy("ebmkit.networks.mlp:mlp"),
             summary="A multi-layer perceptron: any shape to any shape (inputs flattened)")
    register("conv", lazy("ebmkit.networks.conv:conv"),
             summary="A small conv net: image → vector or [B], vector → image, image → image")
    register("resnet", lazy("ebmkit.networks.resnet:resnet"),
             summary="A pure-PyTorch ResNet (depth 10/18/34, width, small-image stem)")
    if torchvision_status() is None:
        from .vision import ARCHS

        for arch in ARCHS:
            register(f"torchvision.{arch}", _Backbone(arch),
                     summary=f"torchvision's {arch}: channels adapted, fc → out_shape "
                             f"(stem='small' for small images; no weights)")
