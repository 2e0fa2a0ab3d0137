"""Name → factory registries, one per kind of thing plugins provide.

A registry stores factories (never built objects), knows which plugin registered each name,
and refuses to choose silently between two plugins that claim the same name: such a name
becomes a conflict, and looking it up raises a [`DuplicateNameError`][ebmkit.errors.DuplicateNameError]
naming both. Imports nothing heavy.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, DuplicateNameError, PluginError, UnknownNameError, closest

__all__ = ["KINDS", "Entry", "LazyFactory", "Option", "Registry", "lazy"]

#: The kinds of things plugins register, keyed by hook suffix, with their singular nouns.
KINDS: dict[str, str] = {
    "models": "model",
    "energies": "energy",
    "samplers": "sampler",
    "strategies": "strategy",
    "losses": "loss",
    "datasets": "dataset",
    "networks": "network",
    "callbacks": "callback",
    "commands": "command",
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)*$")


@dataclass(frozen=True)
class Option:
    """One keyword option of a factory, as shown by ``ebmkit models -v`` and the docs."""

    name: str
    default: Any = inspect.Parameter.empty
    annotation: str = ""

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def __str__(self) -> str:
        ann = f": {self.annotation}" if self.annotation else ""
        return f"{self.name}{ann}" if self.required else f"{self.name}{ann} = {self.default!r}"


@dataclass(frozen=True)
class Entry:
    """A registered factory and where it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    summary: str
    plugin: str
    aliases: tuple[str, ...] = ()
    demo: Mapping[str, Any] | None = None
    recipes: Mapping[str, Mapping[str, Any]] | None = None

    def options(self) -> list[Option]:
        """The factory's keyword options (empty when its signature cannot be read)."""
        try:
            params = inspect.signature(self.factory).parameters.values()
        except (TypeError, ValueError):
            return []
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [
            Option(p.name, p.default, _annotation(p.annotation))
            for p in params
            if p.kind in keyword
        ]

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise [`ConfigError`][ebmkit.errors.ConfigError] for options the factory cannot take."""
        try:
            sig = inspect.signature(self.factory)
        except (TypeError, ValueError):  # builtins and C callables: let the call decide
            return
        noun = KINDS[self.kind]
        try:
            sig.bind(**options)
        except TypeError as exc:
            known = [o.name for o in self.options()]
            unknown = [k for k in options if k not in known]
            if unknown and not any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
            ):
                hints = {k: closest(k, known) for k in unknown}
                said = "; ".join(
                    f"{k!r}" + (f" (did you mean {', '.join(map(repr, h))}?)" if h else "")
                    for k, h in hints.items()
                )
                raise ConfigError(
                    f"{noun} {self.name!r} has no option {said}. "
                    f"Its options are: {', '.join(map(str, self.options())) or '(none)'}."
                ) from None
            raise ConfigError(f"{noun} {self.name!r}: {exc}. Options: "
                              f"{', '.join(map(str, self.options())) or '(none)'}.") from None


def _annotation(ann: Any) -> str:
    if ann is inspect.Parameter.empty:
        return ""
    return ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))


@dataclass
class Registry:
    """The entries of one kind (``"models"``, ``"datasets"``, …)."""

    kind: str
    _entries: dict[str, Entry] = field(default_factory=dict)
    _aliases: dict[str, str] = field(default_factory=dict)
    _conflicts: dict[str, set[str]] = field(default_factory=dict)

    @property
    def noun(self) -> str:
        return KINDS[self.kind]

    def validate(self, name: str, factory: Any, plugin: str, aliases: Sequence[str]) -> None:
        """Check one registration before it is staged; raise PluginError if malformed."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(
                f"plugin {plugin!r} registered the {self.noun} name {name!r}; expected lower-case "
                f"words of letters, digits, '-' or '_', separated by dots (e.g. 'autoencoder.sparse')"
            )
        if not callable(factory):
            raise PluginError(
                f"plugin {plugin!r} registered {self.noun} {name!r} with a "
                f"{type(factory).__name__} ({factory!r}); expected a callable factory "
                f"(a function or class that builds it)"
            )
        for alias in aliases:
            if not isinstance(alias, str) or not _NAME.match(alias):
                raise PluginError(f"plugin {plugin!r}: bad alias {alias!r} for {self.noun} {name!r}")

    def add(self, entry: Entry) -> None:
        """Add an entry; a name already owned by another plugin becomes a conflict.

        Raises:
            DuplicateNameError: when the name or an alias is already taken. The name then
                resolves to that error for everybody, rather than to either plugin.
        """
        for key in (entry.name, *entry.aliases):
            owner = self._owner(key)
            if owner is not None:
                self._conflicts.setdefault(key, {owner}).add(entry.plugin)
                self._entries.pop(key, None)
                self._aliases.pop(key, None)
                raise DuplicateNameError(self.noun, key, self._conflicts[key])
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name

    def _owner(self, key: str) -> str | None:
        if key in self._conflicts:
            return next(iter(self._conflicts[key]))
        if key in self._entries:
            return self._entries[key].plugin
        if key in self._aliases:
            return self._entries[self._aliases[key]].plugin
        return None

    def get(self, name: str) -> Entry:
        """Look a name (or alias) up.

        Raises:
            UnknownNameError: nothing registered that name; the message lists close names.
            DuplicateNameError: two plugins registered it.
        """
        if not isinstance(name, str):
            raise ConfigError(f"expected a {self.noun} name as a string, got {type(name).__name__}")
        if name in self._conflicts:
            raise DuplicateNameError(self.noun, name, self._conflicts[name])
        name = self._aliases.get(name, name)
        if name in self._conflicts:  # an alias of a name that became a conflict
            raise DuplicateNameError(self.noun, name, self._conflicts[name])
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.noun, name, self.names()) from None

    def names(self) -> list[str]:
        """Sorted registered names (aliases and conflicting names excluded)."""
        return sorted(self._entries)

    def conflicts(self) -> dict[str, list[str]]:
        """Names claimed by several plugins, with the plugins that claimed them."""
        return {k: sorted(v) for k, v in sorted(self._conflicts.items())}

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __len__(self) -> int:
        return len(self._entries)


class LazyFactory:
    """A factory named by import path, imported only when called or inspected.

    Plugin modules are imported whenever ebmkit lists what is installed, so they should not
    import torch or their model code. ``lazy("pkg.models:build")`` stands in for
    ``pkg.models.build``: calling it imports and calls the target, and its signature (for
    ``ebmkit models -v``, option checking and the docs) is read from the target — or from a
    dataclass given as ``signature`` — only when asked for.

    Args:
        target: ``"module:attribute"`` (dots in the attribute walk into classes).
        signature: Optional ``"module:Dataclass"`` whose fields are the keyword options.
        doc: The docstring (first line = summary), so listing needs no import.
    """

    def __init__(self, target: str, *, signature: str | None = None, doc: str = "") -> None:
        for path in (target, signature):
            if path is not None and ":" not in path:
                raise ConfigError(f"lazy factory: expected 'module:attribute', got {path!r}")
        self.target, self.signature_from, self.__doc__ = target, signature, doc
        self.__name__ = target.rpartition(":")[2].rpartition(".")[2]

    @staticmethod
    def resolve(path: str) -> Any:
        import importlib

        module, _, attr = path.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve(self.target)(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        import dataclasses

        source = self.resolve(self.signature_from or self.target)
        if dataclasses.is_dataclass(source):
            return inspect.Signature([
                inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                  default=f.default if f.default is not dataclasses.MISSING
                                  else (f.default_factory() if f.default_factory is not dataclasses.MISSING
                                        else inspect.Parameter.empty),
                                  annotation=f.type)
                for f in dataclasses.fields(source)])
        return inspect.signature(source)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str, *, signature: str | None = None, doc: str = "") -> LazyFactory:
    """Shorthand for [`LazyFactory`][ebmkit.registry.LazyFactory]."""
    return LazyFactory(target, signature=signature, doc=doc)
