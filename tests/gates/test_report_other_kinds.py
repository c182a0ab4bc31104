"""A report for people (the terminal summary, the HTML page) leaves out the detectors made for another
kind of data (the eight ``llm_*`` detectors on a tabular dataset); the JSON report keeps them."""

from __future__ import annotations

from pathlib import Path

from dataward.cli import gate_commands
from dataward.cli.output import console
from dataward.gates.html import render_html
from dataward.gates.report import for_another_kind
from tests.helpers import wine_rows, wine_training_ward, write_csv


def test_detectors_for_another_kind_are_left_out_of_the_summaries(tmp_path: Path) -> None:
    ward = wine_training_ward(tmp_path, "approvals:\n  required: 0\nfirst_import: self-reference\n", 120)
    c = ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(120, 160, shuffled=True)), source="b")
    report = ward.gate_report(c["ref"])
    other = [name for name, d in report["detectors"].items() if for_another_kind(d)]
    # Still in the JSON report: every llm_* one (and the text or image ones: wine is numeric).
    llm = [name for name in report["detectors"] if name.startswith("llm_")]
    assert llm and set(llm) <= set(other)
    assert "label_consistency" not in other
    with console.capture() as captured:
        gate_commands.show_report(report)
    shown = captured.get()
    assert not any(name in shown for name in other)
    assert "label_consistency" in shown
    assert f"{len(other)} detectors for other kinds of data not listed (see --json)" in shown
    page = render_html(report, title=c["ref"])
    assert "label_consistency" in page and not any(f"<td>{name}</td>" in page for name in other)


def test_a_group_line_says_its_verdict_reads_its_flags_alone() -> None:
    """Under a block resting on contribution-level evidence, a source whose records are barely flagged
    read 'pass': a reader took the source for cleared."""
    report = {
        "verdict": "block",
        "contribution": "reviews#4",
        "counts": {"flagged": 7, "records": 274},
        "mode": "baseline",
        "reasons": ["backdoor: a cluster of one source's records"],
        "groups": {"contribution": [{"key": "reviews#4", "records": 274, "flagged": 7, "verdict": "pass"}]},
        "records": [],
        "findings": [],
        "detectors": {},
    }
    with console.capture() as captured:
        gate_commands.show_report(report)
    shown = " ".join(captured.get().split())
    assert "contribution reviews#4: 7/274 flagged at alpha, by its flags alone pass" in shown
