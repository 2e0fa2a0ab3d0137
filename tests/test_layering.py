"""The import graph of ebmkit/ follows docs/architecture.md: layers, no cycles, and a maths
layer that imports neither the registry, nor checkpoints, nor metrics."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ebmkit"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """ebmkit modules that ``name`` imports at run time (module level or in functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {t for t in found if t in MODULES and t not in (name, "ebmkit")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layers() -> dict[str, tuple[int, str]]:
    """``{module or package: (layer, may-also-import text)}`` from the doc's table."""
    table: dict[str, tuple[int, str]] = {}
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            for module in re.findall(r"`(ebmkit[\w.]*)`", cells[2]):
                table[module] = (int(cells[0]), cells[3])
    return table


LAYERS = _layers()


def _layer(module: str) -> tuple[int, str]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer of docs/architecture.md: add it to the table")


def test_every_module_is_on_the_map() -> None:
    for module in MODULES:
        if module != "ebmkit":
            _layer(module)


def test_no_module_imports_upward() -> None:
    bad = [f"{m} (layer {_layer(m)[0]}) imports {t} (layer {_layer(t)[0]})"
           for m, targets in GRAPH.items() if m != "ebmkit"
           for t in targets if _layer(t)[0] > _layer(m)[0]]
    assert not bad, "\n".join(bad)


def test_the_maths_layer_imports_no_registry_checkpoint_or_metrics() -> None:
    maths = [m for m in MODULES if m != "ebmkit" and _layer(m)[0] == 1]
    allowed = set(re.findall(r"`(ebmkit[\w.]*)`", LAYERS[maths[0]][1]))
    assert allowed == {"ebmkit.errors", "ebmkit.config", "ebmkit.services"}
    for m in maths:
        for t in GRAPH[m]:
            assert _layer(t)[0] == 1 or t in allowed, f"{m} imports {t}"


def test_the_import_graph_has_no_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(GRAPH[m]):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_checker_sees_imports_inside_functions() -> None:
    # model.save reaches checkpoints through ebmkit.services, not a hidden function import
    assert "ebmkit.services" in GRAPH["ebmkit.model"]
    assert "ebmkit.plugins" in GRAPH["ebmkit.checkpoint"]  # load: imported inside a function
