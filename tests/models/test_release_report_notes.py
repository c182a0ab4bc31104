"""The release gate's probe table says why a row does not count toward the verdict (team trial F9: rows of
89% attack success under a pass, with no word of why)."""

from __future__ import annotations

import pytest

from dataward.cli import output
from dataward.cli.model_commands import _show_release_report

NOT_JUDGED = "not judged: no released version to compare a value beyond the range with"


def test_a_probe_that_does_not_count_says_why(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(output.console, "_width", 250)
    report = {
        "model": "wine-clf@v1",
        "verdict": "pass",
        "reasons": ["no probed trigger moves predictions beyond its control"],
        "accuracy": 0.97,
        "validation_rows": 36,
        "validation": "wine-val@v1",
        "probes": [
            {
                "trigger": "flavanoids below its range (-4.4)",
                "origin": "generic",
                "target": "class_2",
                "attack_success": 0.88,
                "control_success": 0.0,
                "notes": [NOT_JUDGED],
            },
            {
                "trigger": "hue = 0.31",
                "origin": "search",
                "target": "class_0",
                "attack_success": 0.1,
                "control_success": 0.05,
                "notes": [],
            },
        ],
    }
    _show_release_report(report)
    shown = capsys.readouterr().out
    assert "note" in shown and NOT_JUDGED in shown and "88%" in shown
