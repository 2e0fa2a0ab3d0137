"""docs/hooks_gallery.py: the script that pictures trained models, and the page made from them.

The committed pictures under docs/img/gallery/ are made by the script (see its docstring);
these tests run it on one cheap model, check its cache (the manifest's code version), the
page it leads to, and that the committed manifest and pictures agree.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "docs" / "img" / "gallery"
pytestmark = pytest.mark.usefixtures("one_thread")
pytest.importorskip("matplotlib")
pytest.importorskip("mkdocs")


@pytest.fixture(scope="module")
def gallery():
    path = ROOT / "docs" / "hooks_gallery.py"
    spec = importlib.util.spec_from_file_location("hooks_gallery", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_pictures_a_model_and_caches_it(gallery, tmp_path: Path) -> None:
    from PIL import Image

    docs = tmp_path / "docs"
    out = docs / gallery.GALLERY_DIR
    manifest = gallery.make(["kmeans"], out, work=tmp_path / "runs")
    item = manifest["kmeans"]
    assert item["command"].splitlines()[0] == "ebmkit train kmeans --out runs/kmeans"
    assert {"reconstructions.png", "prototypes.png"} <= set(item["pictures"])
    assert "curve.png" not in item["pictures"]
    assert item["code_version"] == gallery.code_version("ebmkit_kmeans") != "unknown"
    for png in item["pictures"]:
        with Image.open(out / "kmeans" / png) as img:
            assert img.mode == "P" and img.width <= gallery.MAX_WIDTH  # 256 colours, small
    assert (tmp_path / "runs" / "kmeans" / "model.json").is_file()  # a real run directory
    # the prototypes picture is what its own command draws: the saved model's centres
    assert "cluster_centers_" in item["command"]

    stamp = (out / "kmeans" / "prototypes.png").stat().st_mtime_ns
    gallery.make(["kmeans"], out)  # up to date: not trained again
    assert (out / "kmeans" / "prototypes.png").stat().st_mtime_ns == stamp

    page = gallery.gallery_page(docs)
    assert "img/gallery/kmeans/prototypes.png" in page and "ebmkit train kmeans" in page
    assert "earlier version" not in page


def test_page_lists_models_not_pictured_yet(gallery, tmp_path: Path) -> None:
    from ebmkit.plugins import list_entries

    page = gallery.gallery_page(tmp_path)  # no manifest at all
    assert "## Not pictured yet" in page
    for entry in list_entries("models"):
        if entry.demo:
            assert f"`{gallery.command(entry.name)}`" in page


def test_missing_picture_fails_the_build(gallery, tmp_path: Path) -> None:
    from mkdocs.exceptions import PluginError

    out = tmp_path / gallery.GALLERY_DIR
    out.mkdir(parents=True)
    (out / gallery.MANIFEST).write_text(json.dumps({"kmeans": {
        "model": "kmeans", "plugin": "ebmkit_kmeans", "summary": "s", "data": "digits",
        "recipe": {}, "command": "ebmkit train kmeans --out runs/kmeans",
        "pictures": ["gone.png"], "cpu_seconds": 1.0, "epochs": 1, "code_version": "x"}}))
    with pytest.raises(PluginError, match="gone.png"):
        gallery.gallery_page(tmp_path)


def test_committed_gallery_is_consistent(gallery) -> None:
    manifest = gallery.load_manifest(GALLERY)
    assert manifest, "docs/img/gallery/manifest.json is missing: run python docs/hooks_gallery.py"
    kinds = set()
    for name, item in manifest.items():
        assert item["command"].startswith(f"ebmkit train {name} --out runs/{name}")
        assert item["pictures"] or item.get("texts"), name
        for txt in item.get("texts", []):
            assert (GALLERY / name / txt).read_text("utf-8").strip(), txt
        for png in item["pictures"]:
            path = GALLERY / name / png
            assert path.is_file() and path.stat().st_size < 200_000, path
            kinds.add(png)
    # what the gallery promises: samples, reconstructions, energy landscapes, prototypes
    assert {"samples.png", "reconstructions.png", "landscape.png", "prototypes.png"} <= kinds
