"""The detectors table says when a detector's finding is a reason of the verdict.

An outside trial's text batch from a new partner source was reviewed on "label_consistency: ... new
content (a shifted source) rather than flipped labels (p=2.7e-45 ...)" and "outliers: 40 of 40 records
are unlike the baseline together", while `gate report`'s detectors table said "label_consistency v8:
flagged 0, p=1" and "outliers v3: flagged 0, p=1". Both numbers were right: the table shows each
detector's own contribution-level test (its flags, the evidence it may block on) and the findings are
other tests. Shown alone, the table read as contradicting the reasons.
"""

from __future__ import annotations

import re

import pytest

from dataward.cli.gate_commands import show_report
from dataward.gates import scan


@pytest.fixture(scope="module")
def new_source(cancer):
    """Breast-cancer records from an instrument that reads every column 3 standard deviations higher."""
    baseline, rest, schema = cancer
    columns = [c for c in rest.columns if c != "label"]
    batch = rest.copy()
    batch[columns] = batch[columns] + 3 * baseline[columns].std()
    return scan(baseline, batch, schema, None, {"seed": 0})


def test_the_detectors_table_names_the_findings_the_reasons_cite(new_source, capsys) -> None:
    report = new_source.to_dict()
    label = report["detectors"]["label_consistency"]
    assert label["p_value"] == 1.0 and label["contribution_findings"], "the trial's situation: p=1 beside a finding"
    cited = next(r for r in report["reasons"] if r.startswith("label_consistency:"))
    show_report({**report, "contribution": "cancer#2"})
    printed = re.sub(r"\s+", " ", capsys.readouterr().out)
    line = re.search(r"label_consistency v\d+: flagged 0, p=1; 1 finding for review \(p=([0-9.e+-]+)\)", printed)
    assert line is not None, printed
    assert f"p={line.group(1)}" in cited, "the table's finding p-value is the one the reason cites"
    assert re.search(r"outliers v\d+: flagged 0, p=1; 1 finding for review", printed)
    # A detector with nothing for review says nothing more.
    assert re.search(r"duplicates v\d+: flagged 0, p=1(?!;)", printed)
    assert "<th>findings</th>" in new_source.to_html()
    assert "1 finding for review (p=" in new_source.to_html()


def test_the_note_counts_findings_and_states_their_smallest_p_value() -> None:
    from dataward.domain.report_entries import review_findings_note

    assert review_findings_note({"contribution_findings": []}) == ""
    assert review_findings_note({}) == ""
    entry = {
        "contribution_findings": [
            {"reason": "a", "evidence": {"p_value": 0.003}},
            {"reason": "b", "evidence": {"records": 4}},
            {"reason": "c", "evidence": {"p_value": 2.65e-45}},
        ]
    }
    assert review_findings_note(entry) == "3 findings for review (p=2.6e-45)"
    assert review_findings_note({"contribution_findings": [{"reason": "x", "evidence": {}}]}) == "1 finding for review"
