"""The gallery page: pictures from small trained models, each with the command that makes it.

Two halves in one file, so that the page and the pictures cannot disagree on where things are.

**The script** (run by hand when a family's code changes or a family lands)::

    python docs/hooks_gallery.py                 # every registered model with a recipe
    python docs/hooks_gallery.py kmeans gan.dcgan --force

trains each registered model that has a recipe exactly as ``ebmkit train NAME --out
runs/NAME`` does (its registered defaults; seed 0; on the CPU) and keeps the pictures its run
directory gets: the energy landscape for 2-D data, samples and reconstructions for images, and
whatever the family's own ``plots(data, out)`` draws (embeddings, inpainting, retrieval, ...).
Nothing here knows the families: a new one's pictures appear once it is registered and the
script is run. Each picture is stored as a 256-colour PNG under ``docs/img/gallery/NAME/``;
``docs/img/gallery/manifest.json`` records, per model, the command, the recipe, the CPU seconds
and the *code version* (a hash of the plugin's source files). The manifest is the cache: a
model whose code version is unchanged is not trained again (``--force`` does).

**The hook** (``on_files``) writes ``gallery.md`` from the manifest and the live registry:
each pictured model with its pictures and command, and each registered model that is not
pictured yet, or whose code changed since, with the command that pictures it. Building the
site trains nothing: it stays offline and fast.

The pictures are committed (small PNGs) rather than made at build time: training every
family's recipe takes minutes, which neither the fast test suite nor a docs build can spend.
``tests/test_docs_gallery.py`` runs the script on one model.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.ebmkit.gallery")

ROOT = Path(__file__).resolve().parent.parent
GALLERY_DIR = Path("img") / "gallery"  # under docs/
MANIFEST = "manifest.json"
PAGE = "gallery.md"
MAX_TEXT_LINES = 40  # a text a run writes is shown up to this many lines
SKIP = {"curve.png"}  # the loss curve is in every run directory; it is not a picture to look at
CAPTIONS = {  # what plot_run names its pictures; a family's own keep their file name
    "landscape": "energy landscape: exp(−E) normalised on a grid, with samples",
    "samples": "samples",
    "reconstructions": "data (left of each pair) and reconstruction (right)",
    "embedding": "embedding",
    "inpainting": "inpainting",
    "retrieval": "retrieval",
    "prototypes": "prototypes: the cluster centres",
    "energy": "energy along the updates",
    "attention": "attention weights",
    "atoms": "dictionary atoms (columns of W)",
}
MAX_WIDTH = 900  # pixels: larger pictures are shrunk before they are stored
# Pictures of what a trained model *holds*, found by attribute (scikit-learn's name for
# K-means centres; the sparse-coding families' dictionary): (file, caption, rows are atoms?)
EXTRAS = {
    "cluster_centers_": ("prototypes.png", "prototypes: the cluster centres", True),
    "dictionary": ("atoms.png", "dictionary atoms (columns of W)", False),
}


# -- the script ----------------------------------------------------------------------------
def _plugin_module(plugin: str) -> str:
    """The module a plugin was loaded from (its entry point's module), else its name."""
    from ebmkit.plugins import get_plugins

    for info in get_plugins():
        if info.name == plugin and info.entry_point:
            return info.entry_point.split(":")[0]
    return plugin


def code_version(plugin: str) -> str:
    """A short hash of the plugin's ``.py`` sources: its code version."""
    try:
        spec = importlib.util.find_spec(_plugin_module(plugin))
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "unknown"
    where = spec.submodule_search_locations
    files = ([(p, p.relative_to(loc)) for loc in map(Path, where) for p in sorted(loc.rglob("*.py"))
              if "__pycache__" not in p.parts] if where else [(Path(spec.origin), Path("."))])
    digest = hashlib.sha256()
    for path, rel in files:
        digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def command(name: str) -> str:
    """The command that makes a model's pictures: its registered recipe, nothing else."""
    return f"ebmkit train {name} --out runs/{name}"


def shrink(src: Path, dest: Path) -> None:
    """``src`` as a 256-colour PNG at most MAX_WIDTH wide (a few tens of kB)."""
    from PIL import Image

    with Image.open(src) as img:
        img = img.convert("RGB")
        if img.width > MAX_WIDTH:
            img = img.resize((MAX_WIDTH, round(img.height * MAX_WIDTH / img.width)),
                             Image.Resampling.LANCZOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


def picture(name: str, out_dir: Path, work: Path) -> dict[str, Any]:
    """Train ``name`` on its recipe into ``work``; store its pictures under ``out_dir``."""
    import torch

    from ebmkit.plugins import get_entry
    from ebmkit.runs import recipe, train_run

    entry = get_entry("models", name)
    torch.manual_seed(0)
    cpu = time.process_time()
    run, history = train_run(name, out=work / name, device="cpu", progress=False)
    took = time.process_time() - cpu
    target = out_dir / name
    if target.exists():
        for old in target.glob("*.png"):
            old.unlink()
    commands = [command(entry.name)]
    commands += _extras(run, entry.name)
    pictures = []
    for png in sorted(run.glob("*.png")):
        if png.name in SKIP:
            continue
        shrink(png, target / png.name)
        pictures.append(png.name)
    texts = []  # what text models write instead of pictures (masked.lm's fill-in.txt)
    for txt in sorted(run.glob("*.txt")):
        lines = txt.read_text("utf-8").splitlines()[:MAX_TEXT_LINES]
        target.mkdir(parents=True, exist_ok=True)
        (target / txt.name).write_text("\n".join(lines) + "\n", "utf-8")
        texts.append(txt.name)
    plan = recipe(entry)
    return {"model": entry.name, "plugin": entry.plugin, "summary": entry.summary,
            "data": plan.get("data", "digits"), "recipe": plan, "command": "\n".join(commands),
            "pictures": pictures, "texts": texts, "cpu_seconds": round(took, 1),
            "epochs": len(history), "code_version": code_version(entry.plugin),
            "torch": torch.__version__}


def _extras(run: Path, name: str) -> list[str]:
    """Draw EXTRAS for the model saved in ``run``; the commands that draw them."""
    import ebmkit as ek
    from ebmkit.plugins import get_dataset, get_entry
    from ebmkit.runs import recipe

    model = ek.load(run)
    data = get_dataset(recipe(get_entry("models", name)).get("data", "digits"))
    shape = getattr(data, "image_shape", None)
    lines = []
    for attr, (png, _, rows) in EXTRAS.items():
        value = getattr(model, attr, None)
        if shape is None or value is None or getattr(value, "dim", lambda: 0)() != 2:
            continue
        images = value.detach().cpu() if rows else value.detach().cpu().T
        ek.viz.plot_images(images[:64], run / png, image_shape=shape, title=_caption(png))
        get = f"m.{attr}" if rows else f"m.{attr}.T"
        lines.append(f"python -c \"import ebmkit as ek; m = ek.load('runs/{name}'); "
                     f"ek.viz.plot_images({get}[:64], 'runs/{name}/{png}', "
                     f"image_shape={tuple(shape)})\"")
    return lines


def load_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def make(names: list[str] | None = None, out_dir: Path | None = None, *, force: bool = False,
         work: Path | None = None) -> dict[str, Any]:
    """Picture ``names`` (default: every registered model with a recipe); the manifest.

    A model already in the manifest at its current code version is skipped unless ``force``
    (the manifest is the cache, keyed by the plugin's code version).
    """
    import tempfile

    from tqdm.auto import tqdm

    from ebmkit.plugins import get_entry, list_entries

    out_dir = Path(out_dir) if out_dir is not None else ROOT / "docs" / GALLERY_DIR
    manifest = load_manifest(out_dir)
    if names:
        entries = [get_entry("models", n) for n in names]
    else:
        entries = [e for e in list_entries("models") if e.demo]
    todo = [e for e in entries
            if force or manifest.get(e.name, {}).get("code_version") != code_version(e.plugin)]
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ebmkit-gallery-") as tmp:
        for entry in tqdm(todo, desc="gallery", unit="model"):
            try:
                manifest[entry.name] = picture(entry.name, out_dir, Path(work or tmp))
            except Exception as exc:  # noqa: BLE001 - one family's failure spares the others
                failed[entry.name] = f"{type(exc).__name__}: {exc}"
                log.warning("gallery: %s failed: %s", entry.name, failed[entry.name])
                continue
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True)
                                            + "\n", "utf-8")
    if failed:
        raise RuntimeError("gallery: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/hooks_gallery.py",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("models", nargs="*", help="registered model names (default: every "
                        "model with a recipe); each is trained only if its code changed since "
                        "it was pictured, or it has no pictures yet")
    parser.add_argument("--force", action="store_true", help="retrain even if up to date")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where pictures go (default: docs/{GALLERY_DIR})")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    manifest = make(args.models or None, args.out, force=args.force)
    print(f"{len(manifest)} models pictured in {args.out or ROOT / 'docs' / GALLERY_DIR}")
    return 0


# -- the hook ------------------------------------------------------------------------------
def _caption(png: str) -> str:
    stem = png.removesuffix(".png")
    return CAPTIONS.get(stem, stem.replace("-", " ").replace("_", " "))


def _code_html(text: str) -> str:
    """An HTML code element (inside a figure caption, where Markdown code spans are fragile)."""
    import html

    return f"<code>{html.escape(text)}</code>"


def _cell(text: str) -> str:
    """Plain text for a Markdown table cell."""
    import re

    text = " ".join(str(text).split()).replace("$", "&#36;")
    return re.sub(r"([\\`*_{}\[\]|])", r"\\\1", text)


def gallery_page(docs_dir: Path) -> str:
    """Markdown for ``gallery.md``: every pictured model, then every registered one that is not."""
    from ebmkit.plugins import list_entries

    manifest = load_manifest(docs_dir / GALLERY_DIR)
    registered = {e.name: e for e in list_entries("models")}
    out = [
        "# Gallery",
        "",
        "What the families' models draw after training on the embedded data sets, each with",
        "the command that makes the same pictures: the model's registered recipe (`ebmkit "
        "train NAME` with",
        "no options; `ebmkit train NAME --help` shows it), seed 0, on the CPU. Every picture",
        "lands in the run directory, beside the checkpoint and the metrics.",
        "",
        '!!! info "How this page is made"',
        "    `python docs/hooks_gallery.py` trains each registered model that has a recipe and",
        "    keeps its pictures (under `docs/img/gallery/`, with a manifest recording the command",
        "    and the code version); `docs/hooks_gallery.py` writes this page from them when the",
        "    site is built. A family that lands later shows up below as *not pictured yet* until",
        "    the script is run for it.",
        "",
    ]
    missing: list[str] = []
    stale: list[str] = []
    by_plugin: dict[str, list[dict[str, Any]]] = {}
    for name, item in sorted(manifest.items()):
        if name not in registered:
            log.info("ebmkit docs: gallery: %s is pictured but not registered here", name)
            continue
        for png in [*item["pictures"], *item.get("texts", [])]:
            if not (docs_dir / GALLERY_DIR / name / png).is_file():
                from mkdocs.exceptions import PluginError

                raise PluginError(f"gallery: {GALLERY_DIR}/{name}/{png} is in the manifest "
                                  "but missing; run python docs/hooks_gallery.py "
                                  f"{name} --force")
        by_plugin.setdefault(item["plugin"], []).append(item)
        if item.get("code_version") != code_version(item["plugin"]):
            stale.append(name)
    for name, entry in registered.items():
        if name not in manifest and entry.demo:
            missing.append(name)
    for plugin, items in sorted(by_plugin.items()):
        out += [f"## `{plugin}`", "", '<div class="ebmkit-gallery" markdown>', ""]
        for item in items:
            lines = item["command"].splitlines()  # the train command, then any extras
            for png in item["pictures"]:
                how = next((c for c in lines[1:] if f"/{png}'" in c), lines[0])
                src = f"{GALLERY_DIR.as_posix()}/{item['model']}/{png}"
                out += ["<figure markdown>", "",
                        f"![{item['model']}: {_caption(png)}]({src})", "",
                        f"<figcaption markdown>**`{item['model']}`** on `{item['data']}`: "
                        f"{_caption(png)}<br>{_code_html(how)}</figcaption>",
                        "</figure>", ""]
        out += ["</div>", ""]
        for item in items:  # texts (a language model's fill-ins) read better full width
            for txt in item.get("texts", []):
                text = (docs_dir / GALLERY_DIR / item["model"] / txt).read_text("utf-8")
                out += [f"**`{item['model']}`** on `{item['data']}`: `{txt}` "
                        f"({_code_html(item['command'].splitlines()[0])})", "",
                        "```text", text.rstrip("\n"), "```", ""]
        out += ["| model | what it is | recipe | training |", "|---|---|---|---|"]
        for item in items:
            stale_note = (" (pictured with an earlier version of its code)"
                          if item["model"] in stale else "")
            recipe = ", ".join(f"{k} {v}" for k, v in item["recipe"].items() if k != "options")
            options = ", ".join(f"{k}={v}" for k, v in item["recipe"].get("options", {}).items())
            out.append(f"| `{item['model']}` | {_cell(item['summary'])}{stale_note} | "
                       f"{_cell(recipe)}{'; ' + _cell(options) if options else ''} | "
                       f"{item['epochs']} epochs, {item['cpu_seconds']:g} s CPU |")
        out.append("")
    if missing:
        out += ["## Not pictured yet", "",
                "Registered models with a recipe whose pictures are not in this build; "
                "`python docs/hooks_gallery.py NAME` adds them.", "",
                "| model | the command that makes its pictures |", "|---|---|"]
        out += [f"| `{n}` | `{command(n)}` |" for n in missing]
        out.append("")
    return "\n".join(out)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    existing = files.get_file_from_path(PAGE)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, PAGE, content=gallery_page(Path(config.docs_dir))))
    return files


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    sys.exit(main())
