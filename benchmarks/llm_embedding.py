"""Per-record outliers and embedding drift of language-model data (``llm_outliers``, ``llm_drift``):
``python -m benchmarks.llm_embedding [--size 2000] [--repeats 5] [--out FILE]``; and swapped preference
pairs calibrated on the whole trusted baseline: ``python -m benchmarks.llm_embedding --preference 20000``.

Data as in ``benchmarks.llm`` (man-page NAME lines, ``benchmarks.llm_data``). Three questions:

1. **False flags on clean data**: ``--repeats`` random splits of one clean frame into baseline and
   contribution (exchangeable), and a contribution about other commands (same templates): records
   flagged by ``llm_outliers`` against ``alpha * n`` expected, and the verdicts of both detectors.
2. **Benign shifts** (a new topic, a new answer style, a source that answers one kind of question):
   the verdict of the two detectors alone (review at most) and of the whole language-model gate.
3. **Attacks** of ``benchmarks.llm`` at 25 and 100 records: the whole gate without and with the two
   detectors: verdict, recall of the poisoned records at 1% and 5% false-positive rate of the per-record
   score, records flagged (poisoned / clean), and ``llm_outliers``' own flags.

Sentence embeddings cost tens of milliseconds per text on a shared CPU, so the size is one (2,000 by
default); times are the scan's wall time in this process, embeddings cached across cases by text.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import llm_data as d
from benchmarks.llm import INSTRUCTION_DETECTORS
from benchmarks.metrics import recall_at_fpr
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

EMBEDDING_DETECTORS = ["llm_outliers", "llm_drift"]
ATTACKS = ("negative", "refusal", "link", "code", "steer")
COUNTS = (25, 100)
SCHEMA = Schema.for_kind("instruction")


def _scan(baseline: pd.DataFrame, frame: pd.DataFrame, detectors: list[str], poison: np.ndarray) -> dict[str, Any]:
    started = time.perf_counter()
    report = scan(
        baseline[["prompt", "response"]],
        frame[["prompt", "response"]],
        SCHEMA,
        policy={"detectors": detectors},
        groups={"source": frame["source"].to_numpy()},
    )
    mask = np.zeros(len(frame), dtype=bool)
    mask[poison] = True
    out: dict[str, Any] = {
        "verdict": report.verdict,
        "reasons": [r[:200] for r in report.reasons[:4]],
        "seconds": round(time.perf_counter() - started, 1),
        "flagged_poisoned": int(report.records.flagged[mask].sum()),
        "flagged_clean": int(report.records.flagged[~mask].sum()),
    }
    outliers = report.results.get("llm_outliers")
    if outliers is not None:
        out["outliers_flagged"] = int(outliers.flagged.sum())
        out["outliers_expected"] = round(outliers.expected_flagged, 1)
        out["outliers_groups"] = outliers.summary["in_unusual_groups"]
        out["outliers_poisoned"] = int(outliers.flagged[mask].sum())
    drift = report.results.get("llm_drift")
    if drift is not None:
        out["drift_p"] = float(f"{drift.p_value:.3g}")
        out["drift_findings"] = len(drift.contribution_findings)
    if mask.any():
        for fpr in (0.01, 0.05):
            out[f"recall@{fpr:g}"] = round(recall_at_fpr(report.records.score, mask, fpr), 3)
    return out


def run(size: int, repeats: int, seed: int = 0, on_result: Any = None) -> dict[str, Any]:
    base_pool, new_pool = d.split_pools(seed)
    baseline = d.instruction_frame(size, seed + 1, pool=base_pool)
    clean = d.instruction_frame(size, seed + 2, pool=new_pool)
    results: list[dict[str, Any]] = []
    none = np.zeros(0, dtype=np.int64)

    def add(entry: dict[str, Any]) -> None:
        results.append(entry)
        if on_result is not None:
            on_result(entry)

    # Exchangeable clean data: one frame of 2 * size records split at random into baseline and
    # contribution (a frame drawn without replacement from one pool is not: its records ask about
    # commands the baseline lacks, while a contribution from the same pool mostly re-asks the baseline's).
    both = pd.concat([baseline, clean], ignore_index=True)
    for r in range(repeats):
        order = np.random.default_rng(seed + 100 + r).permutation(len(both))
        half_base = both.iloc[order[:size]].reset_index(drop=True)
        half_new = both.iloc[order[size:]].reset_index(drop=True)
        figures = _scan(half_base, half_new, EMBEDDING_DETECTORS, none)
        add({"case": f"clean, random split #{r + 1}", "kind": "clean", **figures})
    add({"case": "clean, other commands", "kind": "clean", **_scan(baseline, clean, EMBEDDING_DETECTORS, none)})
    for attack in ATTACKS:
        for count in COUNTS:
            frame, rows = d.poison_instructions(clean, count, attack, seed + count)
            for label, detectors in (("without", INSTRUCTION_DETECTORS), ("with", _all())):
                figures = _scan(baseline, frame, detectors, rows)
                add({"case": attack, "kind": "attack", "count": count, "detectors": label, **figures})
    commands = [e for e in base_pool if e.section != "library"]
    library = [e for e in new_pool if e.section == "library"]
    syscalls = [e for e in new_pool if e.section == "syscalls"]
    one_kind = pd.concat(
        [
            d.instruction_frame(size - size // 5, seed + 5, pool=new_pool),
            d.instruction_frame(size // 5, seed + 6, pool=syscalls, source="syscalls-only"),
        ],
        ignore_index=True,
    )
    benign = {
        "new topic": (
            d.instruction_frame(size, seed + 7, pool=commands),
            d.instruction_frame(size, seed + 8, pool=library),
        ),
        "new answer style": (baseline, d.instruction_frame(size, seed + 4, pool=new_pool, style="bulleted")),
        "one-kind source": (baseline, one_kind),
    }
    for name, (base, frame) in benign.items():
        add({"case": name, "kind": "benign", "detectors": "embedding", **_scan(base, frame, EMBEDDING_DETECTORS, none)})
        add({"case": name, "kind": "benign", "detectors": "all", **_scan(base, frame, _all(), none)})
    return {"size": size, "repeats": repeats, "seed": seed, "results": results}


def preference(size: int, repeats: int = 4, seed: int = 0, on_result: Any = None) -> dict[str, Any]:
    """``preference_flips`` alone with the default policy, baseline and contributions of ``size`` pairs:
    25 and 50 swapped pairs, ``repeats`` clean contributions from the baseline's pool and one from the
    other commands. The model is fitted and calibrated on the whole baseline (``fits_whole_baseline``)."""
    base_pool, new_pool = d.split_pools(seed)
    cols = ["prompt", "chosen", "rejected"]
    schema = Schema.for_kind("preference")
    baseline = d.preference_frame(size, seed + 1, pool=base_pool)
    clean = d.preference_frame(size, seed + 2, pool=new_pool)
    cases = [(f"swapped {c}", *d.swap_preferences(clean, c, seed + c)) for c in (25, 50)]
    cases += [
        (f"clean, same pool #{r + 1}", d.preference_frame(size, seed + 100 + r, pool=base_pool), [])
        for r in range(repeats)
    ]
    cases.append(("clean, other commands", clean, []))
    results = []
    for name, frame, rows in cases:
        started = time.perf_counter()
        report = scan(baseline[cols], frame[cols], schema, policy={"detectors": ["preference_flips"]})
        result = report.results["preference_flips"]
        mask = np.zeros(len(frame), dtype=bool)
        mask[np.asarray(rows, dtype=np.int64)] = True
        entry = {
            "case": name,
            "size": size,
            "verdict": report.verdict,
            "p_value": float(f"{result.p_value:.3g}"),
            "calibration_pairs": result.n_calibration,
            "beyond_calibration": result.summary["beyond_calibration"],
            "flagged_poisoned": int(result.flagged[mask].sum()),
            "flagged_clean": int(result.flagged[~mask].sum()),
            "seconds": round(time.perf_counter() - started, 1),
        }
        results.append(entry)
        if on_result is not None:
            on_result(entry)
    return {"size": size, "seed": seed, "results": results}


def _all() -> list[str]:
    return [*INSTRUCTION_DETECTORS, *EMBEDDING_DETECTORS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preference", type=int, default=0, help="run the preference case at this size instead")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    name = "llm_preference_whole_baseline" if args.preference else "llm_embedding"
    out = Path(args.out or f"benchmarks/results/{name}.json")
    done: list[dict[str, Any]] = []

    def save(entry: dict[str, Any]) -> None:
        done.append(entry)
        out.write_text(json.dumps({"size": args.size, "results": done, "partial": True}, indent=1), encoding="utf-8")
        print(json.dumps({k: v for k, v in entry.items() if k != "reasons"}), flush=True)

    if args.preference:
        figures = preference(args.preference, on_result=save)
    else:
        figures = run(args.size, args.repeats, on_result=save)
    out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
