"""The restore drill puts back the object store with the catalog: the id list a listed quarantine names
(made after the backup) is then not in the store."""

from __future__ import annotations

from pathlib import Path

from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.provenance.restore_drill import quarantined_after_the_backup


def test_contributions_go_on_after_the_drill_restores_the_object_store(wine_ward: Ward, tmp_path: Path) -> None:
    """operations.md step 2: "Put back the signing key, the object store and the catalog from the
    backup". wine#3 was sent, merged and quarantined after the backup; its id list is on the list of
    removals (``held``) but not in the restored store. Later contributions must still go in (they failed
    with NotFound on that id list), and verify must say that the same records would not be held back."""
    folder = quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130), with_objects=True)
    ward = Ward.open(folder)
    clean = ward.contribute("wine", write_csv(tmp_path / "clean.csv", wine_rows(140, 150)), source="s3://vendor/b")
    assert clean["held_back"] == 0
    assert merge_reviewed(ward, clean["ref"])["records"] == 90
    # verify says what the ward can no longer do: hold back the same records if they come again.
    problems = ward.verify().problems
    assert [p.kind for p in problems] == ["unheld_quarantine"], problems
    assert "the store lacks its id list" in problems[0].detail
