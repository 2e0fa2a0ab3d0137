"""Errors that ebmkit raises for bad input.

Every user-facing error derives from [`EbmkitError`][ebmkit.errors.EbmkitError]: the CLI
turns these into a one-paragraph message and exit code 2 (a traceback only with
``--debug``). Each also derives from the matching builtin (``LookupError``, ``ValueError``,
…) so ``except ValueError`` keeps working for people who do not know ebmkit's names.

Messages follow one shape: what was expected, what came, and what to do about it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "DatasetUnavailableError",
    "DuplicateNameError",
    "EbmkitError",
    "PluginError",
    "PluginWarning",
    "UnknownNameError",
    "closest",
]


class EbmkitError(Exception):
    """Base class of every error ebmkit raises on purpose."""


class UnknownNameError(EbmkitError, LookupError):
    """A name (model, dataset, loss, …) that no plugin registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        near = closest(name, known)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        listing = ", ".join(known) if known else "(none registered)"
        super().__init__(
            f"unknown {kind} {name!r}.{hint} Registered {_plural(kind)}: {listing}. "
            f"Run `ebmkit plugins` to see what each installed plugin provides."
        )

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0])


class ConfigError(EbmkitError, ValueError):
    """An option that is unknown, malformed or out of range."""


class PluginError(EbmkitError, RuntimeError):
    """A plugin failed to import or to register (raised in strict mode)."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind of thing."""

    def __init__(self, kind: str, name: str, plugins: Iterable[str]) -> None:
        self.kind, self.name, self.plugins = kind, name, sorted(plugins)
        owners = " and ".join(repr(p) for p in self.plugins)
        super().__init__(
            f"{kind} name {name!r} is registered by more than one plugin: {owners}. "
            f"ebmkit will not pick one silently; uninstall one of them or block it with "
            f"EBMKIT_DISABLE_PLUGINS=<plugin name>."
        )


class DatasetUnavailableError(EbmkitError, FileNotFoundError):
    """An embedded dataset whose files are not on this machine."""


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``name`` (for "did you mean")."""
    candidates = list(candidates)
    near = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    # Prefix matches catch "autoencoder" -> "autoencoder.denoising" that difflib misses.
    near += [c for c in candidates if c.startswith(name) and c not in near]
    return near[:n]


class PluginWarning(UserWarning):
    """A plugin failed to import or register; the others loaded."""
