"""The benchmark harness: a result type, timing helpers, discovery and the Markdown report."""

from __future__ import annotations

import importlib
import os
import platform
import pkgutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """One comparison: ebmkit's time against the reference's on the same work.

    Attributes:
        name: What was timed.
        ebmkit_s: ebmkit's time in seconds (median of the repeats).
        reference_s: The reference's time in seconds (median), or None for an absolute bar.
        reference: What the reference is.
        target: The bar, e.g. ``1.15`` for "ebmkit ≤ 1.15× the reference" or, without a
            reference, a limit in seconds.
        device: Where it ran.
        notes: Anything a reader needs (sizes, repeats, agreement checks).
    """

    name: str
    ebmkit_s: float
    reference_s: float | None
    reference: str
    target: float | None = None
    device: str = "cpu"
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.reference_s is None else self.ebmkit_s / self.reference_s

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio if self.ratio is not None else self.ebmkit_s
        return value <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return "—"
        return f"≤ {self.target:g}×" if self.reference_s is not None else f"< {self.target:g} s"


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Median times of several functions run in alternation, so drift hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def interleaved_epochs(fns: dict[str, Callable[[], float]], reset: Callable[[], None],
                       device: object, repeats: int, warmup: int = 2
                       ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Time training epochs side by side: ``(times per name, last value per name)``.

    Every run starts with ``reset()`` (the same weights for both sides); the order flips every
    round so neither side always runs first; ``warmup`` untimed rounds come first; CUDA is
    synchronised around each timed run.
    """
    import torch

    cuda = getattr(device, "type", str(device)) == "cuda"
    times: dict[str, list[float]] = {k: [] for k in fns}
    values: dict[str, float] = {}
    names = list(fns)
    for i in range(repeats + warmup):
        for name in (names if i % 2 == 0 else names[::-1]):
            reset()
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            values[name] = fns[name]()
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times, values


def hand_adam_epoch(params: Sequence[object], y: object, loss_of: Callable[[object], object],
                    fused: bool | None, lr: float, batch_size: int, seed: int) -> float:
    """One epoch of the plain PyTorch loop the epoch benches compare against.

    Adam over ``params`` (``fused`` as given to ``torch.optim.Adam``), the rows of ``y`` in
    the order of a ``torch.randperm`` from a generator seeded with ``seed`` (as the Trainer
    draws it), ``loss_of(batch)`` a scalar; returns the sample-weighted mean loss.
    """
    import torch

    opt = torch.optim.Adam(params, lr=lr, fused=fused)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=gen).to(y.device)
    total = torch.zeros((), device=y.device)
    for start in range(0, len(y), batch_size):
        batch = y.index_select(0, perm[start : start + batch_size])
        loss = loss_of(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * len(batch)
    return float(total) / len(y)


def trainer_vs_hand(label: str, trainer: Callable[[], float],
                    hand: Callable[[bool | None], float], reset: Callable[[], None],
                    device: object, repeats: int, tolerance: float, what: str,
                    target: float = 1.05) -> list[Result]:
    """Time a ``Trainer`` epoch against a hand loop and return two rows.

    The hand loop runs twice: with ``torch.optim.Adam``'s defaults (what one writes by hand;
    on the CPU the per-tensor loop) and with ``fused=True``, the implementation the Trainer
    picks for named optimizers. The first row is the user's view; the second isolates the
    Trainer's own overhead. All three run interleaved on one intra-op thread, and their
    final mean epoch losses must agree within ``tolerance`` (relative).
    """
    import torch

    fns = {"trainer": trainer, "hand": lambda: hand(None), "hand_fused": lambda: hand(True)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # at this size extra threads only add scheduling noise
    try:
        times, losses = interleaved_epochs(fns, reset, device, repeats)
    finally:
        torch.set_num_threads(threads)
    for name in ("hand", "hand_fused"):
        diff = abs(losses["trainer"] - losses[name])
        if diff > tolerance * max(1.0, abs(losses[name])):
            raise RuntimeError(f"trainer and {name} loop disagree: loss {losses['trainer']} vs "
                               f"{losses[name]}")
    t = {k: statistics.median(v) for k, v in times.items()}
    kind = getattr(device, "type", str(device))
    note = (f"{what}; 1 intra-op thread; median of {repeats} interleaved repeats; final mean "
            f"loss {losses['trainer']:.6f} (trainer), {losses['hand']:.6f} (hand, default "
            f"Adam), {losses['hand_fused']:.6f} (hand, fused Adam)")
    return [
        Result(label, t["trainer"], t["hand"], "hand-written PyTorch loop, torch.optim.Adam "
               "defaults", target, device=kind, notes=note + "; the Trainer builds named "
               "optimizers with PyTorch's fused kernel where the device has one"),
        Result(f"{label}, Trainer overhead only", t["trainer"], t["hand_fused"],
               "the same hand loop with Adam(fused=True)", target, device=kind,
               notes="like for like: both sides use the same fused Adam, so the ratio is "
                     "the Trainer's own cost per epoch (batching, checks, monitor, setup)"),
    ]


def run_command(argv: Sequence[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    """A callable that runs a command to completion (for start-up times)."""
    environ = {**os.environ, **(env or {})}

    def call() -> None:
        subprocess.run(list(argv), check=True, env=environ,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return call


def run_python(code: str, env: dict[str, str] | None = None) -> Callable[[], None]:
    """A callable that runs ``python -c code`` in a fresh interpreter."""
    return run_command([sys.executable, "-c", code], env)


def discover() -> list[str]:
    """Module names ``bench.bench_*``, sorted."""
    here = Path(__file__).parent
    return sorted(f"bench.{m.name}" for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def run_all(smoke: bool, only: Sequence[str] = ()) -> list[Result]:
    results: list[Result] = []
    for name in discover():
        if only and not any(o in name for o in only):
            continue
        module = importlib.import_module(name)
        print(f"# {name}", flush=True)
        for result in module.run(smoke=smoke):
            if smoke:  # tiny sizes say nothing about speed: report, do not judge
                result.target = None
            results.append(result)
            print("  " + line(result), flush=True)
    return results


def line(r: Result) -> str:
    ref = f"{r.reference_s:.4f} s" if r.reference_s is not None else "—"
    ratio = f"{r.ratio:.3f}×" if r.ratio is not None else "—"
    verdict = {True: "ok", False: "MISSED", None: ""}[r.passed]
    return (f"{r.name}: ebmkit {r.ebmkit_s:.4f} s, {r.reference} {ref}, ratio {ratio} "
            f"(target {r.target_text()}) {verdict}").rstrip()


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.python_implementation()} {platform.python_version()}, torch "
            f"{torch.__version__}, {os.cpu_count()} CPU cores ({platform.machine()}), {gpu}")


def markdown(results: Sequence[Result]) -> str:
    rows = [
        "| benchmark | device | ebmkit | reference | reference time | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ref = f"{r.reference_s * 1e3:.1f} ms" if r.reference_s is not None else "—"
        ratio = f"{r.ratio:.3f}×" if r.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[r.passed]
        rows.append(f"| {r.name} | {r.device} | {r.ebmkit_s * 1e3:.1f} ms | {r.reference} | "
                    f"{ref} | {ratio} | {r.target_text()} | {met} |")
    notes = [f"- **{r.name}**: {r.notes}" for r in results if r.notes]
    return "\n".join([
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (do not edit by hand). Each benchmark times ebmkit and",
        "its nearest outside reference in one process, on the same data, and reports the ratio",
        "ebmkit / reference (lower is better; below 1 means ebmkit is faster). Times are medians.",
        "",
        f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        *rows,
        "",
        *(["## Notes", "", *notes, ""] if notes else []),
        "Reproduce with `python -m bench` (all) or `python -m bench startup` (one), alone on the",
        "machine.",
        "",
    ])
