"""What a one-shot command costs: CPU time of a fresh ``dataward`` process, the code of this tree
against the code at ``--before`` (its ``src`` exported from git), runs alternating.

Commands: ``dataward --help`` (start-up alone), ``dataward whoami`` (opening the ward and one read of
the acting principal), ``dataward ledger head --json`` (start-up and one catalog read) and ``dataward
trace RECORD --json`` (a record taken from the ward's record index; left out when the ward holds no
record, as a fresh ``dataward init`` does), on ``--ward``. CPU time is the child's user + system time
(``RUSAGE_CHILDREN``), so waiting for a core on a shared machine does not count; the wall time is
printed beside it.

``--bytecode`` lets the children write and reuse compiled bytecode (under a cache folder outside the
tree) as an installed package does; without it they run as the environment says (this workplace sets
``PYTHONDONTWRITEBYTECODE``, so every process compiles dataward's modules again).

Usage::

    nice -n 10 python -m benchmarks.bench_cli_startup --ward DIR/ward --runs 5 [--bytecode]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

from dataward.domain.idarrays import binary_to_ids

ROOT = Path(__file__).resolve().parent.parent


def export_src(commit: str, folder: Path) -> Path:
    """The ``src`` folder of ``commit``, written under ``folder``."""
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def a_record(ward: Path) -> str | None:
    """One record id held by the ward, or ``None`` when it holds none."""
    with sqlite3.connect(ward / "catalog.sqlite") as conn:
        row = conn.execute("SELECT ids FROM record_blocks LIMIT 1").fetchone()
    if row is None:
        return None
    return str(binary_to_ids(np.frombuffer(row[0][:32], dtype=np.uint8).reshape(1, 32))[0])


def child_cost(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one ``python -m dataward ARGS`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dataward", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ward", type=Path, required=True, help="an embedded SQLite ward folder")
    parser.add_argument("--before", default="fe5d897", help="the commit whose code is the baseline")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bytecode", action="store_true", help="let the children cache compiled bytecode")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dataward-bench-cli-"))
    variants = {"before": str(export_src(args.before, work / "before")), "after": str(ROOT / "src")}
    commands = {"help": ["--help"], "whoami": ["whoami"], "ledger head": ["ledger", "head", "--json"]}
    record = a_record(args.ward)
    if record is not None:
        commands["trace record"] = ["trace", record, "--json"]
    spent: dict[tuple[str, str], list[float]] = {(v, c): [] for v in variants for c in commands}
    walls: dict[tuple[str, str], list[float]] = {(v, c): [] for v in variants for c in commands}
    for run in range(args.runs + (1 if args.bytecode else 0)):
        for command, argv in commands.items():
            for variant, path in variants.items():
                env = {**os.environ, "PYTHONPATH": path, "DATAWARD_WARD": str(args.ward)}
                if args.bytecode:
                    env.pop("PYTHONDONTWRITEBYTECODE", None)
                    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
                cpu, wall = child_cost(argv, env)
                if not (args.bytecode and run == 0):  # the first run with bytecode only writes it
                    spent[(variant, command)].append(cpu)
                    walls[(variant, command)].append(wall)
    result = {"before": args.before, "bytecode": args.bytecode, "runs": args.runs, "load_average": os.getloadavg()[0]}
    for command in commands:
        before = statistics.median(spent[("before", command)])
        after = statistics.median(spent[("after", command)])
        result[command] = {
            "before_cpu_s": round(before, 3),
            "after_cpu_s": round(after, 3),
            "before_over_after": round(before / after, 2),
            "before_wall_s": round(statistics.median(walls[("before", command)]), 3),
            "after_wall_s": round(statistics.median(walls[("after", command)]), 3),
            "before_runs": [round(x, 3) for x in spent[("before", command)]],
            "after_runs": [round(x, 3) for x in spent[("after", command)]],
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
