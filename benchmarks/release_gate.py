"""The release gate benchmark: ``python -m benchmarks.release_gate [--seeds 0,1,2] [--out FILE]``.

For each backdoor attack (a rare text token, a BadNets image patch, a tabular value combination) and
seed, two downstream models are trained (``benchmarks.features.downstream_classifier``): one on the
baseline plus the clean records of the contribution, one on the baseline plus the whole poisoned
contribution. Each goes through the release gate as a first release (``dataward.release``: the
clean validation set, the triggers the data gate found when the contribution was gated, the generic
set, the default release policy). Beside it, the check teams run today: accept the model when its
validation accuracy is within two points of the clean model's.

Figures per case: the verdict of each check for the clean and the poisoned model, the attack success
the probe measures for the trigger the data gate found (and the true attack success on the attack's
own triggered test inputs), validation accuracy, and the seconds the release gate takes (the data gate
that found the trigger runs before it and is timed apart).

Writes ``benchmarks/results/release-gate.json`` and the table in docs/benchmarks.md between
``<!-- release-gate:begin -->`` and ``<!-- release-gate:end -->``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import clone

from benchmarks.attacks import build
from benchmarks.data import LABEL
from benchmarks.features import downstream_classifier, model_inputs
from benchmarks.metrics import attack_success_rate
from dataward.gates.policy import GatePolicy
from dataward.gates.scanning import scan
from dataward.release.gate import judge
from dataward.release.policy import ReleasePolicy
from dataward.release.probe import generic_triggers, history_triggers, run_probe
from dataward.release.search import search_tabular

ATTACKS = ("text_rare_token", "badnets_3pct", "tabular_trigger", "outliers_wine")
"""``outliers_wine`` is no backdoor: its models (clean, and trained on garbage with random labels) are there
to count false blocks of the tabular trigger search on another tabular data set with three classes."""
ACCURACY_SLACK = 0.02
"""The plain check accepts a model whose validation accuracy is within this of the clean model's."""
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- release-gate:begin -->", "<!-- release-gate:end -->"


def _table(frame: pd.DataFrame) -> pa.Table:
    """A frame as the Arrow table the release gate reads (a ``record_id`` column and string labels)."""
    out = frame.reset_index(drop=True).copy()
    out.insert(0, "record_id", [f"r{i}" for i in range(len(out))])
    out[LABEL] = out[LABEL].astype(str)
    return pa.Table.from_pandas(out, preserve_index=False)


def _fit(train: pd.DataFrame, modality: str, schema: Any, seed: int) -> Any:
    model = clone(downstream_classifier(modality, seed))
    model.fit(model_inputs(train, modality, schema), train[LABEL].astype(str).to_numpy())
    return model


def run_case(name: str, seed: int) -> dict[str, Any]:
    """Both models of one attack case through the release gate and the plain accuracy check."""
    case = build(name, seed)
    started = time.perf_counter()
    report = scan(case.baseline, case.contribution, case.schema, case.validation, GatePolicy())
    data_gate_s = time.perf_counter() - started
    found = [
        (f"{name}#contribution", f.get("evidence", {})) for f in report.findings if f.get("detector") == "triggers"
    ]
    validation = _table(case.validation)
    triggers = history_triggers(found, case.schema) + generic_triggers(case.schema, validation)
    truth = [str(v) for v in validation.column(LABEL).to_pylist()]
    models = {
        "clean": _fit(pd.concat([case.baseline, case.contribution[~case.poison]]), case.modality, case.schema, seed),
        "poisoned": _fit(pd.concat([case.baseline, case.contribution]), case.modality, case.schema, seed),
    }
    out: dict[str, Any] = {
        "attack": name,
        "seed": seed,
        "modality": case.modality,
        "trigger": case.trigger,
        "target": case.target,
        "data_gate": {"verdict": report.verdict, "triggers": [ev.get("trigger") for _, ev in found]},
        "data_gate_seconds": round(data_gate_s, 2),
        "models": {},
    }
    accuracies = {}
    for kind, model in models.items():

        def predict(table: pa.Table, _ids: Sequence[str], model: Any = model) -> list[str]:
            return [str(v) for v in model.predict(model_inputs(table.to_pandas(), case.modality, case.schema))]

        started = time.perf_counter()
        clean_pred, probes = run_probe(triggers, validation, case.schema, predict, seed=seed)
        found_by_search: list[dict[str, Any]] = []
        if case.modality == "tabular":
            # The model is a scikit-learn estimator, as a skops artifact would be: the ward refits its learner
            # on the trusted rows as one more reference (``search_tabular``'s ``architecture``).
            search = search_tabular(
                validation,
                case.schema,
                predict,
                _table(case.baseline),
                clean=clean_pred,
                seed=seed,
                architecture=model,
            )
            probes += search.probes
        verdict = judge(truth, clean_pred, probes, ReleasePolicy())
        gate_s = time.perf_counter() - started
        if case.modality == "tabular":
            named = [p for p in probes if p.trigger.origin == "search" and p.evidence.get("significant")]
            found_by_search = [
                {
                    "trigger": p.trigger.name,
                    "target": p.label,
                    "excess": round(p.excess, 4),
                    "reference_excess": round(p.evidence["reference_excess"], 4),
                    "adjusted_p": float(f"{p.evidence['adjusted_p']:.3g}"),
                }
                for p in named
            ]
        accuracies[kind] = verdict.accuracy or 0.0
        history = [p for p in probes if p.trigger.origin == "history"]
        attack_pred = (
            None
            if case.attack_test is None
            else model.predict(model_inputs(case.attack_test, case.modality, case.schema))
        )
        out["models"][kind] = {
            "verdict": verdict.verdict,
            "reasons": verdict.reasons[:3],
            "validation_accuracy": round(verdict.accuracy or 0.0, 4),
            "probe_success": round(max((p.success for p in history), default=float("nan")), 4),
            "probe_excess": round(max((p.excess for p in history), default=float("nan")), 4),
            "true_attack_success": None
            if attack_pred is None
            else round(attack_success_rate(attack_pred, case.target), 4),
            "generic_max_excess": round(max((p.excess for p in probes if p.trigger.origin == "generic"), default=0), 4),
            "release_gate_seconds": round(gate_s, 2),
            "search": found_by_search[:3] if case.modality == "tabular" else None,
            "search_tests": search.tests if case.modality == "tabular" else None,
            "probe_rows": validation.num_rows * (1 + 2 * len(triggers)),
        }
    for kind in models:
        drop = accuracies["clean"] - accuracies[kind]
        out["models"][kind]["accuracy_check"] = "pass" if drop <= ACCURACY_SLACK else "block"
    return out


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    return f"{x:.0%}" if isinstance(x, float) else str(x)


NOT_BACKDOORS = ("outliers_wine",)


def _searched(found: list[dict[str, Any]] | None) -> str:
    if found is None:
        return "-"
    if not found:
        return "nothing"
    top = found[0]
    return f"{top['trigger']} -> {top['target']} ({top['excess']:.0%}, trusted model {top['reference_excess']:.0%})"


def markdown(results: list[dict[str, Any]], command: str) -> str:
    """The results as the docs/benchmarks.md section."""
    lines = [
        f"Command: `{command}` (seeds {', '.join(str(s) for s in sorted({r['seed'] for r in results}))}). "
        "Each row is one model through two checks: the release gate (first release, default release policy) "
        f"and a plain validation-accuracy check (accept within {ACCURACY_SLACK:.0%} of the clean model's "
        "accuracy). *Probe success* is the share of eligible clean validation inputs the trigger the data gate "
        "found turns to its label (its control's share in *excess*); *true success* is measured on the "
        "attack's own triggered test inputs. *Trigger search names* is what the model-side trigger search "
        "(`dataward.release.search`) found significant and unexplained on a tabular model, with the largest share a "
        "model fitted on the trusted baseline moves; the data gate names no trigger for these cases, so the "
        "search is all the release gate has. The search's settings were chosen looking at seeds 0-2 only; "
        "seeds 3-5 were run once afterwards, as a held-out check, with nothing changed.",
        "",
        "| attack | seed | model | release gate | accuracy check | val. accuracy | probe success | excess "
        "| true success | trigger search names | gate s | data gate s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for kind, m in r["models"].items():
            lines.append(
                f"| {r['attack']} | {r['seed']} | {kind} | {m['verdict']} | {m['accuracy_check']} | "
                f"{_fmt(m['validation_accuracy'])} | {_fmt(m['probe_success'])} | {_fmt(m['probe_excess'])} | "
                f"{_fmt(m['true_attack_success'])} | {_searched(m.get('search'))} | {m['release_gate_seconds']:.1f} | "
                f"{r['data_gate_seconds']:.1f} |"
            )
    backdoors = [r for r in results if r["attack"] not in NOT_BACKDOORS]
    caught = sum(r["models"]["poisoned"]["verdict"] == "block" for r in backdoors)
    false_alarms = sum(r["models"]["clean"]["verdict"] != "pass" for r in results)
    false_blocks = sum(r["models"]["clean"]["verdict"] == "block" for r in results)
    plain = sum(r["models"]["poisoned"]["accuracy_check"] == "block" for r in backdoors)
    lines += [
        "",
        f"Backdoored models blocked: release gate {caught} of {len(backdoors)}, accuracy check {plain} of "
        f"{len(backdoors)}. Clean models not passed by the release gate: {false_alarms} of {len(results)} "
        f"({false_blocks} blocked).",
    ]
    for attack in dict.fromkeys(r["attack"] for r in results):
        rs = [r for r in results if r["attack"] == attack]
        kinds = {k: [r["models"][k]["verdict"] for r in rs] for k in ("clean", "poisoned")}
        lines.append(
            f"- {attack}: poisoned {', '.join(kinds['poisoned'])}; clean {', '.join(kinds['clean'])} "
            f"(seeds {', '.join(str(r['seed']) for r in rs)})"
        )
    return "\n".join(lines)


def write_docs(section: str) -> None:
    text = DOCS.read_text("utf-8")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{BEGIN}\n{section}\n{END}{tail}"
    else:
        text = text.rstrip("\n") + f"\n\n## Release gate\n\n{BEGIN}\n{section}\n{END}\n"
    DOCS.write_text(text, "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.release_gate", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "release-gate.json")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    results = [run_case(a, s) for a in args.attacks.split(",") for s in seeds]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", "utf-8")
    command = "python -m benchmarks.release_gate " + " ".join(argv if argv is not None else [])
    section = markdown(results, command.strip() if argv else f"python -m benchmarks.release_gate --seeds {args.seeds}")
    print(section)
    if not args.no_docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
