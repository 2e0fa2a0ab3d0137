"""The built-in plugins use ebmkit exactly as a third party would: public names only.

Parsed, not imported: every ``import``/``from ... import`` of ``ebmkit`` in ``plugins/`` must
name a public module (one that ``ek.<name>`` reaches) and public names in it (its
``__all__``), and no attribute chain on ``ek``, a public ebmkit module or ``torch`` may reach
a name that starts with one underscore.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import ebmkit

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
FILES = sorted(p for p in PLUGINS.glob("ebmkit_*/**/*.py") if "build" not in p.parts)

# ek.<name> -> module, for the names of the root map that are modules (ek.viz, ek.errors, ...)
PUBLIC_MODULES = {mod for mod, attr in ebmkit._LAZY.values() if attr is None}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _public_names(module: str) -> set[str]:
    return set(getattr(importlib.import_module(module), "__all__", ()))


def violations(path: Path) -> list[str]:
    """What ``path`` reaches that is not public, as ``'line: what'`` strings."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    roots = {"torch"}  # names bound to ebmkit or torch modules in this file
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "ebmkit" or alias.name.startswith("ebmkit."):
                    if alias.name != "ebmkit" and alias.name not in PUBLIC_MODULES:
                        found.append(f"{node.lineno}: import {alias.name}")
                    roots.add(alias.asname or alias.name.split(".")[0])
                elif alias.name.split(".")[0] == "torch":
                    roots.add(alias.asname or "torch")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top == "ebmkit":
                if node.module == "ebmkit":
                    allowed = set(ebmkit.__all__)
                elif node.module in PUBLIC_MODULES:
                    allowed = _public_names(node.module)
                else:
                    found.append(f"{node.lineno}: from {node.module} import ... (not a public "
                                 f"module; use ek.<module>)")
                    continue
                for alias in node.names:
                    if alias.name not in allowed:
                        found.append(f"{node.lineno}: from {node.module} import {alias.name} "
                                     f"(not in its __all__)")
                    elif node.module == "ebmkit" or alias.name in PUBLIC_MODULES:
                        roots.add(alias.asname or alias.name)
            elif top == "torch":
                for alias in node.names:
                    if _private(alias.name):
                        found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in roots | {"ek", "ebmkit"}:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_catches_private_reach_ins(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import torch\nimport ebmkit as ek\nfrom ebmkit import viz\n"
        "from ebmkit.registry import lazy\nfrom ebmkit.data.base import TensorData\n"
        "from ebmkit.errors import _nope\n"
        "plt = viz._pyplot()\nn = torch._foreach_norm([])\nek.plugins._registry('models')\n",
        encoding="utf-8")
    got = "\n".join(violations(bad))
    for what in ("ebmkit.registry", "ebmkit.data.base", "_nope", "viz._pyplot",
                 "torch._foreach_norm", "ek.plugins._registry"):
        assert what in got, (what, got)
    good = tmp_path / "good.py"
    good.write_text("import ebmkit as ek\nfrom ebmkit.errors import ConfigError\n"
                    "plt = ek.viz.pyplot()\nf = ek.plugins.lazy('m:f')\nx = ek.data.TensorData\n",
                    encoding="utf-8")
    assert violations(good) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PLUGINS)))
def test_builtin_plugins_import_only_public_names(path: Path) -> None:
    assert violations(path) == [], f"{path.relative_to(PLUGINS)} reaches private names"


def test_every_builtin_family_has_its_files_checked() -> None:
    packages = {p.relative_to(PLUGINS).parts[0] for p in FILES}
    assert {"ebmkit_autoencoders", "ebmkit_gan", "ebmkit_kmeans", "ebmkit_neural",
            "ebmkit_sparse", "ebmkit_datasets"} <= packages
