"""The documentation builds offline in strict mode, and its Python examples run.

Code-block convention in ``docs/**/*.md``:

- ```` ```python ```` blocks are **run**: each page's blocks in order, in one fresh namespace
  per page, in a temporary working directory. A ``--8<-- "path"`` line (pymdownx.snippets)
  is replaced by that file, read relative to the repository root, as the site does.
- ```` ```py ```` blocks are **shown, not run** (signatures, files for another project such
  as a plugin's tests). Both spellings highlight the same.
- A ``python`` block whose info string has ``title=`` or ``skip`` is not run either; other
  languages (``pycon``, ``bash``, ``toml``, ``text``, …) never are.

Examples check themselves with ``assert``: a page whose claims drift from the code fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # examples use tiny tensors

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
_SNIPPET = re.compile(
    r"""^(?P<indent>[ \t]*)-+8<-+[ \t]+(?P<q>["'])(?P<path>[^"']+)(?P=q)[ \t]*$"""
)


def _runs(info: str) -> bool:
    """Whether a fenced block with this info string is run (see the module docstring)."""
    words = info.replace("{", " ").replace("}", " ").split()
    lang = words[0].lstrip(".").lower() if words else ""
    return lang == "python" and "title=" not in info and "skip" not in info


def _pages_with_code() -> list[str]:
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    return [page for page in pages
            if any((m := _FENCE.match(line)) and _runs(m["info"])
                   for line in (DOCS / page).read_text("utf-8").splitlines())]


def _expand(line: str, page: str) -> str:
    m = _SNIPPET.match(line)
    if m is None:
        return line
    path = ROOT / m["path"]
    if not path.is_file():
        pytest.fail(f"docs/{page}: snippet {m['path']!r} does not exist (relative to {ROOT})")
    return "".join(m["indent"] + text for text in path.read_text("utf-8").splitlines(True))


def python_blocks(page: str) -> list[tuple[int, str]]:
    """``(first line number, source)`` of each block of ``docs/<page>`` that is run."""
    blocks: list[tuple[int, str]] = []
    lines = (DOCS / page).read_text("utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            end = re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", lines[j])
            if end is not None:
                break
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        if _runs(info):
            source = "\n".join(_expand(line, page) for line in body)
            blocks.append((i + 2, source))
        i = j + 1
    return blocks


def _clean_env() -> dict[str, str]:
    """This environment without EBMKIT_* variables: every installed plugin is looked at."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBMKIT_")}
    env["NO_MKDOCS_2_WARNING"] = "1"  # mkdocs-material's banner, not a build problem
    return env


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr}\n{proc.stdout}"

    catalogue = (site / "plugins" / "index.html").read_text("utf-8")
    assert "hello" in catalogue and "ebmkit-hello" in catalogue
    assert "A toy quadratic energy" in catalogue  # the installed plugin's summary
    assert "ebmkit-broken" in catalogue and "fails on import on purpose" in catalogue
    assert "digits" in catalogue  # built-in datasets

    reference = site / "reference" / "ebmkit.plugins" / "index.html"
    assert reference.is_file(), sorted(p.name for p in (site / "reference").iterdir())
    assert "register_plugin" in reference.read_text("utf-8")

    snippet = (site / "writing-a-plugin" / "index.html").read_text("utf-8")
    assert "HelloEnergy" in snippet and "--8&lt;--" not in snippet  # snippets were expanded

    for page in site.rglob("*.html"):  # offline: nothing is fetched by the pages
        html = page.read_text("utf-8")
        assert not re.search(r"""<(script|img|iframe)[^>]+src=["']https?://""", html), page
        assert not re.search(r"""<link[^>]+href=["']https?://""", html), page


@pytest.mark.parametrize("page", _pages_with_code())
def test_docs_python_blocks_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(page)
    import ebmkit.plugins
    from ebmkit.errors import PluginWarning

    for var in [k for k in os.environ if k.startswith("EBMKIT_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    ebmkit.plugins.reset()  # pages register in-process plugins: start and end clean
    namespace: dict[str, object] = {"__name__": f"docs.{page}"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginWarning)  # the broken fixture plugin
            for line, source in blocks:
                code = compile(source, f"docs/{page} (block at line {line})", "exec",
                               dont_inherit=True)  # not this file's __future__ imports
                exec(code, namespace)  # noqa: S102 - running the docs is the point
    finally:
        ebmkit.plugins.reset()
