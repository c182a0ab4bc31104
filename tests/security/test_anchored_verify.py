"""Verification has an anchor: each attack on the ward folder is played, and `dataward verify` with a
checkpoint and a pinned public key kept outside the ward catches it with exit code 7 and names the
first missing or rewritten event. Without the anchor, the same attacks pass a plain `verify`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.errors import AccessDenied, IntegrityViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.security.attacks import (
    delete_kept_checkpoints,
    delete_tail,
    events_of,
    replace_key_and_resign,
    rewrite_event,
)

runner = CliRunner()


def cli(ward: Path, *args: str) -> tuple[int, dict]:
    """Run the CLI in-process (``--json``); returns the exit code and the JSON document."""
    env = {"DATAWARD_KEY": "", "COLUMNS": "200"}
    result = runner.invoke(app, ["--ward", str(ward), *args, "--json"], env=env)
    try:
        document = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"exit {result.exit_code}: {result.stdout}\n{result.output}") from None
    return result.exit_code, document


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ward with history: two merges, a promotion (checkpointed by the ward), then an approval and
    three refused requests - the tail an attacker wants gone."""
    root = tmp_path_factory.mktemp("history")
    ward, _ = Ward.init(root / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    merge_reviewed(ward, ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 40)), source="a")["id"])
    ward.promote("wine@v1", reason="first baseline")
    ward.contribute("wine", write_csv(root / "b.csv", wine_rows(40, 80)), source="b")
    ward.create_principal("bob")
    ward.grant("bob", "approver", "dataset:wine")
    ward.create_principal("scraper", kind="service", owner="bob")
    ward.grant("scraper", "contributor", "dataset:wine")
    bob = ward.as_key(ward.issue_key("bob")["key"])
    scraper = ward.as_key(ward.issue_key("scraper")["key"])
    bob.approve("wine#2", reason="checked")
    for _ in range(3):
        with pytest.raises(AccessDenied):
            scraper.promote("wine@v1")
    assert [e.type for e in events_of(ward)[-4:]] == ["contribution.approved"] + ["access.denied"] * 3
    ward.db.dispose()
    return root / "ward"


@pytest.fixture
def setup(base: Path, tmp_path: Path) -> tuple[Ward, Path, Path]:
    """A copy of the ward, its public key and a checkpoint of its head kept outside the ward."""
    folder = tmp_path / "ward"
    shutil.copytree(base, folder)
    outside = tmp_path / "auditor"
    outside.mkdir()
    code, _ = cli(folder, "ledger", "public-key", "-o", str(outside / "ward.pem"))
    assert code == 0
    result = runner.invoke(app, ["--ward", str(folder), "checkpoint", "-o", str(outside / "checkpoint.json")])
    assert result.exit_code == 0, result.output
    return Ward.open(folder), outside / "checkpoint.json", outside / "ward.pem"


def anchored(ward: Ward, checkpoint: Path, key: Path) -> tuple[int, dict]:
    return cli(ward.folder, "verify", "--checkpoint", str(checkpoint), "--public-key", str(key))


def kinds(report: dict) -> set[tuple[str, str]]:
    return {(p["area"], p["kind"]) for p in report["problems"]}


def test_happy_path_extends_the_checkpoint_under_the_pinned_key(setup: tuple[Ward, Path, Path]) -> None:
    ward, checkpoint, key = setup
    code, report = anchored(ward, checkpoint, key)
    assert code == 0, report["problems"]
    assert report["ok"] and report["first_bad_event"] is None
    assert report["anchor"]["key"] == "pinned"
    statuses = {(c["seq"], c["status"]) for c in report["anchor"]["checkpoints"]}
    head = events_of(ward)[-1].seq
    assert (head, "extends") in statuses
    # The promotion left its own checkpoint in the ward.
    promoted = next(e.seq for e in events_of(ward) if e.type == "version.promoted")
    assert (promoted, "extends") in statuses
    # A ledger that grew since the checkpoint still extends it.
    ward.create_principal("carol")
    code, report = anchored(ward, checkpoint, key)
    assert code == 0 and report["ok"]


@pytest.mark.parametrize("with_rows", [True, False], ids=["with-rows", "events-only"])
def test_deleted_tail_is_named(setup: tuple[Ward, Path, Path], with_rows: bool) -> None:
    ward, checkpoint, key = setup
    deleted = delete_tail(ward, 4, with_rows=with_rows)
    plain, report = cli(ward.folder, "verify")
    if with_rows:
        assert plain == 0, "the cover-up is complete: without an anchor nothing looks wrong"
    code, report = anchored(ward, checkpoint, key)
    assert code == 7
    assert report["first_bad_event"] == deleted[0].seq
    missing = [p for p in report["problems"] if p["kind"] == "missing"]
    assert len(missing) == 1 and missing[0]["where"] == f"event #{deleted[0].seq}"
    assert f"#{deleted[-1].seq}" in missing[0]["detail"]
    if not with_rows:
        assert ("catalog", "extra_row") in kinds(report)


def test_whole_chain_resigned_with_a_new_key_and_a_forged_admin(setup: tuple[Ward, Path, Path]) -> None:
    ward, checkpoint, key = setup
    forged, _ = replace_key_and_resign(ward)
    assert "mallory" in {p["name"] for p in forged.principals()}
    plain, report = cli(forged.folder, "verify")
    assert plain == 0, "re-signed consistently: the ward's own key vouches for it"
    code, report = cli(forged.folder, "verify", "--public-key", str(key))
    assert code == 7 and report["first_bad_event"] == 1
    assert ("ledger", "bad_signature") in kinds(report) and ("ledger", "key_mismatch") in kinds(report)
    where = {p["where"] for p in report["problems"] if p["kind"] == "key_mismatch"}
    assert {"ward signing key", "catalog", "first ledger event"} <= where
    # The forged checkpoint the attacker left in the ward does not verify under the pinned key.
    assert ("checkpoint", "bad_signature") in kinds(report)
    code, report = anchored(forged, checkpoint, key)
    assert code == 7 and report["first_bad_event"] == 1
    assert ("ledger", "rewritten") in kinds(report)
    # Without the pinned key the old checkpoint still betrays the swap: the ward's new key did not sign it.
    code, report = cli(forged.folder, "verify", "--checkpoint", str(checkpoint))
    assert code == 7 and ("checkpoint", "bad_signature") in kinds(report)


def test_edited_payload_is_named(setup: tuple[Ward, Path, Path]) -> None:
    ward, checkpoint, key = setup
    target = next(e for e in events_of(ward) if e.type == "contribution.approved")
    rewrite_event(ward, target.seq, {"reason": "never checked"}, signer=None)
    code, report = anchored(ward, checkpoint, key)
    assert code == 7 and report["first_bad_event"] == target.seq
    assert ("ledger", "altered") in kinds(report)


def test_history_rewritten_with_the_stolen_ward_key_is_caught_by_the_checkpoint(
    setup: tuple[Ward, Path, Path],
) -> None:
    ward, checkpoint, key = setup
    events = events_of(ward)
    promoted = next(e.seq for e in events if e.type == "version.promoted")
    # The auditor also keeps the checkpoint the ward made after the promotion (as a witness would).
    kept = next(p for p in (ward.folder / "checkpoints").glob("*.json") if json.loads(p.read_text())["seq"] == promoted)
    earlier = checkpoint.with_name("after-promotion.json")
    shutil.copy(kept, earlier)
    target = next(e for e in events if e.type == "contribution.approved")
    rewrite_event(ward, target.seq, {"reason": "never checked"}, signer=ward.signer)
    plain, _ = cli(ward.folder, "verify")
    assert plain == 0, "re-hashed and re-signed with the real key: internally consistent"
    code, report = cli(
        ward.folder, "verify", "--checkpoint", str(checkpoint), "--checkpoint", str(earlier), "--public-key", str(key)
    )
    assert code == 7
    rewritten = [p for p in report["problems"] if p["kind"] == "rewritten"]
    assert len(rewritten) == 1 and rewritten[0]["event"] == events[-1].seq
    assert report["first_bad_event"] == events[-1].seq
    assert f"rewritten after event #{promoted} and at or before #{events[-1].seq}" in rewritten[0]["detail"]


def test_checkpoint_of_another_ward_is_refused(setup: tuple[Ward, Path, Path], tmp_path: Path) -> None:
    ward, _checkpoint, key = setup
    other, _ = Ward.init(tmp_path / "other")
    foreign = tmp_path / "foreign.json"
    result = runner.invoke(app, ["--ward", str(other.folder), "checkpoint", "-o", str(foreign)])
    assert result.exit_code == 0, result.output
    code, report = anchored(ward, foreign, key)
    assert code == 7 and ("checkpoint", "wrong_ward") in kinds(report)
    assert any(other.ward_id in p["detail"] for p in report["problems"])


@pytest.mark.parametrize("tamper", ["signature", "lowered-seq"])
def test_tampered_checkpoint_is_refused(setup: tuple[Ward, Path, Path], tamper: str) -> None:
    ward, checkpoint, key = setup
    deleted = delete_tail(ward, 2, with_rows=True)
    document = json.loads(checkpoint.read_text())
    if tamper == "signature":
        sig = bytearray(document["sig"].encode())
        sig[5] = ord("A") if sig[5] != ord("A") else ord("B")
        document["sig"] = sig.decode()
    else:
        # Make the checkpoint agree with the truncated ledger: its signature no longer covers it.
        head = events_of(ward)[-1]
        document["seq"], document["head"] = head.seq, head.hash
    checkpoint.write_text(json.dumps(document))
    code, report = anchored(ward, checkpoint, key)
    assert code == 7 and ("checkpoint", "bad_signature") in kinds(report)
    assert report["first_bad_event"] is None or report["first_bad_event"] == deleted[0].seq


def test_malformed_checkpoint_or_key_is_bad_input(setup: tuple[Ward, Path, Path], tmp_path: Path) -> None:
    ward, _checkpoint, _key = setup
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert cli(ward.folder, "verify", "--checkpoint", str(junk))[0] == 2
    assert cli(ward.folder, "verify", "--public-key", str(junk))[0] == 2


def test_witness_copy_outside_the_ward_catches_a_deleted_tail(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    witness = tmp_path / "elsewhere" / "witness"
    code, document = cli(ward.folder, "checkpoint", "witness", str(ward.folder / "checkpoints"))
    assert code == 2 and "inside the ward" in document["message"]
    code, document = cli(ward.folder, "checkpoint", "witness", str(witness))
    assert code == 0 and document["witness"] == str(witness.resolve())
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 30)), source="a")["id"])
    ward.promote("wine@v1")
    promoted = events_of(ward)[-1]
    assert promoted.type == "version.promoted"
    # The witness holds the checkpoint taken when it was set, and the promotion's.
    set_seq = next(e.seq for e in events_of(ward) if e.type == "ward.witness_set")
    copies = sorted(
        (json.loads(p.read_text()) for p in (witness / ward.ward_id).glob("*.json")), key=lambda c: c["seq"]
    )
    assert [c["seq"] for c in copies] == [set_seq, promoted.seq]
    assert copies[-1]["head"] == promoted.hash
    # Promotions also leave a copy in the ward; the attacker deletes those, not the witness's.
    delete_tail(ward, 1, with_rows=True)
    delete_kept_checkpoints(ward)
    code, report = cli(ward.folder, "verify")
    assert code == 7 and report["first_bad_event"] == promoted.seq
    # The witness folder can also be handed to verify as is.
    code, report = cli(ward.folder, "verify", "--checkpoint", str(witness))
    assert code == 7 and report["first_bad_event"] == promoted.seq
    # This ward object read the promotion: it refuses the shorter ledger. A new process cannot tell.
    with pytest.raises(IntegrityViolation, match="went backwards"):
        ward.create_principal("reader")
    ward = Ward.open(ward.folder)
    # Only an admin may move the witness, and the change is itself a ledger event.
    ward.create_principal("reader")
    ward.grant("reader", "reader")
    reader = ward.as_key(ward.issue_key("reader")["key"])
    with pytest.raises(AccessDenied):
        reader.set_witness(str(tmp_path / "mine"))
    assert any(e.type == "ward.witness_set" for e in events_of(ward))


def test_real_process_exits_7_on_a_deleted_tail(setup: tuple[Ward, Path, Path]) -> None:
    ward, checkpoint, key = setup
    delete_tail(ward, 1, with_rows=True)
    env = {**os.environ, "DATAWARD_WARD": str(ward.folder), "COLUMNS": "200"}
    env.pop("DATAWARD_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "dataward", "verify", "--checkpoint", str(checkpoint), "--public-key", str(key)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 7, result.stderr
    assert f"first missing or rewritten event: #{events_of(ward)[-1].seq + 1}" in result.stdout


@pytest.mark.parametrize("scopes", [["reader"], ["dataset:wine"], ["ledger.read"]])
def test_an_admins_narrowed_key_cannot_move_or_stop_the_witness(
    setup: tuple[Ward, Path, Path], tmp_path: Path, scopes: list[str]
) -> None:
    """An admin's key narrowed to reading (a CI job's, say) leaks: it must not turn the witness off, after
    which the newest events could be deleted unseen, nor point it elsewhere. The admin grant counts only
    through a key not narrowed away from it."""
    ward, _, _ = setup
    ward.set_witness(str(tmp_path / "witness"))
    narrow = ward.as_key(ward.issue_key(scopes=scopes)["key"])
    with pytest.raises(AccessDenied):
        narrow.set_witness(None)
    with pytest.raises(AccessDenied):
        narrow.set_witness(str(tmp_path / "mine"))
    assert ward.witness()["witness"] == str((tmp_path / "witness").resolve())
