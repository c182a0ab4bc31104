"""`diff` says why records left a dataset: a rollback version names the quarantine that made it.

`diff bc@v4 bc@v5` on a rollback version used to show 13 records removed and nothing of why.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, run_cli, wine_rows, wine_training_ward, write_csv


def run(ward: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(ward, *args, columns=200)


@pytest.fixture(scope="module")
def rolled_back(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wine@v1 (training), wine@v2 = v1 + wine#2 (20 records), wine@v3 = the rollback of wine#2's quarantine,
    wine@v4 = v3 + wine#3, wine@v5 = the rollback of a quarantine of wine#3's source."""
    root = tmp_path_factory.mktemp("diff-rollback")
    ward = wine_training_ward(root, NO_APPROVALS_POLICY, 100)
    second = ward.contribute("wine", write_csv(root / "b.csv", wine_rows(100, 120, shuffled=True)), source="b")
    merge_reviewed(ward, second["ref"])
    ward.quarantine_contribution(second["ref"], reason="leaked labels")
    third = ward.contribute("wine", write_csv(root / "c.csv", wine_rows(120, 130, shuffled=True)), source="scrape:c")
    merge_reviewed(ward, third["ref"])
    ward.quarantine_by("source:scrape:c", reason="bad scrape")
    assert [v["ref"] for v in ward.versions("wine")] == [f"wine@v{n}" for n in range(1, 6)]
    folder = ward.folder
    ward.close()
    return folder


def test_diff_to_a_rollback_version_names_the_quarantine(rolled_back: Path) -> None:
    shown = run(rolled_back, "diff", "wine@v2", "v3")
    assert shown.returncode == 0, shown.stderr
    assert "-20 removed" in shown.stdout
    assert "via quarantine of wine#2, rollback version wine@v3 by admin: leaked labels" in shown.stdout
    info = json.loads(run(rolled_back, "diff", "wine@v2", "v3", "--json").stdout)
    assert len(info["removed"]) == 20
    [rollback] = info["rollbacks"]
    assert rollback["version"] == "wine@v3" and rollback["quarantined"] == ["wine#2"]
    assert (rollback["incident"], rollback["reason"], rollback["by"]) == ("wine#2", "leaked labels", "admin")


def test_a_containment_by_cause_names_the_cause_and_the_contributions(rolled_back: Path) -> None:
    shown = run(rolled_back, "diff", "wine@v1", "v5")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "via quarantine of wine#2, rollback version wine@v3" in text
    assert "via quarantine of source:scrape:c (wine#3), rollback version wine@v5 by admin: bad scrape" in text
    rollbacks = json.loads(run(rolled_back, "diff", "wine@v1", "v5", "--json").stdout)["rollbacks"]
    assert [r["version"] for r in rollbacks] == ["wine@v3", "wine@v5"]


def test_a_diff_without_a_rollback_between_says_nothing_of_one(rolled_back: Path) -> None:
    info = json.loads(run(rolled_back, "diff", "wine@v1", "v2", "--json").stdout)
    assert info["rollbacks"] == [] and len(info["added"]) == 20
    assert "via quarantine" not in run(rolled_back, "diff", "wine@v3", "v4").stdout
