"""The restore drill puts back the object store with the catalog: the id list a listed quarantine names
(made after the backup) is then not in the store."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.provenance.restore_drill import SOURCE, quarantined_after_the_backup
from tests.security.test_restore_removals import LIST


def test_the_drill_refuses_contributions_until_the_id_list_is_back(wine_ward: Ward, tmp_path: Path) -> None:
    """operations.md step 2: "Put back the signing key, the object store and the catalog from the
    backup". wine#3 was sent, merged and quarantined after the backup; its id list is on the list of
    removals (``held``) but not in the restored store. Nothing then names its records: contributions to
    wine are refused, naming the object, rather than let the same records in again (they went in while
    the ward took a missing id list for one holding nothing back), and verify names it as a problem.
    The quarantined contribution's own file sent again stores its id list again (content-addressed):
    then contributions go in, and the same records in another order are held back."""
    folder = quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130), with_objects=True)
    id_list = json.loads((folder / LIST).read_text().splitlines()[-1])["held"][0]
    ward = Ward.open(folder)
    clean = write_csv(tmp_path / "clean.csv", wine_rows(140, 150))
    with pytest.raises(IntegrityViolation, match=f"lacks its id list {id_list}"):
        ward.contribute("wine", clean, source="s3://vendor/b")
    problems = ward.verify().problems
    assert [p.kind for p in problems] == ["unreadable_quarantine"], problems
    assert f"the object store lacks its id list {id_list}" in problems[0].detail
    # Refused or held back, whichever the id list's write wins: either way the object is stored again.
    with contextlib.suppress(IntegrityViolation):
        ward.contribute("wine", tmp_path / "poison.csv", source=SOURCE)
    assert ward.store.exists(id_list)
    sent = ward.contribute("wine", clean, source="s3://vendor/b")
    assert sent["held_back"] == 0
    assert merge_reviewed(ward, sent["ref"])["records"] == 90
    again = write_csv(tmp_path / "again.csv", wine_rows(100, 130)[::-1])
    assert ward.contribute("wine", again, source=SOURCE)["held_back"] == 30
    assert "unreadable_quarantine" not in [p.kind for p in ward.verify().problems]
