"""mkdocs hooks for the ebmkit site: generated pages that cannot drift from the code.

- ``on_config`` appends an "API reference" section to the nav, one page per public module of
  the ``ebmkit`` package (found with ``pkgutil.iter_modules``, which imports nothing), and
  makes the snippets ``base_path`` absolute so the build works from any directory.
- ``on_files`` adds those reference pages (each one a mkdocstrings ``::: module`` block),
  one page per built-in family plugin with the classes (and config dataclasses) its
  registered models are built from, and ``plugins.md``, the plugin catalogue, generated
  from the live registry: every plugin ebmkit finds in the building environment (built-in,
  installed, failed) and every registered name — models, networks, … — with its summary
  and options.

Neither hook imports torch: ``import ebmkit`` and the plugin host are torch-free, and
mkdocstrings reads the sources statically.
"""

from __future__ import annotations

import importlib.util
import logging
import platform
import pkgutil
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import griffe
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError as MkDocsPluginError
from mkdocs.structure.files import File, Files

# mkdocs counts WARNING records under "mkdocs" as failures in strict mode: log at INFO.
log = logging.getLogger("mkdocs.hooks.ebmkit")

PACKAGE = "ebmkit"
REFERENCE = "reference"
CATALOGUE = "plugins.md"
NAV_SECTION = "API reference"


def _root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def _import_ebmkit(config: MkDocsConfig) -> Any:
    """Import ``ebmkit`` (cheap: no torch), from the checkout if it is not installed."""
    try:
        import ebmkit
    except ImportError:
        root = _root(config)
        sys.path[:0] = [str(root), str(root / "plugins")]
        import ebmkit
    return ebmkit


def public_modules(config: MkDocsConfig) -> list[tuple[str, bool]]:
    """``(module, is_package)`` for ``ebmkit`` and each public module or subpackage in it."""
    ebmkit = _import_ebmkit(config)
    found = [
        (f"{PACKAGE}.{m.name}", m.ispkg)
        for m in pkgutil.iter_modules(ebmkit.__path__)
        if not m.name.startswith("_")  # private modules and __main__
    ]
    return [(PACKAGE, True), *sorted(found)]


def _page(module: str) -> str:
    return f"{REFERENCE}/{module}.md"


# -- hooks ---------------------------------------------------------------------------------
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    root = _root(config)
    snippets = config.mdx_configs.get("pymdownx.snippets")
    if snippets is not None:
        base = snippets.get("base_path", ["."])
        base = [base] if isinstance(base, str) else list(base)
        snippets["base_path"] = [str((root / p).resolve()) for p in base]

    if config.nav is not None:
        nav = [item for item in config.nav
               if not (isinstance(item, dict) and NAV_SECTION in item)]
        nav.append({NAV_SECTION: [{module: _page(module)}
                                  for module, _ in public_modules(config)]
                    + [{f"{plugin} (family)": _family_page(plugin)}
                       for plugin in family_pages(config)]})
        config.nav = nav
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for module, ispkg in public_modules(config):
        _add(files, config, _page(module), reference_page(module, ispkg))
    for plugin, content in family_pages(config).items():
        _add(files, config, _family_page(plugin), content)
    _add(files, config, CATALOGUE, catalogue())
    return files


def _add(files: Files, config: MkDocsConfig, src_uri: str, content: str) -> None:
    existing = files.get_file_from_path(src_uri)
    if existing is not None:  # a generated page wins over a stale file on disk
        log.info("ebmkit docs: %s is generated; ignoring the file in docs/", src_uri)
        files.remove(existing)
    files.append(File.generated(config, src_uri, content=content))


# -- API reference -------------------------------------------------------------------------
def reference_page(module: str, ispkg: bool) -> str:
    """One reference page: a mkdocstrings block for the module (a package with its submodules)."""
    if module == PACKAGE:
        return _package_page()
    options = ""
    if ispkg:
        # The package docstring, then each public submodule in full. Names the package
        # re-exports are documented once, under the submodule that defines them.
        spec = importlib.util.find_spec(module)  # finds without importing the package
        subs = sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations or [])
                      if not m.name.startswith("_"))
        options = ("    options:\n      show_submodules: true\n"
                   f"      members: [{', '.join(subs)}]\n")
    return f"# `{module}`\n\n::: {module}\n{options}"


def _package_page() -> str:
    """The top-level ``ebmkit`` page: its docstring and the lazily imported public names."""
    import ebmkit

    lazy: dict[str, tuple[str, str | None]] = getattr(ebmkit, "_LAZY", {})
    lines = [
        f"# `{PACKAGE}`",
        "",
        f"::: {PACKAGE}",
        "    options:",
        "      members: false",
        "",
        "## Public names",
        "",
        "`import ebmkit as ek` gives these names; each module is imported on first access.",
        "",
        "| name | is |",
        "|---|---|",
        f"| `ek.__version__` | `{ebmkit.__version__}` |",
        "| `ek.hookimpl`, `ek.hookspec` | the pluggy markers of "
        "[`ebmkit.hookspecs`][ebmkit.hookspecs] |",
    ]
    for name, (module, attr) in lazy.items():
        target = module if attr is None else f"{module}.{attr}"
        if importlib.util.find_spec(module) is not None:  # finds without importing it
            lines.append(f"| `ek.{name}` | [`{target}`][] |")
        else:  # declared before its module is written: say so rather than break the build
            log.info("ebmkit docs: ek.%s names %s, which does not exist yet", name, module)
            lines.append(f"| `ek.{name}` | `{target}` (not available yet) |")
    return "\n".join(lines) + "\n"


# -- the families' classes -----------------------------------------------------------------
def _family_page(plugin: str) -> str:
    return f"{REFERENCE}/families/{plugin}.md"


def family_pages(config: MkDocsConfig) -> dict[str, str]:
    """``{built-in plugin: Markdown}`` for each built-in plugin that registers models: the
    plugin package with its public submodules, so a family's classes, its config dataclass
    (the options, network slots among them) and what they cross-reference are in the API
    reference. The list comes from the registry (no torch); mkdocstrings reads the sources."""
    _import_ebmkit(config)
    from ebmkit import plugins

    builtin = {name for name, _ in plugins.BUILTIN_PLUGINS}
    families = sorted({e.plugin for e in plugins.list_entries("models") if e.plugin in builtin})
    pages = {}
    for plugin in families:
        spec = importlib.util.find_spec(plugin)  # finds without importing the package
        subs = sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations or [])
                      if not m.name.startswith("_"))
        pages[plugin] = (
            f"# `{plugin}`\n\nA built-in family plugin: its models' classes and config "
            f"dataclasses (the options, network slots among them; see [Your own network and "
            f"data](../../your-own-network-and-data.md)), module by module.\n\n"
            f"::: {plugin}\n    options:\n      show_submodules: true\n"
            f"      show_if_no_docstring: true\n"
            f"      members: [{', '.join(subs)}]\n")
    return pages


# -- plugin catalogue ----------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]|])")  # not ( ): `\(` opens inline maths


def _text(s: object) -> str:
    """Plain text, safe in a Markdown table cell."""
    s = " ".join(str(s).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("$", "&#36;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def _code(s: object) -> str:
    """An inline code span that survives backticks (pipes inside code spans are safe)."""
    s = " ".join(str(s).split())
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def _anchor(plugin: str) -> str:
    return "plugin-" + re.sub(r"[^A-Za-z0-9_-]+", "-", plugin).strip("-").lower()


def catalogue() -> str:
    """Markdown for ``plugins.md``, from what the plugin host finds right now."""
    from ebmkit import __version__, plugins
    from ebmkit.errors import PluginError
    from ebmkit.registry import KINDS

    plugins.reset()  # a fresh look, also on `mkdocs serve` rebuilds
    with warnings.catch_warnings(record=True) as caught:
        # A failing plugin warns (PluginWarning); the page reports it instead.
        warnings.simplefilter("always")
        try:
            infos = plugins.get_plugins()
            entries = {kind: plugins.list_entries(kind) for kind in KINDS}
            conflicts = {kind: plugins.host().registries[kind].conflicts() for kind in KINDS}
        except PluginError as exc:  # EBMKIT_STRICT_PLUGINS=1 and a plugin failed
            raise MkDocsPluginError(f"plugin catalogue: {exc}") from exc
    failed = [i for i in infos if i.error]
    log.info("ebmkit docs: catalogue of %d plugins (%d with errors, %d warnings captured)",
             len(infos), len(failed), len(caught))

    out = [
        "# Plugin catalogue",
        "",
        '!!! info "Generated at build time"',
        "    This page is written by `docs/hooks.py` each time the site is built, from the",
        "    registry of the environment that built it (`ek.get_plugins()` and",
        "    `ebmkit.plugins.list_entries(kind)`): ebmkit "
        f"{__version__} on Python {platform.python_version()}.",
        "    Run `ebmkit plugins`, `ebmkit models -v` and `ebmkit datasets -v` to see the same",
        "    for your own installation. [Writing a plugin](writing-a-plugin.md) explains how to",
        "    add to it.",
        "",
        "## Plugins",
        "",
        "| plugin | distribution | version | status | origin | registers |",
        "|---|---|---|---|---|---|",
    ]
    for i in infos:
        counts = ", ".join(f"{len(i.registers[k])} {k if len(i.registers[k]) > 1 else KINDS[k]}"
                           for k in KINDS if i.registers.get(k)) or "-"
        out.append(
            f"| [{_text(i.name)}](#{_anchor(i.name)}) | {_text(i.dist or '-')} | "
            f"{_text(i.version or '-')} | {_text(i.status)}{' (error)' if i.error else ''} | "
            f"{'built-in' if i.builtin else 'third-party'} | {counts} |"
        )
    out.append("")
    for i in infos:
        out += _plugin_section(i, KINDS)

    for kind, noun in KINDS.items():
        out += ["", f"## {kind.capitalize()}", ""]
        rows = entries[kind]
        if not rows:
            out.append(f"No plugin registers any {kind} yet.")
        else:
            column = "usage" if kind == "commands" else "options"
            out += [f"| {noun} | summary | {column} | plugin |", "|---|---|---|---|"]
            for e in rows:
                name = _code(e.name)
                if e.aliases:
                    name += " (alias " + ", ".join(_code(a) for a in e.aliases) + ")"
                if kind == "commands":
                    options = _usage(e)
                else:
                    options = ", ".join(_code(o) for o in e.options()) or "-"
                out.append(f"| {name} | {_text(e.summary) or '-'} | {options} | "
                           f"[{_text(e.plugin)}](#{_anchor(e.plugin)}) |")
        if kind == "networks":
            from ebmkit.networks.catalog import torchvision_status

            why = torchvision_status()
            out += ["", "`torchvision.<name>` backbones (the `vision` extra) are registered "
                    "only where torchvision imports cleanly" + (
                        f"; not in the environment that built this page: {_text(why)}."
                        if why else ".")]
        for name, owners in conflicts[kind].items():
            out += ["", f'!!! failure "Name conflict: {noun} `{name}`"',
                    f"    Registered by {', '.join(_code(o) for o in owners)}; looking it up "
                    "raises `DuplicateNameError` until one of them is disabled."]
    return "\n".join(out) + "\n"


def _usage(entry: Any) -> str:
    """A command's usage line: its ``setup(parser)`` only adds arguments, so this is cheap."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"ebmkit {entry.name}", add_help=False)
    try:
        entry.factory(parser)
    except Exception as exc:  # noqa: BLE001 - the page reports it, the build goes on
        log.info("ebmkit docs: command %r: setup(parser) failed: %s", entry.name, exc)
        return "-"
    usage = " ".join(parser.format_usage().split())
    return _code(usage.removeprefix("usage: "))


def _plugin_section(info: Any, kinds: dict[str, str]) -> list[str]:
    origin = "built-in (ships with ebmkit)" if info.builtin else "third-party"
    where = (f"{'module' if info.builtin else 'entry point'} {_code(info.entry_point)}"
             if info.entry_point else "registered in-process")
    dist = f"{_text(info.dist)} {_text(info.version or '')}".strip() if info.dist else "-"
    lines = [
        "",
        f"### {_code(info.name)} {{ #{_anchor(info.name)} }}",
        "",
        f"- **Distribution:** {dist}",
        f"- **Origin:** {origin}, {where}",
        f"- **Status:** {_text(info.status)}",
    ]
    registered = [
        f"{kind}: " + ", ".join(_code(n) for n in info.registers[kind])
        for kind in kinds if info.registers.get(kind)
    ]
    lines.append(f"- **Registers:** {'; '.join(registered) if registered else 'nothing'}")
    if info.error:
        fence = "`" * max(3, max((len(r) for r in re.findall(r"`+", info.error)), default=0) + 1)
        lines += ["", '!!! failure "Error"', f"    {fence}text"]
        lines += [f"    {line}" for line in info.error.splitlines()]
        lines.append(f"    {fence}")
    return lines


# -- griffe extension (mkdocs.yml: extensions: [docs/hooks.py:DocstringConventions]) ---------
_EXAMPLE_SECTION = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class DocstringConventions(griffe.Extension):
    """Two Google-style docstring conventions that ebmkit uses and griffe does not know.

    - An ``Example:`` section is read as ``Examples:``. Napoleon accepts both spellings;
      griffe knows only the plural and would render the singular as an admonition of
      run-together ``>>>`` lines instead of code.
    - A callable class without an ``__init__`` of its own (a ``Protocol`` such as
      ``ebmkit.hookspecs.Register``) documents its ``__call__`` arguments in the class
      docstring; griffe would check them against the class signature and warn, which fails
      the strict build. Such docstrings are parsed without those two checks.
    """

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_SECTION.sub(r"\1Examples:", obj.docstring.value)
            if obj.path.startswith("ebmkit_"):
                # The built-in plugins' docstrings group parameters (``a, b: …``, as Napoleon
                # allows), which griffe reads as one unknown parameter; their pages (the
                # families' classes) are parsed without the per-parameter checks.
                obj.docstring.parser_options = {**(obj.docstring.parser_options or {}),
                                                "warn_unknown_params": False,
                                                "warn_missing_types": False}

    def on_class_members(self, *, cls: Any, **kwargs: Any) -> None:
        doc = cls.docstring
        if doc is not None and "__call__" in cls.members and "__init__" not in cls.members:
            doc.parser_options = {**(doc.parser_options or {}),
                                  "warn_unknown_params": False, "warn_missing_types": False}

