"""`ebmkit demo` as a newcomer reads it: tours say they are shortened, every finished tour is
one line of output even into a log (no progress bars), and no figure is a bare NaN."""

from __future__ import annotations

import dataclasses
import math

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_says_tours_are_shortened_and_prints_one_line_each(tmp_path, capfd,
                                                                fresh_plugins) -> None:
    from ebmkit.demo import run_demo

    registry = fresh_plugins.host().registries["models"]
    for name, entry in list(registry._entries.items()):
        demo = None
        if name == "neural.mlp":  # the full recipe: 3 epochs; its tour: 1
            demo = {**{k: v for k, v in entry.demo.items() if k != "tour"}, "epochs": 3,
                    "options": {**entry.demo.get("options", {}), "langevin_steps": 2},
                    "tour": {"epochs": 1}}
        registry._entries[name] = dataclasses.replace(entry, demo=demo)
    commands = fresh_plugins.host().registries["commands"]
    for name, entry in list(commands._entries.items()):
        commands._entries[name] = dataclasses.replace(entry, demo=None)
    capfd.readouterr()
    report = run_demo(tmp_path, plots=False, progress=False).read_text()
    assert "A shortened tour: 1 of the recipe's 3 epochs; `ebmkit train neural.mlp`" in report
    assert "trains its recipe's *tour*" in report
    out, err = capfd.readouterr()
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("neural.mlp on rings: 1 epochs (shortened "
                                                   "tour) in "), out
    assert "\r" not in out + err and "%|" not in err  # no progress bar in a log


def test_report_figures_are_never_a_bare_nan() -> None:
    from ebmkit.demo import _number

    assert _number(math.nan) == "not measured"
    assert _number(0.1234567) == "0.1235" and _number(3) == "3"


def test_a_second_demo_starts_over_without_a_python_worded_warning(tmp_path, recwarn,
                                                                   fresh_plugins) -> None:
    from ebmkit.demo import run_demo

    registry = fresh_plugins.host().registries["models"]
    for name, entry in list(registry._entries.items()):
        demo = None
        if name == "kmeans":
            demo = {**{k: v for k, v in entry.demo.items() if k != "tour"}, "epochs": 1}
        registry._entries[name] = dataclasses.replace(entry, demo=demo)
    commands = fresh_plugins.host().registries["commands"]
    for name, entry in list(commands._entries.items()):
        commands._entries[name] = dataclasses.replace(entry, demo=None)
    run_demo(tmp_path, plots=False)
    run_demo(tmp_path, plots=False)
    assert not [w for w in recwarn if "resume=True" in str(w.message)]
