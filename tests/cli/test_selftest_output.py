"""``dataward gate selftest`` says what saw each canary, and what the clean copy itself was reviewed for.

The ward's self-test is exercised on real data in ``tests/gates/test_demo_data_gate.py``; here its result,
as the ward returns it, is rendered, so that every branch of the table is shown.
"""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from dataward.cli import gate_commands, output
from dataward.cli.app import app


def _attempt(planted: int, verdict: str, detected: bool, seen_by: list[str]) -> dict[str, Any]:
    return {"planted": planted, "verdict": verdict, "detected": detected, "recall": 0.5, "seen_by": seen_by}


class _Ward:
    def __init__(self, clean_sources: list[str]) -> None:
        self.clean_sources = clean_sources

    def selftest(self, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        flips = [_attempt(9, "pass", False, []), _attempt(18, "review", True, ["label_consistency"])]
        return {
            "records": 178,
            "clean": {"verdict": "review", "false_positive_rate": 0.006, "sources": self.clean_sources},
            "canaries": [
                {"name": "label_flip", "planted": 9, "recall": 0.2, "verdict": "pass", "detected": False,
                 "detection_floor": 18, "attempts": flips},
                # Blocked for what the clean copy was reviewed for too: still seen, by what blocked.
                {"name": "trigger", "planted": 9, "recall": 1.0, "verdict": "block", "detected": True,
                 "detection_floor": 9, "attempts": [_attempt(9, "block", True, ["backdoor", "triggers"])]},
            ],
            "passed": False,
        }  # fmt: skip


def _run(monkeypatch: pytest.MonkeyPatch, clean_sources: list[str]) -> str:
    monkeypatch.setattr(gate_commands, "open_ward", lambda: _Ward(clean_sources))
    # Wide enough for the table. ``_width``, not ``width``: undoing a patch of the property would pin the
    # shared console at the width it read, which no later test of the process could widen through COLUMNS.
    monkeypatch.setattr(output.console, "_width", 200)
    result = CliRunner().invoke(app, ["gate", "selftest", "manpages"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_each_canary_names_what_saw_it_at_its_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run(monkeypatch, ["backdoor"])
    assert "seen by" in out
    flips = next(line for line in out.splitlines() if "label_flip" in line and "18 of 178" in line)
    assert "label_consistency" in flips and "NO" in flips
    trigger = next(line for line in out.splitlines() if "trigger" in line and "9 of 178" in line)
    assert "backdoor, triggers" in trigger and "yes" in trigger
    assert "label_flip: missed at 9 records; planted again: 9 (pass), 18 (review)" in out
    assert "clean copy: verdict review (for backdoor; a canary reviewed only for that too is not counted" in out


def test_a_clean_copy_reviewed_for_nothing_the_detectors_name_says_no_more(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run(monkeypatch, [])
    assert "clean copy: verdict review, false-positive rate 0.006" in out


def test_a_source_name_is_printed_as_text_not_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run(monkeypatch, ["[red]x[/red]"])
    assert "(for [red]x[/red];" in out
