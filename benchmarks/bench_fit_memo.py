"""``python -m benchmarks.bench_fit_memo``: gating one contribution after another against the same trusted records.

A ward's server gates every contribution to a dataset against the same promoted baseline. The fits that
never see a contribution record (``dataward.gates.fit_memo``: the isolation forests of ``outliers``, the
cross-validated probes of ``label_consistency``) are done by its first scan and reused by the next.

For each case of ``benchmarks.gate_cost`` (``text_1k``, ``photos_1k``, ``tabular``), in one process, one
BLAS thread, the default policy (seeded): two contributions, ``A`` (the case's own) and ``B`` (the same
batch without a seeded tenth of its rows, so another contribution against the same trusted records).
Each round scans ``B`` twice, taking turns which comes first:

* ``first``: the process's stored fits forgotten (``MEMO.clear()``), as a fresh process scans it;
* ``after A``: right after a scan of ``A`` (the stored fits kept).

Wall and CPU seconds (``time.process_time``) of ``B``'s scan, medians over ``--rounds``, their ratio, and
whether the two reports are the same (their digests, timings left out). The text case shows where the
memo gives nothing: its feature space is fitted with a sample of the contribution, so every fit that
reads features sees another contribution.

    python -m benchmarks.bench_fit_memo --rounds 3 --json benchmarks/results/fit-memo.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.gate_cost import CASES
from dataward.gates import scan
from dataward.gates.fit_memo import MEMO


def _digest(report: Any) -> str:
    data = report.to_dict()
    data.get("extras", {}).pop("timings", None)
    for detector in data.get("detectors", {}).values():
        detector.pop("seconds", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def measure(name: str, rounds: int) -> dict[str, Any]:
    """The case's ``first`` and ``after A`` scans of ``B``: medians, ratio and whether the reports agree."""
    case = CASES[name]()
    keep = np.sort(np.random.default_rng(7).choice(len(case.contribution), len(case.contribution) * 9 // 10, False))
    other = case.contribution.iloc[keep].reset_index(drop=True)
    groups = {k: np.asarray(v)[keep] for k, v in case.groups.items()} if case.groups else None

    def run(contribution: Any, groups: Any) -> Any:
        return scan(
            case.baseline,
            contribution,
            case.schema,
            case.validation,
            {"seed": 0},
            first_baseline=case.first_baseline,
            groups=groups,
        )

    def timed_b() -> tuple[float, float, str]:
        wall, cpu = time.perf_counter(), time.process_time()
        report = run(other, groups)
        return time.perf_counter() - wall, time.process_time() - cpu, _digest(report)

    figures: dict[str, list[tuple[float, float, str]]] = {"first": [], "after_a": []}
    with threadpool_limits(limits=1):
        for i in range(rounds):
            for mode in ("first", "after_a") if i % 2 == 0 else ("after_a", "first"):
                MEMO.clear()
                if mode == "after_a":
                    run(case.contribution, case.groups)
                figures[mode].append(timed_b())
    row: dict[str, Any] = {"case": name, "baseline": len(case.baseline), "b_records": len(other)}
    for mode, runs in figures.items():
        row[f"{mode}_wall_s"] = round(statistics.median(r[0] for r in runs), 3)
        row[f"{mode}_cpu_s"] = round(statistics.median(r[1] for r in runs), 3)
    row["cpu_ratio"] = round(row["after_a_cpu_s"] / row["first_cpu_s"], 3)
    row["wall_ratio"] = round(row["after_a_wall_s"] / row["first_wall_s"], 3)
    row["same_report"] = len({r[2] for runs in figures.values() for r in runs}) == 1
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases of benchmarks.gate_cost")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args()
    rows = []
    for name in args.cases.split(","):
        row = measure(name, args.rounds)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"load_average": os.getloadavg(), "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
