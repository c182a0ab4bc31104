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

from dataward.service import gating
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
