"""A merge and a promotion read the quarantines the ward's list of removals holds as they read the
catalog's: the merge's signed ``held_back`` is the same whichever holds the quarantine, and a quarantine
the list gains between a promotion's checks and its write stops the promotion."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service import versions as versions_module
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.provenance.restore_drill import quarantined_after_the_backup
from tests.security.attacks import events_of
from tests.security.test_restore_removals import LIST, back_up, move_checkpoints_aside, restore


def _merged_held_back(ward: Ward) -> int:
    """The ``held_back`` the newest signed ``contribution.merged`` event holds."""
    return [e for e in events_of(ward) if e.type == "contribution.merged"][-1].payload["held_back"]


def test_a_merge_counts_the_records_of_a_quarantine_only_the_list_holds(wine_ward: Ward, tmp_path: Path) -> None:
    """wine#3 (30 poisoned records) arrives after the backup and is quarantined; an unrelated batch is
    then merged. After the restore the catalog never held wine#3, the list holds it: the same batch
    merged again reports, and signs, the same held-back figure as before the restore."""
    clean = wine_rows(130, 140)
    before: dict[str, int] = {}

    def quarantine_then_merge(admin: Ward) -> None:
        admin.quarantine_contribution("wine#3", reason="the batch was poisoned")
        sent = admin.contribute("wine", write_csv(tmp_path / "clean.csv", clean), source="s3://vendor/c.csv")
        before["info"] = merge_reviewed(admin, sent["ref"])["held_back"]
        before["signed"] = _merged_held_back(admin)

    folder = quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130), quarantine=quarantine_then_merge)
    assert before == {"info": 30, "signed": 30}  # the quarantined batch's records, held out of the dataset
    ward = Ward.open(folder)
    assert [c["ref"] for c in ward.contributions("wine")] == ["wine#1", "wine#2"]  # wine#3 is the list's alone
    sent = ward.contribute("wine", write_csv(tmp_path / "clean-again.csv", clean), source="s3://vendor/c.csv")
    assert sent["held_back"] == 0  # none of the batch's own records is held back, as before
    info = merge_reviewed(ward, sent["ref"])
    assert info["held_back"] == before["info"] and info["held_back_of_contribution"] == 0
    assert _merged_held_back(ward) == before["signed"]


def test_a_quarantine_the_list_gains_during_a_promotion_stops_it(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog and the list both put back from before wine#1's quarantine; the list's newer copy
    is put back while a promotion of a version holding wine#1's records is being checked (the catalog
    unchanged). The promotion's write sees the line, and the promotion is refused, not made."""
    ward = wine_ward
    sent = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 100)), source="s3://vendor/c.csv")
    merge_reviewed(ward, sent["ref"])  # wine@v3: wine#1's records and these
    folder = ward.folder
    path = folder / LIST
    ward.close()
    back_up(folder, tmp_path / "backup")
    old_list = path.read_bytes() if path.exists() else None
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    admin.close()
    new_list = path.read_bytes()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    if old_list is None:
        path.unlink()
    else:
        path.write_bytes(old_list)

    checked = versions_module.training_with_same_records

    def list_put_back_meanwhile(*args: object) -> object:
        path.write_bytes(new_list)
        return checked(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(versions_module, "training_with_same_records", list_put_back_meanwhile)
    ward = Ward.open(folder)
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#1"):
        ward.promote("wine@v3", reason="the newest records")
    assert ward.dataset_info("wine")["training"] == 2
