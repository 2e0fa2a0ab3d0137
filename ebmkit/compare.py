"""Many runs at once: ``ebmkit runs [DIR]`` (a table) and ``ebmkit compare RUN RUN …`` (curves).

Both read only what a run directory already holds (``config.json``, ``metrics.jsonl``),
never the weights, so they answer in a blink even for large models and never import torch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["compare_runs", "find_runs", "run_summary"]

Run = Callable[[argparse.Namespace], "int | None"]


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Every run directory (one with ``metrics.jsonl`` and ``config.json``) under ``root``,
    ``root`` included, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: expected a folder of run directories, but it does not exist "
                          f"or is not a directory")
    found = {p.parent for p in root.rglob("metrics.jsonl") if (p.parent / "config.json").is_file()}
    return sorted(found)


def _records(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{run}: expected a run directory with metrics.jsonl ({exc})") from None
    return [json.loads(line) for line in lines if line.strip()]


def _best(records: Sequence[dict[str, Any]], key: str) -> float | None:
    """The best value of ``key`` over the epochs: the highest for accuracy-like metrics
    (``acc``, ``psnr``, ``ssim``, ``knn``, ``probe``, ``auroc``), else the lowest."""
    values = [r[key] for r in records if isinstance(r.get(key), (int, float))
              and math.isfinite(r[key])]
    if not values:
        return None
    higher = any(w in key for w in ("acc", "psnr", "ssim", "knn", "probe", "auroc", "auc"))
    return max(values) if higher else min(values)


def run_summary(run: str | os.PathLike[str]) -> dict[str, Any]:
    """One row of ``ebmkit runs``: model, data, epochs done of the planned, final loss, the
    best value of each validation metric, and the training time."""
    run = Path(run)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    records = _records(run)
    last = records[-1] if records else {}
    vals = sorted({k for r in records for k in r if k.startswith("val_")})
    return {
        "run": str(run),
        "model": (config.get("model") or {}).get("name", "?"),
        "data": (config.get("data") or {}).get("name", "?"),
        "epochs": f"{last.get('epoch', 0)}/{(config.get('trainer') or {}).get('epochs', '?')}",
        "loss": last.get("loss"),
        "best": {k: _best(records, k) for k in vals},
        "time_s": sum(r.get("time_s", 0.0) for r in records),
        "best_model": (run / "best.safetensors").is_file(),
    }


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)


def compare_runs(runs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 metrics: Sequence[str] | None = None) -> Path:
    """One PNG with a panel per metric and a curve per run, against the epoch.

    Args:
        runs: Run directories.
        out: The PNG to write.
        metrics: Record keys to plot; default ``loss`` and the ``val_*`` metrics and
            ``e_pos``/``e_neg`` that every run has, at most six.
    """
    from .viz import pyplot, save_figure

    if len(runs) < 1:
        raise ConfigError("compare needs at least one run directory")
    histories = {str(r): _records(Path(r)) for r in runs}
    if metrics is None:
        common = set.intersection(*(set().union(*(set(x) for x in h)) if h else set()
                                    for h in histories.values()))
        metrics = ["loss"] + sorted(k for k in common if k.startswith("val_") or k in
                                    ("e_pos", "e_neg"))
        metrics = [m for m in metrics if m in common][:6]
    else:
        for run, h in histories.items():
            missing = [m for m in metrics if not any(m in r for r in h)]
            if missing:
                keys = sorted({k for r in h for k in r})
                raise ConfigError(f"{run} has no {', '.join(missing)}; its records hold "
                                  f"{', '.join(keys)}")
    if not metrics:
        raise ConfigError("these runs share no metric to compare (not even 'loss')")
    plt = pyplot()
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, metrics):
        for run, h in histories.items():
            pts = [(r["epoch"], r[key]) for r in h if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=Path(run).name or run)
        ax.set_title(key)
        ax.set_xlabel("epoch")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_axis_off()
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out)


# ---------------------------------------------------------------------- the commands
def runs_command(parser: argparse.ArgumentParser) -> Run:
    """``ebmkit runs [DIR]``."""
    parser.add_argument("root", metavar="DIR", nargs="?", type=Path, default=Path("runs"),
                        help="a folder of run directories (default: runs)")
    parser.add_argument("--json", action="store_true", help="print JSON")

    def run(args: argparse.Namespace) -> int:
        from .cli import print_table

        rows = [run_summary(r) for r in find_runs(args.root)]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print(f"no runs under {args.root} (a run directory holds metrics.jsonl and "
                  f"config.json, as `ebmkit train` writes them)")
            return 0
        table = []
        for r in rows:
            best = ", ".join(f"{k} {_fmt(v)}" for k, v in r["best"].items()) or "-"
            table.append((r["run"], r["model"], r["data"], r["epochs"], _fmt(r["loss"]),
                          f"{r['time_s']:.1f}", best + (" (best.safetensors)" if r["best_model"]
                                                        else "")))
        print_table(table, ("RUN", "MODEL", "DATA", "EPOCHS", "LOSS", "TIME_S", "BEST"))
        return 0

    return run


def compare_command(parser: argparse.ArgumentParser) -> Run:
    """``ebmkit compare RUN RUN … [--metric KEY …] [--out PNG]``."""
    parser.add_argument("runs", metavar="RUN", nargs="+", type=Path, help="run directories")
    parser.add_argument("--metric", action="append", metavar="KEY",
                        help="a record key to plot, repeatable (default: loss, and the val_* "
                             "metrics and e_pos/e_neg every run has)")
    parser.add_argument("--out", type=Path, default=Path("compare.png"),
                        help="the PNG to write (default: compare.png)")

    def run(args: argparse.Namespace) -> int:
        print(f"wrote {compare_runs(args.runs, args.out, args.metric)}")
        return 0

    return run
