"""Review items on records a quarantine holds back are closed by the event that makes the hold, never left
for a reviewer to work through before a merge that cannot add them; and no record reaches a version
through such a closing without a reviewer.

A trial's reviewer met 59 pending items of a batch sent again after its first copy was quarantined: every
one of its records was held back, and the merge the queue stood in front of could add nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from dataward.service import gating, quarantine_holds
from tests.helpers import run_cli, wine_rows, write_csv

POLICY = "approvals:\n  required: 0\nfirst_import: self-reference\n"
COLUMNS = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]


def _ok(ward: Path, *args: str, key: str | None = None, codes: tuple[int, ...] = (0,)) -> Any:
    done = run_cli(ward, *args, "--json", key=key)
    assert done.returncode in codes, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return json.loads(done.stdout)


def _conflicts(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` exact copies of trusted records under another label: each flagged by rule."""
    return [{**r, "cultivar": (int(r["cultivar"]) + 1) % 3} for r in rows[:n]]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ward whose ``wine`` training version holds 120 records; ``bob`` and ``carol`` contribute (two
    sides), ``rita`` reviews; ``bad.csv`` is 40 new records and 12 exact conflicts (a block), which ``bob``
    has contributed once (``wine#2``, from ``https://x/dump.csv``): the start of every test. Set up once
    through the Python API (a process per step costs seconds, and the first gate run seconds more); every
    test works on its own copy (``trial``), and the steps under test run through the CLI."""
    from dataward.domain.schema import Schema
    from dataward.service.ward import Ward

    tmp = tmp_path_factory.mktemp("held-back")
    rows = wine_rows(shuffled=True)
    ward, _ = Ward.init(tmp / "ward")
    with ward:
        ward.create_dataset("wine", Schema.parse("cultivar", [f"{c}:numeric" for c in COLUMNS]))
        ward.set_policy("wine", POLICY)
        ward.merge(ward.contribute("wine", write_csv(tmp / "base.csv", rows[:120]), source="s:base")["ref"])
        ward.promote("wine@v1")
        keys = {}
        for name, role in (("bob", "contributor"), ("carol", "contributor"), ("rita", "reviewer")):
            ward.create_principal(name)
            ward.grant(name, role, "dataset:wine")
            keys[name] = ward.issue_key(name)["key"]
        bad = write_csv(tmp / "bad.csv", rows[120:160] + _conflicts(rows, 12))
        first = ward.as_key(keys["bob"]).contribute("wine", bad, source="https://x/dump.csv")
    # What `contribute --json` prints (the same dict): the gate blocks, its 12 conflicts wait for review.
    assert first["ref"] == "wine#2" and first["gate"]["verdict"] == "block", first
    assert first["gate"]["queued_for_review"] == 12
    return {"ward": ward.folder, "keys": keys, "rows": rows, "bad": bad}


@pytest.fixture
def trial(template: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A copy of ``template``'s ward for one test, and a folder for its files."""
    return {**template, "ward": shutil.copytree(template["ward"], tmp_path / "ward"), "tmp": tmp_path}


def _quarantined(ward_dir: Path) -> None:
    """``quarantine wine#2 --reason "label flips"``, as setup: in this process, as the first admin."""
    from dataward.service.ward import Ward

    with Ward.open(ward_dir, key=(ward_dir / "credentials").read_text("utf-8").strip()) as admin:
        admin.quarantine_contribution("wine#2", reason="label flips")


def test_a_batch_sent_again_after_its_quarantine_queues_nothing_for_review(trial: dict[str, Any]) -> None:
    ward, keys, bad = trial["ward"], trial["keys"], trial["bad"]
    _quarantined(ward)  # bob's first copy, wine#2, whose 12 flagged records were queued for review
    again = _ok(ward, "contribute", "wine", str(bad), "--source", "https://x/dump2.csv", key=keys["bob"], codes=(9,))
    # Every record is held back, its 12 flagged ones by the quarantine: nothing is left for a reviewer.
    assert again["held_back"] == 52
    assert again["gate"]["counts"]["flagged"] == 12
    assert again["gate"]["queued_for_review"] == 0 and again["gate"]["closed_held_back"] == 12
    assert _ok(ward, "review", "list", "wine") == []
    closed = _ok(ward, "review", "list", "wine", "--status", "rejected", "--contribution", "wine#3")
    assert len(closed) == 12
    assert all(i["decided_by"] is None and "quarantined contribution wine#2" in i["decision_reason"] for i in closed)
    # The human output says where the 12 records to review went.
    shown = run_cli(ward, "gate", "report", "wine#3")
    assert "12 flagged records are held back by a quarantine already" in " ".join(
        shown.stdout.replace("│", " ").split()
    )
    assert run_cli(ward, "verify").returncode == 0


def test_a_quarantine_closes_the_pending_items_of_another_contribution_on_its_records(trial: dict[str, Any]) -> None:
    from dataward.service.ward import Ward

    ward, keys, bad = trial["ward"], trial["keys"], trial["bad"]
    # The batch sent again before any quarantine (wine#3, in this process): its 12 items wait as well.
    with Ward.open(ward, key=keys["bob"]) as bob:
        assert bob.contribute("wine", bad, source="https://x/dump2.csv")["gate"]["verdict"] == "block"
    assert len(_ok(ward, "review", "list", "wine", "--contribution", "wine#3")) == 12
    _ok(ward, "quarantine", "wine#2", "--reason", "label flips")
    assert _ok(ward, "review", "list", "wine") == []
    # Closed by the quarantine's own signed event, which names the cause; nothing earlier is rewritten.
    event = _ok(ward, "ledger", "--type", "contribution.quarantined", "-n", "1")[0]
    closed = [c for c in event["payload"]["changes"] if c["table"] == "quarantine"]
    assert len(closed) == 24  # its own 12 and wine#3's 12
    assert (
        sum(
            "held back: the record is in quarantined contribution wine#2" in c["values"]["decision_reason"]
            for c in closed
        )
        == 12
    )
    assert run_cli(ward, "verify").returncode == 0


def test_no_flagged_record_reaches_a_version_through_a_closed_item(trial: dict[str, Any]) -> None:
    """The attacker's path: the same flagged records in two contributions, of two sides and two sources,
    one of them quarantined. The other's items are closed, never accepted: its merge leaves those records
    out, and no decision can bring them back (a quarantine has no undo)."""
    from dataward.service.ward import Ward

    ward, keys, rows, tmp = trial["ward"], trial["keys"], trial["rows"], trial["tmp"]
    flips = _conflicts(rows, 2)
    carol_file = write_csv(tmp / "carol.csv", rows[160:178] + flips)
    # Set up in this process (bob's wine#2 is the template's): carol's wine#3, then the quarantine.
    with Ward.open(ward, key=keys["carol"]) as carol_ward:
        carol = carol_ward.contribute("wine", carol_file, source="https://y/feed.csv")
    assert carol["gate"]["verdict"] in ("pass", "review") and carol["gate"]["queued_for_review"] == 2
    _quarantined(ward)
    items = _ok(ward, "review", "list", "wine", "--status", "all", "--contribution", "wine#3")
    assert [i["status"] for i in items] == ["rejected", "rejected"]
    # Closed items are decided: nobody accepts them afterwards.
    refused = run_cli(ward, "review", "accept", items[0]["id"], "--reason", "looks fine", key=keys["rita"])
    assert refused.returncode == 4
    merged = _ok(ward, "merge", "wine#3")
    assert merged["held_back_of_contribution"] == 2 and merged["records"] == 120 + 18
    for rid in {i["record_id"] for i in items}:
        assert "wine@v2" not in {v["ref"] for v in _ok(ward, "trace", rid)["versions"]}


def test_a_pending_item_left_on_a_quarantined_record_is_marked_and_cannot_be_accepted(
    trial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item left pending from before (a ward older than this change, or a catalog restored from before
    the quarantine): ``review list`` says its record is held back and accepting it is refused; rejecting
    clears it."""
    from dataward.service.ward import Ward

    ward_dir, keys, bad = trial["ward"], trial["keys"], trial["bad"]
    _quarantined(ward_dir)  # bob's wine#2
    ward = Ward.open(ward_dir)
    # As a ward older than this change did it: the gate opens the items pending.
    monkeypatch.setattr(gating, "quarantined_holders", lambda *_a, **_k: {})
    ward.as_key(keys["bob"]).contribute("wine", bad, source="https://x/dump2.csv")
    monkeypatch.undo()
    pending = _ok(ward_dir, "review", "list", "wine")
    assert len(pending) == 12 and all(
        i["held_back"] == {"why": "quarantined", "contribution": "wine#2"} for i in pending
    )
    shown = " ".join(run_cli(ward_dir, "review", "list", "wine").stdout.split())
    assert "held back by quarantine of wine#2: deciding it changes nothing" in shown
    refused = run_cli(
        ward_dir, "review", "accept", "--contribution", "wine#3", "--reason", "ok", "--json", key=keys["rita"]
    )
    assert refused.returncode == 4 and "quarantine of wine#2" in json.loads(refused.stdout)["message"]
    # Separation of duties still holds: the contributor cannot clear its own items.
    assert (
        run_cli(ward_dir, "review", "reject", "--contribution", "wine#3", "--reason", "x", key=keys["bob"]).returncode
        == 6
    )
    _ok(ward_dir, "review", "reject", "--contribution", "wine#3", "--reason", "held back", key=keys["rita"])
    assert _ok(ward_dir, "review", "list", "wine") == []


# --- what quarantined_holders keeps between calls (per ward, while the ledger's head is the same event) ---


def _holders(ward: Any, record_ids: list[str]) -> dict[str, Any]:
    with ward.db.reading() as conn:
        return quarantine_holds.quarantined_holders(ward, conn, record_ids)


def _count_id_list_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = quarantine_holds.read_ids
    monkeypatch.setattr(quarantine_holds, "read_ids", lambda store, digest: reads.append(digest) or real(store, digest))
    return reads


def test_review_list_reads_each_quarantined_id_list_once_per_ledger_head(
    trial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``review list`` looks its pending items up in every quarantined contribution's id list: read once
    while the ledger's head is the same event, not on every call, and the answer is a fresh read's."""
    from dataward.service.ward import Ward

    ward = Ward.open(trial["ward"])
    bob = ward.as_key(trial["keys"]["bob"])  # bob's first copy of the batch is the template's wine#2
    ward.quarantine_contribution("wine#2", reason="label flips")
    monkeypatch.setattr(gating, "quarantined_holders", lambda *_a, **_k: {})  # items opened pending, as before
    bob.contribute("wine", trial["bad"], source="https://x/dump2.csv")
    monkeypatch.undo()
    reads = _count_id_list_reads(monkeypatch)
    first = ward.review_list("wine")
    assert len(first) == 12 and all(i["held_back"]["contribution"] == "wine#2" for i in first)
    assert len(reads) == 1
    assert ward.review_list("wine") == first
    assert len(reads) == 1  # the same head: the id list read by the first call serves
    quarantine_holds.forget_kept()
    assert ward.review_list("wine") == first  # what a cold read finds
    assert len(reads) == 2


def test_a_quarantine_after_a_kept_read_is_seen_by_the_very_next_call(
    trial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarantine is an event: the next lookup (a ``review list``'s or a gate recording's) reads the
    quarantined id lists again and finds the new one, whatever an earlier call kept."""
    from dataward.service.ward import Ward

    ward = Ward.open(trial["ward"])
    bob = ward.as_key(trial["keys"]["bob"])
    carol_file = write_csv(trial["tmp"] / "carol.csv", trial["rows"][160:178])
    # bob's first copy of the batch is the template's wine#2; carol's is wine#3.
    ward.as_key(trial["keys"]["carol"]).contribute("wine", carol_file, source="https://y/feed.csv")
    ward.quarantine_contribution("wine#3", reason="unrelated")  # something is kept: one list, not bob's
    reads = _count_id_list_reads(monkeypatch)
    flagged = [i["record_id"] for i in ward.review_list("wine", contribution="wine#2")]
    assert len(flagged) == 12
    assert _holders(ward, flagged) == {} and _holders(ward, flagged) == {}
    assert len(reads) == 1  # wine#3's list, read by the review list and kept
    ward.quarantine_contribution("wine#2", reason="label flips")
    found = _holders(ward, flagged)
    assert set(found) == set(flagged) and {h.ref for h in found.values()} == {"wine#2"}
    assert len(reads) == 3  # a new head: both lists read again
    # The gate's recording of the batch sent again, in this same process, closes every flagged item.
    again = bob.contribute("wine", trial["bad"], source="https://x/dump2.csv")
    assert again["gate"]["queued_for_review"] == 0 and again["gate"]["closed_held_back"] == 12


def test_a_contribution_row_edited_in_the_catalog_is_read_as_a_fresh_call_reads_it(
    trial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which contributions are quarantined, and which records they added, is the signed ledger's word, kept
    or not: a quarantined contribution's row set back to ``merged`` in the catalog still holds its records.
    What is taken from the catalog (the ``DATASET#N`` a reader is shown) is read on each call, never kept:
    the edit shows on the next call as it does on a cold one (``verify`` reports it)."""
    from dataward.service.ward import Ward
    from tests.security.attacks import sql

    ward = Ward.open(trial["ward"])  # bob's first copy of the batch is the template's wine#2
    flagged = [i["record_id"] for i in ward.review_list("wine", contribution="wine#2")]
    cid = ward.contribution("wine#2")["id"]
    ward.quarantine_contribution("wine#2", reason="label flips")
    reads = _count_id_list_reads(monkeypatch)
    assert {h.ref for h in _holders(ward, flagged).values()} == {"wine#2"}
    sql(ward, "UPDATE contributions SET status = 'merged', number = 9 WHERE id = ?", cid)
    kept = _holders(ward, flagged)
    assert len(reads) == 1  # no event: the id list read before serves
    assert set(kept) == set(flagged) and {(h.contribution_id, h.ref) for h in kept.values()} == {(cid, "wine#9")}
    quarantine_holds.forget_kept()
    assert _holders(ward, flagged) == kept
    assert run_cli(trial["ward"], "verify").returncode != 0
