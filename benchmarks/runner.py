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
from benchmarks import shifts
from benchmarks.attacks import fixed_counts as fixed
from benchmarks.attacks.base import AttackCase
from benchmarks.attacks.heldout import HELDOUT_ATTACKS, build_heldout
from benchmarks.metrics import downstream, measured, record_metrics, summarise
from benchmarks.peers import FACTORIES, available, method
from dataward.domain.errors import InputError
from dataward.gates.fit_memo import MEMO

ALL_METHODS = list(FACTORIES)
CLEAN_DATASETS = ["digits", "man_sections", "breast_cancer", "wine", "photos"]
ALL_FIXED_COUNTS = [(kind, count, size) for size in fixed.SIZES for kind in fixed.KINDS for count in fixed.COUNTS]
FULL_FIXED_COUNTS = [(kind, count, size) for kind, count, size in ALL_FIXED_COUNTS if size <= 5_000 or count == 25]
"""The full suite's fixed-count cases: every count at 5,000 records, 25 at 50,000. The other 50,000-record
cases take the gate about seven minutes each on two cores; the ``scale`` suite runs all of them."""


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
    heldout_attacks: list[str] = field(default_factory=list)
    """Attacks of ``attacks.heldout`` (never tuned on), run like ``attacks`` and reported apart."""
    benign: list[str] = field(default_factory=list)
    """Benign situations (``benchmarks.shifts``, tuning and held-out), clean contributions that must
    never be blocked."""
    benign_methods: list[str] = field(default_factory=lambda: ["dataward"])
    fixed_counts: list[tuple[str, int, int]] = field(default_factory=list)
    """(kind, poisoned records, contribution size) cases of ``attacks.fixed_counts``."""
    fixed_count_methods: list[str] = field(default_factory=lambda: ["dataward", "cleanlab_label_issues"])
    fixed_count_baseline: int = fixed.BASELINE_SIZE


SUITES = {
    "quick": Suite(
        "quick",
        attacks=["badnets_3pct", "text_rare_token", "tabular_trigger", "random_flips_20pct"],
        methods=["dataward", "isolation_forest", "cleanlab_label_issues", "cleanlab_outlier"],
        clean_per_dataset=1,
        clean_datasets=["digits", "man_sections", "breast_cancer"],
        heldout_attacks=["tabular_pair_trigger_4pct"],
        benign=["one_class_text", "recalibration_wine", "one_class_digits", "recalibration_breast_cancer"],
    ),
    "full": Suite(
        "full",
        attacks=list(attack_lib.ATTACKS),
        methods=ALL_METHODS,
        clean_per_dataset=6,
        drift_sequence=True,
        heldout_attacks=list(HELDOUT_ATTACKS),
        benign=[*shifts.TUNING, *shifts.HELDOUT],
        fixed_counts=FULL_FIXED_COUNTS,
    ),
    "scale": Suite(
        "scale",
        attacks=[],
        methods=["dataward", "cleanlab_label_issues"],
        clean_per_dataset=0,
        clean_datasets=[],
        downstream=False,
        fixed_counts=ALL_FIXED_COUNTS,
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
    try:
        load = round(os.getloadavg()[0], 1)
    except OSError:
        load = float("nan")
    return {
        "cpu": cpu,
        "load_average": load,
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
        MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
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
            skipped.append("dataward: dataward.gates.scanning is not importable in this checkout")
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
    known = [*attack_lib.ATTACKS, *HELDOUT_ATTACKS]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise InputError(f"unknown attack(s) {', '.join(unknown)}", hint=f"use any of: {', '.join(known)}")
    situations = [*shifts.TUNING, *shifts.HELDOUT]
    unknown = [name for name in spec.benign if name not in situations]
    if unknown:
        raise InputError(
            f"unknown benign situation(s) {', '.join(unknown)}", hint=f"use any of: {', '.join(situations)}"
        )
    for kind, count, size in spec.fixed_counts:
        if kind not in fixed.KINDS or not 0 < count < size:
            raise InputError(
                f"bad fixed-count case {kind}:{count}:{size}",
                hint=f"kinds: {', '.join(fixed.KINDS)}; 0 < count < size",
            )
    # ``--attacks`` narrows a run to the named attacks, whether tuning or held-out ones.
    main = [n for n in wanted if n in attack_lib.ATTACKS]
    heldout = [n for n in wanted if n in HELDOUT_ATTACKS] if attacks else spec.heldout_attacks
    for name in main:
        log(f"attack {name}")
        case = attack_lib.build(name, seed)
        results["attacks"].append(run_case(case, chosen, seed=seed, with_downstream=spec.downstream, log=log))
    results["heldout_attacks"] = []
    for name in heldout:
        log(f"held-out attack {name}")
        case = build_heldout(name, seed)
        results["heldout_attacks"].append(run_case(case, chosen, seed=seed, with_downstream=spec.downstream, log=log))
    for dataset in spec.clean_datasets:
        for k in range(spec.clean_per_dataset):
            case = attack_lib.clean_contribution(dataset, seed=seed * 1000 + k)
            log(f"clean {case.name}")
            results["clean"].append(run_case(case, chosen, seed=seed, with_downstream=False, log=log))
    if spec.drift_sequence and "dataward" in chosen:
        log("drift sequence (dataward, every step)")
        results["drift_sequence"] = drift_verdicts(seed)
    results["benign"] = run_benign(spec.benign, _subset(spec.benign_methods, chosen), seed=seed, log=log)
    results["fixed_counts"] = run_fixed_counts(
        spec.fixed_counts,
        _subset(spec.fixed_count_methods, chosen),
        seed=seed,
        baseline_size=spec.fixed_count_baseline,
        log=log,
    )
    results["summary"] = summarise_methods(results)
    results["heldout_summary"] = summarise_methods(results, attacks_key="heldout_attacks", with_clean=False)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def _subset(wanted: list[str], chosen: list[str]) -> list[str]:
    """The methods of ``wanted`` that this run has (``--methods`` narrows every part of a run)."""
    return [name for name in wanted if name in chosen]


def run_benign(
    names: list[str], methods: list[str], *, seed: int = 0, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Every benign situation through ``methods``: verdict, share of records flagged, reasons."""
    out: list[dict[str, Any]] = []
    if not methods:
        return out
    for name in names:
        situation = shifts.build(name, seed, "full")
        log(f"benign {situation.group} {name}")
        entry = run_case(situation.as_case(), methods, seed=seed, with_downstream=False, log=log)
        entry["situation"] = situation.summary()
        for figures in entry["methods"].values():
            if "error" not in figures:
                figures["flagged_share"] = figures["flagged"] / max(1, len(situation.contribution))
        out.append(entry)
    return out


def run_fixed_counts(
    cases: list[tuple[str, int, int]],
    methods: list[str],
    *,
    seed: int = 0,
    baseline_size: int = fixed.BASELINE_SIZE,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The fixed-count cases (no downstream model: the figures are per record and per contribution)."""
    out: list[dict[str, Any]] = []
    if not methods:
        return out
    for kind, count, size in cases:
        started = time.perf_counter()
        case = fixed.fixed_count(kind, count, size, seed=seed, baseline_size=baseline_size)
        log(f"fixed count {case.name} (built in {time.perf_counter() - started:.1f}s)")
        out.append(run_case(case, methods, seed=seed, with_downstream=False, log=log))
    return out


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


def summarise_methods(
    results: dict[str, Any], *, attacks_key: str = "attacks", with_clean: bool = True
) -> dict[str, dict[str, Any]]:
    """Per method: mean record figures over the attacks under ``attacks_key``, contributions detected,
    clean false alarms (over ``results["clean"]`` when ``with_clean``)."""
    out: dict[str, dict[str, Any]] = {}
    attacks = results.get(attacks_key, [])
    cleans = results["clean"] if with_clean else []
    for name in results["methods"]:
        rows = [a["methods"][name] for a in attacks if "error" not in a["methods"].get(name, {"error": 1})]
        clean = [c["methods"][name] for c in cleans if "error" not in c["methods"].get(name, {"error": 1})]
        asr = [r["downstream"]["attack_success"] for r in rows if "downstream" in r]
        out[name] = {
            "attacks_run": len(rows),
            "errors": len(attacks) + len(cleans) - len(rows) - len(clean),
            "mean_auroc": summarise(rows, "auroc"),
            "mean_recall_at_1pct_fpr": summarise(rows, "recall_at_1pct_fpr"),
            "mean_recall_at_5pct_fpr": summarise(rows, "recall_at_5pct_fpr"),
            "mean_precision": summarise(rows, "precision"),
            "mean_attack_fpr": summarise(rows, "fpr"),
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
