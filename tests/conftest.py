"""Shared fixtures: the `device` every tensor test runs on, and a clean plugin host; the
hypothesis profile; the fixture plugins, loaded from the tree without installing them."""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import torch
from hypothesis import settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _load_fixture_plugins() -> list[str]:
    """Make the plugins under tests/fixtures/ visible to this test session, uninstalled.

    Each fixture's package directory goes on ``sys.path``, and a minimal ``.dist-info``
    (its name, version and ``ebmkit`` entry points, read from its pyproject.toml) goes in a
    temporary folder at the front of ``sys.path``: ``importlib.metadata`` then finds it as
    an installed distribution, for this process and, through ``PYTHONPATH``, for the
    ``ebmkit`` processes tests start. Nothing is written into the user's environment, so
    the deliberately broken plugin never reaches their ``ebmkit`` commands.

    Returns:
        The fixtures' entry-point names: the only installed plugins the tests load
        (``EBMKIT_LOAD_PLUGINS``), so an unrelated plugin the user has installed cannot
        change what they see.
    """
    site = Path(tempfile.mkdtemp(prefix="ebmkit-test-plugins-"))
    paths, names = [str(site)], []
    for project in sorted(FIXTURES.glob("*/pyproject.toml")):
        meta = tomllib.loads(project.read_text(encoding="utf-8"))["project"]
        eps = meta.get("entry-points", {}).get("ebmkit", {})
        info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\n"
                                       f"Version: {meta['version']}\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(
            "[ebmkit]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()), encoding="utf-8")
        paths.append(str(project.parent))
        names += list(eps)
    sys.path[:0] = paths  # first: a copy installed in the environment is shadowed
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [
        os.environ.get("PYTHONPATH")])])
    return names


FIXTURE_PLUGINS = ",".join(_load_fixture_plugins())
os.environ["EBMKIT_LOAD_PLUGINS"] = FIXTURE_PLUGINS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Property tests draw the same examples on every run (a red CI run replays exactly), still
# many per test; HYPOTHESIS_PROFILE=explore draws fresh ones, to hunt for new failures.
settings.register_profile("ebmkit", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ebmkit"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep what tests cache (e.g. the GAN scores' feature classifier) out of ~/.cache."""
    before = os.environ.get("EBMKIT_CACHE_DIR")
    os.environ["EBMKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("ebmkit-cache"))
    yield
    if before is None:
        os.environ.pop("EBMKIT_CACHE_DIR", None)
    else:
        os.environ["EBMKIT_CACHE_DIR"] = before


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every device this machine has: CPU always, CUDA when present."""
    return torch.device(request.param)


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch):
    """A plugin host that reloads under the test's EBMKIT_* variables and is reset after.

    It loads the built-ins and the fixture plugins only (set ``EBMKIT_LOAD_PLUGINS`` in the
    test to change that)."""
    import ebmkit.plugins as plugins

    for var in ("EBMKIT_STRICT_PLUGINS", "EBMKIT_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EBMKIT_LOAD_PLUGINS", FIXTURE_PLUGINS)
    plugins.reset()
    yield plugins
    plugins.reset()


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny-tensor tests: on two cores, threads only
    add contention. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.slow`` tests (a family's full recipe) run only with EBMKIT_SLOW_TESTS=1,
    so the README's command stays fast; `.ci/run` runs them after it. ``@pytest.mark.byhand``
    tests (quality runs longer than CI's budget) run only with EBMKIT_SLOW_TESTS=all."""
    import os

    level = os.environ.get("EBMKIT_SLOW_TESTS", "")
    skip_slow = pytest.mark.skip(reason="a quality run of a full recipe: set EBMKIT_SLOW_TESTS=1")
    skip_byhand = pytest.mark.skip(reason="longer than CI's budget: set EBMKIT_SLOW_TESTS=all")
    for item in items:
        if "byhand" in item.keywords and level != "all":
            item.add_marker(skip_byhand)
        elif "slow" in item.keywords and not level:
            item.add_marker(skip_slow)


@pytest.fixture
def no_import_circle():
    """Check a plugin's module graph ({module: {modules it imports}}) has no import circle."""

    def check(graph: dict[str, set[str]]) -> None:
        def visit(node, stack):
            assert node not in stack, f"import circle: {' -> '.join([*stack, node])}"
            for dep in graph.get(node, ()):
                visit(dep, [*stack, node])

        for module in graph:
            visit(module, [])

    return check
