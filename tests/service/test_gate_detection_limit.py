"""A pass (or a review) says what the gate is measured to miss on the dataset: the floors of its last
self-test, quoted from that self-test's own result, or that none was measured.

A trial's batch passed with flipped labels below the detectors' floor, and nothing beside the ``pass``
said a floor exists, though ``gate selftest`` had measured it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import run_cli, wine_rows, write_csv

COLUMNS = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]
# The gate's seed pinned: the verdicts asserted below do not depend on the ward's random signing key.
POLICY = "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  seed: 7\n"


def _flipped(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """``rows`` with the first ``k`` given the next class's label (new records, not copies)."""
    return [{**r, "cultivar": (int(r["cultivar"]) + 1) % 3} if i < k else dict(r) for i, r in enumerate(rows)]


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    rows = wine_rows(shuffled=True)
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("wine", Schema.parse("cultivar", [f"{c}:numeric" for c in COLUMNS]))
    ward.set_policy("wine", POLICY)
    ward.merge(ward.contribute("wine", write_csv(tmp_path / "base.csv", rows[:120]), source="s:base")["ref"])
    ward.promote("wine@v1")
    return ward


def test_a_pass_quotes_the_last_self_test_floors_of_its_dataset(ward: Ward, tmp_path: Path) -> None:
    rows = wine_rows(shuffled=True)
    before = ward.contribute("wine", write_csv(tmp_path / "a.csv", rows[120:150]), source="s:a")["gate"]
    assert before["verdict"] == "pass"
    assert before["detection_limit"]["selftest"] is None
    assert "unmeasured, no self-test is recorded" in before["detection_limit"]["note"]

    measured = ward.selftest("wine")
    floors = {c["name"]: c["detection_floor"] for c in measured["canaries"]}
    # Two flipped labels in 28 records: below what the gate sees here, and it passes.
    sent = ward.contribute("wine", write_csv(tmp_path / "b.csv", _flipped(rows[150:178], 2)), source="s:b")
    gate = sent["gate"]
    assert gate["verdict"] == "pass"
    limit = gate["detection_limit"]
    # Every figure is the self-test's own, as it answered: nothing is computed beside it.
    assert limit["records"] == 28
    assert limit["selftest"]["records"] == measured["records"]
    assert {c["name"]: c["detection_floor"] for c in limit["selftest"]["canaries"]} == floors
    assert limit["selftest"]["same_training"] is True and limit["selftest"]["same_policy"] is True
    n = measured["records"]
    flips = floors["label_flip"]
    assert f"caught label flips from {flips} ({100 * flips / n:.0f}%)" in limit["note"]
    assert f"on a clean slice of {n} records" in limit["note"] and "this batch of 28 records" in limit["note"]
    # The stored report, read again, says the same; the CLI prints it under the verdict.
    assert ward.gate_report(sent["ref"])["detection_limit"] == limit
    shown = run_cli(ward.folder, "gate", "report", sent["ref"])
    assert shown.returncode == 0
    assert limit["note"] in " ".join(shown.stdout.replace("│", " ").split())

    # A contributor is told a limit exists, never where it lies: it is what a poisoner would plant under.
    ward.create_principal("bob")
    ward.grant("bob", "contributor", "dataset:wine")
    bob = ward.as_key(ward.issue_key("bob")["key"])
    theirs = bob.contribute("wine", write_csv(tmp_path / "d.csv", rows[120:130]), source="s:d")["gate"]
    assert theirs["detection_limit"]["selftest"] is None and theirs["detection_limit"]["withheld"] is True
    assert "label flips" not in theirs["detection_limit"]["note"] and "%" not in theirs["detection_limit"]["note"]

    # Another policy since: the floors are said to be another gate's.
    ward.set_policy("wine", POLICY + "  alpha: 0.02\n")
    later = ward.contribute("wine", write_csv(tmp_path / "c.csv", rows[100:110]), source="s:c")["gate"]
    assert later["detection_limit"]["selftest"]["same_policy"] is False
    assert "it measured another policy than this gate's" in later["detection_limit"]["note"]


def test_a_block_carries_no_limit(ward: Ward, tmp_path: Path) -> None:
    rows = wine_rows(shuffled=True)
    ward.selftest("wine")
    conflicts = [{**r, "cultivar": (int(r["cultivar"]) + 1) % 3} for r in rows[:12]]
    gate = ward.contribute("wine", write_csv(tmp_path / "bad.csv", rows[120:160] + conflicts), source="s:x")["gate"]
    assert gate["verdict"] == "block"
    assert "detection_limit" not in gate
