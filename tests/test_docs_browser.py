"""The built site as a reader sees it: every page loaded in a real, headless Chromium.

``mkdocs build --strict`` and the executed examples cannot see what a browser shows. This
test builds the site, serves it on localhost, and loads every page in Chromium (one
Chromium process per batch of BATCH pages: a probe page holds each site page in a
same-origin iframe). It fails if

- raw TeX remains in the rendered text (``\\(``, ``\\[`` or ``$$`` outside code blocks): a
  formula the browser would show as source instead of typeset maths;
- an image is broken (not loaded, or zero pixels wide);
- a formula is not laid out as maths (its ``<math>`` element's computed display is not
  ``math``: the browser did not typeset it).

It also saves screenshots of the home page and a family page, as a reader sees them, under
``runs/ci-artifacts/browser/`` (or ``$EBMKIT_ARTIFACTS_DIR/browser/``), which CI keeps.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); without a
browser the test skips and says so. ``EBMKIT_BROWSER_SITE=<dir>`` checks an already built
site instead of building one (e.g. an older build, to see the check fail on it).
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Pages per Chromium run: one probe page with every page of the site (68 iframes) did not
# finish in 300 s on Chromium 156, while 20 take ~6 s and 40 take ~19 s (superlinear).
BATCH = 12
SCREENSHOTS = {"home.png": "index.html", "family-kmeans-sparse.png": "families/kmeans-sparse/"}
# Flags that work in a sandbox with no network and no display (see the module docstring).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]

# Runs in the probe page once every iframe (each a page of the site) has loaded.
PROBE_JS = r"""
window.addEventListener("load", () => {
  const SKIP = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "KBD", "SAMP"]);
  const RAW = /\\\(|\\\[|\$\$/;
  const report = [];
  for (const frame of document.querySelectorAll("iframe")) {
    const doc = frame.contentDocument, page = frame.dataset.page;
    const out = {page, raw: [], broken: [], maths: 0, untypeset: 0, title: doc && doc.title};
    report.push(out);
    if (!doc || !doc.body) { out.broken.push("(the page did not load)"); continue; }
    const walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      let el = node.parentElement, skip = false;
      for (; el; el = el.parentElement) if (SKIP.has(el.tagName)) { skip = true; break; }
      const text = node.nodeValue;
      if (!skip && RAW.test(text)) {
        const i = text.search(RAW);
        out.raw.push(text.slice(Math.max(0, i - 30), i + 50).replace(/\s+/g, " "));
      }
    }
    for (const img of doc.images)
      if (!img.complete || img.naturalWidth === 0) out.broken.push(img.getAttribute("src"));
    for (const m of doc.getElementsByTagName("math")) {
      out.maths += 1;
      if (!frame.contentWindow.getComputedStyle(m).display.includes("math")) out.untypeset += 1;
    }
  }
  const pre = document.createElement("pre");
  pre.id = "ebmkit-probe";
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
});
"""


def find_browser() -> str | None:
    """The Chromium binary: ``$EBMKIT_CHROMIUM``, else the first of BROWSERS on PATH."""
    explicit = os.environ.get("EBMKIT_CHROMIUM")
    if explicit:
        return explicit
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def artifacts_dir() -> Path:
    base = os.environ.get("EBMKIT_ARTIFACTS_DIR")
    out = (Path(base) if base else ROOT / "runs" / "ci-artifacts") / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def site_pages(site: Path) -> list[str]:
    """Every page of a built site, as URL paths relative to its root."""
    pages = []
    for path in sorted(site.rglob("index.html")):
        rel = path.relative_to(site).parent.as_posix()
        pages.append("" if rel == "." else rel + "/")
    return pages


@functools.cache
def _quiet_handler() -> type[http.server.SimpleHTTPRequestHandler]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # no request log on stderr
            pass

    return Quiet


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_quiet_handler(), directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def chromium(browser: str, args: list[str], timeout: float = 300) -> str:
    """Run headless Chromium with a fresh profile; its stdout. (300 s: a probe that takes
    seconds alone took over 120 s on a 2-core machine loaded by two test runs.)"""
    with tempfile.TemporaryDirectory(prefix="ebmkit-chromium-") as profile:
        proc = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def probe(browser: str, site: Path, base_url: str, pages: list[str]) -> list[dict]:
    """Load ``pages`` in one Chromium and return what PROBE_JS found on each."""
    frames = "\n".join(
        f'<iframe data-page="{html.escape(p)}" src="/{html.escape(p)}" '
        'width="1280" height="900"></iframe>' for p in pages)
    probe_page = site / "__ebmkit_probe__.html"
    probe_page.write_text(f"<!doctype html><html><head><meta charset='utf-8'>"
                          f"<script>{PROBE_JS}</script></head><body>{frames}</body></html>",
                          "utf-8")
    try:
        dom = chromium(browser, ["--window-size=1280,900", "--virtual-time-budget=20000",
                                 "--dump-dom", base_url + probe_page.name])
    finally:
        probe_page.unlink()
    m = re.search(r'<pre id="ebmkit-probe">(.*?)</pre>', dom, re.S)
    assert m, f"the probe did not report (the load event never came?):\n{dom[-2000:]}"
    return json.loads(html.unescape(m[1]))


def screenshot(browser: str, url: str, dest: Path, height: int = 1600) -> None:
    chromium(browser, [f"--window-size=1280,{height}", "--virtual-time-budget=5000",
                       f"--screenshot={dest}", url])
    assert dest.is_file() and dest.stat().st_size > 10_000, f"no screenshot at {dest}"


def problems(report: list[dict]) -> list[str]:
    """One line per fault the probe found."""
    out = []
    for r in report:
        where = r["page"] or "(home)"
        out += [f"{where}: raw TeX in the rendered text: ...{t}..." for t in r["raw"][:5]]
        if len(r["raw"]) > 5:
            out.append(f"{where}: ... and {len(r['raw']) - 5} more raw formulas")
        out += [f"{where}: broken image {src!r}" for src in r["broken"]]
        if r["untypeset"]:
            out.append(f"{where}: {r['untypeset']} of {r['maths']} <math> not laid out as maths")
    return out


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip("no Chromium on this machine (install Debian's 'chromium', or set "
                    "EBMKIT_CHROMIUM=/path/to/chrome): the docs were not checked in a browser")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: str) -> Iterator[Path]:
    given = os.environ.get("EBMKIT_BROWSER_SITE")
    if given:
        yield Path(given)
        return
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("browser") / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBMKIT_")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build failed:\n{proc.stderr}\n{proc.stdout}"
    yield out


def test_site_in_chromium(browser: str, site: Path) -> None:
    pages = site_pages(site)
    assert "" in pages and any(p.startswith("families/") for p in pages), pages
    server, base = serve(site)
    try:
        report = [r for i in range(0, len(pages), BATCH)
                  for r in probe(browser, site, base, pages[i:i + BATCH])]
        shots = artifacts_dir()
        for name, page in SCREENSHOTS.items():
            screenshot(browser, base + page, shots / name)
    finally:
        server.shutdown()
        server.server_close()

    assert {r["page"] for r in report} == set(pages), "the probe missed pages"
    found = problems(report)
    assert not found, "the site as Chromium shows it:\n" + "\n".join(found)
    maths = {r["page"]: r["maths"] for r in report}
    assert maths[""] > 0 and sum(maths.values()) > 300, maths  # the maths is really there
