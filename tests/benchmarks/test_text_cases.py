"""The text-case comparison reports what changed between two runs (no gate runs here)."""

from __future__ import annotations

import pytest

from benchmarks import text_cases
from benchmarks.shifts import heldout6


def row(verdict: str, queued: int = 0, poison: int = 0, r1: float | None = None) -> dict:
    return {
        "verdict": verdict,
        "blockers": [],
        "queued": queued,
        "queued_poison": poison,
        "records": 100,
        "poisoned": 10 if r1 is not None else 0,
        "lc_flagged": 0,
        "r1": r1,
    }


def test_compare_names_the_scans_that_changed_and_both_sides_totals() -> None:
    old = {"B:a@0": row("block", 5), "B:b@0": row("pass"), "A:t:x@0": row("block", 10, 9, 0.8)}
    new = {"B:a@0": row("review"), "B:b@0": row("pass"), "A:t:x@0": row("block", 10, 10, 0.9), "B:c@0": row("pass")}
    lines = text_cases.compare(old, new)
    assert lines[0].startswith("B:a@0: ['block', 5") and "['review', 0" in lines[0]
    assert lines[1].startswith("A:t:x@0")
    assert len(lines) == 4  # two changed scans, then the totals over the three shared scans
    assert "'benign': {'block': 1, 'pass': 1}" in lines[2] and "'attack_mean_r1': 0.8" in lines[2]
    assert "'benign': {'review': 1, 'pass': 1}" in lines[3] and "'attack_queued_poison': 10" in lines[3]


def test_text_cases_are_told_by_their_schema() -> None:
    assert text_cases.is_text(heldout6.split_names_text(0, "small"))
    assert not text_cases.is_text(heldout6.photo_measured_iris(0, "small"))


def test_image_only_and_unknown_sets_are_refused(capsys) -> None:
    for sets in ("heldout5", "nope"):
        with pytest.raises(SystemExit):
            text_cases.main(["--sets", sets])
        assert "unknown or image-only" in capsys.readouterr().err
