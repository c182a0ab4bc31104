"""``python -m benchmarks.gate_cost``: the gate's fixed cost (issue 8), seconds per detector beside cleanlab.

Cases (built by the attack benchmark's own builders):

- ``text_1k``: 1,000 recombined man-page lines (25 carrying the rare-token trigger, relabelled
  ``admin``) against a 4,000-line baseline: ``fixed_counts.fixed_count("text_trigger", 25, 1000)``;
- ``photos_1k``: 1,000 32x32 colour photo crops (25 with the BadNets patch) against 4,000 crops:
  ``fixed_count("image_patch", 25, 1000)``;
- ``tabular``: breast-cancer records with the rare radius/perimeter combination
  (``tabular.feature_trigger(0.1)``).

Per case, in one process, one BLAS thread (as the gate runs): ``dataward.gates.scan`` with its default
policy (seeded), the seconds of each detector (the report's ``extras["timings"]``), of the whole scan,
and of featurizing the same rows alone (a pipeline fitted on baseline + contribution, the validation
set transformed); then cleanlab's ``find_label_issues`` on the same batch (the benchmark peer
``CleanlabLabelIssues``: 5-fold cross-validated probabilities on baseline + contribution). Wall and CPU
seconds (``time.process_time``: the machine is shared, CPU seconds move less with the load).

``--cpu`` also reports each detector's CPU seconds (its ``fit``, ``score_records``, ``finish`` and ``score``
wrapped with ``time.process_time``, the outermost call counted) and the featurizer's, inside the scan.
``--repeat N`` runs each measurement N times and keeps the fastest wall time (and its CPU time).
``--json PATH`` writes every figure; ``--digest`` also prints a hash of the report's verdict, per-record
scores, per-detector p-values and flags, to check that a change of the code left the report unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from benchmarks.attacks.base import AttackCase
from benchmarks.attacks.fixed_counts import fixed_count
from benchmarks.attacks.tabular import feature_trigger
from benchmarks.peers.cleanlab_peers import CleanlabLabelIssues

CASES: dict[str, Callable[[], AttackCase]] = {
    "text_1k": lambda: fixed_count("text_trigger", 25, 1000),
    "photos_1k": lambda: fixed_count("image_patch", 25, 1000),
    "tabular": lambda: feature_trigger(0.1),
}


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _best(fn: Callable[[], Any], repeat: int) -> tuple[Any, float, float]:
    best = None
    for _ in range(repeat):
        run = _timed(fn)
        if best is None or run[1] < best[1]:
            best = run
    assert best is not None
    return best


def digest(report: Any) -> str:
    """Hash of what the gate decided: verdict, reasons, combined scores, flags, each detector's p-values,
    flags and contribution-level p-value (exact bytes: any change of a p-value changes it)."""
    h = hashlib.sha256()
    h.update(report.verdict.encode())
    h.update(json.dumps(report.reasons).encode())
    rec = report.records
    h.update(np.asarray(rec.score, np.float64).tobytes())
    h.update(np.asarray(rec.flagged, bool).tobytes())
    for name in sorted(report.results):
        r = report.results[name]
        h.update(name.encode())
        h.update(np.asarray(r.p_values, np.float64).tobytes())
        h.update(np.asarray(r.flagged, bool).tobytes())
        h.update(repr(float(r.p_value)).encode())
        h.update(repr(bool(r.block)).encode())
    return h.hexdigest()[:16]


class CpuByDetector:
    """While active, CPU seconds spent in each registered detector's methods and in the feature pipeline."""

    METHODS = ("fit", "score_records", "finish", "score")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._saved: list[tuple[type, str, Any]] = []
        self._depth: dict[str, int] = {}

    def _wrap(self, cls: type, method: str, label: str) -> None:
        original = cls.__dict__[method]

        def timed(obj: Any, *args: Any, **kwargs: Any) -> Any:
            depth = self._depth.get(label, 0)
            self._depth[label] = depth + 1
            started = time.process_time()
            try:
                return original(obj, *args, **kwargs)
            finally:
                self._depth[label] = depth
                if depth == 0:
                    self.seconds[label] = self.seconds.get(label, 0.0) + time.process_time() - started

        self._saved.append((cls, method, original))
        setattr(cls, method, timed)

    def __enter__(self) -> CpuByDetector:
        from dataward.gates.base import registered
        from dataward.gates.features import FeaturePipeline

        for name, cls in registered().items():
            for method in self.METHODS:
                if method in cls.__dict__:
                    self._wrap(cls, method, name)
        for method in ("fit_transform", "transform"):
            self._wrap(FeaturePipeline, method, "features")
        return self

    def __exit__(self, *exc: object) -> None:
        for cls, method, original in reversed(self._saved):
            setattr(cls, method, original)
        self._saved.clear()


def _features(case: AttackCase) -> None:
    from dataward.gates.features import FeaturePipeline
    from dataward.gates.inputs import normalize

    def table(frame: pd.DataFrame) -> Any:
        return normalize(frame, case.schema, "benchmark", with_ids=False).table

    pipeline = FeaturePipeline(case.schema, {}, seed=0)
    pipeline.fit_transform(table(pd.concat([case.baseline, case.contribution], ignore_index=True)))
    if case.validation is not None and len(case.validation):
        pipeline.transform(table(case.validation))


def measure(name: str, repeat: int = 1, cpu: bool = False) -> dict[str, Any]:
    from dataward.gates import scan

    case = CASES[name]()
    run_scan = lambda: scan(  # noqa: E731
        case.baseline,
        case.contribution,
        case.schema,
        case.validation,
        {"seed": 0},
        first_baseline=case.first_baseline,
        groups=case.groups,
    )
    by_detector: dict[str, float] = {}
    with threadpool_limits(limits=1):
        report, scan_wall, scan_cpu = _best(run_scan, repeat)
        if cpu:
            with CpuByDetector() as counted:
                run_scan()
            by_detector = {k: round(v, 3) for k, v in sorted(counted.seconds.items(), key=lambda kv: -kv[1])}
        _, feat_wall, feat_cpu = _best(lambda: _features(case), repeat)
        peer, clean_wall, clean_cpu = _best(
            lambda: CleanlabLabelIssues().score(case.baseline, case.contribution, case.schema, seed=0), repeat
        )
    flagged = np.asarray(report.records.flagged, bool)
    return {
        "case": name,
        "baseline": len(case.baseline),
        "contribution": len(case.contribution),
        "poisoned": int(case.poison.sum()),
        "verdict": report.verdict,
        "poison_flagged": int((flagged & case.poison).sum()),
        "clean_flagged": int((flagged & ~case.poison).sum()),
        "digest": digest(report),
        "detectors": {k: float(v) for k, v in (report.extras.get("timings") or {}).items()},
        "cpu_by_detector": by_detector,
        "scan_wall": scan_wall,
        "scan_cpu": scan_cpu,
        "features_wall": feat_wall,
        "features_cpu": feat_cpu,
        "cleanlab_wall": clean_wall,
        "cleanlab_cpu": clean_cpu,
        "cleanlab_verdict": peer.verdict,
        "cleanlab_poison_flagged": int((peer.flags & case.poison).sum()),
    }


def table(rows: list[dict[str, Any]]) -> str:
    names = sorted({d for r in rows for d in r["detectors"]})
    head = ["case", *names, "features", "scan (wall)", "scan (CPU)", "cleanlab (wall)", "cleanlab (CPU)"]
    head += ["scan / cleanlab (wall)", "scan / cleanlab (CPU)", "verdict", "poison flagged", "clean flagged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['case']} ({r['poisoned']}/{r['contribution']} vs {r['baseline']})"]
        cells += [f"{r['detectors'][n]:.2f}" if n in r["detectors"] else "" for n in names]
        cells += [f"{r['features_wall']:.2f}", f"{r['scan_wall']:.2f}", f"{r['scan_cpu']:.2f}"]
        cells += [f"{r['cleanlab_wall']:.2f}", f"{r['cleanlab_cpu']:.2f}"]
        cells += [f"{r['scan_wall'] / r['cleanlab_wall']:.2f}", f"{r['scan_cpu'] / r['cleanlab_cpu']:.2f}"]
        cells += [r["verdict"], f"{r['poison_flagged']}/{r['poisoned']}", str(r["clean_flagged"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gate_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--digest", action="store_true", help="print each report's digest")
    parser.add_argument("--cpu", action="store_true", help="also each detector's CPU seconds (one more scan)")
    args = parser.parse_args(argv)
    rows = []
    for name in args.cases:
        row = measure(name, args.repeat, args.cpu)
        rows.append(row)
        timings = ", ".join(f"{k} {v:.2f}" for k, v in row["detectors"].items())
        print(
            f"{name}: scan {row['scan_wall']:.2f} s ({row['scan_cpu']:.2f} CPU), cleanlab {row['cleanlab_wall']:.2f} s "
            f"({row['cleanlab_cpu']:.2f} CPU); {timings}"
            + (f"; digest {row['digest']}" if args.digest else "")
            + (f"; CPU seconds {row['cpu_by_detector']}" if args.cpu else ""),
            file=sys.stderr,
            flush=True,
        )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
