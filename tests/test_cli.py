"""The `ebmkit` command line: listings, plugin commands, bad input, the demo."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import ebmkit as ek
from ebmkit.cli import main, parse_set
from ebmkit.errors import ConfigError, PluginWarning


@pytest.fixture(autouse=True)
def _quiet_broken_plugin(fresh_plugins, monkeypatch):
    monkeypatch.setenv("EBMKIT_DISABLE_PLUGINS", "broken")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plugins_table_shows_distributions_versions_and_errors(capsys, monkeypatch, fresh_plugins):
    monkeypatch.delenv("EBMKIT_DISABLE_PLUGINS")
    with warnings.catch_warnings():
        warnings.simplefilter("always", PluginWarning)  # pytest's config ignores them
        code, out, err = run(capsys, "plugins")
    assert code == 0
    table, _, errors = out.partition("\nerrors:\n")
    lines = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert "ebmkit-hello" in lines["hello"] and "0.1.0" in lines["hello"] and "loaded" in lines["hello"]
    assert "models: hello" in lines["hello"]
    assert "ebmkit-broken" in lines["broken"] and "failed" in lines["broken"]
    assert "broken (ebmkit_broken): RuntimeError: ebmkit-broken fails on import on purpose" in errors
    assert "warning" in err and "'broken'" in err


def test_plugins_json(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    infos = {i["name"]: i for i in json.loads(out)}
    assert code == 0 and infos["hello"]["dist"] == "ebmkit-hello"
    assert infos["broken"]["status"] == "disabled"


def test_models_and_datasets_list_summaries(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "hello" in out and "A toy quadratic energy" in out
    code, out, _ = run(capsys, "datasets", "-v")
    assert code == 0
    for name in ("digits", "moons", "rings", "eight-gaussians", "swiss-roll", "checkerboard",
                 "text", "fashion-mnist", "hello-blob"):
        assert name in out
    assert "digits(split: str = 'train')" in out
    code, out, _ = run(capsys, "models", "--json")
    listed = {m["name"]: m for m in json.loads(out)}
    assert listed["hello"]["options"] == ["dim: int = 2", "scale: float = 1.0"]


def test_plugin_subcommand(capsys):
    code, out, _ = run(capsys, "hello", "--name", "tests")
    assert code == 0 and out.startswith("hello, tests:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "hellp"], "unknown model 'hellp'. Did you mean 'hello'"),
        (["train", "hello", "--set", "dim"], "--set expects key=value"),
        (["train", "hello", "--set", "dimm=3"], "no option 'dimm' (did you mean 'dim'?)"),
        (["train", "hello", "--data", "digitz"], "unknown dataset 'digitz'. Did you mean 'digits'?"),
        (["train", "hello", "--device", "gpu"], "--device: expected one of auto, cpu"),
        (["eval", "/no/such/run"], "expected a run directory"),
        (["sample", "/no/such/run"], "expected a run directory"),
    ],
)
def test_bad_input_exits_2_without_traceback(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    code, _, err = run(capsys, "--debug", "train", "hellp")
    assert code == 2 and "Traceback" in err and "UnknownNameError" in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "hello", "--epochs", "0"])
    assert exc.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_resume_without_checkpoint_is_a_clear_error(capsys, tmp_path):
    code, _, err = run(capsys, "train", "hello", "--out", str(tmp_path), "--resume")
    assert code == 2 and "no checkpoint" in err and "trainer.pt" in err


def test_parse_set_values():
    assert parse_set(["k=10", "init=random", "sizes=[64, 32]", "tied=true", "lr=1e-3"]) == {
        "k": 10, "init": "random", "sizes": [64, 32], "tied": True, "lr": 1e-3}
    with pytest.raises(ConfigError, match="got '=3'"):
        parse_set(["=3"])


def test_console_script_and_module_entry_points():
    exe = Path(sys.executable).with_name("ebmkit")
    for cmd in ([str(exe), "--version"], [sys.executable, "-m", "ebmkit", "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert out.stdout.startswith("ebmkit ")
    bad = subprocess.run([sys.executable, "-m", "ebmkit", "models", "--nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unrecognized arguments: --nope" in bad.stderr


def test_demo_writes_a_report_with_plots(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path), "--no-train")
    assert code == 0 and "report.md" in out
    report = (tmp_path / "report.md").read_text()
    for name in ("digits", "moons", "rings", "eight-gaussians", "swiss-roll", "checkerboard",
                 "text", "fashion-mnist", "hello-blob", "ebmkit_datasets"):
        assert f"`{name}`" in report, name
    assert "digits[train]: 1438" in report
    for png in ("data-digits.png", "data-rings.png", "data-checkerboard.png"):
        assert (tmp_path / png).stat().st_size > 1000
        assert f"]({png})" in report
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_demo_refuses_a_file_as_output(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = run(capsys, "demo", "--out", str(target), "--no-plots")
    assert code == 2 and "expected a directory" in err


class _ReportCommand:
    """A command with a short demo: writes DIR/report.md with a heading and a picture."""

    @staticmethod
    def _setup(parser):
        parser.add_argument("--word", required=True)
        parser.add_argument("--out", type=Path, required=True)

        def go(args):
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "p.png").write_bytes(b"png")
            (args.out / "report.md").write_text(f"# Title\n\nsaid {args.word}\n\n![p](p.png)\n")
            print("noise that the demo swallows")
            return 0

        return go

    @ek.hookimpl
    def register_commands(self, register):
        register("say-report", self._setup, summary="writes a report",
                 demo={"args": ["--word", "hi"]})


def test_demo_shows_the_report_of_a_command_with_a_demo(capsys, tmp_path, fresh_plugins):
    import dataclasses

    from ebmkit.demo import run_demo

    fresh_plugins.register_plugin(_ReportCommand(), name="say-report")
    for kind in ("models", "commands"):  # only this command's demo runs
        registry = fresh_plugins.host().registries[kind]
        for name, entry in list(registry._entries.items()):
            if name != "say-report":
                registry._entries[name] = dataclasses.replace(entry, demo=None)
    report = run_demo(tmp_path, plots=False).read_text()
    assert "## Commands" in report and "### `ebmkit say-report --word hi`" in report
    assert "#### Title" in report and "said hi" in report
    assert "![p](say-report/p.png)" in report and (tmp_path / "say-report" / "p.png").is_file()
    assert "noise" not in capsys.readouterr().out


def test_a_command_demo_must_be_its_arguments(fresh_plugins):
    class Bad:
        @ek.hookimpl
        def register_commands(self, register):
            register("bad-demo", lambda parser: None, demo={"data": "digits"})

    with pytest.warns(PluginWarning, match=r"expected \{'args': \[str, \.\.\.\]\}"):
        info = fresh_plugins.register_plugin(Bad(), name="bad-demo")
    assert info.status == "failed"
