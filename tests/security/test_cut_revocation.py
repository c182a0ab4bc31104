"""A revoked key must not come back when the ledger's tail is cut.

Played as an outside trial played it: someone who can write the catalog (not the signing key) deletes
the newest events, from the revocation on, and sets the key's ``revoked_at`` back to NULL. What is left
is a chain that verifies on its own. What betrays the cut: the checkpoint the ward keeps after every
event that takes access away (a new process, plain ``verify``), and the newest head a process has seen
(a long-lived ``Ward``, a server: ``dataward.service.ledger_mark``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation, KeyRevoked
from dataward.ledger.checkpoint import Checkpoint
from dataward.ledger.signing import SignatureVerifier
from dataward.service.checkpoints import CHECKPOINT_AFTER
from dataward.service.ledger_mark import LedgerMark, Seen, describe
from dataward.service.ward import Ward
from tests.security.attacks import delete_kept_checkpoints, events_of
from tests.security.attacks import json_cli as cli


def cut(folder: Path, from_seq: int, key_id: str) -> None:
    """The attack, straight on the SQLite file: the revocation and everything after it deleted, and the
    key's row put back as it was before."""
    db = sqlite3.connect(folder / "catalog.sqlite", isolation_level=None)
    try:
        db.execute("DELETE FROM ledger_events WHERE seq >= ?", (from_seq,))
        db.execute("UPDATE api_keys SET revoked_at = NULL WHERE id = ?", (key_id,))
    finally:
        db.close()


def kept(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "checkpoints").glob("*.json"))]


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_principal("carol")
    ward.grant("carol", "reader")
    return ward


def _revoked_key(ward: Ward) -> tuple[str, str, int]:
    """Carol's key, revoked: ``(key, key id, seq of the key.revoked event)``."""
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    key_id = key[3:11]
    ward.revoke_key(f"dw_{key_id}", reason="stolen")
    revoked = events_of(ward)[-1]
    assert revoked.type == "key.revoked"
    return key, key_id, revoked.seq


def test_the_cli_reproduction_is_refused_and_verify_names_the_cut(ward: Ward) -> None:
    key, key_id, seq = _revoked_key(ward)
    folder = ward.folder
    ward.close()
    code, answer = cli(folder, "whoami", key=key)
    assert code == 5 and answer["error"] == "key_revoked"
    # The revocation left a checkpoint of itself in the ward.
    revocation = next(e for e in events_of(Ward.open(folder)) if e.seq == seq)
    assert (seq, revocation.hash) in {(c["seq"], c["head"]) for c in kept(folder)}
    cut(folder, seq, key_id)
    code, answer = cli(folder, "whoami", key=key)
    assert code == 7 and answer["error"] == "integrity_violation", answer
    assert f"event #{seq}" in answer["message"] and "went backwards" in answer["message"]
    # Every other command (the admin's too) is refused the same way, not only the revoked key.
    code, answer = cli(folder, "principal", "list")
    assert code == 7 and answer["error"] == "integrity_violation"
    # Plain verify, with nothing but the ward folder, reports the cut.
    code, report = cli(folder, "verify")
    assert code == 7 and not report["ok"]
    missing = [p for p in report["problems"] if p["kind"] == "missing"]
    assert missing and missing[0]["event"] == seq and report["first_bad_event"] == seq


def test_a_real_process_exits_7_for_the_revived_key(ward: Ward) -> None:
    key, key_id, seq = _revoked_key(ward)
    cut(ward.folder, seq, key_id)
    env = {**os.environ, "DATAWARD_WARD": str(ward.folder), "DATAWARD_KEY": key, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "dataward", "whoami"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 7, result.stdout + result.stderr
    assert "went backwards" in result.stdout + result.stderr


def test_a_long_lived_ward_refuses_even_with_the_kept_checkpoints_gone(ward: Ward) -> None:
    """The ward object saw the revocation: deleting the kept checkpoints too does not fool it."""
    key, key_id, seq = _revoked_key(ward)
    with pytest.raises(KeyRevoked):
        ward.as_key(key).whoami()
    cut(ward.folder, seq, key_id)
    delete_kept_checkpoints(ward)
    with pytest.raises(IntegrityViolation, match=f"event #{seq} at least was deleted") as refused:
        ward.as_key(key).whoami()
    assert refused.value.details["seen_seq"] == seq and refused.value.details["head_seq"] == seq - 1
    with pytest.raises(IntegrityViolation):
        ward.ledger_head()
    report = ward.verify()
    assert not report.ok and report.first_bad_event == seq
    assert any(p.kind == "missing" and "this process" in p.detail for p in report.problems)
    # A new process has no head to compare with, but the list of access removals still holds the
    # revocation: it reports it as lost, and the key stays refused.
    fresh = Ward.open(ward.folder)
    assert [p.kind for p in fresh.verify().problems] == ["lost_removal"]
    with pytest.raises(KeyRevoked, match=f"event #{seq}"):
        fresh.as_key(key).whoami()
    # With the list deleted too, nothing is left to compare with: the documented limit (an outside
    # checkpoint or the witness catches it).
    (ward.folder / "removals.jsonl").unlink()
    assert Ward.open(ward.folder).verify().ok


def test_a_rewritten_tail_is_refused_once_the_ledger_grows_past_it(ward: Ward) -> None:
    """Cut, then let an honest process (which cannot tell) append: the event at the seq this ward saw
    now hashes differently, though the ledger is as long again."""
    key, key_id, seq = _revoked_key(ward)
    cut(ward.folder, seq, key_id)
    delete_kept_checkpoints(ward)
    other = Ward.open(ward.folder)
    other.create_principal("dave")
    other.create_principal("erin")
    assert events_of(other)[-1].seq > seq
    with pytest.raises(IntegrityViolation, match=f"history was rewritten at or before event #{seq}"):
        ward.as_key(key).whoami()
    report = ward.verify()
    assert report.first_bad_event == seq and any(p.kind == "rewritten" for p in report.problems)


def test_every_event_that_takes_access_away_leaves_a_checkpoint(ward: Ward) -> None:
    """The honest path: revocations, rotations, grant revocations, disabling and suspending work as
    before, each leaves a kept checkpoint of itself, and verify stays clean, in this process and in a
    new one."""
    ward.create_principal("bot", kind="service", owner="carol")
    ward.grant("bot", "reader")
    bot_key = str(ward.issue_key("bot")["key"])
    rotated = ward.rotate_key(bot_key[:11], overlap_hours=1)
    assert ward.as_key(rotated["key"]).whoami()["principal"] == "bot"
    assert ward.as_key(bot_key).whoami()["principal"] == "bot"  # in its overlap
    ward.revoke_grant("carol", "reader")
    carol_key = str(ward.issue_key("carol")["key"])
    ward.revoke_key(carol_key[:11])
    ward.disable_principal("carol")  # suspends the bot with it
    taken = [e for e in events_of(ward) if e.type in CHECKPOINT_AFTER]
    assert {e.type for e in taken} >= {"key.rotated", "grant.revoked", "key.revoked", "principal.disabled"}
    checkpoints = {(c["seq"], c["head"]) for c in kept(ward.folder)}
    assert {(e.seq, e.hash) for e in taken} <= checkpoints
    verifier = SignatureVerifier(ward.signer.public_key_b64)
    assert all(Checkpoint.from_dict(c).verify_signature(verifier) for c in kept(ward.folder))
    with pytest.raises(KeyRevoked):
        ward.as_key(carol_key).whoami()
    assert ward.verify().ok
    fresh = Ward.open(ward.folder)
    assert fresh.verify().ok
    fresh.enable_principal("carol")
    assert ward.principals() and fresh.verify().ok
    code, report = cli(ward.folder, "verify")
    assert code == 0 and report["ok"], report["problems"]


def test_an_older_snapshot_of_a_concurrent_request_is_not_a_cut() -> None:
    """A transaction is held only to the mark taken before it began: a request that started before a
    newer event was committed sees an older head, legitimately."""
    mark = LedgerMark(None, "", "w")
    before = mark.floor()
    mark.observe(10, "b3:ten")
    # The earlier request, checked against the mark it took, reads head #9: fine.
    assert mark.check(before, 9, "b3:nine", None) is None
    now = mark.floor()
    assert now == Seen(10, "b3:ten", now.source, now.time)
    assert mark.check(now, 11, "b3:eleven", "b3:ten") is None
    assert describe(now, 9, None) is not None and "event #10 at least was deleted" in describe(now, 9, None)
    assert "rewritten" in (describe(now, 12, "b3:other") or "")
    # The mark never moves back.
    mark.observe(5, "b3:five")
    assert mark.floor().seq == 11
