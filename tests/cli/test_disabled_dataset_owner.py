"""Disabling a dataset's owner says which datasets it leaves without an accountable human, and `access
review` lists every dataset whose recorded owner is disabled (`dataset_owner_inactive`).

`principal disable alice` used to say nothing of the four datasets she owned, and the review had no row.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import run_cli, wine_schema_specs


def run(ward: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(ward, *args, columns=250)


def _rows(ward: Path, kind: str) -> list[dict]:
    review = run(ward, "access", "review", "--json")
    assert review.returncode == 0, review.stderr
    return [r for r in json.loads(review.stdout) if r["kind"] == kind]


def test_disabling_an_owner_names_its_datasets_and_the_review_lists_them(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    for p in ("alice", "bob", "carol"):
        ward.create_principal(p)
    for name in ("wine", "grapes"):
        ward.create_dataset(name, Schema.parse(label, specs), owner="alice")
    ward.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    ward.create_dataset("bobs", Schema.parse(label, specs), owner="bob")
    ward.grant("carol", "owner", "dataset:grapes")  # a second human answers for grapes
    folder = ward.folder
    ward.close()
    assert _rows(folder, "dataset_owner_inactive") == []  # every owner active: no row

    disabled = run(folder, "principal", "disable", "alice", "--json")
    assert disabled.returncode == 0, disabled.stderr
    owned = json.loads(disabled.stdout)["owned_datasets"]
    assert [(o["dataset"], o["co_owners"]) for o in owned] == [("grapes", ["carol"]), ("wine", [])]
    assert "dataward grant add HUMAN owner --scope dataset:wine" in owned[1]["fix"]

    rows = {r["dataset"]: r for r in _rows(folder, "dataset_owner_inactive")}
    assert set(rows) == {"grapes", "wine"}  # not bob's, nor the validation set (it goes with wine)
    assert rows["wine"]["severity"] == "high" and rows["wine"]["principal"] == "alice"
    assert "owned by alice, who is disabled" in rows["wine"]["detail"]
    assert "--scope dataset:wine" in rows["wine"]["action"]
    assert rows["grapes"]["severity"] == "low" and "carol also hold(s) owner" in rows["grapes"]["detail"]


def test_the_cli_warns_when_disabling_an_owner_and_not_otherwise(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_principal("alice")
    ward.create_principal("dave")
    ward.create_dataset("wine", Schema.parse(label, specs), owner="alice")
    folder = ward.folder
    ward.close()
    shown = run(folder, "principal", "disable", "alice")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "warning: alice owns dataset wine; no other active human holds owner on it" in text
    assert "dataward grant add HUMAN owner --scope dataset:wine" in text
    # A principal who owns nothing gets no warning; a second disable changes (and says) nothing more.
    other = run(folder, "principal", "disable", "dave")
    assert other.returncode == 0 and "owns dataset" not in other.stdout
    assert json.loads(run(folder, "principal", "disable", "dave", "--json").stdout).get("already") is True


def test_the_review_lists_a_dataset_left_with_no_owner_grant(tmp_path: Path) -> None:
    """Every owner grant on a dataset revoked (only an admin or a ward owner may revoke the last one): its
    recorded owner is still active, so ``dataset_owner_inactive`` has no row; ``dataset_without_owner`` has."""
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_principal("alice")
    ward.create_dataset("cats", Schema.parse(label, specs), owner="alice")
    folder = ward.folder
    ward.close()
    assert _rows(folder, "dataset_without_owner") == []
    revoked = run(folder, "grant", "revoke", "alice", "owner", "--scope", "dataset:cats")
    assert revoked.returncode == 0, revoked.stderr
    (row,) = _rows(folder, "dataset_without_owner")
    assert (row["dataset"], row["severity"], row["principal"]) == ("cats", "medium", "alice")
    assert "dataward grant add HUMAN owner --scope dataset:cats" in row["action"]
    shown = run(folder, "access", "review")
    assert shown.returncode == 0, shown.stderr
    assert "dataset_without_owner" in shown.stdout and "no active human holds owner on dataset cats" in " ".join(
        shown.stdout.split()
    )
