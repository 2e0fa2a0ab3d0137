"""Shared fixtures: the `device` every tensor test runs on, and a clean plugin host; the
hypothesis profile."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

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
    """A plugin host that reloads under the test's EBMKIT_* variables and is reset after."""
    import ebmkit.plugins as plugins

    for var in ("EBMKIT_STRICT_PLUGINS", "EBMKIT_DISABLE_PLUGINS", "EBMKIT_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
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
