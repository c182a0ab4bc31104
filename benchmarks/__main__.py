"""``python -m benchmarks run --suite quick|full [--out DIR]``: the attack benchmark.

Writes ``attacks-<suite>.json`` and the recall plot into ``--out`` (default ``benchmarks/results``),
the tables into docs/benchmarks.md between the suite's markers, and prints a table. Exits 1 when a
method raised on some case (the error is in the JSON and the tables), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from threadpoolctl import threadpool_limits

from benchmarks import report
from benchmarks.runner import SUITES, run_suite, suite
from dataward.domain.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="dataward attack benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a suite and write its figures")
    run.add_argument("--suite", choices=sorted(SUITES), default="quick")
    run.add_argument("--out", type=Path, default=report.RESULTS, help="folder for the JSON and plots")
    run.add_argument("--docs", type=Path, default=report.DOCS, help="Markdown file to update")
    run.add_argument("--no-docs", action="store_true", help="do not touch the Markdown file")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--methods", help="comma-separated subset of methods")
    run.add_argument("--attacks", help="comma-separated subset of attacks")
    run.add_argument("--clean", type=int, help="clean contributions per dataset (default: the suite's)")
    args = parser.parse_args(argv)

    console = Console()
    # One BLAS/OpenMP thread: methods are timed one after another on a shared machine, and
    # oversubscribed thread pools would make every timing noise.
    try:
        spec = suite(args.suite)
        if args.clean is not None:
            if args.clean < 0:
                raise InputError("--clean must be zero or more")
            spec = replace(spec, clean_per_dataset=args.clean)
        with threadpool_limits(1):
            results = run_suite(
                spec,
                seed=args.seed,
                methods=args.methods.split(",") if args.methods else None,
                attacks=args.attacks.split(",") if args.attacks else None,
                log=lambda msg: console.print(msg, style="dim", highlight=False),
            )
    except InputError as exc:
        console.print(f"error: {exc}", style="red")
        return 2
    results["command"] = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    plot = report.plot_recall(results, args.out)
    json_path = report.write_json(results, args.out)
    if not args.no_docs:
        report.write_docs(results, report.markdown(results, plot), args.docs)
    report.console_table(results, console)
    console.print(f"figures: {json_path}" + (f", plot: {plot}" if plot else ""))
    errors = sum(s["errors"] for s in results["summary"].values())
    if errors:
        console.print(f"{errors} method run(s) failed; see the JSON for tracebacks", style="red")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
