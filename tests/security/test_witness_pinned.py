"""The witness is pinned by the ledger, not by ``ward.json``.

Played as the outside trial played it: the admin sets a witness and revokes a key (a checkpoint kept and
witnessed). Someone who can write the ward folder but holds no key puts back an older copy of the
catalog (ledger and rows together), deletes the kept checkpoint newer than it, and removes the witness
from ``ward.json`` or points it at an empty folder of their own. Plain ``verify`` must still read the
witness the signed ``ward.witness_set`` names and report the cut; the honest paths (set, moved, stopped
through the command) verify clean."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dataward.server.assembly import assemble_ward
from dataward.service.config import WardConfig
from dataward.service.ward import Ward
from tests.security.attacks import events_of
from tests.security.attacks import json_cli as cli


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite catalog file (what a file copy of a quiet catalog amounts to)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def edit_ward_json(folder: Path, witness: str | None) -> None:
    """The attacker's edit of ``ward.json``: the witness removed (None) or pointed elsewhere."""
    data = json.loads((folder / "ward.json").read_text())
    data.pop("witness", None)
    if witness is not None:
        data["witness"] = witness
    (folder / "ward.json").write_text(json.dumps(data))


def witness_copies(witness: Path, ward: Ward) -> list[int]:
    return sorted(json.loads(p.read_text())["seq"] for p in (witness / ward.ward_id).glob("*.json"))


def kinds(report: dict) -> set[str]:
    return {p["kind"] for p in report["problems"]}


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.set_witness(str(tmp_path / "witness"))
    ward.create_principal("carol")
    ward.grant("carol", "reader")
    return ward


@pytest.mark.parametrize("ward_json", ["removed", "elsewhere"])
def test_a_rollback_with_the_witness_taken_out_of_ward_json_fails_plain_verify(
    ward: Ward, tmp_path: Path, ward_json: str
) -> None:
    folder, witness = ward.folder, tmp_path / "witness"
    key = str(ward.issue_key("carol")["key"])
    old = tmp_path / "old-catalog.sqlite"
    copy_sqlite(folder / "catalog.sqlite", old)
    old_head = events_of(ward)[-1].seq
    ward.revoke_key(key[:11], reason="stolen")
    revoked = events_of(ward)[-1]
    assert revoked.type == "key.revoked" and revoked.seq in witness_copies(witness, ward)
    ward.close()
    code, report = cli(folder, "verify")
    assert code == 0 and report["ok"], report["problems"]
    # The attack: the old catalog back, the newer kept checkpoints gone, the witness out of ward.json.
    copy_sqlite(old, folder / "catalog.sqlite")
    for path in (folder / "checkpoints").glob("*.json"):
        if json.loads(path.read_text())["seq"] > old_head:
            path.unlink()
    decoy = tmp_path / "attackers-empty-folder"
    decoy.mkdir()
    edit_ward_json(folder, None if ward_json == "removed" else str(decoy))
    code, report = cli(folder, "verify")
    assert code == 7 and not report["ok"]
    assert {"missing", "witness_mismatch"} <= kinds(report)
    assert report["first_bad_event"] == revoked.seq
    mismatch = next(p for p in report["problems"] if p["kind"] == "witness_mismatch")
    assert str(witness.resolve()) in mismatch["detail"] and "ward.witness_set" in mismatch["detail"]
    if ward_json == "elsewhere":
        assert str(decoy) in mismatch["detail"]
    assert report["anchor"]["witness"]["location"] == str(witness.resolve())
    # Nothing was read from, or written to, the attacker's folder.
    Ward.open(folder).checkpoint()
    assert not any(decoy.iterdir())


def test_a_witness_the_ledger_names_that_cannot_be_read_fails_the_check(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = str((tmp_path / "witness").resolve())

    def down(where: str, ward_id: str) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr("dataward.service.audit.read_witness", down)
    report = ward.verify()
    assert not report.ok
    [problem] = [p for p in report.problems if p.kind == "witness_unreachable"]
    assert location in problem.detail and "connection refused" in problem.detail
    assert "run verify again once it is back" in problem.detail and "--off" in problem.detail


def test_an_emptied_witness_fails_the_check(ward: Ward, tmp_path: Path) -> None:
    witness = tmp_path / "witness"
    assert witness_copies(witness, ward)  # the checkpoint taken when it was set
    for path in (witness / ward.ward_id).glob("*.json"):
        path.unlink()
    report = ward.verify()
    assert [p.kind for p in report.problems] == ["witness_behind"]
    assert str(witness.resolve()) in report.problems[0].detail
    # The honest repair once the witness is back: a new checkpoint reaches it.
    ward.checkpoint()
    assert ward.verify().ok


def test_set_moved_and_stopped_by_an_admin_verify_clean(ward: Ward, tmp_path: Path) -> None:
    first, second = tmp_path / "witness", tmp_path / "moved"
    set_seq = next(e.seq for e in events_of(ward) if e.type == "ward.witness_set")
    assert witness_copies(first, ward) == [set_seq]
    assert ward.verify().ok
    code, report = cli(ward.folder, "verify")
    assert code == 0 and report["anchor"]["witness"]["set_by_event"] == set_seq
    # Moved: both the old and the new witness hold the checkpoint of the move.
    code, document = cli(ward.folder, "checkpoint", "witness", str(second))
    assert code == 0 and document["witness"] == str(second.resolve())
    moved = events_of(ward)[-1]
    assert moved.type == "ward.witness_set" and moved.payload["previous"] == str(first.resolve())
    assert moved.seq in witness_copies(first, ward) and witness_copies(second, ward) == [moved.seq]
    assert Ward.open(ward.folder).verify().ok
    assert cli(ward.folder, "verify")[0] == 0
    # Stopped: no witness is checked, and ward.json agrees.
    code, document = cli(ward.folder, "checkpoint", "witness", "--off")
    assert code == 0 and document["witness"] is None
    assert WardConfig.load(ward.folder).witness is None
    code, report = cli(ward.folder, "verify")
    assert code == 0 and report["ok"] and "witness" not in report["anchor"], report["problems"]
    # A witness written into ward.json by hand is not one: reported, and not written to.
    edit_ward_json(ward.folder, str(tmp_path / "by-hand"))
    code, report = cli(ward.folder, "verify")
    assert code == 7 and kinds(report) == {"witness_mismatch"}
    assert Ward.open(ward.folder).witness()["witness"] is None
    Ward.open(ward.folder).checkpoint()
    assert not (tmp_path / "by-hand").exists()


def test_checkpoints_go_to_the_signed_witness_whatever_ward_json_says(ward: Ward, tmp_path: Path) -> None:
    witness, decoy = tmp_path / "witness", tmp_path / "decoy"
    edit_ward_json(ward.folder, str(decoy))
    fresh = Ward.open(ward.folder)
    assert fresh.witness()["witness"] == str(witness.resolve())
    made = fresh.checkpoint()
    assert made["witness"] and made["seq"] in witness_copies(witness, fresh)
    assert not decoy.exists()


def test_a_new_server_state_folder_takes_the_signed_witness(ward: Ward, tmp_path: Path) -> None:
    config = WardConfig.load(ward.folder)
    admin_key = str(ward.issue_key()["key"])
    served = assemble_ward(
        config.resolved_catalog_url(ward.folder),
        config.resolved_store(ward.folder),
        ward.folder / "keys" / "ward-ed25519.pem",
        state=tmp_path / "state",
    )
    try:
        assert WardConfig.load(tmp_path / "state").witness == str((tmp_path / "witness").resolve())
        assert served.as_key(admin_key).verify().ok
    finally:
        served.close()
