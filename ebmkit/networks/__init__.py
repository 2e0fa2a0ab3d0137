"""Networks as a registry, and the slots through which families take them.

A **network** is an ``nn.Module`` mapping ``[B, *in_shape]`` to ``[B, *out_shape]``
(``out_shape=()`` gives ``[B]``, an energy). Plugins register factories with the
``register_networks`` hook; ``ek.list_networks()`` lists them and
``ek.get_network(name, *, in_shape, out_shape, **options)`` builds one.

A family's networks are **slots**: ordinary options (``encoder=``, ``decoder=``,
``energy=``, …) whose value is a *spec*:

- ``None``: the family's default network;
- a registered name, ``"resnet"``;
- ``{"name": "resnet", "depth": 18}``: a name with options;
- (Python only) an ``nn.Module`` instance, used as given.

A family builds each slot with [`build_slot`][ebmkit.networks.slots.build_slot] (which
checks the output shape by one forward pass on two zero samples, so a wrong network fails
before training with the slot's name, the expected and the actual shape) and records it in
``config()`` with [`slot_record`][ebmkit.config.slot_record]: names and options are
saved as they are; an instance is saved as ``{"instance": "ClassName"}`` (the class name is
only shown in messages, never imported), so ``ek.load(p)`` asks for the module:
``ek.load(p, encoder=MyNet(...))``.

Built-in networks: ``mlp``, ``conv``, ``resnet`` (pure PyTorch, small-image stem) and, when
torchvision imports cleanly, ``torchvision.resnet18`` and friends
([`vision`][ebmkit.networks.vision]). The families' own networks are registered by the
plugins that own them (``dcgan.generator``, ``neural.conv``, …).

This package's ``__init__`` imports nothing heavy: its public names load on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ACTIVATIONS", "INSTANCE_KEY", "NetworkSpec", "activation", "build_slot",
           "check_output", "get_network", "is_instance_record", "list_networks", "slot_record",
           "torchvision_status"]

_LAZY: dict[str, tuple[str, str]] = {
    "ACTIVATIONS": ("ebmkit.networks.layers", "ACTIVATIONS"),
    "activation": ("ebmkit.networks.layers", "activation"),
    "INSTANCE_KEY": ("ebmkit.config", "INSTANCE_KEY"),
    "NetworkSpec": ("ebmkit.config", "NetworkSpec"),
    "is_instance_record": ("ebmkit.config", "is_instance_record"),
    "slot_record": ("ebmkit.config", "slot_record"),
    "build_slot": ("ebmkit.networks.slots", "build_slot"),
    "check_output": ("ebmkit.networks.shapes", "check_output"),
    "get_network": ("ebmkit.plugins", "get_network"),
    "list_networks": ("ebmkit.plugins", "list_networks"),
    "torchvision_status": ("ebmkit.networks.catalog", "torchvision_status"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ebmkit.networks' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
