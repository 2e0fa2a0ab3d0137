"""The plugin host: loads built-in and installed plugins once, fills the registries.

Plugins are found in two places, in this order:

1. **Built-ins**, imported by module path (``BUILTIN_PLUGINS``) — the same hooks a third
   party uses, shipped in the same wheel.
2. **Installed distributions** with an entry point in the ``ebmkit`` group::

       [project.entry-points.ebmkit]
       hello = "ebmkit_hello"

Loading happens on the first registry access and only once. A plugin that fails to import
or register is reported (a [`PluginWarning`][ebmkit.errors.PluginWarning] naming the entry
point and distribution, and ``ebmkit plugins`` shows the error) while the rest load.

Environment variables:

- ``EBMKIT_STRICT_PLUGINS=1``: a failing plugin raises [`PluginError`][ebmkit.errors.PluginError]
  instead of warning.
- ``EBMKIT_DISABLE_PLUGINS=a,b``: never load these plugins (entry-point, built-in or
  distribution names).
- ``EBMKIT_LOAD_PLUGINS=a,b``: load only these installed plugins; set but empty, only the
  built-ins load.

This module imports neither torch nor any plugin's model code.
"""

from __future__ import annotations

import importlib
import os
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, PluginWarning
from .registry import KINDS, Entry, LazyFactory, Registry, lazy

__all__ = [
    "BUILTIN_PLUGINS",
    "LazyFactory",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "build",
    "get_dataset",
    "get_entry",
    "get_model",
    "get_network",
    "get_plugins",
    "host",
    "lazy",
    "list_datasets",
    "list_entries",
    "list_models",
    "list_networks",
    "register_plugin",
    "reset",
]

ENTRY_POINT_GROUP = "ebmkit"
DIST_NAME = "torch-ebmkit"

#: Built-in plugins: (plugin name, module path). The core's own CLI commands come first.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("ebmkit", "ebmkit.builtins"),
    ("ebmkit_datasets", "ebmkit_datasets"),
    ("ebmkit_neural", "ebmkit_neural"),
    ("ebmkit_autoencoders", "ebmkit_autoencoders"),
    ("ebmkit_kmeans", "ebmkit_kmeans"),
    ("ebmkit_sparse", "ebmkit_sparse"),
    ("ebmkit_gan", "ebmkit_gan"),
    ("ebmkit_masked", "ebmkit_masked"),
    ("ebmkit_attention", "ebmkit_attention"),
    ("ebmkit_ssl", "ebmkit_ssl"),
    ("ebmkit_worldmodels", "ebmkit_worldmodels"),
)


@dataclass
class PluginInfo:
    """What ``ek.get_plugins()`` and ``ebmkit plugins`` report about one plugin.

    Attributes:
        name: The plugin's name: its entry-point name, or the built-in module's name.
        dist: The distribution that ships it (``"torch-ebmkit"`` for built-ins).
        version: That distribution's version.
        registers: What it registered, by kind: ``{"models": ["hello"], ...}``.
        error: Why it failed to import or register, or ``None``.
        status: ``"loaded"``, ``"failed"``, ``"disabled"`` or ``"skipped"`` (not listed in
            ``EBMKIT_LOAD_PLUGINS``).
        builtin: Whether it ships with ebmkit.
        entry_point: ``"module"`` or ``"module:attr"`` it was loaded from.
    """

    name: str
    dist: str | None
    version: str | None
    registers: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    status: str = "loaded"
    builtin: bool = False
    entry_point: str = ""


class _Register(hookspecs.Register):
    """The typed ``register`` callable handed to one plugin's hook for one kind: implements
    [`Register`][ebmkit.hookspecs.Register], whose docstring documents the arguments.

    Registrations are staged and committed only once all of the plugin's hooks have run,
    so a plugin that fails half-way registers nothing.
    """

    def __init__(self, registry: Registry, plugin: str, staged: list[Entry]) -> None:
        self._registry, self._plugin, self._staged = registry, plugin, staged

    def __call__(self, name: str, factory: Callable[..., Any], *, summary: str = "",
                 aliases: Sequence[str] = (), demo: Mapping[str, Any] | None = None,
                 recipes: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if isinstance(aliases, str):
            aliases = (aliases,)
        self._registry.validate(name, factory, self._plugin, aliases)
        if demo is not None:
            if self._registry.kind == "commands":
                _check_command_demo(self._plugin, name, demo)
            else:
                _check_demo(self._plugin, name, demo)
        if recipes is not None:
            recipes = _check_recipes(self._plugin, self._registry.kind, name, recipes)
        kind = self._registry.kind
        if any(e.kind == kind and e.name == name for e in self._staged):
            raise PluginError(f"plugin {self._plugin!r} registered {self._registry.noun} "
                              f"{name!r} twice")
        if not summary:
            doc = (getattr(factory, "__doc__", None) or "").strip()
            summary = doc.splitlines()[0] if doc else ""
        self._staged.append(Entry(kind, name, factory, summary.strip(), self._plugin,
                                  tuple(aliases), None if demo is None else dict(demo),
                                  recipes))


_DEMO_KEYS = {"data", "epochs", "options", "batch_size", "lr", "schedule", "warmup", "tour"}
_TOUR_KEYS = _DEMO_KEYS - {"data", "tour"}


def _check_demo(plugin: str, name: str, demo: Any) -> None:
    if not isinstance(demo, Mapping) or "data" not in demo or set(demo) - _DEMO_KEYS:
        raise PluginError(
            f"plugin {plugin!r} registered {name!r} with demo={demo!r}; expected a dict with "
            f"'data' (a dataset name) and optionally {', '.join(sorted(_DEMO_KEYS - {'data'}))}")
    tour = demo.get("tour", {})
    if not isinstance(tour, Mapping) or set(tour) - _TOUR_KEYS:
        raise PluginError(
            f"plugin {plugin!r} registered {name!r} with demo['tour']={tour!r}; expected a dict "
            f"overriding some of {', '.join(sorted(_TOUR_KEYS))} for `ebmkit demo`'s short run")


#: The data kinds a model's ``recipes=`` may be keyed by, besides a data set's name.
DATA_KINDS = ("images", "vectors", "tokens")


def _check_recipes(plugin: str, kind: str, name: str, recipes: Any) -> dict[str, dict[str, Any]]:
    """``recipes={"fashion-mnist": {...}, "images": {...}}``: models only; each value a dict
    of ``demo``'s fields other than ``data``/``tour`` (the key says which data)."""
    if kind != "models":
        raise PluginError(f"plugin {plugin!r} registered {name!r} with recipes=; only models "
                          f"take recipes")
    if not isinstance(recipes, Mapping):
        raise PluginError(f"plugin {plugin!r} registered {name!r} with recipes={recipes!r}; "
                          f"expected a dict keyed by a data set's name or a data kind "
                          f"({', '.join(DATA_KINDS)})")
    out: dict[str, dict[str, Any]] = {}
    for key, plan in recipes.items():
        if not isinstance(key, str) or not key:
            raise PluginError(f"plugin {plugin!r} registered {name!r} with a recipe keyed "
                              f"{key!r}; expected a data set's name or one of "
                              f"{', '.join(DATA_KINDS)}")
        if not isinstance(plan, Mapping) or set(plan) - _TOUR_KEYS or not isinstance(
                plan.get("options", {}), Mapping):
            raise PluginError(
                f"plugin {plugin!r} registered {name!r} with recipes[{key!r}]={plan!r}; "
                f"expected a dict of some of {', '.join(sorted(_TOUR_KEYS))} (the key says "
                f"which data, so no 'data')")
        out[key] = {**plan, **({"options": dict(plan["options"])} if "options" in plan else {})}
    return out


def _check_command_demo(plugin: str, name: str, demo: Any) -> None:
    """A command's demo is ``{"args": [...]}``: ``ebmkit demo`` runs it with these arguments
    plus ``--out DIR`` and shows the ``DIR/report.md`` it writes."""
    args = demo.get("args") if isinstance(demo, Mapping) else None
    if (not isinstance(demo, Mapping) or set(demo) != {"args"}
            or not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args)):
        raise PluginError(
            f"plugin {plugin!r} registered command {name!r} with demo={demo!r}; expected "
            "{'args': [str, ...]}: the arguments `ebmkit demo` runs it with (plus --out DIR), "
            "after which it shows DIR/report.md")


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _strict() -> bool:
    return os.environ.get("EBMKIT_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


class PluginHost:
    """A pluggy manager plus one [`Registry`][ebmkit.registry.Registry] per kind."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
        self.infos: dict[str, PluginInfo] = {}

    # -- loading --------------------------------------------------------------------------
    def load(self) -> None:
        from . import __version__

        disabled = _env_list("EBMKIT_DISABLE_PLUGINS") or set()
        allowed = _env_list("EBMKIT_LOAD_PLUGINS")
        for name, module in BUILTIN_PLUGINS:
            info = PluginInfo(name, DIST_NAME, __version__, builtin=True, entry_point=module)
            if name in disabled:
                self._record(info, "disabled")
                continue
            self._load_one(info, lambda module=module: importlib.import_module(module))

        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        for ep in eps:
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(ep.name, dist, version, entry_point=ep.value)
            if ep.name in self.infos:  # two distributions, one entry-point name
                self._fail(info, PluginError(
                    f"plugin name {ep.name!r} is already taken by "
                    f"{self.infos[ep.name].dist!r}; rename the entry point"))
                continue
            if {ep.name, dist} & disabled:
                self._record(info, "disabled")
            elif allowed is not None and not ({ep.name, dist} & allowed):
                self._record(info, "skipped")
            else:
                self._load_one(info, ep.load)

    def _record(self, info: PluginInfo, status: str) -> None:
        info.status = status
        self.infos[info.name] = info

    def _load_one(self, info: PluginInfo, importer: Callable[[], object]) -> None:
        try:
            plugin = importer()
        except Exception as exc:
            self._fail(info, exc, "failed to import")
            return
        self.add(plugin, info)

    def add(self, plugin: object, info: PluginInfo) -> None:
        """Register ``plugin`` with pluggy and run its ``register_*`` hooks now."""
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()  # a misspelt hook name fails here, naming the function
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(info, exc, "is not a valid ebmkit plugin")
            return
        staged: list[Entry] = []
        try:
            for kind, registry in self.registries.items():
                caller = getattr(self.pm.hook, f"register_{kind}")
                for impl in caller.get_hookimpls():
                    if impl.plugin_name == info.name:
                        register = _Register(registry, info.name, staged)
                        impl.function(**{arg: register for arg in impl.argnames})
        except Exception as exc:
            self.pm.unregister(plugin)
            self._fail(info, exc, "failed to register")
            return
        self._record(info, "loaded")
        for entry in staged:
            try:
                self.registries[entry.kind].add(entry)
            except PluginError as exc:  # a duplicate name: the other names still count
                self._fail(info, exc, "registered a duplicate name", keep=True)
                continue
            info.registers.setdefault(entry.kind, []).append(entry.name)
        for names in info.registers.values():
            names.sort()

    def _fail(self, info: PluginInfo, exc: BaseException, what: str = "failed",
              keep: bool = False) -> None:
        where = f"entry point {info.entry_point!r}" if info.entry_point else "in-process"
        dist = f"distribution {info.dist} {info.version}" if info.dist else "no distribution"
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        message = f"ebmkit plugin {info.name!r} ({where}, {dist}) {what}: {detail}"
        info.error = detail if info.error is None else f"{info.error}\n{detail}"
        self._record(info, "loaded" if keep else "failed")
        if _strict():
            raise PluginError(message) from exc
        warnings.warn(
            message + " — the other plugins loaded; `ebmkit plugins` lists the errors, "
            "EBMKIT_DISABLE_PLUGINS silences one, EBMKIT_STRICT_PLUGINS=1 makes this an error.",
            PluginWarning,
            stacklevel=4,
        )


_HOST: PluginHost | None = None
_READY = False  # _HOST has finished loading: other threads may use it without the lock
_LOCK = threading.RLock()


def host() -> PluginHost:
    """The process-wide plugin host, loading plugins on first use.

    Thread-safe: a thread that asks while another is loading waits for the whole load
    (the host is never handed out half-filled); the loading thread itself may re-enter
    (a plugin that queries the registry while registering sees what is loaded so far).
    """
    global _HOST, _READY
    if _READY:
        return _HOST  # type: ignore[return-value]
    with _LOCK:  # re-entrant: the loading thread passes, the others wait for it
        if _HOST is None:
            h = PluginHost()
            _HOST = h  # visible to the loading thread only: the others wait on _LOCK
            try:
                h.load()
            except BaseException:
                _HOST = None
                raise
            _READY = True
        return _HOST


def reset() -> None:
    """Forget every loaded plugin; the next registry access loads them again.

    For tests and notebooks that change the ``EBMKIT_*`` variables.
    """
    global _HOST, _READY
    with _LOCK:
        _HOST, _READY = None, False


def register_plugin(plugin: object, name: str | None = None) -> PluginInfo:
    """Register an in-process plugin (a module or object with ``@ek.hookimpl`` functions).

    Useful in notebooks and tests; installed plugins should use the ``ebmkit`` entry-point
    group instead.

    Args:
        plugin: The module or object holding hook implementations.
        name: Its plugin name; defaults to the module's ``__name__`` or the class name.

    Returns:
        The plugin's [`PluginInfo`][ebmkit.plugins.PluginInfo] (check ``.error``).
    """
    h = host()
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    if name in h.infos:
        raise PluginError(f"a plugin named {name!r} is already registered "
                          f"({h.infos[name].dist or 'in-process'})")
    info = PluginInfo(name, None, None)
    with _LOCK:
        h.add(plugin, info)
    return info


# -- lookups ------------------------------------------------------------------------------
def _registry(kind: str) -> Registry:
    if kind not in KINDS:
        raise ConfigError(f"unknown registry kind {kind!r}; expected one of {', '.join(KINDS)}")
    return host().registries[kind]


def get_plugins() -> list[PluginInfo]:
    """Every plugin ebmkit found: loaded, failed, disabled or skipped, built-ins first."""
    infos = host().infos.values()
    return sorted(infos, key=lambda i: (not i.builtin, i.name))


def list_entries(kind: str) -> list[Entry]:
    """The registered entries of one kind, sorted by name."""
    return list(_registry(kind))


def get_entry(kind: str, name: str) -> Entry:
    """Look up one registered entry without building anything."""
    return _registry(kind).get(name)


def build(kind: str, name: str, /, **options: Any) -> Any:
    """Build a registered thing: check the options, then call its factory."""
    entry = get_entry(kind, name)
    entry.check_options(options)
    try:
        return entry.factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):  # factories that forward **kw
            raise ConfigError(f"{KINDS[kind]} {name!r}: {exc}") from exc
        raise


def list_models() -> list[str]:
    """Sorted names of every registered model, e.g. ``["autoencoder", "kmeans"]``."""
    return _registry("models").names()


def get_model(name: str, /, **config: Any) -> Any:
    """Build a registered model: ``get_model("kmeans", k=10, dim=64)``.

    Raises:
        UnknownNameError: no plugin registered ``name``; the message lists the closest names.
        ConfigError: an option the model does not take.
    """
    model = build("models", name, **config)
    from .model import EnergyModel  # torch is imported by now: the factory built a module

    if not isinstance(model, EnergyModel):
        entry = get_entry("models", name)
        raise PluginError(f"model factory {name!r} of plugin {entry.plugin!r} returned a "
                          f"{type(model).__name__}; expected an ek.EnergyModel")
    return model


def list_datasets() -> list[str]:
    """Sorted names of every registered dataset, e.g. ``["digits", "moons", …]``."""
    return _registry("datasets").names()


def get_dataset(name: str, /, **options: Any) -> Any:
    """Load a registered dataset offline: ``get_dataset("digits", split="test")``."""
    return build("datasets", name, **options)


def list_networks() -> list[str]:
    """Sorted names of every registered network, e.g. ``["conv", "mlp", "resnet", …]``.

    ``torchvision.*`` names appear only when torchvision imports cleanly;
    ``ebmkit networks`` says why they are missing otherwise.
    """
    return _registry("networks").names()


def get_network(name: str, /, *, in_shape: Sequence[int], out_shape: Sequence[int],
                **options: Any) -> Any:
    """Build a registered network mapping ``[B, *in_shape]`` to ``[B, *out_shape]``.

    ``get_network("resnet", in_shape=(3, 32, 32), out_shape=(128,), depth=18)``;
    ``out_shape=()`` gives one number per sample (an energy net). The network's output
    shape is checked by one forward pass on two zero samples before it is returned.

    Raises:
        UnknownNameError: no plugin registered ``name``.
        ConfigError: an option the network does not take, a malformed shape, or a network
            whose output shape is not ``out_shape`` (expected vs got).
    """
    from .networks.shapes import check_output, shape

    in_shape = shape(in_shape, f"network {name!r}: in_shape")
    out_shape = shape(out_shape, f"network {name!r}: out_shape")
    net = build("networks", name, in_shape=in_shape, out_shape=out_shape, **options)
    return check_output(net, in_shape, out_shape, what=f"network {name!r}")


def iter_kinds() -> Iterable[str]:
    """The kinds of registries, in hook order."""
    return iter(KINDS)

