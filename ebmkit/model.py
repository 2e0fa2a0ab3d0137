"""``EnergyModel``: the base class every model family implements.

A model assigns one scalar energy per sample, ``energy(y, x=None, z=None) -> [B]``. Models
with a latent ``z`` implement ``infer`` (ž = argmin_z E) and the free energy follows:
F(x, y) = E(x, y, ž). ``forward`` is the free energy, so a model can be called like any
``nn.Module``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from . import services
from .config import slot_record
from .errors import ConfigError

if TYPE_CHECKING:
    from torchmetrics import Metric

__all__ = ["EnergyModel", "check_input", "config_dict", "resolve_strategy"]


class EnergyModel(nn.Module):
    """Base class of every ebmkit model family.

    Subclasses set ``name`` (their registry name) and implement ``energy``, ``config`` and
    ``default_strategy``; latent-variable models also implement ``infer``.

    Once built (the outermost ``__init__`` has returned), a model's submodules are fixed:
    ``model.encoder = MyNet()`` raises a ``ConfigError`` that says to pass the network as a
    slot, ``ek.get_model(name, encoder=MyNet())``, since the config and the copies made from
    it would not follow a hand swap.

    Attributes:
        name: The registry name, e.g. ``"kmeans"``: ``ek.get_model(name, **model.config())``
            rebuilds the model.
    """

    name: str = ""
    #: The family's ``@dataclass`` config. When set, and the instance keeps it as ``self.cfg``,
    #: ``from_options`` and ``config()`` need no code in the family.
    config_class: ClassVar[type | None] = None
    #: The family's network slots: config field → its default, in words (``ebmkit models
    #: -v`` shows them). A slot's value is a spec (``ek.networks``); ``config()`` records it
    #: with ``ek.networks.slot_record`` (a module passed from Python by its class name only).
    slots: ClassVar[dict[str, str]] = {}
    cfg: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _marks_built(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_ek_built"):
            self._refuse_replacing(name, value)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if self.__dict__.get("_ek_built"):
            self._refuse_replacing(name, None)
        super().__delattr__(name)

    def _refuse_replacing(self, name: str, value: Any) -> None:
        """Once built, a model's submodules stay: replacing ``model.encoder`` by hand would
        half-work (the config still records the network it was built with, so the run could
        not be reloaded; copies made from it, a momentum encoder or a weight average, would
        keep the old architecture). Networks go in through the slots instead."""
        old = self.__dict__.get("_modules", {}).get(name)
        if not isinstance(old, nn.Module) or value is old:
            return
        norm = nn.modules.batchnorm._BatchNorm
        if isinstance(old, norm) and isinstance(value, norm):
            return  # a norm for an equivalent one holding its weights (global batch norm)
        who = self.name or type(self).__name__
        slot = name if name in self.slots else next(iter(self.slots), "encoder")
        kind = f"slot {name!r}" if name in self.slots else "a submodule"
        options = ", ".join(self.slots) if self.slots else "none"
        raise ConfigError(
            f"{who}: model.{name} ({kind}) cannot be replaced after the model is built: its "
            f"config records the network it was built with (ek.load would rebuild that one) "
            f"and copies made from it (momentum encoders, weight averages) would not follow. "
            f"Pass your network when building the model instead, e.g. "
            f"ek.get_model({who!r}, {slot}=MyNet()), and ek.load(path, {slot}=MyNet()) to load "
            f"it (this family's slots: {options})")

    @classmethod
    def from_options(cls, **options: Any) -> EnergyModel:
        """Build from keyword options (the fields of ``config_class``): what a registered
        factory calls, e.g. ``ek.plugins.lazy("my_pkg.models:MyModel.from_options",
        signature="my_pkg.models:MyConfig")``.

        Raises:
            ConfigError: the class has no ``config_class``, or an option is not one of its fields.
        """
        if cls.config_class is None:
            raise ConfigError(f"{cls.__name__} has no config_class; set it or override from_options")
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ConfigError(f"{cls.name or cls.__name__}: unknown option(s) {', '.join(unknown)}; "
                              f"expected some of {', '.join(sorted(fields))}")
        return cls(cls.config_class(**options))

    def energy(self, y: Tensor, x: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """E(x, y, z): one energy per sample, shape ``[B]``; low means compatible."""
        raise NotImplementedError(f"{type(self).__name__} must implement energy(y, x=None, z=None)")

    def infer(self, y: Tensor, x: Tensor | None = None) -> Tensor | None:
        """ž = argmin_z E(x, y, z); ``None`` for models without a latent variable."""
        return None

    def free_energy(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        """F(x, y) = E(x, y, ž), shape ``[B]``. Families with a soft-min override this."""
        return self.energy(y, x=x, z=self.infer(y, x=x))

    def forward(self, y: Tensor, x: Tensor | None = None) -> Tensor:
        return self.free_energy(y, x=x)

    def default_strategy(self) -> Any:
        """The training strategy used when ``ek.Trainer`` is given none."""
        raise NotImplementedError(f"{type(self).__name__} must implement default_strategy()")

    def metrics(self) -> dict[str, Metric]:
        """torchmetrics objects that ``Trainer.evaluate`` updates with ``(model, batch)``.

        The default is the mean free energy over the data; families add their own (e.g. a
        reconstruction error through [`Adapter`][ebmkit.metrics.Adapter]). Return new
        objects on every call: the trainer resets and moves them.
        """
        # ebmkit.metrics (torchmetrics: slow to import) is provided from above, when asked.
        return {"free_energy": services.get("default_metric")()}

    def config(self) -> dict[str, Any]:
        """JSON-able options such that ``ek.get_model(self.name, **config)`` rebuilds the model.

        The default returns the fields of ``self.cfg`` when ``config_class`` is set, each
        slot (``slots``) as its JSON-able record.
        """
        if self.config_class is not None and dataclasses.is_dataclass(getattr(self, "cfg", None)):
            return config_dict(self.cfg, self.slots)
        raise NotImplementedError(f"{type(self).__name__} must implement config()")

    def save(self, path_prefix: str | os.PathLike[str]) -> None:
        """Save to ``p.safetensors`` (weights) + ``p.json`` (name and config), each atomically.

        ``ek.load(p)`` rebuilds the model through the registry; no pickle is involved.

        Args:
            path_prefix: ``p``; missing parent directories are created.

        Raises:
            ConfigError: the model has no ``name`` or no JSON-able ``config()``.
        """
        services.get("save_model")(self, path_prefix)  # ebmkit.checkpoint, from above

    @property
    def device(self) -> torch.device:
        """The device of the first parameter or buffer (CPU for a model with neither)."""
        for t in (*self.parameters(), *self.buffers()):
            return t.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        try:
            return ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        except NotImplementedError:
            return ""


def _marks_built(init: Any) -> Any:
    """Wrap an ``EnergyModel`` subclass's ``__init__`` so that the model counts as built
    (its submodules fixed, see ``EnergyModel._refuse_replacing``) once the outermost
    ``__init__`` returns; ``super().__init__`` calls inside it do not count."""
    @functools.wraps(init)
    def __init__(self: EnergyModel, *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_ek_init_depth", 0)
        self.__dict__["_ek_init_depth"] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            self.__dict__["_ek_init_depth"] = depth
        if depth == 0:
            self.__dict__["_ek_built"] = True
    return __init__


def resolve_strategy(model: EnergyModel, strategy: Any, caller: str) -> Any:
    """``strategy``, or the model's ``default_strategy()`` when it is ``None``: what
    ``ek.Trainer`` and the Lightning bridge train with.

    Args:
        model: The model to train.
        strategy: A callable ``strategy(model, batch) -> StepOutput``, or ``None``.
        caller: Who asks, named in the error (``"Trainer"``, ``"EnergyModule"``).

    Raises:
        ConfigError: ``strategy`` is ``None`` and the model has no default strategy, or
            ``strategy`` is not callable.
    """
    if strategy is None:
        try:
            strategy = model.default_strategy()
        except NotImplementedError as exc:
            raise ConfigError(f"{type(model).__name__} has no default strategy; pass one, e.g. "
                              f"{caller}(model, strategy=ek.strategies.Architectural())") from exc
    if not callable(strategy):
        raise ConfigError(f"strategy must be callable as strategy(model, batch) -> StepOutput, "
                          f"got {type(strategy).__name__}")
    return strategy


def config_dict(cfg: Any, slots: Any = ()) -> dict[str, Any]:
    """``dataclasses.asdict(cfg)``, except that the fields named in ``slots`` hold their
    record (``ek.networks.slot_record``): a module passed from Python is never copied into
    a config, only named."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in slots:
            out[f.name] = slot_record(value, slot=f.name)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = dataclasses.asdict(value)
        else:
            out[f.name] = copy.deepcopy(value)
    return out


def check_input(
    t: Tensor,
    what: str,
    *,
    shape: tuple[int | None, ...] | None = None,
    floating: bool = True,
    device: torch.device | None = None,
    finite: bool | str = True,
) -> Tensor:
    """Validate an input tensor and raise a [`ConfigError`][ebmkit.errors.ConfigError] that says
    what was expected and what came.

    Args:
        t: The tensor to check.
        what: Its name in messages, e.g. ``"y"``.
        shape: Expected shape; ``None`` entries match any size (e.g. ``(None, 64)``).
        floating: Require a floating-point dtype.
        device: Require this device (type and index). Without it, a tensor on the ``meta``
            device (shapes without data) is still refused.
        finite: Reject NaN and infinity. Costs one device sync: call it at API boundaries,
            never inside an inner loop. ``"auto"``: check, except on an accelerator while
            autograd is on (a training step calling a public method), where the check would
            stall every step; on the CPU reading the result costs no device sync.

    A ``shape`` whose first entry is ``None`` is a batch: an empty one (``B = 0``) is refused.

    Returns:
        ``t`` unchanged, so calls can be chained.
    """
    if not isinstance(t, Tensor):
        raise ConfigError(f"{what}: expected a torch.Tensor, got {type(t).__name__}")
    if shape is not None:
        want = "[" + ", ".join("B" if i == 0 and s is None else ("*" if s is None else str(s))
                               for i, s in enumerate(shape)) + "]"
        ok = t.dim() == len(shape) and all(s is None or s == n for s, n in zip(shape, t.shape))
        if not ok:
            raise ConfigError(f"{what}: expected shape {want}, got {list(t.shape)}")
        if shape and shape[0] is None and t.shape[0] == 0:
            raise ConfigError(f"{what}: expected a batch of at least one sample {want}, got an "
                              f"empty batch {list(t.shape)}")
    if floating and not t.is_floating_point():
        raise ConfigError(f"{what}: expected a floating-point tensor, got {t.dtype}")
    if device is not None and t.device != torch.device(device):
        raise ConfigError(f"{what}: expected a tensor on {device}, got one on {t.device}; "
                          f"move it with .to({str(device)!r}) or move the model")
    if t.device.type == "meta":
        raise ConfigError(f"{what}: expected a tensor with data, got one on the meta device "
                          "(shapes only)")
    if finite == "auto":
        finite = t.device.type == "cpu" or not torch.is_grad_enabled()
    if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{what}: contains NaN or infinite values; expected finite values")
    return t
