"""mkdocs hook: typeset every formula at build time, as MathML that browsers display natively.

``pymdownx.arithmatex`` (generic mode) wraps each formula in ``<span class="arithmatex">\\(…\\)``
or ``<div class="arithmatex">\\[…\\]`` and leaves the TeX for a JavaScript renderer. The site
ships none (it is built and read offline), so ``on_page_content`` converts each formula with
``latex2mathml`` instead: no script, no CDN, no images. It also typesets formulas in the
table of contents (a heading with maths) and in the API reference pages, whose docstrings go
through the same Markdown.

A formula that does not convert cleanly fails the build with the page and the TeX: an
exception from the converter, a TeX command it passed through untranslated (``<mi>\\foo</mi>``),
or a construct browsers would show wrongly (an ``&`` cell separator outside a table, a line
break). Nothing is left raw silently. ``tests/test_docs_browser.py`` checks the result in a
real browser.

``latex2mathml`` covers what the pages use, with these fixes made here:

- ``\\arg`` (unknown to it) becomes ``\\operatorname{arg}``; ``aligned`` becomes ``align*``
  (the same table of right/left columns; ``aligned`` itself comes out as a row with stray
  ``&``).
- sized delimiters such as ``\\big\\lVert`` come out as the command's name: the delimiter's
  character is put in; ``\\_`` and friends inside ``\\text``/``\\texttt`` lose the backslash.
- ``\\texttt`` is set in the code font by a style (a ``mathvariant`` browsers ignore).
- named spaces (``\\!`` gives ``negativethinmathspace``), which MathML Core dropped, become
  lengths; ``\\sim`` becomes the relation ``∼`` instead of an identifier ``~``.
"""

from __future__ import annotations

import functools
import html as htmllib
import logging
import re
from typing import Any

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.ebmkit.maths")

# What arithmatex (generic mode) writes: the TeX, HTML-escaped, between \( \) or \[ \].
ARITHMATEX = re.compile(r'<(?P<tag>span|div) class="arithmatex">(?P<tex>.*?)</(?P=tag)>', re.S)
_INLINE_TOC = re.compile(r"\\\((?P<tex>.+?)\\\)", re.S)  # maths in a heading, in the TOC

_PRE = [  # (pattern, replacement) applied to the TeX before conversion
    (re.compile(r"\\arg(?![A-Za-z])"), r"\\operatorname{arg}"),
    (re.compile(r"\\(begin|end)\{aligned\}"), r"\\\1{align*}"),
    # \mathcal N (no braces) comes out as mathvariant="script", which browsers ignore;
    # \mathcal{N} comes out as the Unicode letter
    (re.compile(r"\\(math[a-z]+)(?![a-z])\s*([A-Za-z0-9])"), r"\\\1{\2}"),
]
_DELIMITERS = {  # a sized delimiter's command -> its character (in an <mo>)
    "lVert": "&#x02016;", "rVert": "&#x02016;", "Vert": "&#x02016;", "|": "&#x02016;",
    "lvert": "|", "rvert": "|", "vert": "|",
    "langle": "&#x027E8;", "rangle": "&#x027E9;", "{": "{", "}": "}",
    "lfloor": "&#x0230A;", "rfloor": "&#x0230B;", "lceil": "&#x02308;", "rceil": "&#x02309;",
}
_NAMED_SPACES = {  # MathML 3 named spaces -> lengths (MathML Core has no names)
    "veryverythinmathspace": "0.0556em", "verythinmathspace": "0.1111em",
    "thinmathspace": "0.1667em", "mediummathspace": "0.2222em",
    "thickmathspace": "0.2778em", "verythickmathspace": "0.3333em",
    "veryverythickmathspace": "0.3889em",
}
_MO_COMMAND = re.compile(r"(<mo\b[^>]*>)\\([A-Za-z]+|[|{}])(</mo>)")
_TEXT_ESCAPE = re.compile(r"(<mtext\b[^>]*>)([^<]*)(</mtext>)")
_SPACE = re.compile(r'(width|height|depth)="(negative)?(\w+mathspace)"')


class MathsError(ValueError):
    """A formula that cannot be typeset as it stands."""


def _fix_mo(m: re.Match[str]) -> str:
    char = _DELIMITERS.get(m[2])
    return m[0] if char is None else f"{m[1]}{char}{m[3]}"


def _fix_space(m: re.Match[str]) -> str:
    length = _NAMED_SPACES.get(m[3])
    if length is None:
        return m[0]
    return f'{m[1]}="{"-" if m[2] else ""}{length}"'


@functools.lru_cache(maxsize=None)
def tex_to_mathml(tex: str, display: bool) -> str:
    """MathML for one formula (the TeX without its ``\\( \\)`` or ``\\[ \\]`` delimiters).

    Raises:
        MathsError: the converter failed, or left TeX or a construct browsers would show
            wrongly in its output.
    """
    from latex2mathml.converter import convert

    source = tex.strip()
    if not source:
        raise MathsError("empty formula")
    for pattern, repl in _PRE:
        source = pattern.sub(repl, source)
    try:
        out = convert(source, display="block" if display else "inline")
    except Exception as exc:  # noqa: BLE001 - any converter failure is reported with the TeX
        raise MathsError(f"latex2mathml failed: {type(exc).__name__}: {exc}") from exc
    out = _MO_COMMAND.sub(_fix_mo, out)
    out = _TEXT_ESCAPE.sub(lambda m: m[1] + re.sub(r"\\([_%&$#{} ])", r"\1", m[2]) + m[3], out)
    out = _SPACE.sub(_fix_space, out)
    out = out.replace("<mi>&#x0007E;</mi>", "<mo>&#x0223C;</mo>")  # \sim
    out = out.replace('<mtext mathvariant="monospace">',  # \texttt: the code font, by CSS
                      '<mtext style="font-family: var(--md-code-font-family, monospace)">')
    leftover = sorted(set(re.findall(r"\\[A-Za-z]+|\\.", out)))
    if leftover:
        raise MathsError(f"TeX left untranslated: {', '.join(leftover)}")
    if re.search(r"<mi>&(amp;)?</mi>", out):
        raise MathsError("an '&' outside a table environment (use align*, cases, array, matrix)")
    if "linebreak=" in out:
        raise MathsError(r"a line break '\\' outside a table environment (use align* or cases)")
    fonts = sorted(set(re.findall(r'mathvariant="(?!normal")[^"]*"', out)))
    if fonts:  # Chromium's MathML Core knows only "normal": the letter would look plain
        raise MathsError(f"a font browsers ignore: {', '.join(fonts)}")
    return out


def typeset(html: str, where: str) -> str:
    """``html`` with each arithmatex formula replaced by MathML (in the same span or div).

    Raises:
        PluginError: a formula failed; the message names ``where`` and the TeX.
    """

    def one(m: re.Match[str]) -> str:
        tex = htmllib.unescape(m["tex"]).strip()
        display = m["tag"] == "div"
        opener, closer = (r"\[", r"\]") if display else (r"\(", r"\)")
        if not (tex.startswith(opener) and tex.endswith(closer)):
            raise PluginError(f"maths on {where}: unexpected arithmatex output {tex[:80]!r}")
        body = tex[2:-2]
        try:
            mathml = tex_to_mathml(body, display)
        except MathsError as exc:
            raise PluginError(f"maths on {where}: cannot typeset {body.strip()!r}: {exc}") from exc
        return f'<{m["tag"]} class="arithmatex">{mathml}</{m["tag"]}>'

    return ARITHMATEX.sub(one, html)


def _toc_items(items: Any) -> Any:
    for item in items:
        yield item
        yield from _toc_items(item.children)


# -- hooks ---------------------------------------------------------------------------------
def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    where = page.file.src_uri
    for item in _toc_items(page.toc or []):
        if "\\(" in item.title:
            item.title = _INLINE_TOC.sub(
                lambda m: typeset(f'<span class="arithmatex">\\({m["tex"]}\\)</span>', where),
                item.title)
    out = typeset(html, where)
    log.debug("ebmkit docs: typeset the maths of %s", where)
    return out
