"""``python -m benchmarks run --suite quick|full|scale [--out DIR]``: the attack benchmark.
``python -m benchmarks report --suite SUITE`` rewrites a suite's tables from its JSON figures.

Writes ``attacks-<suite>.json`` and the recall plot into ``--out`` (default ``benchmarks/results``),
the tables into docs/benchmarks.md between the suite's markers, and prints a table. Exits 1 when a
method raised on some case (the error is in the JSON and the tables), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from threadpoolctl import threadpool_limits

from benchmarks import report
from benchmarks.runner import SUITES, run_suite, suite
from dataward.domain.errors import InputError

DEFAULT_MEMORY_GB = 14.0
"""The benchmark runs on a shared machine: one runaway detector must not take every other job down."""


def limit_memory(gigabytes: float) -> tuple[int, int]:
    """Lower this process's address-space limit to ``gigabytes`` (never raise it); returns the limits
    it had, to restore."""
    before = resource.getrlimit(resource.RLIMIT_AS)
    soft, hard = before
    want = int(gigabytes * 1e9)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or want < soft:
        resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    return before


def _names(value: str) -> list[str]:
    return [] if value.strip() == "none" else [v.strip() for v in value.split(",") if v.strip()]


def parse_fixed_count(value: str) -> tuple[str, int, int]:
    """``kind:count:size`` as a fixed-count case."""
    try:
        kind, count, size = value.split(":")
        return kind, int(count), int(size)
    except ValueError as exc:
        raise InputError(f"a fixed-count case is kind:count:size, not {value!r}") from exc


def count_errors(results: dict) -> int:
    """Method runs that raised, over every part of a run."""
    entries = [
        e for key in ("attacks", "heldout_attacks", "clean", "benign", "fixed_counts") for e in results.get(key, [])
    ]
    return sum("error" in m for e in entries for m in e["methods"].values())


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
    run.add_argument("--benign", help="comma-separated benign situations, or 'none' (default: the suite's)")
    run.add_argument(
        "--fixed-counts",
        help="comma-separated kind:count:size fixed-count cases (e.g. text_trigger:25:5000), or 'none' "
        "(default: the suite's)",
    )
    run.add_argument(
        "--max-memory-gb",
        type=float,
        default=DEFAULT_MEMORY_GB,
        help="address-space limit of the run; a method that needs more fails on that case with MemoryError, "
        "recorded as an error, and the run goes on (0: no limit)",
    )
    again = sub.add_parser("report", help="rewrite a suite's tables from its JSON figures (no run)")
    again.add_argument("--suite", choices=sorted(SUITES), default="quick")
    again.add_argument("--out", type=Path, default=report.RESULTS, help="folder holding the JSON and plots")
    again.add_argument("--docs", type=Path, default=report.DOCS, help="Markdown file to update")
    again.add_argument(
        "--previous", type=Path, help="an earlier run's JSON to compare with (default: the one it names)"
    )
    args = parser.parse_args(argv)
    if args.command == "report":
        return _report(args)
    before = limit_memory(args.max_memory_gb) if args.max_memory_gb > 0 else None
    try:
        return _run(args, argv)
    finally:
        if before is not None:
            resource.setrlimit(resource.RLIMIT_AS, before)


def _report(args: argparse.Namespace) -> int:
    """The tables of an earlier run, from its JSON (after a change of the report's layout)."""
    path = args.out / f"attacks-{args.suite}.json"
    if not path.exists():
        Console().print(f"error: {path} does not exist; run the suite first", style="red")
        return 2
    results = json.loads(path.read_text(encoding="utf-8"))
    if args.previous is not None:
        results["previous_run"] = report.digest(json.loads(args.previous.read_text(encoding="utf-8")))
        report.write_json(results, args.out)
    plot = args.out / f"recall-at-fpr-{args.suite}.png"
    report.write_docs(results, report.markdown(results, plot if plot.exists() else None), args.docs)
    return 0


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    console = Console()
    # One BLAS/OpenMP thread: methods are timed one after another on a shared machine, and
    # oversubscribed thread pools would make every timing noise.
    try:
        spec = suite(args.suite)
        if args.clean is not None:
            if args.clean < 0:
                raise InputError("--clean must be zero or more")
            spec = replace(spec, clean_per_dataset=args.clean)
        if args.benign is not None:
            spec = replace(spec, benign=_names(args.benign))
        if args.fixed_counts is not None:
            spec = replace(spec, fixed_counts=[parse_fixed_count(c) for c in _names(args.fixed_counts)])
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
    earlier = args.out / f"attacks-{results['suite']}.json"
    if earlier.exists():
        with contextlib.suppress(ValueError, KeyError, TypeError):  # an unreadable earlier run is not compared
            results["previous_run"] = report.digest(json.loads(earlier.read_text(encoding="utf-8")))
    plot = report.plot_recall(results, args.out)
    json_path = report.write_json(results, args.out)
    if not args.no_docs:
        report.write_docs(results, report.markdown(results, plot), args.docs)
    report.console_table(results, console)
    console.print(f"figures: {json_path}" + (f", plot: {plot}" if plot else ""))
    errors = count_errors(results)
    if errors:
        console.print(f"{errors} method run(s) failed; see the JSON for tracebacks", style="red")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
