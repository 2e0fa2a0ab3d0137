"""docs/hooks_maths.py: the site's TeX becomes MathML at build time, or the build fails.

The converter is checked here on the constructs the pages use (and the table environments
they may use); ``test_docs_browser.py`` checks the built site in Chromium.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("latex2mathml")
pytest.importorskip("mkdocs")


@pytest.fixture(scope="module")
def maths():
    spec = importlib.util.spec_from_file_location("hooks_maths", ROOT / "docs" / "hooks_maths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("tex", "expect"), [
    (r"\lVert y - W z\rVert^2", "&#x02016;"),
    (r"\Big\lVert \frac{\partial h}{\partial y} \Big\rVert_F^2", "&#x02016;"),
    (r"\big\| x \big\|", "&#x02016;"),
    (r"\operatorname{softplus}(x)", "<mo>softplus</mo>"),
    (r"\check z = \arg\min_z E", "<mo>arg</mo>"),
    (r"\mathbb{E}_{x \sim p}", "&#x1D53C;"),
    (r"\varepsilon \sim \mathcal N(0, I)", "&#x0223C;"),  # \sim a relation; \mathcal N a letter
    (r"\mathrm{Dec}(\mathrm{Enc}(y))", 'mathvariant="normal"'),
    (r"\tfrac12 \lVert x\rVert^2", "<mfrac>"),
    (r"O(B \cdot \texttt{chunk\_size})", "chunk_size"),
    (r"h_{\lambda/L}\!\Big(z_t\Big)", 'width="-0.1667em"'),
    (r"\begin{aligned} a &= b \\ c &= d \end{aligned}", "<mtable"),
    (r"|x| = \begin{cases} x & x \ge 0 \\ -x & \text{otherwise} \end{cases}", "<mtable"),
    (r"\underbrace{a + b}_{c}", "<munder>"),
])
def test_constructs_convert(maths, tex: str, expect: str) -> None:
    out = maths.tex_to_mathml(tex, display=True)
    assert out.startswith("<math") and expect in out, out
    assert "\\" not in out and not re.search(r"<mi>&(amp;)?</mi>", out), out


@pytest.mark.parametrize("tex", [r"\notacommand{x}", r"a & b", r"a \\ b", ""])
def test_bad_formula_fails_the_build(maths, tex: str) -> None:
    from mkdocs.exceptions import PluginError

    page = f'<p>x <span class="arithmatex">\\({tex}\\)</span></p>'
    with pytest.raises(PluginError, match="maths on families/x.md"):
        maths.typeset(page, "families/x.md")


def test_typeset_replaces_every_formula(maths) -> None:
    page = ('<p>inline <span class="arithmatex">\\(a &lt; b\\)</span> and</p>\n'
            '<div class="arithmatex">\\[\n\\sum_k w_k\n\\]</div>')
    out = maths.typeset(page, "x.md")
    assert out.count("<math") == 2 and "\\(" not in out and "\\[" not in out
    assert 'display="inline"' in out and 'display="block"' in out
    assert "&#x0003C;" in out or "&lt;" in out  # the escaped '<' was read as '<'


def test_every_formula_in_the_docs_converts(maths) -> None:
    """Each $…$, $$…$$, \\(…\\), \\[…\\] in docs/**/*.md (outside code) converts."""
    fence = re.compile(r"^\s*(`{3,}|~{3,}).*?^\s*\1\s*$", re.S | re.M)
    pattern = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)"  # $$ \[ \(
                         r"|(?<![\\$])\$(?!\s)(.+?)(?<!\s)\$", re.S)  # $...$
    count = 0
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = fence.sub("", page.read_text("utf-8"))
        text = re.sub(r"`[^`\n]+`", "", text)  # inline code
        for m in pattern.finditer(text):
            tex = next(g for g in m.groups() if g is not None)
            try:
                maths.tex_to_mathml(tex, display=m[1] is not None or m[2] is not None)
            except maths.MathsError as exc:
                pytest.fail(f"{page.relative_to(ROOT)}: {tex.strip()!r}: {exc}")
            count += 1
    assert count > 200
