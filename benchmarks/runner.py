"""Run attacks against every method and collect every figure into one JSON-ready dict."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks import attacks as attack_lib
from benchmarks.attacks.base import AttackCase
from benchmarks.metrics import downstream, measured, record_metrics, summarise
from benchmarks.peers import FACTORIES, available, method
from dataward.domain.errors import InputError

ALL_METHODS = list(FACTORIES)
CLEAN_DATASETS = ["digits", "man_sections", "breast_cancer", "wine"]


@dataclass(frozen=True)
class Suite:
    """Which attacks, methods and clean contributions a run covers."""

    name: str
    attacks: list[str]
    methods: list[str]
    clean_per_dataset: int
    clean_datasets: list[str] = field(default_factory=lambda: list(CLEAN_DATASETS))
    downstream: bool = True
    drift_sequence: bool = False
    """Also scan every step of the slow drift with dataward, with and without the first baseline."""


SUITES = {
    "quick": Suite(
        "quick",
        attacks=["badnets_3pct", "text_rare_token", "tabular_trigger", "random_flips_20pct"],
        methods=["dataward", "isolation_forest", "cleanlab_label_issues", "cleanlab_outlier"],
        clean_per_dataset=1,
        clean_datasets=["digits", "man_sections", "breast_cancer"],
    ),
    "full": Suite(
        "full",
        attacks=list(attack_lib.ATTACKS),
        methods=ALL_METHODS,
        clean_per_dataset=6,
        drift_sequence=True,
    ),
}


def suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError as exc:
        raise InputError(f"unknown suite {name!r}", hint=f"use one of: {', '.join(SUITES)}") from exc


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        mem_gb = float("nan")
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _run_method(name: str, case: AttackCase, seed: int) -> dict[str, Any]:
    """One method on one case: its record metrics, verdict, cost and (for attacks) downstream figures."""
    impl = method(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, cost = measured(
            lambda: impl.score(
                case.baseline,
                case.contribution,
                case.schema,
                validation=case.validation,
                first_baseline=case.first_baseline,
                groups=case.groups,
                seed=seed,
            )
        )
    out: dict[str, Any] = {
        **record_metrics(result.scores, result.flags, case.poison),
        "verdict": result.verdict,
        "detected": result.detected,
        "seconds": round(cost.seconds, 3),
        "peak_mb": round(cost.peak_mb, 1),
        "reasons": result.reasons[:5],
    }
    if result.extra:
        out["extra"] = result.extra
    out["_keep"] = _kept(name, result.verdict, result.flags)
    return out


def _kept(name: str, verdict: str, flags: np.ndarray) -> np.ndarray:
    """What a method lets into training: a blocked contribution enters not at all (dataward's verdict);
    otherwise every record except the flagged ones (which would sit in quarantine)."""
    if name == "dataward" and verdict == "block":
        return np.zeros(len(flags), dtype=bool)
    return ~flags


def run_case(
    case: AttackCase,
    methods: list[str],
    *,
    seed: int = 0,
    with_downstream: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every method on one case, plus the no-defence and clean-only downstream references."""
    entry: dict[str, Any] = {"case": case.summary(), "methods": {}, "references": {}}
    if with_downstream and case.family != "clean":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entry["references"]["no_defence"] = downstream(case, np.ones(len(case.poison), dtype=bool), seed)
            entry["references"]["clean_only"] = downstream(case, ~case.poison, seed)
    for name in methods:
        start = time.perf_counter()
        try:
            figures = _run_method(name, case, seed)
        except Exception as exc:  # a failing method is a result to report, not a reason to stop the run
            log(f"  {case.name}: {name} failed: {exc!r}")
            entry["methods"][name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=6),
            }
            continue
        keep = figures.pop("_keep")
        if with_downstream and case.family != "clean":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figures["downstream"] = downstream(case, keep, seed)
        entry["methods"][name] = figures
        log(
            f"  {case.name}: {name} {figures['verdict']} auroc={figures['auroc']:.3f} "
            f"r@1%={figures['recall_at_1pct_fpr']:.2f} ({time.perf_counter() - start:.1f}s)"
        )
    return entry


def _method_list(requested: list[str], log: Callable[[str], None]) -> tuple[list[str], list[str]]:
    chosen, skipped = [], []
    unknown = [name for name in requested if name not in FACTORIES]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}", hint=f"use any of: {', '.join(FACTORIES)}")
    for name in requested:
        if name == "dataward" and not available():
            skipped.append("dataward: dataward.gates.scan is not importable in this checkout")
            continue
        if name.startswith("art_"):
            try:
                import art  # noqa: F401
                import torch  # noqa: F401
            except ImportError as exc:
                skipped.append(f"{name}: {exc} (install the bench extra)")
                continue
        chosen.append(name)
    for note in skipped:
        log(f"skipping {note}")
    return chosen, skipped


def run_suite(
    spec: Suite,
    *,
    seed: int = 0,
    methods: list[str] | None = None,
    attacks: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run a whole suite and return every figure (JSON-ready after ``strip_private``)."""
    started = time.perf_counter()
    chosen, skipped = _method_list(methods or spec.methods, log)
    results: dict[str, Any] = {
        "suite": spec.name,
        "command": "python -m benchmarks run " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "seed": seed,
        "methods": chosen,
        "skipped": skipped,
        "attacks": [],
        "clean": [],
    }
    wanted = attacks or spec.attacks
    unknown = [name for name in wanted if name not in attack_lib.ATTACKS]
    if unknown:
        raise InputError(f"unknown attack(s) {', '.join(unknown)}", hint=f"use any of: {', '.join(attack_lib.ATTACKS)}")
    for name in wanted:
        log(f"attack {name}")
        case = attack_lib.build(name, seed)
        results["attacks"].append(run_case(case, chosen, seed=seed, with_downstream=spec.downstream, log=log))
    for dataset in spec.clean_datasets:
        for k in range(spec.clean_per_dataset):
            case = attack_lib.clean_contribution(dataset, seed=seed * 1000 + k)
            log(f"clean {case.name}")
            results["clean"].append(run_case(case, chosen, seed=seed, with_downstream=False, log=log))
    if spec.drift_sequence and "dataward" in chosen:
        log("drift sequence (dataward, every step)")
        results["drift_sequence"] = drift_verdicts(seed)
    results["summary"] = summarise_methods(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def drift_verdicts(seed: int = 0) -> dict[str, list[str]]:
    """dataward's verdict on each step of the slow drift, with and without the first baseline."""
    from benchmarks.attacks.drift import drift_sequence

    gate = method("dataward")
    out: dict[str, list[str]] = {"with_first_baseline": [], "without_first_baseline": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in drift_sequence(seed=seed):
            for key, first in (("with_first_baseline", case.first_baseline), ("without_first_baseline", None)):
                result = gate.score(
                    case.baseline,
                    case.contribution,
                    case.schema,
                    validation=case.validation,
                    first_baseline=first,
                    seed=seed,
                )
                out[key].append(result.verdict)
    return out


def summarise_methods(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method: mean record figures over attacks, contributions detected, clean false alarms."""
    out: dict[str, dict[str, Any]] = {}
    for name in results["methods"]:
        rows = [a["methods"][name] for a in results["attacks"] if "error" not in a["methods"].get(name, {"error": 1})]
        clean = [c["methods"][name] for c in results["clean"] if "error" not in c["methods"].get(name, {"error": 1})]
        asr = [r["downstream"]["attack_success"] for r in rows if "downstream" in r]
        out[name] = {
            "attacks_run": len(rows),
            "errors": len(results["attacks"]) + len(results["clean"]) - len(rows) - len(clean),
            "mean_auroc": summarise(rows, "auroc"),
            "mean_recall_at_1pct_fpr": summarise(rows, "recall_at_1pct_fpr"),
            "mean_recall_at_5pct_fpr": summarise(rows, "recall_at_5pct_fpr"),
            "mean_precision": summarise(rows, "precision"),
            "detected": sum(bool(r["detected"]) for r in rows),
            "clean_runs": len(clean),
            "false_alarms": sum(bool(r["detected"]) for r in clean),
            "false_blocks": sum(r["verdict"] == "block" for r in clean),
            "mean_clean_fpr": summarise(clean, "fpr"),
            "mean_attack_success": float(np.nanmean(asr)) if any(v == v for v in asr) else float("nan"),
            "mean_seconds": summarise(rows + clean, "seconds"),
            "max_peak_mb": max((r["peak_mb"] for r in rows + clean), default=float("nan")),
        }
    return out
