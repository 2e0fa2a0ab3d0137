"""The ``ebmkit`` command: argparse sub-commands, each registered through ``register_commands``.

The core's own commands (``plugins``, ``models``, ``train``, …) live in
[`ebmkit.commands`][ebmkit.commands] and are registered through the same hook a third-party
plugin uses, so a plugin cannot silently shadow one of them.

Bad input exits with code 2 and a one-paragraph message; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, EbmkitError, PluginWarning

__all__ = ["build_parser", "main", "parse_set", "print_table"]

#: Errors that mean "the input was wrong", not "ebmkit has a bug": shown without traceback.
USER_ERRORS = (EbmkitError, ValueError, TypeError, FileNotFoundError, PermissionError,
               IsADirectoryError, NotADirectoryError)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: core commands and every plugin's commands."""
    from . import __version__, plugins

    parser = argparse.ArgumentParser(
        prog="ebmkit",
        description="Energy-based models on PyTorch: train, evaluate and sample plugin models.",
        epilog="Add --debug to any command for a traceback on errors.",
    )
    parser.add_argument("--version", action="version", version=f"ebmkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry in plugins.list_entries("commands"):
        sp = sub.add_parser(entry.name, help=entry.summary, description=entry.summary)
        run = entry.factory(sp)
        if not callable(run):
            raise ConfigError(f"command {entry.name!r} of plugin {entry.plugin!r}: its setup "
                              f"function returned {type(run).__name__}, expected a callable")
        sp.set_defaults(_run=run)
    return parser


def parse_set(pairs: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``--set key=value`` options; values are JSON when they parse, else strings.

    ``k=10`` gives ``{"k": 10}``, ``init=random`` gives ``{"init": "random"}``,
    ``sizes=[64,32]`` gives a list.

    Raises:
        ConfigError: a pair without ``=`` or with a key that is not an identifier.
    """
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--set expects key=value with key a Python identifier "
                              f"(e.g. --set k=10), got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key] = value
    return options


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str], file: Any = None) -> None:
    """Print left-aligned columns (the last column is not padded)."""
    file = file or sys.stdout
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        line = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1]))
        print((line + "  " + row[-1]).rstrip() if len(row) > 1 else row[0], file=file)


def _show_warning(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
    label = "warning" if issubclass(category, PluginWarning) else category.__name__
    print(f"ebmkit: {label}: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ebmkit`` command; returns the exit code (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args: Any = None
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args = build_parser().parse_args(argv)
            args._argv = argv  # what an interrupted `ebmkit train` repeats in its hint
            return int(args._run(args) or 0)
        except USER_ERRORS as exc:
            if debug:
                traceback.print_exc()
            print(f"ebmkit: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            hint = getattr(args, "_interrupt_hint", None)
            print(f"ebmkit: interrupted{'; ' + hint() if callable(hint) else ''}",
                  file=sys.stderr)
            return 130
