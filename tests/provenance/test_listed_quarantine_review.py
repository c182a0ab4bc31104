"""The review queue and the access review read a quarantine the ward's list of removals holds, as the merge does.

Played as the restore drill leaves a ward: the scraper bot's batch wine#3 waits in the review queue (its
gate flagged three records), the catalog is backed up, wine#3 is quarantined (which closes its pending
items), and the backup is put back. The restored catalog says wine#3 is gated with three items pending;
the list holds it quarantined. A reviewer must not be offered those items as live work, nor record a
decision on them, whichever way the decision is asked for; and the access review must name the bot,
whose work is quarantined, as it did before the restore.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataward.domain.errors import Conflict
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.security.attacks import events_of, json_cli
from tests.security.test_restore_removals import LIST, back_up, move_checkpoints_aside, restore

REFUSED = r"wine#3 was quarantined by event #\d+ .*list of removals holds; the catalog says gated"


def _pending_then_quarantined(ward: Ward, tmp_path: Path, *, witness: bool = False) -> tuple[Path, list[str]]:
    """The scraper sends wine#3 (three labels flipped: three pending items), backup, wine#3 quarantined,
    backup restored, newer checkpoints moved aside. Returns the folder (closed) and the items' ids."""
    bot = ward.as_key(ward.issue_key("scraper")["key"])
    flipped = [{**r, "cultivar": (int(r["cultivar"]) + 1) % 3} for r in wine_rows(0, 3)]
    rows = flipped + wine_rows(100, 110)
    bot.contribute("wine", write_csv(tmp_path / "c.csv", rows), source="https://scrape.example/wine-c")
    items = [i["id"] for i in ward.review_list(contribution="wine#3")]
    assert len(items) == 3
    if witness:
        ward.set_witness(str(tmp_path / "witness"))
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#3", reason="labels contradict the trusted copies")
    # What the catalog's quarantine does to the queue: nothing of wine#3 is left to review.
    assert admin.review_list(contribution="wine#3") == []
    assert {i["status"] for i in admin.review_list(contribution="wine#3", status="all")} == {"rejected"}
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    return folder, items


def _flagged_again(ward: Ward, tmp_path: Path) -> str:
    """A live batch of the scraper's (wine#4) with one flipped label: its pending item's id."""
    bot = ward.as_key(ward.issue_key("scraper")["key"])
    flipped = [{**r, "cultivar": (int(r["cultivar"]) + 1) % 3} for r in wine_rows(10, 11)]
    sent = bot.contribute("wine", write_csv(tmp_path / "d.csv", flipped + wine_rows(120, 130)), source="s3://d")
    (item,) = ward.review_list(contribution=sent["ref"])
    return str(item["id"])


def test_the_queue_leaves_out_the_items_of_a_listed_quarantine(wine_ward: Ward, tmp_path: Path) -> None:
    folder, items = _pending_then_quarantined(wine_ward, tmp_path)
    ward = Ward.open(folder)
    assert ward.contribution("wine#3")["status"] == "quarantined"  # as the list holds it
    # Every way of asking for the pending queue: the ward's, the dataset's, the contribution's.
    for queue in (ward.review_list(), ward.review_list("wine"), ward.review_list(contribution="wine#3")):
        assert not {i["id"] for i in queue} & set(items), queue
    # Shown with every status, they are marked quarantined, naming the event on the list.
    shown = {i["id"]: i for i in ward.review_list("wine", status="all")}
    seq = json.loads((folder / LIST).read_text().splitlines()[-1])["seq"]
    for item in items:
        listed = shown[item]["quarantine_listed"]
        assert listed["event"] == seq and "catalog says gated" in listed["note"], listed
    assert "quarantine_listed" in ward.review_show(items[0])
    # The command line, as a reviewer triages from it.
    code, queue = json_cli(folder, "review", "list", "wine")
    assert code == 0 and not {i["id"] for i in queue} & set(items), queue


def test_a_decision_on_an_item_of_a_listed_quarantine_is_refused(wine_ward: Ward, tmp_path: Path) -> None:
    folder, items = _pending_then_quarantined(wine_ward, tmp_path)
    ward = Ward.open(folder)
    live = _flagged_again(ward, tmp_path)
    head = len(events_of(ward))
    record = ward.review_show(items[0])["record_id"]
    attempts = [
        lambda: ward.review_decide([items[0]], "accept", reason="looks fine"),
        lambda: ward.review_decide([items[1]], "reject", reason="bad"),
        lambda: ward.review_decide([record], "accept", reason="by record id"),
        lambda: ward.review_decide([], "accept", reason="the whole batch", contribution="wine#3"),
        # A live item first, the quarantined one after it: nothing of the decision is recorded.
        lambda: ward.review_decide([live, items[2]], "accept", reason="both"),
    ]
    for attempt in attempts:
        with pytest.raises(Conflict, match=REFUSED):
            attempt()
    assert len(events_of(ward)) == head
    states = {i["id"]: i["status"] for i in ward.review_list("wine", status="all")}
    assert all(states[i] == "pending" for i in [*items, live]), states
    # The command line exits with the conflict, naming the quarantine, and records nothing.
    code, answer = json_cli(folder, "review", "accept", items[0], "--reason", "looks fine")
    assert code == 4 and answer["error"] == "conflict", answer
    assert "quarantined by event #" in answer["message"] and "dataward quarantine wine#3" in answer["hint"]
    code, answer = json_cli(folder, "review", "reject", "--contribution", "wine#3", "--reason", "bad")
    assert code == 4 and "wine#3 was quarantined" in answer["message"], answer
    assert len(Ward.open(folder).review_list("wine", status="all")) == len(states)
    assert len(events_of(Ward.open(folder))) == head
    # The live item alone is decided as before: the refusal is about the quarantine, not the reviewer.
    (done,) = Ward.open(folder).review_decide([live], "accept", reason="a vintage's real label")
    assert done["status"] == "accepted"
    # What the hint says: the quarantine recorded again closes the items, as before the restore.
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#3", reason="recorded again after the restore")
    closed = [i for i in admin.review_list("wine", status="all") if i["id"] in items]
    assert {i["status"] for i in closed} == {"rejected"} and not any("quarantine_listed" in i for i in closed)


def test_the_witness_keeps_the_items_out_when_the_list_was_deleted(wine_ward: Ward, tmp_path: Path) -> None:
    folder, items = _pending_then_quarantined(wine_ward, tmp_path, witness=True)
    (folder / LIST).unlink()  # behind the ward's back: nothing in the folder remembers the quarantine
    ward = Ward.open(folder)
    assert not {i["id"] for i in ward.review_list("wine")} & set(items)
    with pytest.raises(Conflict, match=REFUSED):
        ward.review_decide([items[0]], "accept", reason="looks fine")


def _quarantined_but_active(ward: Ward) -> list[dict]:
    return [r for r in ward.access_review() if r["kind"] == "quarantined_but_active"]


def test_the_access_review_names_a_principal_whose_quarantine_only_the_list_holds(
    wine_ward: Ward, tmp_path: Path
) -> None:
    folder = wine_ward.folder
    wine_ward.set_witness(str(tmp_path / "witness"))
    wine_ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    (before,) = _quarantined_but_active(admin)
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    ward = Ward.open(folder)
    assert ward.contribution("wine#1")["status"] == "quarantined"
    (row,) = _quarantined_but_active(ward)
    assert row["principal"] == before["principal"] == "scraper"
    assert "wine#1" in row["detail"] and "contributor on dataset:wine" in row["detail"], row
    assert "dataward principal disable scraper" in row["action"]
    code, rows = json_cli(folder, "access", "review")
    assert code == 0 and [r["principal"] for r in rows if r["kind"] == "quarantined_but_active"] == ["scraper"]
    # The list deleted behind the ward's back: the witness's copy still names the quarantine.
    (folder / LIST).unlink()
    (row,) = _quarantined_but_active(Ward.open(folder))
    assert row["principal"] == "scraper" and "wine#1" in row["detail"]
    # Disabling the bot is what the row asks for; then nothing of it can act and the row goes.
    Ward.open(folder).disable_principal("scraper", reason="its batch was poisoned")
    assert _quarantined_but_active(Ward.open(folder)) == []
