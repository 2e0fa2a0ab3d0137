"""``python -m bench quality [FAMILY ...]``: issue 21's quality table on Fashion-MNIST.

Every row trains with 3 seeds (``--seeds``), measures its baseline in the same run, and
compares paired on the same test items (``ek.stats``: exact McNemar for accuracies, a paired
bootstrap for per-item errors and log-likelihoods). Nothing is tuned on the test split: where
a row chooses anything (a KDE's bandwidth), it chooses on a validation split carved from the
training split (the last 10% for the 2-D densities). The report, with intervals, seeds, CPU
seconds and the exact command, is written to ``docs/quality.md``; rows not run are listed
there as "not yet measured" with their command.

The per-item evaluations here (``probe_correct``, ``knn_correct``, ``psnr_per_item``) follow
the definitions of ``ebmkit_ssl.evaluate`` (StandardScaler + LogisticRegression, C = 1;
cosine 5-NN, ties to the smallest label) but return one value per test item, which the
paired tests need; the slow tests import them too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

# the rows live in bench/quality_rows.py; re-exported so ``quality.run_row``, ``quality.ROWS``,
# ``quality.Row`` and the per-item evaluations keep working from here
from .quality_rows import (  # noqa: F401
    EXPLICIT, ROWS, Row, _kde_logpdf, _psnr, classification_items, encode, knn_correct,
    probe_correct, psnr_per_item, row_autoencoder, row_denoising, row_density, row_hopfield,
    row_kmeans, row_masked, row_ssl, runner_of, _epochs, _fashion, _pca, _train,
)

ROOT = Path(__file__).resolve().parent.parent
# one JSON per row, tracked in git: rows are run one at a time (some take CPU-hours), and
# docs/quality.md is rebuilt from all of them on every run
RESULTS = ROOT / "bench" / "quality_results"
SEEDS = (0, 1, 2)


def command(key: str) -> str:
    """The exact command that (re)measures one row."""
    return f"python -m bench quality {key}"


def run_row(key: str, seeds: tuple[int, ...], quick: bool = False, save: bool = True) -> Row:
    """Run one row on one CPU thread, timing its CPU seconds, and save it as JSON under
    ``bench/quality_results/`` (when ``save``, and not in quick mode)."""
    runner = runner_of(key)
    if runner is None:
        raise SystemExit(f"bench quality: the row {key!r} is not implemented yet; implemented: "
                         f"{', '.join(k for k in ROWS if runner_of(k) is not None)}")
    torch.set_num_threads(1)
    start = time.process_time()
    row = runner(seeds, quick)
    row.cpu_s = time.process_time() - start
    # the exact command, with any BENCH_* variable that chose a subset (BENCH_ATTENTION_PARTS, ...)
    chosen = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_"))
    row.command = (f"{chosen} " if chosen else "") + command(key) + (
        f" --seeds {' '.join(map(str, seeds))}" if tuple(seeds) != SEEDS else "")
    if save and not quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{key}.json").write_text(json.dumps(row.__dict__, indent=1),
                                             encoding="utf-8")
    return row


def _fmt(values: list[float]) -> str:
    import ebmkit as ek

    iv = ek.stats.mean_interval(values)
    each = ", ".join(f"{v:.4g}" for v in values)
    if iv.n < 2 or iv.high == iv.low:
        return f"{iv.mean:.4g}" + ("" if iv.n < 2 else f" (each {each})")
    return f"{iv.mean:.4g} ± {iv.half_width:.2g} ({each})"


def markdown(rows: dict[str, Row]) -> str:
    """docs/quality.md: the measured rows with intervals, then the rows not yet measured."""
    lines = [
        "# Quality on Fashion-MNIST",
        "",
        "Issue 21's table, produced by `python -m bench quality` (one row: `python -m bench "
        "quality ROW`). Each row runs seeds 0, 1, 2 (rows that train do so by the plain "
        "command, `ebmkit train MODEL --data D --seed S` through `ebmkit.runs.train_run`, with "
        "the family's registered recipe for D; `kmeans` calls `fit`, `hopfield` stores "
        "training images), measures its baseline in the same run and judges on the 10,000 "
        "Fashion-MNIST test images (the 2-D sets' 2,000); it chooses nothing on "
        "the test split (the KDE's bandwidth is chosen on the validation set `ebmkit train` "
        "carves from the training split). Figures are the mean over the seeds ± the half-width "
        "of the 95% Student-t interval (`ek.stats.mean_interval`), then each seed's value; "
        "paired comparisons use `ek.stats.mcnemar` (accuracies) and `ek.stats.paired_bootstrap` "
        "(per-image errors and log-likelihoods, 10,000 resamples). CPU seconds are the whole "
        "row's (training three seeds and the baselines), on one thread of a shared 2-core "
        "machine.",
        "",
        "The statistics are public (`ek.stats`), for your own comparisons:",
        "",
        "```python",
        "import torch",
        "import ebmkit as ek",
        "",
        "# per-item correctness of two classifiers on the same 320 test items",
        "ours = torch.tensor([1, 1, 1, 0, 1, 1, 1, 1] * 40, dtype=torch.bool)",
        "base = torch.tensor([1, 1, 0, 0, 1, 1, 1, 1] * 40, dtype=torch.bool)",
        "test = ek.stats.mcnemar(ours, base)  # exact: only the 40 discordant items count",
        "assert (test.only_a, test.only_b) == (40, 0) and test.above()",
        "print(ek.stats.mean_interval([0.811, 0.804, 0.819]))  # 3 seeds: mean ± t-interval",
        "g = torch.Generator().manual_seed(0)",
        "err = torch.rand(500, generator=g)  # per-image errors of a model and a baseline",
        "gap = ek.stats.paired_bootstrap(err, err + 0.01)",
        "assert gap.below() and gap.high < 0  # paired: the per-image noise cancels",
        "```",
        "",
        "| row | measure | figures (mean ± 95% half-width (seeds 0, 1, 2)) | bar | met | CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for key, row in rows.items():
        figs = "<br>".join(f"{k}: {_fmt(v)}" for k, v in row.figures.items())
        met = {True: "**yes**", False: "**no**", None: "–"}[row.met]
        # a row run on part of its families (e.g. gan.dcgan of gan's three) says which
        which = "" if row.family.split(" ")[0] == key else f" (measured: {row.family})"
        lines.append(f"| `{key}`{which} | {row.measure} | {figs} | {row.bar} | {met} | "
                     f"{row.cpu_s:.0f} |")
    lines += ["", "## Paired comparisons and notes", ""]
    for key, row in rows.items():
        lines += [f"### `{key}`", "", f"Command: `{row.command}`. {row.notes}", ""]
        lines += [f"- {c}" for c in row.comparisons] + [""]
    missing = [k for k in ROWS if k not in rows]
    if missing:
        lines += ["## Not yet measured", "",
                  "| row | measure | bar | command |", "|---|---|---|---|"]
        for key in missing:
            _, measure, bar = ROWS[key]
            cmd = f"`{command(key)}`" if runner_of(key) else "not implemented in bench/quality.py yet"
            lines.append(f"| `{key}` | {measure} | {bar} | {cmd} |")
        lines.append("")
    return "\n".join(lines)


def load_rows() -> dict[str, Row]:
    """The rows saved under ``bench/quality_results/``, in the table's order."""
    out = {}
    for key in ROWS:
        path = RESULTS / f"{key}.json"
        if path.is_file():
            out[key] = Row(**json.loads(path.read_text(encoding="utf-8")))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench quality [ROW ...] [--seeds S ...] [--quick] [--no-write] [--report]``."""
    parser = argparse.ArgumentParser(prog="python -m bench quality", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("rows", nargs="*", help=f"rows to run (default: every implemented "
                                                 f"row): {', '.join(ROWS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--quick", action="store_true",
                        help="one epoch, small subsets: a smoke run that saves and writes nothing")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/quality.md")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: rewrite docs/quality.md from the saved results")
    args = parser.parse_args(argv)
    if args.report:
        path = ROOT / "docs" / "quality.md"
        path.write_text(markdown(load_rows()), encoding="utf-8")
        print(f"wrote {path} from {RESULTS}")
        return 0
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; expected some of {', '.join(ROWS)}")
    keys = args.rows or [k for k in ROWS if runner_of(k) is not None]
    for key in keys:
        row = run_row(key, tuple(args.seeds), args.quick)
        print(f"{key}: {row.figures} met={row.met} cpu={row.cpu_s:.0f}s", flush=True)
        for c in row.comparisons:
            print(f"  {c}")
    if not (args.quick or args.no_write):
        path = ROOT / "docs" / "quality.md"
        path.write_text(markdown(load_rows()), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
