"""Packaging and set-up: the wheel's contents, and the README's commands as CI runs them."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_blocks(lang: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for block in _readme_blocks("bash") for line in block.splitlines()
                if "pytest" in line and not line.startswith("#")]
    assert len(commands) == 1, commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci
    # the CPU build of torch goes in before anything can pull a CUDA build
    torch_line = next(i for i, line in enumerate(ci) if "torch==2.13.0" in line)
    assert torch_line < ci.index(commands[0])


def test_readme_example_runs(tmp_path, monkeypatch):
    (example,) = _readme_blocks("python")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["F"](namespace["y"]).shape == (8,)


def test_wheel_ships_core_and_builtin_plugins(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        pytest.fail(out.stdout + out.stderr)
    (wheel,) = tmp_path.glob("torch_ebmkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ebmkit/__init__.py" in names and "ebmkit/plugins.py" in names
    assert "ebmkit_datasets/__init__.py" in names  # built-ins ship in the same wheel
    assert not any(n.startswith(("tests/", "bench/", "docs/")) for n in names)
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    meta = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Name: torch-ebmkit" in meta
    torch_req = next(line for line in meta.splitlines() if line.startswith("Requires-Dist: torch"))
    from packaging.requirements import Requirement

    assert Requirement(torch_req.split(": ", 1)[1]).specifier.contains("2.13.0")
    eps = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "ebmkit = ebmkit.cli:main" in eps


def test_the_test_command_installs_no_fixture_plugin():
    (command,) = [line for block in _readme_blocks("bash") for line in block.splitlines()
                  if "pytest" in line and not line.startswith("#")]
    assert "tests/fixtures" not in command  # conftest.py loads them from the tree
    from importlib import metadata

    for dist in ("ebmkit-hello", "ebmkit-broken"):  # ...for this session only
        files = [str(f.locate()) for f in metadata.distribution(dist).files or ()]
        origin = str(metadata.distribution(dist)._path)  # type: ignore[attr-defined]
        assert "ebmkit-test-plugins-" in origin, (dist, origin, files)


def test_an_unrelated_installed_plugin_does_not_change_the_suite(tmp_path):
    """A plugin the user installed (here: a dist-info on PYTHONPATH registering a dataset)
    is not loaded by the tests, so the plugin tests still see exactly the fixtures."""
    info = tmp_path / "ebmkit_other-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ebmkit-other\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ebmkit]\nother = ebmkit_other\n")
    (tmp_path / "ebmkit_other.py").write_text(
        "import ebmkit as ek\n\n@ek.hookimpl\ndef register_datasets(register):\n"
        "    register('other-data', lambda: None, summary='unrelated')\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("EBMKIT_LOAD_PLUGINS", None)
    probe = subprocess.run([sys.executable, "-c", "import ebmkit as ek; print(ek.list_datasets())"],
                           env=env, capture_output=True, text=True, cwd=tmp_path)
    assert "other-data" in probe.stdout, probe.stderr  # it is installed, as far as ebmkit knows
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_plugins.py"), "-k",
                          "disable_a_builtin or discovered"],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
