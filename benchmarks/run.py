"""`make bench`: run every benchmark, print the figures, write docs/benchmarks.md.

    .venv/bin/python -m benchmarks.run [--quick] [--only NAME ...] [--output FILE]

--quick runs every harness with tiny counts (the test suite's smoke run); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from benchmarks.harness import text_table, write

REPO = Path(__file__).resolve().parent.parent
# Each module has run(quick) -> list[Figure] and SECTION; the intro of a section is the module's
# docstring. A module whose figures go to more sections gives their intros in INTROS {section: text}.
# The test bed benchmarks (deploy, datapath) need root and take the test bed lock themselves.
BENCHMARKS = ("bench_scheduler", "bench_api", "bench_deploy", "bench_datapath")
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"
ANALYSIS = REPO / "docs" / "benchmarks-analysis.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: check the harness, not the speed")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    figures, intro = [], {}
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {module.SECTION}", flush=True)
        produced = module.run(quick=args.quick)
        print(text_table(produced), flush=True)
        figures += produced
        intro[module.SECTION] = " ".join((module.__doc__ or "").split())
        intro.update(getattr(module, "INTROS", {}))
    write(args.output, figures, intro)
    if args.output == DEFAULT_OUTPUT and ANALYSIS.exists():
        # Profiles taken by hand (py-spy, perf) behind an optimisation or a gate not met: kept in
        # their own file, dated, so a run never passes them off as its own measurements.
        with args.output.open("a") as output:
            output.write("\n" + ANALYSIS.read_text())
    print(f"wrote {args.output}")
    failed = [f.measured.name for f in figures if f.gate_passed is False]
    if failed and not args.quick:
        print("gates not met: " + "; ".join(failed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
