"""``ebmkit demo``: the tour of what is installed, as a Markdown report with PNG plots.

The tour covers every plugin and what it registers, every registered dataset loaded offline
and pictured (image grids, 2-D samples beside their exact densities, decoded text), and every
model whose plugin registered a demo recipe (``register(name, factory, demo={"data": ...})``),
trained on embedded data and evaluated on its test split, with its plots; then every command
registered with a short demo (``register(name, setup, demo={"args": [...]})``), run with those
arguments and ``--out DIR``, its ``DIR/report.md`` shown.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .errors import EbmkitError

__all__ = ["run_demo"]


def _plot_dataset(name: str, data: Any, out: Path) -> str | None:
    """Picture one dataset; return the PNG's file name or None when there is nothing to draw."""
    from . import viz

    png = out / f"data-{name}.png"
    if getattr(data, "image_shape", None):
        viz.plot_images(data.y[:64], png, image_shape=data.image_shape, nrow=8, title=name)
    elif hasattr(data, "log_prob") and hasattr(data, "bounds"):
        viz.plot_density(data.log_prob, data.bounds, png, samples=data.y[:2000], title=name,
                         resolution=150)
    else:
        return None
    return png.name


def _tour_recipe(demo: dict[str, Any]) -> dict[str, Any]:
    """The recipe a model's tour trains: its full demo recipe (what `ebmkit train` uses) with
    the optional ``"tour"`` entry's fields over it (e.g. fewer epochs), options merged rather
    than replaced."""
    tour = demo.get("tour", {})
    return {**{k: v for k, v in demo.items() if k != "tour"}, **tour,
            "options": {**demo.get("options", {}), **tour.get("options", {})}}


def _train_section(entry: Any, out: Path, plots: bool) -> tuple[list[str], str]:
    """Train one model on its demo recipe; return its report section and a one-line summary."""
    from .runs import evaluate_run, train_run

    tour = entry.demo.get("tour", {})
    recipe = _tour_recipe(entry.demo)
    # The tour always starts over: an earlier demo's checkpoint is replaced, not resumed
    # (and the trainer's Python-worded "pass resume=True" warning has no place here).
    (out / entry.name / "trainer.pt").unlink(missing_ok=True)
    start = time.perf_counter()
    run, history = train_run(entry.name, recipe["data"], options=recipe.get("options"),
                             epochs=int(recipe.get("epochs", 5)), out=out / entry.name,
                             batch_size=int(recipe.get("batch_size", 128)),
                             lr=float(recipe.get("lr", 1e-3)),
                             schedule=recipe.get("schedule"), warmup=recipe.get("warmup"),
                             plots=plots, progress=False)  # None: train_run's recipe default
    took = time.perf_counter() - start
    report = evaluate_run(run)
    full = int(entry.demo.get("epochs", 5))
    shortened = (f"A shortened tour: {len(history)} of the recipe's {full} epochs"
                 f"{_tour_changes(entry.demo, tour)}; `ebmkit train {entry.name}` runs the full "
                 f"recipe (the family's page in the docs gives the figures it reaches)."
                 if tour else f"The full recipe ({full} epochs).")
    lines = [f"### `{entry.name}` on `{recipe['data']}`", "", entry.summary, "", shortened, "",
             f"{len(history)} epochs in {took:.1f} s; final loss {history[-1]['loss']:.4g}. "
             f"Test-split metrics:", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_number(v)} |" for k, v in report.items()]
    lines.append("")
    # Every picture the run wrote (the core's and the family's own plots()), the curve last.
    pngs = sorted(p.name for p in run.glob("*.png"))
    pngs = [p for p in pngs if p != "curve.png"] + (["curve.png"] if "curve.png" in pngs else [])
    for png in pngs:
        lines += [f"![{entry.name} {png[:-4]}]({entry.name}/{png})", ""]
    for txt in sorted(run.glob("*.txt")):  # e.g. masked.lm's fill-in.txt
        lines += [f"`{txt.name}`:", "", "```text", txt.read_text(encoding="utf-8").rstrip(), "```", ""]
    lines.append(f"Run directory: `{run}` (try `ebmkit eval {run}` and `ebmkit sample {run}`).")
    shown = ", ".join(f"{k} {_number(v)}" for k, v in list(report.items())[:2])
    summary = (f"{entry.name} on {recipe['data']}: {len(history)} epochs"
               f"{' (shortened tour)' if tour else ''} in {took:.1f} s"
               f"{'; ' + shown if shown else ''}")
    return lines, summary


def _tour_changes(recipe: dict[str, Any], tour: dict[str, Any]) -> str:
    """What a tour changes besides the epochs, e.g. `` (with batch_size 32 instead of 64,
    langevin_steps 5)`` (an option the recipe leaves to the model's default has no "instead
    of"); empty when the tour only shortens the run."""
    defaults = {"batch_size": 128, "lr": 1e-3}  # train_run's, as _train_section passes them
    changed = [(k, v, recipe.get(k, defaults.get(k))) for k, v in tour.items()
               if k not in ("epochs", "options")]
    options = recipe.get("options", {})
    changed += [(k, v, options.get(k)) for k, v in tour.get("options", {}).items()]
    if not changed:
        return ""
    return " (with " + ", ".join(
        f"{k} {_number(v)}" + (f" instead of {_number(old)}" if old is not None else "")
        for k, v, old in changed) + ")"


def _number(v: Any) -> str:
    """A figure for the report: never a bare "nan" (say it was not measured)."""
    if isinstance(v, float) and v != v:
        return "not measured"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _command_section(entry: Any, out: Path) -> list[str]:
    """Run one command's short demo; return its report section.

    A command registered with ``demo={"args": [...]}`` is run as ``ebmkit NAME ARGS --out
    out/NAME`` (its printed lines are swallowed); the ``report.md`` it writes there becomes the
    section, its headings demoted and its relative pictures re-linked into ``NAME/``.
    """
    import argparse
    import contextlib
    import io
    import re

    where = out / entry.name
    argv = [*entry.demo["args"], "--out", str(where)]
    parser = argparse.ArgumentParser(prog=f"ebmkit {entry.name}")
    run = entry.factory(parser)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run(parser.parse_args(argv))
    except EbmkitError as exc:  # e.g. an optional extra that is not installed
        return [f"### `ebmkit {entry.name}`", "", f"Not available here: {exc}"]
    took = time.perf_counter() - start
    lines = [f"### `ebmkit {entry.name} {' '.join(entry.demo['args'])}`", "", entry.summary, "",
             f"Ran in {took:.1f} s (a short budget); its report `{where / 'report.md'}`:", ""]
    for line in (where / "report.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            line = "###" + line  # "# Title" → "#### Title", under this section
        lines.append(re.sub(r"\]\((?![a-z]+:|/)([^)]+)\)", rf"]({entry.name}/\1)", line))
    return lines


def _done(line: str, progress: bool) -> None:
    """One line per finished tour, also when the output goes to a log (no progress bar)."""
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(line)
    else:
        print(line, flush=True)


def run_demo(out: str | os.PathLike[str], *, plots: bool = True, progress: bool = False,
             train: bool = True) -> Path:
    """Run the tour and write ``out/report.md`` (and PNGs unless ``plots=False``).

    Args:
        out: Directory for the report and plots (created if needed).
        plots: Draw PNGs (needs the ``plot`` extra); the report says when they are skipped.
        progress: Show a progress bar.
        train: Train every model that registered a demo recipe (``register(..., demo=...)``).

    Returns:
        The report's path.
    """
    from tqdm.auto import tqdm

    from . import __version__
    from .plugins import get_plugins, list_entries

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EbmkitError(f"--out {out}: expected a directory, found a file")
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            plots = False
            plot_note = "Plots skipped: install the `plot` extra (`pip install 'torch-ebmkit[plot]'`)."
        else:
            plot_note = ""
    else:
        plot_note = "Plots skipped (`--no-plots`)."

    lines = [f"# ebmkit {__version__}: demo report", ""]
    if plot_note:
        lines += [f"> {plot_note}", ""]
    lines += ["## Plugins", "", "| plugin | distribution | status | registers |", "|---|---|---|---|"]
    for info in get_plugins():
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registers.items()) or "—"
        status = info.status + (f" ({info.error.splitlines()[0]})" if info.error else "")
        lines.append(f"| `{info.name}` | {info.dist or '—'} {info.version or ''} | {status} | {what} |")

    lines += ["", "## Models", ""]
    models = list_entries("models")
    lines += [f"- `{e.name}` ({e.plugin}): {e.summary}" for e in models] or [
        "No model families are registered yet."]
    recipes = [e for e in models if e.demo] if train else []
    if recipes:
        lines += ["", "Each model below trains its recipe's *tour*: a shortened run that fits "
                  "the demo's time budget. `ebmkit train MODEL` trains the full recipe.", ""]
    for entry in tqdm(recipes, desc="models", disable=not progress, unit="model"):
        section, summary = _train_section(entry, out, plots)
        lines += ["", *section]
        _done(summary, progress)
    # Commands with a short demo (``register(name, setup, demo={"args": [...]})``).
    commands = [e for e in list_entries("commands") if e.demo] if train else []
    if commands:
        lines += ["", "## Commands", ""]
    for entry in tqdm(commands, desc="commands", disable=not progress, unit="command"):
        start = time.perf_counter()
        lines += ["", *_command_section(entry, out)]
        _done(f"ebmkit {entry.name}: {time.perf_counter() - start:.1f} s", progress)

    lines += ["", "## Datasets", ""]
    entries = list_entries("datasets")
    for entry in tqdm(entries, desc="datasets", disable=not progress, unit="set"):
        start = time.perf_counter()
        try:
            data = entry.factory()
        except EbmkitError as exc:  # e.g. fashion-mnist without its Debian package
            lines += [f"### `{entry.name}`", "", f"Not available here: {exc}", ""]
            continue
        took = time.perf_counter() - start
        describe = data.describe() if hasattr(data, "describe") else f"{len(data)} items"
        lines += [f"### `{entry.name}`", "", f"{entry.summary}", "",
                  f"`{describe}` — loaded in {took:.2f} s", ""]
        vocab = getattr(data, "vocab", None)
        if vocab is not None:
            snippet = vocab.decode(data.y[0].tolist())[:200].replace("\n", " ")
            lines += [f"Vocabulary: {len(vocab)} {vocab.level} tokens. First block:", "",
                      f"> {snippet}", ""]
        if plots:
            png = _plot_dataset(entry.name, data, out)
            if png:
                lines += [f"![{entry.name}]({png})", ""]

    from .checkpoint import atomic_write_text

    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report
