"""``python -m bench [NAME ...] [--smoke] [--no-write]``."""

from __future__ import annotations

import argparse
import os
import sys

from .harness import ROOT, markdown, run_all


def main() -> int:
    if sys.argv[1:2] == ["quality"]:  # issue 21's quality table: bench/quality.py
        from .quality import main as quality

        return quality(sys.argv[2:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("only", nargs="*", help="run only benchmarks whose module name contains these")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and one repeat, write nothing (CI)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    results = run_all(smoke=args.smoke, only=args.only)
    if not results:
        print("no benchmark ran", file=sys.stderr)
        return 1
    if not (args.smoke or args.no_write or args.only):
        path = ROOT / "docs" / "benchmarks.md"
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(markdown(results), encoding="utf-8")
        os.replace(tmp, path)
        print(f"wrote {path}")
    missed = [r.name for r in results if r.passed is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
