"""Revocations and disables outlive a restored catalog backup.

Played as the platform trial played it: back up the catalog while a key is good, revoke the key (or
disable its principal), lose the catalog, restore the backup. Every command is refused as a ledger
that went backwards; the operator then moves the newer kept checkpoints aside, the only way forward.
The revoked key must still be refused, on the very next request, embedded and served, because the
ward also signed the revocation onto its list of access removals (``removals.jsonl``, beside the
kept checkpoints). And as an attacker plays it: the list edited, cut or forged must be caught.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.errors import AccessDenied, InputError, IntegrityViolation, KeyRevoked, PrincipalSuspended
from dataward.ledger.signing import SignatureVerifier, WardSigner
from dataward.service.ward import Ward
from tests.security.attacks import events_of
from tests.security.attacks import json_cli as cli
from tests.server.conftest import start_server

runner = CliRunner()
LIST = "removals.jsonl"


def back_up(folder: Path, to: Path) -> None:
    """The catalog as the backup holds it (the ward idle: every connection closed)."""
    to.mkdir()
    for path in folder.glob("catalog.sqlite*"):
        shutil.copy2(path, to / path.name)


def restore(folder: Path, backup: Path) -> None:
    """The catalog lost and put back from ``backup``."""
    for path in folder.glob("catalog.sqlite*"):
        path.unlink()
    for path in backup.glob("catalog.sqlite*"):
        shutil.copy2(path, folder / path.name)


def move_checkpoints_aside(folder: Path, to: Path) -> None:
    """What the refusal's hint tells the operator to do after restoring an older catalog on purpose."""
    to.mkdir()
    for path in (folder / "checkpoints").glob("*.json"):
        shutil.move(path, to / path.name)


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_principal("carol")
    ward.grant("carol", "reader")
    return ward


def _restored_after(ward: Ward, tmp_path: Path, take_away: object) -> Path:
    """Back up, run ``take_away(ward)``, restore the backup and move the newer checkpoints aside."""
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    take_away(admin)  # type: ignore[operator]
    admin.close()
    restore(folder, tmp_path / "backup")
    return folder


def test_a_revoked_key_stays_refused_after_the_backup_is_restored(ward: Ward, tmp_path: Path) -> None:
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    key_id = key[3:11]
    folder = _restored_after(ward, tmp_path, lambda w: w.revoke_key(f"dw_{key_id}", reason="stolen"))
    revoked = json.loads((folder / LIST).read_text().splitlines()[-1])
    assert revoked["type"] == "key.revoked" and revoked["keys"] == [key_id]
    seq = revoked["seq"]
    # Refused as a ledger that went backwards while the newer kept checkpoint is there.
    code, answer = cli(folder, "whoami", key=key)
    assert code == 7 and "went backwards" in answer["message"]
    move_checkpoints_aside(folder, tmp_path / "moved")
    # The catalog says the key is good; the list does not.
    code, answer = cli(folder, "whoami", key=key)
    assert code == 5 and answer["error"] == "key_revoked", answer
    assert f"event #{seq}" in answer["message"] and "predate" in answer["message"]
    # Verify names what the catalog lost and how to record it again.
    code, report = cli(folder, "verify")
    assert code == 7 and not report["ok"]
    lost = [p for p in report["problems"] if p["kind"] == "lost_removal"]
    assert len(lost) == 1 and f"dataward key revoke dw_{key_id}" in lost[0]["detail"], report["problems"]
    # An admin re-applies it: the restored catalog thinks the key is active, and revoking it works.
    code, _ = cli(folder, "key", "revoke", f"dw_{key_id}", "--reason", "again after the restore")
    assert code == 0
    code, report = cli(folder, "verify")
    assert code == 0 and report["ok"], report["problems"]
    assert any(f"event #{seq}" in w and "taken away again" in w for w in report["warnings"])
    code, answer = cli(folder, "whoami", key=key)
    assert code == 5 and answer["error"] == "key_revoked"


def test_a_disabled_principal_and_its_bot_stay_stopped_until_enabled(ward: Ward, tmp_path: Path) -> None:
    ward.create_principal("bot", kind="service", owner="carol")
    ward.grant("bot", "reader")
    carol = str(ward.issue_key("carol", ttl_days=5)["key"])
    bot = str(ward.issue_key("bot", ttl_days=5)["key"])
    # The keys are kept good in the backup; only the principals are taken away by the list here (the
    # revocation of their keys is on the same line, so check the principals on keys issued later).
    folder = _restored_after(ward, tmp_path, lambda w: w.disable_principal("carol", reason="left"))
    move_checkpoints_aside(folder, tmp_path / "moved")
    fresh = Ward.open(folder)
    for key in (carol, bot):
        with pytest.raises(KeyRevoked, match=r"principal\.disabled"):
            fresh.as_key(key).whoami()
    # A key the restored catalog issued after the backup point (a new one) is refused for its principal.
    new_key = str(fresh.issue_key("carol", ttl_days=5)["key"])
    with pytest.raises(PrincipalSuspended, match="the principal carol was stopped by event #") as refused:
        fresh.as_key(new_key).whoami()
    assert "predate" in str(refused.value)
    new_bot = str(fresh.issue_key("bot", ttl_days=5)["key"])
    with pytest.raises(PrincipalSuspended, match="the principal bot"):
        fresh.as_key(new_bot).whoami()
    problems = fresh.verify().problems
    assert [p.kind for p in problems] == ["lost_removal"]
    assert "dataward principal disable carol" in problems[0].detail
    # Re-applied, then enabled again on purpose: the enabling is on the list too, so carol acts again.
    fresh.disable_principal("carol", reason="again after the restore")
    fresh.enable_principal("carol", reason="came back")
    back = str(fresh.issue_key("carol", ttl_days=5)["key"])
    assert fresh.as_key(back).whoami()["principal"] == "carol"
    assert Ward.open(folder).verify().ok


def test_a_revoked_role_stays_taken_away_after_the_backup_is_restored(ward: Ward, tmp_path: Path) -> None:
    """carol was an admin when the backup was taken; the role was revoked, the backup restored. Her key
    still works (it was never revoked), but as the reader she still is, not as an admin."""
    ward.grant("carol", "admin")
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    assert ward.as_key(key).create_principal("mallory-before")  # the admin role works before
    folder = _restored_after(ward, tmp_path, lambda w: w.revoke_grant("carol", "admin"))
    revoked = json.loads((folder / LIST).read_text().splitlines()[-1])
    assert revoked["type"] == "grant.revoked" and len(revoked["grants"]) == 1
    move_checkpoints_aside(folder, tmp_path / "moved")
    fresh = Ward.open(folder)
    assert any(g["role"] == "admin" and g["principal"] == "carol" for g in fresh.grants("carol"))  # the catalog
    carol = fresh.as_key(key)
    assert carol.whoami()["principal"] == "carol"
    with pytest.raises(AccessDenied):
        carol.create_principal("mallory")
    code, answer = cli(folder, "principal", "create", "mallory", key=key)
    assert code == 6 and answer["error"] == "access_denied", answer
    problems = fresh.verify().problems
    assert [p.kind for p in problems] == ["lost_removal"]
    assert "dataward grant revoke" in problems[0].detail and revoked["grants"][0] in problems[0].detail
    # Re-applied, then granted again on purpose: a new grant, which the list never revoked.
    fresh.revoke_grant("carol", "admin")
    assert Ward.open(folder).verify().ok
    fresh.grant("carol", "admin")
    assert fresh.as_key(key).create_principal("mallory-after")


def test_a_list_line_without_grants_reads_as_before(ward: Ward) -> None:
    """Lines written before grants were listed carry no ``grants`` field; their signatures still verify,
    and a line that names an empty list of grants is malformed (the signed field would be ambiguous)."""
    from dataward.ledger.removal_line import RemovalLine

    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(key[:11])
    text = (ward.folder / LIST).read_text().splitlines()[-1]
    assert '"grants"' not in text
    line = RemovalLine.from_json(text)
    assert line.grants == () and line.verify_signature(SignatureVerifier(ward.signer.public_key_b64))
    with pytest.raises(InputError, match="'grants' must be a non-empty list"):
        RemovalLine.from_json(json.dumps({**json.loads(text), "grants": []}))


def test_a_list_begun_before_grants_were_listed_is_not_read_as_cut(ward: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ward whose list was written in format 1 never listed its grant revocations: verify must not
    call them cut from the list's end. From the first line of format 2 on, a grant revocation missing
    from the end is."""
    from dataward.ledger.removal_line import FIRST_PREV, RemovalLine
    from dataward.service import identity

    path = ward.folder / LIST
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(key[:11])
    ward.grant("carol", "contributor", "ward")
    # As a version that listed no grant revocation signed it: its event does not say it is listed.
    monkeypatch.setattr(identity, "LISTED", "field_of_an_older_version")
    ward.revoke_grant("carol", "contributor", "ward")
    monkeypatch.undo()
    first = RemovalLine.from_json(path.read_text().splitlines()[0])
    old = {**first.__dict__, "format": 1, "sig": ""}
    old_line = RemovalLine(**old)
    old_line = RemovalLine(**{**old, "sig": ward.signer.sign(old_line.signed_message())})
    assert old_line.prev == FIRST_PREV
    ward.close()
    path.write_text(old_line.to_json() + "\n")  # as a ward of format 1 left it: the grant never listed
    upgraded = Ward.open(ward.folder)  # a process of this version, on that ward
    report = upgraded.verify()
    assert report.ok, report.problems
    # Listed from now on: the next removal is written in format 2, and a later grant revocation cut from
    # the end is caught.
    upgraded.grant("carol", "approver", "ward")
    upgraded.revoke_grant("carol", "approver", "ward")
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["format"] >= 2 and json.loads(lines[-1])["grants"]
    upgraded.grant("carol", "reviewer", "ward")
    upgraded.revoke_grant("carol", "reviewer", "ward")
    upgraded.close()
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    report = Ward.open(ward.folder).verify()
    assert [p.kind for p in report.problems] == ["unlisted"], report.problems


def test_the_list_is_read_again_only_when_it_changes(ward: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path costs a ``stat``: many requests, one read; a new removal, one more."""
    from dataward.service import removal_list

    reads: list[Path] = []
    real = removal_list.read_list

    def counted(path: Path, public_key: str, ward_id: str) -> removal_list.ListRead:
        reads.append(path)
        return real(path, public_key, ward_id)

    monkeypatch.setattr(removal_list, "read_list", counted)
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    other = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(other[:11])
    before = len(reads)
    for _ in range(20):
        ward.as_key(key).whoami()
    assert len(reads) - before <= 1
    ward.revoke_key(key[:11])
    with pytest.raises(KeyRevoked):
        ward.as_key(key).whoami()


# --- the list attacked ----------------------------------------------------------------------------


def _two_revocations(ward: Ward) -> tuple[str, str]:
    first = str(ward.issue_key("carol", ttl_days=5)["key"])
    second = str(ward.issue_key("carol", ttl_days=5)["key"])
    good = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(first[:11], reason="one")
    ward.revoke_key(second[:11], reason="two")
    return good, first


def _assert_tampering_refused(folder: Path, good: str) -> None:
    """A new process refuses every request (the admin's and a good key's) and verify reports it."""
    with pytest.raises(IntegrityViolation, match="list of access removals was tampered with"):
        Ward.open(folder).as_key(good).whoami()
    code, answer = cli(folder, "principal", "list")
    assert code == 7 and answer["error"] == "integrity_violation"
    report = Ward.open(folder).verify()
    assert any(p.area == "removals" and p.kind == "tampered" for p in report.problems), report.problems


def test_a_line_removed_from_the_middle_is_caught(ward: Ward) -> None:
    good, _ = _two_revocations(ward)
    ward.create_principal("dave")
    ward.disable_principal("dave")
    path = ward.folder / LIST
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    _assert_tampering_refused(ward.folder, good)


def test_an_edited_line_is_caught(ward: Ward) -> None:
    good, _ = _two_revocations(ward)
    path = ward.folder / LIST
    lines = path.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["keys"] = ["someoneelse"]  # the revoked key taken off the line
    path.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n")
    _assert_tampering_refused(ward.folder, good)


@pytest.mark.parametrize("signed_by", ["nobody", "another key"])
def test_an_appended_line_not_signed_by_the_ward_is_caught(ward: Ward, signed_by: str) -> None:
    good, _ = _two_revocations(ward)
    path = ward.folder / LIST
    last = json.loads(path.read_text().splitlines()[-1])
    from dataward.ledger.removal_line import RemovalLine

    forged = RemovalLine.from_json(json.dumps(last))
    forged = RemovalLine(**{**forged.__dict__, "n": forged.n + 1, "prev": forged.digest, "keys": ("x" * 8,)})
    if signed_by == "another key":
        other = WardSigner.generate()
        forged = RemovalLine(**{**forged.__dict__, "sig": other.sign(forged.signed_message())})
    else:
        forged = RemovalLine(**{**forged.__dict__, "sig": ""})
    with path.open("a") as fh:
        fh.write(forged.to_json() + "\n")
    _assert_tampering_refused(ward.folder, good)


def test_the_last_line_removed_is_caught(ward: Ward) -> None:
    """A running process remembers what it read; a new one finds the ledger's removal missing from the
    list (and, were the ledger rolled back too, only the witness would tell: see below)."""
    good, _ = _two_revocations(ward)
    ward.as_key(good).whoami()  # this process has read both lines
    path = ward.folder / LIST
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n")
    with pytest.raises(IntegrityViolation, match=r"gone from removals\.jsonl"):
        ward.as_key(good).whoami()
    report = Ward.open(ward.folder).verify()
    assert [p.kind for p in report.problems] == ["unlisted"], report.problems


def test_the_witness_shows_a_deleted_list_after_a_rollback(ward: Ward, tmp_path: Path) -> None:
    """Everything in the ward folder lost or rolled back: catalog, kept checkpoints and the list."""
    ward.set_witness(str(tmp_path / "witness"))
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    folder = _restored_after(ward, tmp_path, lambda w: w.revoke_key(key[:11], reason="stolen"))
    move_checkpoints_aside(folder, tmp_path / "moved")
    (folder / LIST).unlink()
    assert list((tmp_path / "witness").rglob("removals/*.jsonl"))
    kinds = {(p.area, p.kind) for p in Ward.open(folder).verify().problems}
    assert ("removals", "lines_gone") in kinds and ("removals", "lost_removal") in kinds, kinds
    # The witness folder still works as a folder of checkpoints for `verify --checkpoint`.
    code, report = cli(folder, "verify", "--checkpoint", str(tmp_path / "witness"))
    assert code == 7 and any(p["kind"] == "missing" for p in report["problems"]), report


# --- served ---------------------------------------------------------------------------------------


API = "/api/v1"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _served_verify(http: httpx.Client, key: str) -> dict:
    from tests.server.test_ledger_backwards import served_verify

    return served_verify(http, key)


def test_a_served_ward_refuses_the_revoked_key_after_the_restore(tmp_path: Path) -> None:
    folder = tmp_path / "ward"
    opened, admin = Ward.init(folder)
    opened.create_principal("carol")
    opened.grant("carol", "reader")
    carol = str(opened.issue_key("carol", ttl_days=5)["key"])
    opened.close()
    back_up(folder, tmp_path / "backup")

    server, thread, _, url = start_server(folder)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.get(f"{API}/whoami", headers=_bearer(carol)).status_code == 200
            revoked = http.post(f"{API}/keys/{carol[:11]}/revoke", json={}, headers=_bearer(admin))
            assert revoked.status_code == 200, revoked.text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    seq = events_of(Ward.open(folder))[-1].seq

    restore(folder, tmp_path / "backup")
    server, thread, _, url = start_server(folder)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            refused = http.get(f"{API}/whoami", headers=_bearer(admin))
            assert refused.status_code == 500 and "went backwards" in refused.json()["message"]
            # Served verify diagnoses instead of refusing.
            report = _served_verify(http, admin)
            assert not report["ok"] and any(p["kind"] == "missing" for p in report["problems"])
        # And through the CLI against the server, as an operator runs it.
        result = runner.invoke(
            app, ["verify", "--json"], env={"DATAWARD_URL": url, "DATAWARD_KEY": admin, "COLUMNS": "200"}
        )
        assert result.exit_code == 7, result.output
        assert any(p["kind"] == "missing" for p in json.loads(result.stdout)["problems"])
        move_checkpoints_aside(folder, tmp_path / "moved")
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    server, thread, _, url = start_server(folder)  # restarted, as the hint says
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(3):  # not remembered as fine either
                answer = http.get(f"{API}/whoami", headers=_bearer(carol))
                assert answer.status_code == 401 and answer.json()["error"] == "key_revoked", answer.text
                assert f"event #{seq}" in answer.json()["message"]
            assert http.get(f"{API}/whoami", headers=_bearer(admin)).status_code == 200
            report = _served_verify(http, admin)
            assert [p["kind"] for p in report["problems"]] == ["lost_removal"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_serving_a_new_empty_state_folder_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A served ward whose --state folder is new: no kept checkpoint anchors its ledger any more."""
    import uvicorn

    folder = tmp_path / "ward"
    opened, _ = Ward.init(folder)
    opened.create_principal("carol")
    key = str(opened.issue_key("carol", ttl_days=5)["key"])
    opened.revoke_key(key[:11])
    opened.close()
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    # ``serve`` hands its settings to the workers through the environment: kept to this test.
    import os

    monkeypatch.setattr(os, "environ", dict(os.environ))
    args = [
        "serve",
        "--catalog",
        f"sqlite:///{folder / 'catalog.sqlite'}",
        "--store",
        str(folder / "objects"),
        "--signing-key",
        str(folder / "keys" / "ward-ed25519.pem"),
        "--port",
        "18999",
    ]
    kept = runner.invoke(app, [*args, "--state", str(folder)], env={"COLUMNS": "300"})
    assert kept.exit_code == 0, kept.output
    assert "no kept checkpoint" not in kept.output
    empty = runner.invoke(app, [*args, "--state", str(tmp_path / "new-state")], env={"COLUMNS": "300"})
    assert empty.exit_code == 0, empty.output
    assert "warning:" in empty.output and "no kept checkpoint" in empty.output
    assert not any("no kept checkpoint" in w for w in Ward.open(folder).verify().warnings)
    shutil.rmtree(folder / "checkpoints")
    assert any("no kept checkpoint" in w for w in Ward.open(folder).verify().warnings)


def test_a_server_reads_the_witness_when_the_list_was_deleted_with_the_rollback(tmp_path: Path) -> None:
    """The attacker who can write the ward folder rolls the catalog back, moves the kept checkpoints
    aside and deletes removals.jsonl too: a server started afterwards reads the witness's copies."""
    folder = tmp_path / "ward"
    opened, admin = Ward.init(folder)
    opened.set_witness(str(tmp_path / "witness"))
    opened.create_principal("carol")
    opened.grant("carol", "reader")
    carol = str(opened.issue_key("carol", ttl_days=5)["key"])
    opened.close()
    back_up(folder, tmp_path / "backup")
    revoker = Ward.open(folder)
    revoker.revoke_key(carol[:11], reason="stolen")
    revoker.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    (folder / LIST).unlink()
    # A new embedded process has nothing left in the folder, but it reads the witness before it judges
    # its first caller: even a command that reads no data refuses the key.
    with pytest.raises(KeyRevoked):
        Ward.open(folder).as_key(carol).whoami()
    server, thread, _, url = start_server(folder)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            answer = http.get(f"{API}/whoami", headers=_bearer(carol))
            assert answer.status_code == 401 and answer.json()["error"] == "key_revoked", answer.text
            assert http.get(f"{API}/whoami", headers=_bearer(admin)).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_removal_committed_while_verify_reads_is_not_taken_for_a_lost_one(ward: Ward) -> None:
    """Verify's snapshot may predate a revocation whose line is appended before verify reads the list
    again: only lines listed before the snapshot began can be lost by the ledger."""
    from dataward.service.removal_check import check_removals
    from dataward.service.removal_list import read_list

    path = ward.folder / LIST
    public_key, ward_id = ward.signer.public_key_b64, ward.ward_id
    before = read_list(path, public_key, ward_id)
    snapshot = {e.seq: e.hash for e in events_of(ward)}
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(key[:11])  # committed after the snapshot, listed before the second read
    after = read_list(path, public_key, ward_id)
    assert len(after.lines) == len(before.lines) + 1
    found = check_removals(before, after, public_key, ward_id, snapshot, [])
    assert found.problems == [] and found.warnings == []
    # Listed before the snapshot and missing from it: lost.
    found = check_removals(after, after, public_key, ward_id, snapshot, [])
    assert [kind for kind, _, _ in found.problems] == ["lost_removal"]


def test_every_grant_line_cut_from_an_upgraded_list_is_caught(ward: Ward) -> None:
    """A list begun in format 1, then extended by this version with grant revocations only: cutting
    all of its format-2 lines leaves no line of format 2 to count from, and verify must still report
    the grant revocations the list lost (the witness-less check is the only one a fresh process has)."""
    from dataward.ledger.removal_line import RemovalLine

    path = ward.folder / LIST
    key = str(ward.issue_key("carol", ttl_days=5)["key"])
    ward.revoke_key(key[:11])
    first = RemovalLine.from_json(path.read_text().splitlines()[0])
    old = {**first.__dict__, "format": 1, "sig": ""}
    old_line = RemovalLine(**{**old, "sig": ward.signer.sign(RemovalLine(**old).signed_message())})
    ward.close()
    path.write_text(old_line.to_json() + "\n")  # as a ward of format 1 left it
    upgraded = Ward.open(ward.folder)
    upgraded.grant("carol", "approver", "ward")
    upgraded.revoke_grant("carol", "approver", "ward")  # listed, in format 2
    assert json.loads(path.read_text().splitlines()[-1])["format"] >= 2
    upgraded.close()
    path.write_text(path.read_text().splitlines()[0] + "\n")  # the tail cut: the format-1 line alone
    report = Ward.open(ward.folder).verify()
    assert [p.kind for p in report.problems] == ["unlisted"], report.problems


def test_a_grant_the_restored_catalog_never_held_is_not_an_unfixable_problem(ward: Ward, tmp_path: Path) -> None:
    """Granted and revoked after the backup: the restored catalog has no row of it, so nothing gives the
    role back, and `dataward grant revoke` (verify's own advice) answers NotFound. verify must not report
    a lost removal that no command can record again (it stays not ok for ever)."""

    def grant_and_revoke(w: Ward) -> None:
        w.grant("carol", "admin")
        w.revoke_grant("carol", "admin")

    folder = _restored_after(ward, tmp_path, grant_and_revoke)
    move_checkpoints_aside(folder, tmp_path / "moved")
    fresh = Ward.open(folder)
    assert not any(g["role"] == "admin" for g in fresh.grants("carol"))
    problems = fresh.verify().problems
    if problems:  # the advice must then work
        assert [p.kind for p in problems] == ["lost_removal"]
        fresh.revoke_grant("carol", "admin")
    assert Ward.open(folder).verify().ok
