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
        pytest.skip("dataward.gates.scan is not in this checkout")
    case = attacks.build("outliers_wine", seed=0)
    result = method("dataward").score(case.baseline, case.contribution, case.schema, validation=case.validation, seed=0)
    assert result.scores.shape == result.flags.shape == (len(case.contribution),)
    assert result.verdict in ("pass", "review", "block")
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    assert set(result.extra["detectors"]) >= {"outliers", "label_consistency"}
