"""A quarantine outlives a restored catalog backup and a cut ledger.

Played as an insider plays it: the scraper's batch reached training, then was quarantined. Whoever can
write the catalog puts back a backup from before the quarantine (or cuts the quarantine's events and
the rows they made). Both the catalog's row and its ledger then say the batch is merged, and its records
would be served to training again. The ward keeps every quarantine on its signed list of removals
(``removals.jsonl``) and takes a kept checkpoint after it, so the records stay held out: the training
version is not served, the same records contributed again are held back, and ``verify`` names the
quarantine the catalog lost with the command that records it again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation, PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.security.attacks import delete_tail, events_of, rebuild_catalog_from_ledger
from tests.security.test_restore_removals import LIST, back_up, move_checkpoints_aside, restore

REASON = "the scraper's batch was poisoned"


def _quarantined_after_backup(ward: Ward, tmp_path: Path) -> Path:
    """Back up the catalog, quarantine ``wine#1``, put the backup back and move the newer kept
    checkpoints aside (what the refusal's hint tells an operator restoring on purpose)."""
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#1", reason=REASON)
    admin.close()
    restore(folder, tmp_path / "backup")
    # The quarantine took a kept checkpoint: the restored catalog is refused as a ledger that went back.
    with pytest.raises(IntegrityViolation, match="went backwards"):
        Ward.open(folder).versions("wine")
    move_checkpoints_aside(folder, tmp_path / "moved")
    return folder


def test_a_restored_catalog_does_not_serve_the_quarantined_records(wine_ward: Ward, tmp_path: Path) -> None:
    folder = _quarantined_after_backup(wine_ward, tmp_path)
    line = json.loads((folder / LIST).read_text().splitlines()[-1])
    assert line["type"] == "contribution.quarantined" and line["format"] >= 3 and len(line["contributions"]) == 1
    ward = Ward.open(folder)
    # The restored catalog says wine#1 is merged and wine@v2 is in training; the list says otherwise, and
    # the listing says what the list says.
    first = ward.contributions("wine")[0]
    assert first["status"] == "quarantined" and first["quarantine_listed"]["event"] == line["seq"]
    assert "catalog says merged" in first["quarantine_listed"]["note"]
    assert [c["ref"] for c in ward.contributions("wine", status="quarantined")] == ["wine#1"]
    assert "wine#1" not in [c["ref"] for c in ward.contributions("wine", status="merged")]
    assert ward.contribution("wine#1")["status"] == "quarantined"
    with pytest.raises(PolicyViolation, match=r"quarantined contribution wine#1 \(by event #\d+") as refused:
        ward.read_version("wine", "training")
    assert "list of removals" in refused.value.message
    # The same records contributed again, by anyone, are held back from the merge.
    again = ward.contribute("wine", write_csv(tmp_path / "again.csv", wine_rows(0, 60)), source="s3://mirror/a.csv")
    assert again["held_back"] == 60
    # verify names what the catalog lost, and how to record it again.
    problems = ward.verify().problems
    lost = [p for p in problems if p.kind == "lost_removal"]
    assert len(lost) == 1 and "dataward quarantine wine#1" in lost[0].detail, problems
    # Recorded again: the ledger holds the quarantine once more, and verify is clean but for the warning.
    ward.quarantine_contribution("wine#1", reason=f"{REASON} (again, after the restore)")
    report = Ward.open(folder).verify()
    assert report.ok, report.problems
    assert any(f"event #{line['seq']}" in w and "taken away again" in w for w in report.warnings)
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#1"):
        Ward.open(folder).read_version("wine", "training")


def test_a_cut_quarantine_is_refused_while_its_checkpoint_is_kept(wine_ward: Ward) -> None:
    """The quarantine's events and the rows they made cut from the catalog, the kept checkpoints left:
    a new process refuses the ledger as one that went backwards (before, a quarantine took no checkpoint
    and such a cut went unseen by any process that had not read it)."""
    ward = wine_ward
    before = len(events_of(ward))
    ward.quarantine_contribution("wine#1", reason=REASON)
    cut = len(events_of(ward)) - before
    seq = events_of(ward)[before].seq
    from sqlalchemy import text

    with ward.db.transaction() as conn:
        conn.execute(text("DELETE FROM ledger_events WHERE seq >= :s"), {"s": seq})
    rebuild_catalog_from_ledger(ward)
    ward.close()
    assert cut >= 1
    with pytest.raises(IntegrityViolation, match="went backwards"):
        Ward.open(ward.folder).read_version("wine", "training")


def test_a_cut_quarantine_with_its_checkpoints_deleted_still_holds(wine_ward: Ward) -> None:
    """The cut as a thorough insider makes it: events, rows and kept checkpoints. The list still holds
    the quarantine: the training version is not served and the promotion of a version holding the
    records is refused."""
    ward = wine_ward
    before = len(events_of(ward))
    ward.quarantine_contribution("wine#1", reason=REASON)
    delete_tail(ward, len(events_of(ward)) - before, with_rows=True)
    ward.close()
    fresh = Ward.open(ward.folder)
    assert fresh.contributions("wine")[0]["quarantine_listed"]["note"].startswith("the catalog says merged")
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#1"):
        fresh.read_version("wine", "training")
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#1"):
        fresh.promote("wine@v1")


def test_a_served_ward_keeps_the_quarantine_after_the_restore(wine_ward: Ward, tmp_path: Path) -> None:
    """The same drill against `dataward serve`: quarantined over HTTP, the catalog restored, the server
    started again. The server's reads of the training version refuse the records as the list says."""
    from dataward.client.http import HTTPWard
    from tests.server.conftest import start_server

    folder = wine_ward.folder
    admin = str(wine_ward.issue_key("admin")["key"])
    wine_ward.close()
    back_up(folder, tmp_path / "backup")

    def served(act: object) -> None:
        server, thread, _, url = start_server(folder)
        try:
            act(HTTPWard(url, key=admin))  # type: ignore[operator]
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    served(lambda ward: ward.quarantine_contribution("wine#1", reason=REASON))
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")

    def refused(ward: object) -> None:
        with pytest.raises(PolicyViolation, match=r"quarantined contribution wine#1 \(by event #\d+"):
            ward.read_version("wine", "training")  # type: ignore[attr-defined]
        assert any(p.kind == "lost_removal" for p in ward.verify().problems)  # type: ignore[attr-defined]

    served(refused)
