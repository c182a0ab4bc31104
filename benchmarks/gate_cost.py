"""``python -m benchmarks.gate_cost``: the gate's fixed cost (issue 8), seconds per detector beside cleanlab.

Cases (built by the attack benchmark's own builders):

- ``text_1k``: 1,000 recombined man-page lines (25 carrying the rare-token trigger, relabelled
  ``admin``) against a 4,000-line baseline: ``fixed_counts.fixed_count("text_trigger", 25, 1000)``;
- ``photos_1k``: 1,000 32x32 colour photo crops (25 with the BadNets patch) against 4,000 crops:
  ``fixed_count("image_patch", 25, 1000)``;
- ``tabular``: breast-cancer records with the rare radius/perimeter combination
  (``tabular.feature_trigger(0.1)``).

Per case, in one process, one BLAS thread (as the gate runs): ``dataward.gates.scanning`` with its default
policy (seeded), the seconds of each detector (the report's ``extras["timings"]``), of the whole scan,
and of featurizing the same rows alone (a pipeline fitted on baseline + contribution, the validation
set transformed); then cleanlab's ``find_label_issues`` on the same batch (the benchmark peer
``CleanlabLabelIssues``: 5-fold cross-validated probabilities on baseline + contribution). Wall and CPU
seconds (``time.process_time``: the machine is shared, CPU seconds move less with the load).

Each scan runs twice per measurement, with ``workers=1`` (the detectors one after another in the calling
thread) and ``workers=2`` (side by side on two threads), and both reports' digests are printed: they must
be equal. Beside wall and CPU seconds, the *critical path* of each scan in CPU seconds: the calling
thread's own CPU time plus, for each stage the detectors run on the workers, the busiest worker thread's
(``time.thread_time``). On a shared machine whose other jobs take the cores, wall time says more about the
load than about the scan; the critical path says how long the scan would take on two free cores, as a
lower bound (it leaves out waiting for the GIL and faiss's own helper threads).

``--cpu`` also reports each detector's CPU seconds (its ``fit``, ``score_records``, ``finish`` and ``score``
wrapped with ``time.process_time``, the outermost call counted) and the featurizer's, inside the scan.
``--repeat N`` runs each measurement N times and keeps the fastest wall time (and its CPU time).
``--json PATH`` writes every figure; ``--digest`` also prints a hash of the report's verdict, per-record
scores, per-detector p-values and flags, to check that a change of the code left the report unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import threading
import time
from collections import defaultdict
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
from dataward.gates.fit_memo import MEMO

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


class CriticalPath:
    """While active, the CPU seconds of a scan's critical path: the calling thread's own, plus the busiest
    thread's in each stage the scan runs on threads of its own (the detectors, ``dataward.gates.scanning._each``;
    the text features' sparse products, ``dataward.gates.features.text._map``)."""

    HOOKS = (("dataward.gates.scanning", "_each"), ("dataward.gates.features.text", "_map"))

    def __init__(self) -> None:
        self.stages: list[tuple[int, dict[int, float]]] = []
        self._lock = threading.Lock()
        self._saved: list[tuple[Any, str, Any]] = []

    def _hook(self, module: Any, name: str) -> None:
        original = getattr(module, name)

        def staged(fn: Callable[[Any], None], items: Any, workers: int, **options: Any) -> None:
            per_thread: dict[int, float] = defaultdict(float)
            with self._lock:
                self.stages.append((threading.get_ident(), per_thread))

            def timed(item: Any) -> None:
                started = time.thread_time()
                try:
                    fn(item)
                finally:
                    with self._lock:
                        per_thread[threading.get_ident()] += time.thread_time() - started

            original(timed, items, workers, **options)

        self._saved.append((module, name, original))
        setattr(module, name, staged)

    def __enter__(self) -> CriticalPath:
        # ``dataward.gates.scanning`` is also the name of the function the package exports: import the module.
        for module, name in self.HOOKS:
            self._hook(importlib.import_module(module), name)
        return self

    def __exit__(self, *exc: object) -> None:
        for module, name, original in reversed(self._saved):
            setattr(module, name, original)
        self._saved.clear()

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
        """``fn()``'s result, wall seconds, CPU seconds (the process's) and critical-path CPU seconds."""
        self.stages.clear()
        me = threading.get_ident()
        MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
        wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
        out = fn()
        wall, cpu, own = time.perf_counter() - wall, time.process_time() - cpu, time.thread_time() - own
        # The calling thread's CPU holds what it ran itself; each stage it handed to other threads (waiting
        # meanwhile) adds its busiest thread's, that thread's figure including the busiest thread of any
        # stage it handed on in turn.
        path = own
        for caller, per_thread in self.stages:
            if caller != me or me in per_thread:
                continue
            path += max(
                (
                    seconds + sum(max(inner.values(), default=0.0) for by, inner in self.stages if by == thread)
                    for thread, seconds in per_thread.items()
                ),
                default=0.0,
            )
        return out, wall, cpu, path


def _features(case: AttackCase) -> None:
    from dataward.gates.features import FeaturePipeline
    from dataward.gates.inputs import normalize

    def table(frame: pd.DataFrame) -> Any:
        return normalize(frame, case.schema, "benchmark", with_ids=False).table

    pipeline = FeaturePipeline(case.schema, {}, seed=0)
    pipeline.fit_transform(table(pd.concat([case.baseline, case.contribution], ignore_index=True)))
    if case.validation is not None and len(case.validation):
        pipeline.transform(table(case.validation))


WORKERS = (1, 2)


def measure(name: str, repeat: int = 1, cpu: bool = False) -> list[dict[str, Any]]:
    """One row per number of workers (``WORKERS``), the scans of each repeat run back to back."""
    from dataward.gates import scan

    case = CASES[name]()

    def run_scan(workers: int) -> Any:
        return scan(
            case.baseline,
            case.contribution,
            case.schema,
            case.validation,
            {"seed": 0},
            first_baseline=case.first_baseline,
            groups=case.groups,
            workers=workers,
        )

    by_detector: dict[str, float] = {}
    best: dict[int, tuple[Any, float, float, float]] = {}
    with threadpool_limits(limits=1), CriticalPath() as path:
        for _ in range(repeat):
            for workers in WORKERS:
                run = path.measure(lambda workers=workers: run_scan(workers))
                if workers not in best or run[1] < best[workers][1]:
                    best[workers] = run
        if cpu:
            with CpuByDetector() as counted:
                run_scan(1)
            by_detector = {k: round(v, 3) for k, v in sorted(counted.seconds.items(), key=lambda kv: -kv[1])}
        _, feat_wall, feat_cpu = _best(lambda: _features(case), repeat)
        peer, clean_wall, clean_cpu = _best(
            lambda: CleanlabLabelIssues().score(case.baseline, case.contribution, case.schema, seed=0), repeat
        )
    rows = []
    for workers, (report, scan_wall, scan_cpu, scan_path) in best.items():
        flagged = np.asarray(report.records.flagged, bool)
        rows.append(
            {
                "case": name,
                "workers": workers,
                "baseline": len(case.baseline),
                "contribution": len(case.contribution),
                "poisoned": int(case.poison.sum()),
                "verdict": report.verdict,
                "poison_flagged": int((flagged & case.poison).sum()),
                "clean_flagged": int((flagged & ~case.poison).sum()),
                "digest": digest(report),
                "detectors": {k: float(v) for k, v in (report.extras.get("timings") or {}).items()},
                "cpu_by_detector": by_detector if workers == 1 else {},
                "scan_wall": scan_wall,
                "scan_cpu": scan_cpu,
                "scan_critical_path_cpu": scan_path,
                "features_wall": feat_wall,
                "features_cpu": feat_cpu,
                "cleanlab_wall": clean_wall,
                "cleanlab_cpu": clean_cpu,
                "cleanlab_verdict": peer.verdict,
                "cleanlab_poison_flagged": int((peer.flags & case.poison).sum()),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    names = sorted({d for r in rows for d in r["detectors"]})
    head = ["case", "workers", *names, "features", "scan (wall)", "scan (CPU)", "scan (critical path, CPU)"]
    head += ["cleanlab (wall)", "cleanlab (CPU)", "scan / cleanlab (wall)", "scan critical path / cleanlab (CPU)"]
    head += ["verdict", "poison flagged", "clean flagged", "digest"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['case']} ({r['poisoned']}/{r['contribution']} vs {r['baseline']})", str(r["workers"])]
        cells += [f"{r['detectors'][n]:.2f}" if n in r["detectors"] else "" for n in names]
        cells += [f"{r['features_wall']:.2f}", f"{r['scan_wall']:.2f}", f"{r['scan_cpu']:.2f}"]
        cells += [f"{r['scan_critical_path_cpu']:.2f}", f"{r['cleanlab_wall']:.2f}", f"{r['cleanlab_cpu']:.2f}"]
        cells += [f"{r['scan_wall'] / r['cleanlab_wall']:.2f}"]
        cells += [f"{r['scan_critical_path_cpu'] / r['cleanlab_cpu']:.2f}"]
        cells += [r["verdict"], f"{r['poison_flagged']}/{r['poisoned']}", str(r["clean_flagged"]), r["digest"]]
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
    same = True
    for name in args.cases:
        case_rows = measure(name, args.repeat, args.cpu)
        rows.extend(case_rows)
        same = same and len({row["digest"] for row in case_rows}) == 1
        for row in case_rows:
            timings = ", ".join(f"{k} {v:.2f}" for k, v in row["detectors"].items())
            print(
                f"{name} workers={row['workers']}: scan {row['scan_wall']:.2f} s ({row['scan_cpu']:.2f} CPU, "
                f"critical path {row['scan_critical_path_cpu']:.2f} CPU), cleanlab {row['cleanlab_wall']:.2f} s "
                f"({row['cleanlab_cpu']:.2f} CPU); {timings}"
                + (f"; digest {row['digest']}" if args.digest else "")
                + (f"; CPU seconds {row['cpu_by_detector']}" if row["cpu_by_detector"] else ""),
                file=sys.stderr,
                flush=True,
            )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if not same:
        print("the reports of one and two workers differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
