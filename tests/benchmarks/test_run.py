"""A tiny end-to-end run: attacks, methods, JSON, Markdown between markers, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import attacks, report
from benchmarks.__main__ import main
from benchmarks.peers import MethodResult, method
from benchmarks.runner import run_case


def test_peers_score_every_record_of_a_contribution():
    case = attacks.build("outliers_wine", seed=0)
    for name in ("isolation_forest", "cleanlab_label_issues", "cleanlab_outlier", "cleanlab_near_duplicate"):
        result = method(name).score(case.baseline, case.contribution, case.schema, seed=0)
        assert isinstance(result, MethodResult)
        assert result.scores.shape == result.flags.shape == (len(case.contribution),)
        assert result.verdict in ("pass", "review")
    forest = method("isolation_forest").score(case.baseline, case.contribution, case.schema)
    assert forest.scores[case.poison].mean() > forest.scores[~case.poison].mean()


def test_run_case_records_a_failing_method_instead_of_stopping(monkeypatch):
    import benchmarks.runner as runner

    class Broken:
        name = "broken"

        def score(self, *args, **kwargs):
            raise RuntimeError("boom")

    monkeypatch.setattr(runner, "method", lambda name: Broken() if name == "broken" else method(name))
    case = attacks.build("outliers_wine", seed=0)
    entry = run_case(case, ["broken", "isolation_forest"], log=lambda _: None)
    assert "boom" in entry["methods"]["broken"]["error"]
    assert entry["methods"]["isolation_forest"]["downstream"]["kept_clean"] > 0
    assert entry["references"]["clean_only"]["kept_poison"] == 0


def test_command_line_run_writes_json_docs_and_plot(tmp_path, capsys):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\nimport figures stay\n\n<!-- attacks:begin -->\nfull figures\n<!-- attacks:end -->\n"
    )
    out = tmp_path / "results"
    code = main(
        [
            "run",
            "--suite",
            "quick",
            "--out",
            str(out),
            "--docs",
            str(docs),
            "--methods",
            "isolation_forest,cleanlab_outlier",
            "--attacks",
            "outliers_wine",
            "--clean",
            "0",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "isolation_forest" in printed and "outliers_wine" in printed
    figures = json.loads((out / "attacks-quick.json").read_text())
    assert figures["methods"] == ["isolation_forest", "cleanlab_outlier"]
    row = figures["attacks"][0]["methods"]["isolation_forest"]
    assert 0.0 <= row["auroc"] <= 1.0 and "downstream" in row
    assert (out / "recall-at-fpr-quick.png").stat().st_size > 1000
    text = docs.read_text()
    assert "import figures stay" in text and "full figures" in text  # quick never overwrites full
    assert "<!-- attacks-quick:begin -->" in text and "| outliers_wine (5/54) |" in text


def test_command_line_refuses_unknown_names(tmp_path):
    assert main(["run", "--suite", "quick", "--out", str(tmp_path), "--no-docs", "--methods", "nope"]) == 2
    with pytest.raises(SystemExit):
        main(["run", "--suite", "huge"])


def test_write_docs_replaces_only_its_own_section(tmp_path):
    docs = tmp_path / "b.md"
    report.write_docs({"suite": "full"}, "first", docs)
    report.write_docs({"suite": "quick"}, "smoke", docs)
    report.write_docs({"suite": "full"}, "second", docs)
    text = docs.read_text()
    assert "second" in text and "first" not in text and "smoke" in text
    assert text.count("<!-- attacks:begin -->") == 1


def test_json_has_no_nan():
    assert report.json_ready({"a": float("nan"), "b": [np.float64(1.5), np.int64(2)]}) == {"a": None, "b": [1.5, 2]}


def test_art_peers_score_every_record():
    pytest.importorskip("art")
    pytest.importorskip("torch")
    case = attacks.build("outliers_wine", seed=0)
    for name in ("art_spectral", "art_activation"):
        result = method(name).score(case.baseline, case.contribution, case.schema, seed=0)
        assert result.scores.shape == result.flags.shape == (len(case.contribution),)
        assert result.verdict in ("pass", "review")


def test_dataward_gate_is_run_like_any_other_method():
    from benchmarks.peers import available

    if not available():
        pytest.skip("dataward.gates.scanning is not in this checkout")
    case = attacks.build("outliers_wine", seed=0)
    result = method("dataward").score(case.baseline, case.contribution, case.schema, validation=case.validation, seed=0)
    assert result.scores.shape == result.flags.shape == (len(case.contribution),)
    assert result.verdict in ("pass", "review", "block")
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    assert set(result.extra["detectors"]) >= {"outliers", "label_consistency"}


def test_suite_runs_benign_situations_fixed_counts_and_heldout_attacks(tmp_path, monkeypatch):
    import benchmarks.runner as runner
    from benchmarks.runner import Suite, run_suite

    class Cheap:
        """Scores by row position: enough to check the plumbing, in no time."""

        name = "isolation_forest"

        def score(self, baseline, contribution, schema, **_):
            n = len(contribution)
            return MethodResult(np.arange(n, dtype=float), np.arange(n) % 10 == 0, "pass", ["cheap"])

    monkeypatch.setattr(runner, "method", lambda name: Cheap())
    spec = Suite(
        "tiny",
        attacks=[],
        methods=["isolation_forest"],
        clean_per_dataset=0,
        heldout_attacks=["tabular_pair_trigger_4pct"],
        benign=["recalibration_wine"],
        benign_methods=["isolation_forest"],
        fixed_counts=[("label_flip", 25, 600)],
        fixed_count_methods=["isolation_forest"],
        fixed_count_baseline=300,
        downstream=False,
    )
    results = run_suite(spec, log=lambda _: None)
    (benign,) = results["benign"]
    assert benign["situation"]["kind"] == "recalibration" and benign["situation"]["group"] == "tuning"
    figures = benign["methods"]["isolation_forest"]
    assert figures["flagged_share"] == 6 / 54
    (fixed,) = results["fixed_counts"]
    assert fixed["case"]["poisoned"] == 25 and fixed["case"]["contribution"] == 600
    assert 0 <= fixed["methods"]["isolation_forest"]["fpr"] <= 1
    (held,) = results["heldout_attacks"]
    assert held["case"]["name"] == "tabular_pair_trigger_4pct"
    assert results["heldout_summary"]["isolation_forest"]["attacks_run"] == 1
    text = report.markdown({**results, "seconds": 1.0}, None)
    assert "### Held-out attacks (never tuned on)" in text
    assert "#### Tuning set: 0 of 1 blocked" not in text  # the benign tables show dataward only
    assert "| label_flip_25_in_600 (25/600) |" in text
    json.loads((report.write_json(results, tmp_path)).read_text())


def _figures(verdict: str, **extra) -> dict:
    return {
        "auroc": 0.9,
        "recall_at_1pct_fpr": 0.5,
        "recall_at_5pct_fpr": 0.7,
        "precision": 0.8,
        "recall": 0.6,
        "fpr": 0.004,
        "flagged": 10,
        "verdict": verdict,
        "detected": verdict != "pass",
        "seconds": 4.0,
        "peak_mb": 1.0,
        "reasons": ["drift: class 'a' moved"],
        **extra,
    }


def test_report_marks_a_blocked_benign_situation_as_a_failure_and_shows_timings():
    case = {"name": "c", "family": "backdoor", "poisoned": 5, "contribution": 100, "baseline": 50}
    results = {
        "suite": "quick",
        "command": "python -m benchmarks run --suite quick",
        "date": "now",
        "seconds": 1.0,
        "seed": 0,
        "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "python": "3"},
        "methods": ["dataward", "cleanlab_label_issues"],
        "attacks": [
            {
                "case": case,
                "references": {},
                "methods": {
                    "dataward": _figures("block", extra={"timings": {"drift": 1.5, "triggers": 0.25}}),
                    "cleanlab_label_issues": _figures("pass", seconds=2.0),
                },
            }
        ],
        "clean": [],
        "benign": [
            {
                "situation": {
                    "name": "one_class_text",
                    "kind": "one_class",
                    "group": "heldout",
                    "dataset": "man_sections",
                    "description": "one class",
                    "baseline": 10,
                    "contribution": 20,
                },
                "methods": {"dataward": _figures("block", flagged_share=0.5)},
            }
        ],
        "fixed_counts": [{"case": case, "references": {}, "methods": {"dataward": {"error": "MemoryError: "}}}],
    }
    results["summary"] = {
        n: {
            k: 0
            for k in [
                "mean_auroc",
                "mean_recall_at_1pct_fpr",
                "mean_recall_at_5pct_fpr",
                "mean_precision",
                "detected",
                "attacks_run",
                "false_alarms",
                "clean_runs",
                "false_blocks",
                "mean_clean_fpr",
                "mean_attack_success",
                "mean_seconds",
                "max_peak_mb",
                "errors",
            ]
        }
        for n in results["methods"]
    }
    text = report.markdown(results, None)
    assert "#### Held-out set (never tuned on): 1 of 1 blocked" in text
    assert "**block (failure)**" in text and "| 0.500 |" in text
    assert "one_class_text (benign, held-out set): **blocked**" in text
    assert "| 0.80 / 0.004 |" in text  # flag precision / clean-record flag rate
    assert "| c (5/100) | 1.50 | 0.25 | 4.0 | 2.0 | 2.0 |" in text  # seconds per detector, total, peer, ratio
    assert "c: dataward failed: MemoryError" in text


def test_changes_since_the_previous_run_name_what_fell_and_what_rose():
    def run(r1: float, auroc: float, verdict: str) -> dict:
        case = {"name": "c", "family": "backdoor", "poisoned": 5, "contribution": 100}
        figures = {"recall_at_1pct_fpr": r1, "auroc": auroc, "precision": 0.9, "verdict": verdict}
        return {"date": "then", "attacks": [{"case": case, "methods": {"dataward": figures}}]}

    before = report.digest(run(1.0, 1.0, "block"))
    assert before["cases"] == {"c": {"auroc": 1.0, "recall_at_1pct_fpr": 1.0, "precision": 0.9, "verdict": "block"}}
    text = "\n".join(report.changes_section({**run(0.2, 0.79, "review"), "previous_run": before}))
    assert "- c: recall at 1% FPR 1.00 -> 0.20; AUROC 1.00 -> 0.79; verdict block -> review" in text
    assert "Better:\n\n- nothing" in text
    text = "\n".join(
        report.changes_section({**run(1.0, 1.0, "block"), "previous_run": report.digest(run(0.5, 1.0, "pass"))})
    )
    assert "Worse:\n\n- nothing" in text and "verdict pass -> block" in text
    assert report.changes_section(run(1.0, 1.0, "block")) == []
