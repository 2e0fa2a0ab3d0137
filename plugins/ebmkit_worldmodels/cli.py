"""``ebmkit worldmodels``: collect → V → M → C on a gymnasium environment, then the report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["setup"]

#: ``--budget``: named recipes, each a fixed amount of work (no clock). ``default`` is the
#: full one (``RunConfig``'s defaults); ``tiny`` checks the plumbing in seconds.
BUDGETS: dict[str, dict[str, Any]] = {
    "default": {},
    "small": {"episodes": 150, "vae_epochs": 4, "mdn_epochs": 15, "generations": 10,
              "dream_generations": 20},
    "tiny": {"episodes": 24, "vae_epochs": 1, "mdn_epochs": 2, "generations": 3, "popsize": 6,
             "rollouts": 2, "max_steps": 60, "stop_at": None, "eval_episodes": 4,
             "frame_size": 32},
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _crop(text: str) -> Any:
    if text in ("auto", "full"):
        return text
    try:
        crop = [int(v) for v in text.split(",")]
    except ValueError:
        crop = []
    if len(crop) != 4:
        raise argparse.ArgumentTypeError(f"expected auto, full or TOP,BOTTOM,LEFT,RIGHT pixels, "
                                         f"got {text!r}")
    return crop


def setup(parser: argparse.ArgumentParser) -> Any:
    parser.add_argument("--env", default="CartPole-v1",
                        help="a gymnasium id with a Discrete action space (default: CartPole-v1)")
    parser.add_argument("--crop", type=_crop, default="auto",
                        help="the render's crop: auto (the environment's known one; an error "
                             "where none is known), full (the whole frame) or TOP,BOTTOM,LEFT,"
                             "RIGHT in pixels")
    parser.add_argument("--out", type=Path, default=Path("runs/worldmodels"),
                        help="run directory (default: runs/worldmodels)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default: 0)")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="default",
                        help="a named recipe: default (the full run), small, or tiny (a smoke "
                             "test)")
    parser.add_argument("--minutes", type=float,
                        help="an optional wall-clock cap: C's real searches stop early to keep "
                             "it, so the result depends on the machine (default: none; the "
                             "budget is the generation count)")
    parser.add_argument("--generations", type=_positive_int,
                        help="CMA-ES generations per real search, at most (default: 40)")
    parser.add_argument("--rounds", type=int,
                        help="iterative collection rounds with the current controller")
    parser.add_argument("--dream", action="store_true",
                        help="search C inside M's dream first, then in the real environment "
                             "from the dream's controller")
    parser.add_argument("--temperature", type=float, help="τ of the dream (default: 1.0)")
    parser.add_argument("--no-ablation", action="store_true",
                        help="skip the V-only controller")

    def run(args: argparse.Namespace) -> int:
        from .pipeline import RunConfig, run as run_pipeline
        from .report import ablation_lines

        options: dict[str, Any] = dict(BUDGETS[args.budget])
        for key in ("minutes", "generations", "rounds", "temperature"):
            if getattr(args, key) is not None:
                options[key] = getattr(args, key)
        if options.get("minutes") == 0:
            options["minutes"] = None
        if args.dream:
            options["dream"] = True
        if args.no_ablation:
            options["ablation"] = False
        cfg = RunConfig(env=args.env, crop=args.crop, seed=args.seed, device=args.device,
                        **options)
        _, result = run_pipeline(cfg, args.out, progress=True, log=print)
        for line in ablation_lines(result):
            print(line)
        print(f"wrote {args.out / 'report.md'} and the model {args.out / 'model'} "
              f"({result.seconds['total']:.0f} s)")
        return 0

    return run
