"""``llm_behaviour_shift`` alone on every language-model case of the benchmarks, before and after a change.

``python -m benchmarks.llm_behaviour_floor [--sizes 2000,20000] [--out FILE] [--compare BEFORE.json]``

The cases are those ``benchmarks.llm`` builds (tuning: ``ATTACKS`` at 25, 50 and 100 poisoned records,
``BENIGN`` and the repeated clean preference contributions) and ``benchmarks.llm_heldout`` builds
(held-out, never tuned on: its ``ATTACKS`` and ``BENIGN``), drawn by those modules' own ``run`` at seed 0,
with the baseline, contribution, schema and ``source`` groups they hand to the gate. Instead of a scan,
the detector is constructed, fitted on the baseline and scores the contribution directly: no other
detector runs and no sentence embedding (nor TF-IDF) is computed. Its baseline is what a scan would give
it: the gate's ``reference_size`` sample of the trusted records (the whole baseline up to 10,000).

Per case: the detector's contribution-level p-value, its version, the shifts it names (metric, group,
values, corrected p-value and, from version 2, the effect size), the test behind a p-value below 0.05
when it is no shift (``named``) and, from version 2, the significant tests the effect-size floor left
out (``below_floor``). In the table a p-value is in bold when the lexical gate (four detectors) reviews
on it: below 0.01 / 4. ``--compare`` writes the markdown table of a
run beside an earlier one (the before/after table of docs/benchmarks.md,
"llm_behaviour_shift: an effect-size floor").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import llm, llm_heldout
from dataward.domain.schema import Schema
from dataward.gates.base import GateContext, GateData
from dataward.gates.detectors.llm_behaviour_shift import BehaviourShiftDetector
from dataward.gates.inputs import group_arrays, normalize, take_rows
from dataward.gates.policy import GatePolicy
from dataward.gates.scanning import stratified_sample

LEXICAL_DETECTORS = len(llm.INSTRUCTION_DETECTORS)
"""The lexical gate runs four detectors on instruction and chat data (five on preference data); a
difference detector asks for review when its p-value times that count is below the policy's
``review_p`` (0.01)."""


def _side(frame: pd.DataFrame, schema: Schema, what: str) -> Any:
    cols = [c.name for c in schema.inputs if c.name in frame.columns]
    return normalize(frame[cols], schema, what, with_ids=False)


def shift_alone(kind: str, baseline: pd.DataFrame, frame: pd.DataFrame) -> dict[str, Any]:
    """``llm_behaviour_shift`` fitted on ``baseline`` and scoring ``frame`` as a scan would run it."""
    schema = Schema.for_kind(kind)
    policy = GatePolicy()
    base, contrib = _side(baseline, schema, "baseline"), _side(frame, schema, "contribution")
    # The scan's reference sample: its first draw from the policy's seed (one class: no labels here).
    index = stratified_sample(np.zeros(len(base), dtype=np.int64), policy.reference_size, np.random.default_rng(0))
    reference = take_rows(base.table, index)
    groups = group_arrays({"source": frame["source"].to_numpy()}, len(contrib))
    context = GateContext(schema, ("",), seed=policy.seed)
    detector = BehaviourShiftDetector().fit(
        GateData(np.zeros((reference.num_rows, 0), np.float32), np.zeros(reference.num_rows, np.int64), reference),
        context,
    )
    n = len(contrib)
    result = detector.score(GateData(np.zeros((n, 0), np.float32), np.zeros(n, np.int64), contrib.table, groups))
    keep = ("metric", "group", "contribution", "baseline", "p_value", "effect", "effect_size")
    return {
        "version": result.version,
        "p_value": result.p_value,
        "tests": result.summary.get("tests", 0),
        "shifts": [{k: s[k] for k in keep if k in s} for s in result.summary.get("shifts", [])],
        "below_floor": [{k: s[k] for k in keep if k in s} for s in result.summary.get("below_floor", [])],
        # The test behind the p-value when it is below 0.05 (named even when it is no shift).
        "named": [{k: f.evidence[k] for k in keep if k in f.evidence} for f in result.findings[:1]],
    }


def run(sizes: list[int], seed: int = 0) -> list[dict[str, Any]]:
    """Every tuning and held-out case at every size, the detector alone."""
    out: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []

    def runner(kind: str, baseline: pd.DataFrame, frame: pd.DataFrame, poison: np.ndarray, gate: str) -> dict:
        started = time.perf_counter()
        calls.append({"data": kind, **shift_alone(kind, baseline, frame)})
        # What benchmarks.llm's repeated case reads from each of its runs.
        return {"verdict": "-", "flagged_clean": 0, "seconds": round(time.perf_counter() - started, 2)}

    def collect(heldout: bool) -> Any:
        def on_result(entry: dict[str, Any]) -> None:
            done = list(calls)
            calls.clear()
            common = {
                "set": "held-out" if heldout else "tuning",
                "case": entry["case"],
                "kind": entry["kind"],
                "size": entry["size"],
                "count": entry["count"],
            }
            if len(done) == 1:
                out.append({**common, **done[0]})
            else:  # the repeated clean preference contributions: one entry, every repeat
                out.append({**common, "data": done[0]["data"], "repeats": done})
            print(f"{common['set']} {entry['case']} {entry['size']} {entry['count']}", flush=True)

        return on_result

    llm.run(sizes, seed=seed, gate="lexical", runner=runner, on_result=collect(False))
    llm_heldout.run(sizes, seed=seed, gate="lexical", runner=runner, on_result=collect(True))
    return out


def _p(p: float) -> str:
    mark = "**" if p * LEXICAL_DETECTORS < 0.01 else ""
    return f"{mark}{p:.2g}{mark}"


def _name(shift: dict[str, Any]) -> str:
    metric = "length" if shift["metric"].startswith("response length") else shift["metric"]
    group = "" if shift["group"] == "all" else f" ({shift['group'].removeprefix('source ')})"
    name = "OR" if shift.get("effect") == "odds ratio" else shift.get("effect")
    effect = f" {name} {shift['effect_size']:.3g}" if "effect_size" in shift else ""
    return f"{metric}{group}{effect}"


def _names(shifts: list[dict[str, Any]], limit: int = 4) -> str:
    names = [_name(s) for s in shifts[:limit]]
    more = len(shifts) - limit
    return ", ".join(names) + (f", +{more}" if more > 0 else "") if names else "-"


def _cells(entry: dict[str, Any]) -> tuple[str, str, str]:
    if "repeats" in entry:
        ps = [r["p_value"] for r in entry["repeats"]]
        shifted = sum(bool(r["shifts"]) for r in entry["repeats"])
        floored = sum(bool(r.get("below_floor")) for r in entry["repeats"])
        return (
            f"min {_p(min(ps))}",
            f"{shifted} of {len(ps)} with a shift",
            f"{floored} of {len(ps)}" if floored else "-",
        )
    shifts = _names(entry["shifts"])
    if not entry["shifts"] and entry.get("named"):
        shifts = f"- (p: {_name(entry['named'][0])})"
    return _p(entry["p_value"]), shifts, _names(entry.get("below_floor", []))


def table(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """Markdown: per case the p-value and named shifts before and after, and what the floor left out."""
    key = lambda e: (e["set"], e["case"], e["size"], e["count"])  # noqa: E731
    earlier = {key(e): e for e in before}
    lines = [
        "| set | case | size | poisoned | p before | shifts before | p after | shifts after | left out by the floor |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for e in after:
        b = earlier.get(key(e))
        p_b, s_b, _ = _cells(b) if b is not None else ("-", "-", "-")
        p_a, s_a, floored = _cells(e)
        lines.append(
            f"| {e['set']} | {e['case']} | {e['size']:,} | {e['count']} | {p_b} | {s_b} | {p_a} | {s_a} | {floored} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="contribution sizes, comma-separated")
    parser.add_argument("--out", default="benchmarks/results/llm-behaviour-floor.json", help="JSON figures")
    parser.add_argument("--compare", default=None, help="an earlier run's JSON: print the before/after table")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run([int(s) for s in args.sizes.split(",")])
    figures = {"seed": 0, "seconds": round(time.perf_counter() - started, 1), "results": results}
    Path(args.out).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if args.compare:
        before = json.loads(Path(args.compare).read_text(encoding="utf-8"))["results"]
        print(table(before, results))


if __name__ == "__main__":
    main()
