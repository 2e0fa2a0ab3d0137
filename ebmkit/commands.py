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
from pathlib import Path

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
                                   **({"recipe": _recipe(e)} if kind == "models" else {})}
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
                         f"it one by one; a different --data drops it.")
        return text

    parser.add_argument("model", metavar="MODEL", type=model_name,
                        help="a registered model name (ebmkit models)")
    parser.add_argument("--data", help="a registered dataset (default: the model's recipe's, "
                        "else digits)")
    parser.add_argument("--epochs", type=_positive_int,
                        help="epochs (default: the model's recipe for DATA, else 10)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", dest="options",
                        help="a model option, repeatable: --set k=10 --set init=random")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/MODEL)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
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

    def run(args: argparse.Namespace) -> int:
        from .cli import parse_set, print_table
        from .plugins import get_entry

        options = parse_set(args.options)
        entry = get_entry("models", args.model)
        entry.check_options(options)
        if args.data is not None:
            get_entry("datasets", args.data)
        check_device(args.device)
        out = args.out or Path("runs") / args.model
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: expected a directory, found a file")
        if args.resume and not (out / "trainer.pt").is_file():
            raise ConfigError(f"--resume: no checkpoint {out / 'trainer.pt'} to resume from; "
                              f"train without --resume first")
        from .runs import recipe, recipe_text, train_run

        if recipe(entry, args.data):
            print(f"{entry.name}: {recipe_text(entry)} (the flags you give override it)",
                  file=sys.stderr)
        out, history = train_run(args.model, args.data, options=options, epochs=args.epochs,
                                 out=out, device=args.device, resume=args.resume,
                                 batch_size=args.batch_size, lr=args.lr,
                                 schedule=args.schedule, warmup=args.warmup,
                                 plots=not args.no_plots, seed=args.seed)
        if history:
            last = history[-1]
            print_table([(k, f"{v:.6g}" if isinstance(v, float) else v) for k, v in last.items()],
                        ("METRIC", "LAST EPOCH"))
        print(f"wrote {out}")
        return 0

    return run


def _eval(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("run_dir", metavar="DIR", type=Path, help="a run directory")
    parser.add_argument("--data", help="dataset to evaluate on (default: the run's)")

    parser.add_argument("--json", action="store_true", help="print only JSON")

    def run(args: argparse.Namespace) -> int:
        from .cli import print_table
        from .runs import evaluate_run

        check_run_dir(args.run_dir)
        if args.data:
            from .plugins import get_entry

            get_entry("datasets", args.data)
        report = evaluate_run(args.run_dir, args.data)
        if not args.json:
            print_table([(k, f"{v:.6g}") for k, v in report.items()], ("METRIC", "VALUE"))
        print(json.dumps(report))
        return 0

    return run


def _sample(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("run_dir", metavar="DIR", type=Path, help="a run directory")
    parser.add_argument("-n", type=_positive_int, default=64, help="how many (default: 64)")
    parser.add_argument("--out", type=Path, help="PNG path (default: DIR/samples.png)")

    def run(args: argparse.Namespace) -> int:
        from .runs import sample_run

        check_run_dir(args.run_dir)
        print(f"wrote {sample_run(args.run_dir, n=args.n, out=args.out)}")
        return 0

    return run


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
