"""The core sub-commands of ``ebmkit``, registered by the built-in plugin ``ebmkit``.

They go through the same ``register_commands`` hook as a third party's commands. Each setup
function adds its arguments and returns the function that runs the command. Heavy imports
(torch, data, plots) happen inside the run functions: ``ebmkit models`` imports neither torch
nor any plugin's model code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any
from pathlib import Path

from .compare import compare_command, runs_command
from .errors import ConfigError, EbmkitError
from .hookspecs import Register

Run = Callable[[argparse.Namespace], "int | None"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def register_commands(register: Register) -> None:
    register("plugins", _plugins, summary="List plugins, their distributions, what each "
             "registers, and load errors")
    register("models", _listing("models"), summary="List registered models with their summaries")
    register("datasets", _listing("datasets"), summary="List registered datasets")
    register("networks", _listing("networks"), summary="List registered networks (for the "
             "families' slots: --set encoder=NAME)")
    register("train", _train, summary="Train a model on a dataset and write a run directory")
    register("eval", _eval, summary="Evaluate a trained run: metrics as a table and JSON")
    register("sample", _sample, summary="Write samples or reconstructions of a run as a PNG grid")
    register("runs", runs_command, summary="A table of the runs under a folder: model, data, "
             "epochs, loss, best metrics, time")
    register("compare", compare_command, summary="One PNG of several runs' curves side by side")
    register("demo", _demo, summary="The tour: each built-in family on embedded data, with a "
             "Markdown report and plots")


# -- plugins / models / datasets ------------------------------------------------------------
def _plugins(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(args: argparse.Namespace) -> int:
        from dataclasses import asdict

        from .cli import print_table
        from .plugins import get_plugins

        infos = get_plugins()
        if args.json:
            print(json.dumps([asdict(i) for i in infos], indent=2))
            return 0
        rows = []
        for i in infos:
            what = "; ".join(f"{k}: {', '.join(v)}" for k, v in i.registers.items()) or "-"
            rows.append((i.name, i.dist or "-", i.version or "-", i.status, what))
        print_table(rows, ("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "REGISTERS"))
        failed = [i for i in infos if i.error]
        if failed:
            print("\nerrors:")
            for i in failed:
                for line in i.error.splitlines():
                    print(f"  {i.name} ({i.entry_point}): {line}")
        return 0

    return run


def _listing(kind: str) -> Callable[[argparse.ArgumentParser], Run]:
    def setup(parser: argparse.ArgumentParser) -> Run:
        parser.add_argument("-v", "--verbose", action="store_true", help="also list options")
        parser.add_argument("--json", action="store_true", help="print JSON")

        def run(args: argparse.Namespace) -> int:
            from .cli import print_table
            from .plugins import list_entries

            entries = list_entries(kind)
            if args.json:
                print(json.dumps([{"name": e.name, "summary": e.summary, "plugin": e.plugin,
                                   "aliases": list(e.aliases),
                                   "options": [str(o) for o in e.options()],
                                   **({"recipe": _recipe(e), "recipes": dict(e.recipes or {}),
                                       "slots": model_slots(e)}
                                      if kind == "models" else {})}
                                  for e in entries], indent=2))
                return 0
            print_table([(e.name, e.plugin, e.summary) for e in entries],
                        (kind[:-1].upper(), "PLUGIN", "SUMMARY"))
            if kind == "networks":
                from .networks.catalog import torchvision_status

                why = torchvision_status()
                if why is not None:
                    print(f"\ntorchvision.* networks are not registered: {why}")
            if args.verbose:
                from .runs import recipe_text

                for e in entries:
                    print(f"\n{e.name}({', '.join(map(str, e.options()))})")
                    if kind == "models":
                        slots = model_slots(e)
                        if slots:
                            print("  slots (a network name, {\"name\": ..., **options}, or an "
                                  "nn.Module from Python): "
                                  + "; ".join(f"{k} (default: {v})" for k, v in slots.items()))
                        print(f"  {recipe_text(e)}")
            return 0

        return run

    return setup


def model_slots(entry: object) -> dict[str, str]:
    """A registered model's network slots and their defaults in words (``{}`` when none).

    Read from the class's ``slots`` (or the factory's own ``slots`` attribute); this imports
    the model's module, as reading its options does.
    """
    from .registry import LazyFactory

    factory = getattr(entry, "factory", None)
    try:
        target = LazyFactory.resolve(factory.target) if isinstance(factory, LazyFactory) else factory
    except Exception:  # noqa: BLE001 - a broken plugin: its options are not shown either
        return {}
    owner = getattr(target, "__self__", target)
    slots = getattr(owner, "slots", None) or getattr(target, "slots", None)
    return dict(slots) if isinstance(slots, dict) else {}


# -- train / eval / sample ------------------------------------------------------------------
def _recipe(entry: object) -> dict[str, object]:
    from .runs import recipe

    return recipe(entry)


def _train(parser: argparse.ArgumentParser) -> Run:
    parser.epilog = ("Give MODEL before --help to see its recipe, e.g. `ebmkit train kmeans "
                     "--help`; `ebmkit models -v` lists every model's.")

    def model_name(text: str) -> str:
        # argparse reads MODEL before a later --help: show MODEL's recipe in the help's epilog
        from .plugins import get_entry
        from .runs import recipe_text

        try:
            entry = get_entry("models", text)
        except EbmkitError:
            return text  # run() reports the unknown name, with suggestions
        parser.epilog = (f"{entry.name}: {recipe_text(entry)}. The flags you give override "
                         f"it one by one; for another --data the recipe for that data set's "
                         f"name, else for its kind (images, vectors, tokens), else what still "
                         f"applies of this one, and the command says which.")
        return text

    parser.add_argument("model", metavar="MODEL", type=model_name,
                        help="a registered model name (ebmkit models)")
    parser.add_argument("--data", help="a registered dataset (ebmkit datasets), a folder of "
                        "PNG/JPEG images (class sub-folders as labels), a .npy/.npz/.safetensors "
                        "file or a .txt corpus (default: the model's recipe's, else digits)")
    parser.add_argument("--val-fraction", type=_fraction, metavar="F",
                        help="share of the training rows held out as the run's validation set, "
                             "drawn with a fixed seed; nothing trains on it and the test split "
                             "is never read (default: 0.05; 0 for none)")
    parser.add_argument("--image-size", type=_positive_int, metavar="N",
                        help="a folder of images: resize every image to N×N (needed when their "
                             "sizes differ)")
    parser.add_argument("--channels", type=int, choices=(1, 3),
                        help="a folder of images: 1 (grey) or 3 (RGB) (default: from the images)")
    parser.add_argument("--level", choices=("char", "word"),
                        help="a .txt corpus: tokens are characters or words (default: char)")
    parser.add_argument("--epochs", type=_positive_int,
                        help="epochs (default: the model's recipe for DATA, else 10)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", dest="options",
                        help="a model option, repeatable: --set k=10 --set init=random")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/MODEL)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--force", action="store_true",
                        help="start over in --out even when it holds a run (replaces it)")
    parser.add_argument("--callback", action=_CallbackName, dest="callbacks", metavar="NAME",
                        help="a callback by name, repeatable: early_stopping, best_checkpoint, "
                             "sample_grid, or a plugin's (ebmkit plugins)")
    parser.add_argument("--set-callback", action=_CallbackOption, dest="callbacks",
                        metavar="KEY=VALUE", help="an option of the --callback before it: "
                        "--callback early_stopping --set-callback patience=5")
    parser.add_argument("--logger", action="append", dest="loggers", metavar="NAME",
                        help="csv or tensorboard, repeatable; they write into the run directory "
                             "(tensorboard --logdir DIR), beside metrics.jsonl")
    parser.add_argument("--batch-size", type=_positive_int,
                        help="default: the model's recipe for DATA, else 128")
    parser.add_argument("--lr", type=float,
                        help="learning rate (default: the model's recipe for DATA, else 1e-3)")
    parser.add_argument("--schedule", metavar="NAME",
                        help="learning rate over the run: constant, cosine or linear, decayed "
                             "to 0 at the last step (default: the model's recipe for DATA, "
                             "else constant)")
    parser.add_argument("--warmup", type=_nonnegative_int, metavar="STEPS",
                        help="steps of linear lr warm-up (default: the recipe's, else 0)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed, set before the model is built and for the run, so "
                             "two identical commands give bit-identical weights on one "
                             "machine (default: 0)")
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off",
                        help="mixed precision: autocast in bf16, or fp16 with a grad scaler "
                             "(default: off)")
    parser.add_argument("--accumulate", type=_positive_int, default=1, metavar="N",
                        help="gradient accumulation: N batches per optimizer step (default: 1)")
    parser.add_argument("--distributed", choices=("auto", "ddp", "fsdp", "explicit"),
                        default="auto", help="under torchrun: how gradients meet (default: "
                        "auto; see docs/scaling-out.md)")

    def run(args: argparse.Namespace) -> int:
        from .cli import parse_set, print_table
        from .plugins import get_entry

        options = parse_set(args.options)
        entry = get_entry("models", args.model)
        entry.check_options(options)
        data_options = {"image_size": args.image_size, "channels": args.channels,
                        "level": args.level}
        if args.data is None and any(v is not None for v in data_options.values()):
            raise ConfigError("--image-size, --channels and --level apply to --data PATH (a "
                              "folder of images or a .txt corpus); give --data")
        check_device(args.device)
        out = args.out or Path("runs") / args.model
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: expected a directory, found a file")
        if args.resume and not (out / "trainer.pt").is_file():
            raise ConfigError(f"--resume: no checkpoint {out / 'trainer.pt'} to resume from; "
                              f"train without --resume first")
        watch = _watchers(args)  # unknown names and options fail before any work
        resume_hint = _resume_hint(args, out)
        from .runs import recipe, recipe_text, train_run

        def announce(line: str) -> None:
            if args.data is None and recipe(entry):  # the recipe's own data: as it was
                line = f"{entry.name}: {recipe_text(entry)} (the flags you give override it)"
            print(line, file=sys.stderr)

        out, history = train_run(args.model, args.data, options=options, epochs=args.epochs,
                                 out=out, device=args.device, resume=args.resume,
                                 batch_size=args.batch_size, lr=args.lr,
                                 schedule=args.schedule, warmup=args.warmup,
                                 plots=not args.no_plots, seed=args.seed,
                                 val_fraction=args.val_fraction, data_options=data_options,
                                 announce=announce, amp=args.amp, accumulate=args.accumulate,
                                 distributed=args.distributed, **watch)
        if history:
            last = history[-1]
            print_table([(k, f"{v:.6g}" if isinstance(v, float) else v) for k, v in last.items()],
                        ("METRIC", "LAST EPOCH"))
        print(f"wrote {out}")
        return 0

    return run


def _eval(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("run_dir", metavar="DIR", type=Path, help="a run directory")
    parser.add_argument("--data", help="a registered dataset or a path to evaluate on "
                        "(default: the run's: its test split, or for data from files the rows "
                        "the run held out)")

    parser.add_argument("--json", action="store_true", help="print only JSON")
    parser.add_argument("--best", action="store_true",
                        help="the best model (best.safetensors, kept by --callback "
                             "best_checkpoint) instead of the last")

    def run(args: argparse.Namespace) -> int:
        from .cli import print_table
        from .runs import evaluate_run

        check_run_dir(args.run_dir)
        report = evaluate_run(args.run_dir, args.data, which="best" if args.best else "model")
        if not args.json:
            print_table([(k, f"{v:.6g}") for k, v in report.items()], ("METRIC", "VALUE"))
        print(json.dumps(report))
        return 0

    return run


def _sample(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("run_dir", metavar="DIR", type=Path, help="a run directory")
    parser.add_argument("-n", type=_positive_int, default=64, help="how many (default: 64)")
    parser.add_argument("--out", type=Path, help="PNG path (default: DIR/samples.png)")
    parser.add_argument("--best", action="store_true",
                        help="the best model (best.safetensors) instead of the last")

    def run(args: argparse.Namespace) -> int:
        from .runs import sample_run

        check_run_dir(args.run_dir)
        print(f"wrote {sample_run(args.run_dir, n=args.n, out=args.out, which='best' if args.best else 'model')}")
        return 0

    return run


class _CallbackName(argparse.Action):
    """``--callback NAME``: a new ``[name, options]`` entry in ``args.callbacks``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append([values, []])
        setattr(namespace, self.dest, items)


class _CallbackOption(argparse.Action):
    """``--set-callback KEY=VALUE``: an option of the last ``--callback``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        if not items:
            parser.error(f"--set-callback {values}: give --callback NAME before its options")
        items[-1][1].append(values)
        setattr(namespace, self.dest, items)


def _watchers(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The callbacks and loggers the flags name, built through the registry."""
    from .callbacks import build_callback
    from .cli import parse_set

    callbacks = [build_callback(name, **parse_set(pairs)) for name, pairs in args.callbacks or ()]
    loggers = []
    for name in args.loggers or ():
        if name not in ("csv", "tensorboard"):
            raise ConfigError(f"--logger: expected csv or tensorboard, got {name!r} (other "
                              f"callbacks go in --callback NAME)")
        loggers.append(build_callback(name))
    return {"callbacks": callbacks, "loggers": loggers}


def _epochs_done(out: Path) -> int:
    try:
        return sum(1 for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip())
    except OSError:
        return 0


def _resume_hint(args: argparse.Namespace, out: Path) -> None:
    """Refuse to replace a run without --force; say where a resumed run starts; and leave
    the words an interrupted run prints (where it is, the exact command to resume)."""
    import shlex

    argv = [a for a in getattr(args, "_argv", None) or ["train", args.model, "--out", str(out)]
            if a != "--force"]
    if args.out is None and "--out" not in argv:
        argv += ["--out", str(out)]
    again = "ebmkit " + shlex.join(argv + ([] if "--resume" in argv else ["--resume"]))
    held = (out / "trainer.pt").is_file()
    if held and not args.resume:
        if not args.force:
            raise ConfigError(f"{out} already holds a run ({_epochs_done(out)} epochs done); "
                              f"continue it with `{again}`, start over with --force, or give "
                              f"another --out")
        (out / "trainer.pt").unlink()  # --force: start over (the next commit replaces the rest)
        print(f"--force: starting over in {out}", file=sys.stderr)
    if args.resume:
        print(f"resuming {out} after epoch {_epochs_done(out)}", file=sys.stderr)

    def hint() -> str:
        done = _epochs_done(out) if (out / "trainer.pt").is_file() else 0
        if not done:
            return (f"interrupted before the first epoch ended: nothing was saved in {out}; "
                    f"run the same command again to start over")
        return f"the run in {out} holds {done} epochs; continue it with:\n  {again}"

    args._interrupt_hint = hint


def check_run_dir(path: Path) -> Path:
    """Raise a clear error unless ``path`` is a run directory written by ``ebmkit train``."""
    if not path.is_dir():
        raise ConfigError(f"{path}: expected a run directory written by `ebmkit train`, "
                          f"but it does not exist or is not a directory")
    missing = [f for f in ("config.json", "model.json", "model.safetensors")
               if not (path / f).is_file()]
    if missing:
        raise ConfigError(f"{path}: not a complete run directory, missing {', '.join(missing)}")
    return path


def check_device(device: str) -> str:
    """Accept ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; raise ConfigError otherwise."""
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and not index.isdigit()) or (index and kind != "cuda"):
        raise ConfigError(f"--device: expected one of auto, cpu, cuda, cuda:N, mps; got {device!r}")
    return device


def _positive_int(text: str, minimum: int = 1) -> int:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    return _positive_int(text, minimum=0)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value:g}")
    return value


# -- demo -------------------------------------------------------------------------------
def _demo(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="where the report and plots go (default: runs/demo)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-train", action="store_true",
                        help="only list plugins and load data; train no model")

    def run(args: argparse.Namespace) -> int:
        from .demo import run_demo

        report = run_demo(args.out, plots=not args.no_plots, progress=sys.stderr.isatty(),
                          train=not args.no_train)
        print(f"wrote {report}")
        return 0

    return run
