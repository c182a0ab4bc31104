"""Withdrawing a released model, and serving an affected one.

A released model found to be trained on poisoned data must be taken out of use: ``model withdraw``
(whoever may release it, with a reason) records a signed ``model.withdrawn`` event, and from then on
``model files`` and ``model attest`` refuse it. The attacker's view: a catalog writer without the ward
key sets the row back to ``released`` (still refused, ``verify`` reports it); someone without release
rights withdraws (refused); an affected model's files are taken silently (refused without
``--accept-affected``); a release approval made with a key revoked since still counts (it does not)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from dataward.domain.errors import AccessDenied, Conflict, InputError, IntegrityViolation, NotFound, PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import run_cli
from tests.models.conftest import Models

REF = "man-clf@v1"


def _released(models: Models, ref: str = REF) -> None:
    models.as_("rita").model_gate(ref)
    models.as_("ann").approve_model(ref, reason="gate passed, metrics checked")
    models.as_("pat").release_model(ref, reason="first release")


@pytest.fixture(scope="module")
def released_template(models_template: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models ward with man-clf@v1 gated, approved and released (``_released``), built once: most
    tests start from it, each from a copy of its own."""
    root, keys = models_template
    folder = shutil.copytree(root / "ward", tmp_path_factory.mktemp("released") / "ward")
    ward = Ward.open(folder, key=(folder / "credentials").read_text("utf-8").strip())
    _released(Models(ward, root, keys, root / "poisoned.csv"))
    ward.close()
    return folder


@pytest.fixture
def released(released_template: Path, models_template: tuple[Path, dict[str, str]], tmp_path: Path) -> Models:
    """As ``models``, with man-clf@v1 released by pat (approved by ann, gated by rita)."""
    root, keys = models_template
    folder = shutil.copytree(released_template, tmp_path / "ward")
    return Models(
        Ward.open(folder, key=(folder / "credentials").read_text("utf-8").strip()), root, keys, root / "poisoned.csv"
    )


def _catalog(models: Models, sql: str, *args: object) -> None:
    db = sqlite3.connect(models.ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute(sql, args)
    db.close()


def test_a_withdrawn_model_is_shown_traced_and_never_served(released: Models, tmp_path: Path) -> None:
    pat = released.as_("pat")
    done = pat.withdraw_model(REF, reason="trained on the compromised debian mirror")
    assert done["stage"] == "withdrawn" and done["was"] == "released" and done["by"] == "pat"
    (event,) = released.ward.ledger(types=["model.withdrawn"])
    assert event["payload"]["reason"] == "trained on the compromised debian mirror"
    assert event["actor"]["principal"] and event["actor"]["key"]  # signed under pat's key
    shown = released.ward.model(REF)
    assert shown["stage"] == "withdrawn"
    assert shown["withdrawal"]["by"] == "pat" and "debian mirror" in shown["withdrawal"]["reason"]
    assert shown["withdrawal"]["at"] == event["time"]
    listed = {m["ref"]: m for m in released.ward.models("man-clf")}
    assert listed[REF]["stage"] == "withdrawn" and listed[REF]["withdrawal"]["by"] == "pat"
    traced = released.ward.trace(f"model:{REF}")["subject"]
    assert traced["stage"] == "withdrawn" and traced["withdrawal"]["by"] == "pat"
    for serve in (
        lambda: released.as_("rita").model_files(REF, tmp_path / "files"),
        lambda: released.as_("rita").model_files(REF, tmp_path / "files", accept_affected=True),
        lambda: released.as_("rita").model_attestation(REF),
    ):
        with pytest.raises(PolicyViolation, match=r"withdrawn by pat at .*compromised debian mirror") as refused:
            serve()
        assert refused.value.exit_code == 6
    assert not (tmp_path / "files").exists() or not any((tmp_path / "files").iterdir())
    # Final: not released again, and the @released reference no longer finds it.
    with pytest.raises(Conflict):
        pat.release_model(REF)
    with pytest.raises(Exception, match="no version 'released'"):
        released.ward.model("man-clf@released")


def test_the_printed_commands_show_the_withdrawal(released: Models) -> None:
    folder = released.ward.folder
    # The reason is the withdrawer's text, printed as written: brackets are not console markup.
    reason = "poisoned mirror [bold]see INC-7[/bold]"
    done = run_cli(folder, "model", "withdraw", REF, "--reason", reason, key=released.keys["pat"])
    assert done.returncode == 0, done.stderr
    assert "withdrawn" in done.stdout and "poisoned mirror" in done.stdout
    listed = run_cli(folder, "model", "list")
    assert "withdrawn by pat" in listed.stdout and "[bold]" in listed.stdout
    traced = run_cli(folder, "trace", f"model:{REF}")
    assert traced.returncode == 0 and "withdrawn by pat" in traced.stdout
    files = run_cli(folder, "model", "files", REF, "-o", str(folder.parent / "out"))
    assert files.returncode == 6 and "withdrawn by pat" in files.stderr, files.stderr


@pytest.mark.parametrize("who", ["ann", "tom", "rita"])
def test_only_who_may_release_may_withdraw(released: Models, who: str) -> None:
    """The approver, the trainer and the reviewer hold no release right on the model: refused, recorded."""
    with pytest.raises(AccessDenied):
        released.as_(who).withdraw_model(REF, reason="I say so")
    assert released.ward.model(REF)["stage"] == "released"
    assert not released.ward.ledger(types=["model.withdrawn"])
    denied = released.ward.ledger(types=["access.denied"])
    assert denied and denied[-1]["payload"]["action"] == "model.release"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_withdrawal_needs_a_reason(released: Models, reason: str) -> None:
    with pytest.raises(InputError, match="needs a reason"):
        released.as_("pat").withdraw_model(REF, reason=reason)
    assert released.ward.model(REF)["stage"] == "released"


def test_the_printed_withdraw_command_needs_a_reason(released: Models) -> None:
    """The command without ``--reason`` is refused as bad input. It is one command whatever reason the API
    was given above, so it runs once (each run is a process that imports the release gate, ~2 CPU s)."""
    refused = run_cli(released.ward.folder, "model", "withdraw", REF, key=released.keys["pat"])
    assert refused.returncode == 2 and "needs a reason" in refused.stderr
    assert released.ward.model(REF)["stage"] == "released"


def test_withdrawing_twice_or_a_model_never_released_is_a_conflict(released: Models) -> None:
    pat = released.as_("pat")
    with pytest.raises(Conflict, match="man-clf@v2 is candidate and was never released"):
        pat.withdraw_model("man-clf@v2", reason="backdoored")
    pat.withdraw_model(REF, reason="poisoned mirror")
    with pytest.raises(Conflict, match=r"already withdrawn by pat .*poisoned mirror"):
        pat.withdraw_model(REF, reason="again")
    assert len(released.ward.ledger(types=["model.withdrawn"])) == 1
    again = run_cli(released.ward.folder, "model", "withdraw", REF, "--reason", "again", key=released.keys["pat"])
    assert again.returncode == 4 and "already withdrawn" in again.stderr


def test_a_row_set_back_to_released_in_the_catalog_is_still_refused(released: Models, tmp_path: Path) -> None:
    """A catalog writer without the ward key undoes the withdrawal in the catalog: the files and the
    attestation are still refused, the withdrawal still named, and ``verify`` reports the edit."""
    released.as_("pat").withdraw_model(REF, reason="poisoned mirror")
    _catalog(released, "UPDATE model_versions SET stage = 'released' WHERE number = 1")
    for serve in (
        lambda: released.as_("rita").model_files(REF, tmp_path / "files"),
        lambda: released.as_("rita").model_attestation(REF),
    ):
        with pytest.raises(PolicyViolation, match="withdrawn by pat"):
            serve()
    report = released.ward.verify()
    assert not report.ok
    assert any(p.where.startswith("model_versions") and "'withdrawn'" in p.detail for p in report.problems), (
        report.problems
    )
    # Nor is the edited row taken as the ledger's when it is withdrawn again.
    with pytest.raises(IntegrityViolation, match=r"stage is 'released' in the catalog, 'withdrawn' in the signed"):
        released.as_("pat").withdraw_model(REF, reason="again")


def test_a_withdrawal_stays_after_the_catalog_is_restored_from_before_it(released: Models, tmp_path: Path) -> None:
    """A catalog backup taken after the release is put back once the model is withdrawn: its ledger and
    rows agree with each other and say released, so the files were served again and plain ``verify``
    passed. The withdrawal is checkpointed (the restored ledger went backwards: refused) and listed (the
    list of access removals still refuses the files once the newer checkpoints are moved aside, and
    ``verify`` names the withdrawal the catalog lost and the command that records it again)."""
    from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

    folder = released.ward.folder
    released.ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.as_key(released.keys["pat"]).withdraw_model(REF, reason="backdoor found in production")
    admin.close()
    restore(folder, tmp_path / "backup")
    went_back = run_cli(folder, "model", "files", REF, "-o", str(tmp_path / "a"), key=released.keys["rita"])
    assert went_back.returncode == 7 and "went backwards" in went_back.stderr, went_back.stderr
    move_checkpoints_aside(folder, tmp_path / "moved")
    ward = Ward.open(folder)
    assert ward.model(REF)["stage"] == "released"  # the restored catalog's word
    rita = ward.as_key(released.keys["rita"])
    for serve in (
        lambda: rita.model_files(REF, tmp_path / "files", accept_affected=True),
        lambda: rita.model_attestation(REF),
    ):
        with pytest.raises(PolicyViolation, match=r"withdrawn at .*list of access removals holds"):
            serve()
    assert not (tmp_path / "files").exists() or not any((tmp_path / "files").iterdir())
    report = ward.verify()
    assert any(p.kind == "lost_removal" and f"dataward model withdraw {REF}" in p.detail for p in report.problems), (
        report.problems
    )
    # Recorded again, the ledger agrees with the list.
    ward.as_key(released.keys["pat"]).withdraw_model(REF, reason="again after the restore")
    assert ward.verify().ok


def test_files_and_attest_check_the_model_row_against_the_ledger(released: Models, tmp_path: Path) -> None:
    """The files and envelopes served are those the row names: a row pointing elsewhere is refused."""
    with sqlite3.connect(released.ward.folder / "catalog.sqlite") as db:
        other = db.execute("SELECT files_object, signature_object FROM model_versions WHERE number = 2").fetchone()
    _catalog(released, "UPDATE model_versions SET files_object = ?, signature_object = ? WHERE number = 1", *other)
    for serve in (
        lambda: released.as_("rita").model_files(REF, tmp_path / "files"),
        lambda: released.as_("rita").model_attestation(REF),
    ):
        with pytest.raises(IntegrityViolation, match=r"model_versions .*(files_object|signature_object) is"):
            serve()


def test_an_affected_models_files_need_accept_affected(released: Models, tmp_path: Path) -> None:
    released.ward.quarantine_contribution("man#1", reason="the debian mirror was compromised")
    rita = released.as_("rita")
    with pytest.raises(PolicyViolation, match=r"quarantined contribution man#1") as refused:
        rita.model_files(REF, tmp_path / "refused")
    assert "dataward model withdraw man-clf@v1" in (refused.value.hint or "")
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    served = rita.model_files(REF, tmp_path / "files", accept_affected=True)
    assert "man#1" in served["warning"] and "dataward model withdraw" in served["warning"]
    assert (tmp_path / "files" / "clean.skops").is_file()
    # The access review names the command that takes it out of use; once withdrawn, the row is gone.
    (row,) = [r for r in released.ward.access_review() if r["kind"] == "model_affected"]
    assert "dataward model withdraw man-clf@v1" in row["action"]
    released.as_("pat").withdraw_model(REF, reason="trained on man#1")
    assert not [r for r in released.ward.access_review() if r["kind"] == "model_affected"]


def test_a_quarantine_undone_in_the_catalog_still_marks_the_released_model_affected(
    released: Models, tmp_path: Path
) -> None:
    """A catalog writer sets the quarantined man#1 back to merged and moves ``removals.jsonl`` aside: the
    files of man-clf@v1, trained on it, were served without ``--accept-affected`` and the access review
    no longer listed it. Which contributions are quarantined is read from the signed ledger."""
    released.ward.quarantine_contribution("man#1", reason="the debian mirror was compromised")
    _catalog(released, "UPDATE contributions SET status = 'merged' WHERE status = 'quarantined'")
    folder = released.ward.folder
    (folder / "removals.jsonl").rename(tmp_path / "removals.jsonl")
    admin = Ward.open(folder)  # a new process: it never read the list moved aside
    with pytest.raises(PolicyViolation, match=r"is affected: .*status is 'merged' in the catalog, 'quarantined'"):
        admin.as_key(released.keys["rita"]).model_files(REF, tmp_path / "files")
    (row,) = [r for r in admin.access_review() if r["kind"] == "model_affected"]
    assert REF in row["detail"]


def test_the_printed_files_command_refuses_an_affected_model_and_warns_when_accepted(released: Models) -> None:
    released.ward.quarantine_contribution("man#1", reason="the debian mirror was compromised")
    folder = released.ward.folder
    refused = run_cli(folder, "model", "files", REF, "-o", str(folder.parent / "a"))
    assert refused.returncode == 6 and "man#1" in refused.stderr and "model withdraw" in refused.stderr
    taken = run_cli(folder, "model", "files", REF, "-o", str(folder.parent / "b"), "--accept-affected", "--json")
    assert taken.returncode == 0, taken.stderr
    assert "warning" in taken.stderr and "man#1" in taken.stderr
    assert json.loads(taken.stdout)["model"] == REF  # stdout stays one document


def test_a_release_approval_made_with_a_key_revoked_since_no_longer_counts(models: Models) -> None:
    models.as_("rita").model_gate(REF)
    models.as_("ann").approve_model(REF, reason="gate passed")
    models.ward.revoke_key(models.keys["ann"], reason="laptop stolen")
    with pytest.raises(PolicyViolation, match=r"0 of 1 approval.*revoked since \(laptop stolen\)"):
        models.as_("pat").release_model(REF)
    # Approved again with a key that stands, it counts.
    ann = models.ward.as_key(models.ward.issue_key("ann")["key"])
    ann.approve_model(REF, reason="gate passed, approved again")
    assert models.as_("pat").release_model(REF)["stage"] == "released"


def test_a_release_approval_by_an_approver_disabled_since_no_longer_counts(models: Models) -> None:
    """Enabled again, the approver's earlier approval still does not count: who gave it is unknown."""
    models.as_("rita").model_gate(REF)
    models.as_("ann").approve_model(REF, reason="gate passed")
    models.ward.disable_principal("ann", reason="left the company")
    models.ward.enable_principal("ann", reason="came back")
    with pytest.raises(PolicyViolation, match=r"approver disabled since \(left the company\)"):
        models.as_("pat").release_model(REF)


def test_a_quarantine_by_key_lists_the_model_releases_it_approved(models: Models) -> None:
    """A leaked key's blast radius includes the model releases approved with it: listed by the quarantine
    of the key, each saying whether it still counts (quarantine of a key listed data approvals alone)."""
    models.as_("rita").model_gate(REF)
    models.as_("ann").approve_model(REF, reason="gate passed")
    key = models.keys["ann"].rsplit("_", 1)[0]
    before = models.ward.quarantine_by(key, reason="key leaked")
    listed = [a for a in before["approvals"] if a["on"] == "model"]
    assert [(a["approved"], a["by"], a["counts"]) for a in listed] == [(REF, "ann", True)]
    models.ward.revoke_key(models.keys["ann"], reason="leaked")
    after = models.ward.quarantine_by(key, reason="key leaked, revoked")
    [listed] = [a for a in after["approvals"] if a["on"] == "model"]
    assert not listed["counts"] and "revoked" in listed["why"]


def test_a_quarantine_by_key_hides_a_model_release_approval_from_a_caller_who_cannot_read_the_model(
    models: Models,
) -> None:
    """``olga`` may quarantine in dataset ``other`` alone: ann's key, which approved only a release of
    ``man-clf`` (a model olga may not read), answers as a key that does not exist, naming neither the
    model nor ann; once olga may read the model, the approval is listed."""
    models.as_("rita").model_gate(REF)
    models.as_("ann").approve_model(REF, reason="gate passed")
    ward = models.ward
    ward.create_dataset("other", Schema.parse("label", ["text:text"]))
    ward.create_principal("olga")
    ward.grant("olga", "owner", "dataset:other")
    olga = ward.as_key(ward.issue_key("olga")["key"])
    key = models.keys["ann"].rsplit("_", 1)[0]
    absent = "dw_zzzzzzzz"
    answers = []
    for ref in (key, absent):
        with pytest.raises(NotFound) as info:
            olga.quarantine_by(ref, reason="probe")
        answers.append((info.value.message.replace(ref, "REF"), info.value.hint))
    assert answers[0] == answers[1], answers
    assert "man-clf" not in str(answers[0]) and "ann" not in str(answers[0])
    ward.grant("olga", "reader", "model:man-clf")
    listed = olga.quarantine_by(key, reason="probe")["approvals"]
    assert [(a["approved"], a["by"]) for a in listed] == [(REF, "ann")]


def test_a_withdrawal_line_reads_back_and_an_older_format_cannot_name_one() -> None:
    """A withdrawal is listed from line format 5 on: its line names the model version and folds into the
    withdrawals in force; a line of an earlier format naming one is malformed (no ward wrote one). A
    format-5 line (no ``model_files``) still reads."""
    from dataward.access import removals
    from dataward.ledger.removal_line import RemovalLine
    from dataward.ledger.signing import SignatureVerifier, WardSigner

    signer = WardSigner.generate()
    withdrawn = removals.removed_by("model.withdrawn", "t", {"model": "m", "model_version": "mv_1"}, {})
    assert withdrawn is not None and withdrawn.models == ("mv_1",)
    line = RemovalLine.sign(
        signer, ward="w", n=0, prev="p", seq=9, hash="h", type="model.withdrawn", time="t", removed=withdrawn
    )
    read = RemovalLine.from_json(line.to_json())
    assert line.format == 6 and read.verify_signature(SignatureVerifier(signer.public_key_b64))
    fact = removals.fold([read.fact()]).withdrawal("mv_1")
    assert fact is not None and fact.seq == 9
    older = {**json.loads(line.to_json()), "format": 4}
    with pytest.raises(InputError, match="models"):
        RemovalLine.from_json(json.dumps(older))
    assert RemovalLine.from_json(json.dumps({**json.loads(line.to_json()), "format": 5})).models == ("mv_1",)


def test_a_withdrawal_line_carries_the_withdrawn_files_digests() -> None:
    """From line format 6 on, a withdrawal's line carries the SHA-256 of the artifact and of each model
    file (the event's ``digest`` and ``files``), folded into the bytes withdrawn; a format-5 line cannot
    name them."""
    from dataward.access import removals
    from dataward.ledger.removal_line import RemovalLine
    from dataward.ledger.signing import WardSigner

    payload = {"digest": "a" * 64, "files": ["b" * 64, "a" * 64]}
    withdrawn = removals.removed_by("model.withdrawn", "t", {"model": "m", "model_version": "mv_1"}, payload)
    assert withdrawn is not None and withdrawn.model_files == ("a" * 64, "b" * 64)
    line = RemovalLine.sign(
        WardSigner.generate(),
        ward="w",
        n=0,
        prev="p",
        seq=9,
        hash="h",
        type="model.withdrawn",
        time="t",
        removed=withdrawn,
    )
    read = RemovalLine.from_json(line.to_json())
    state = removals.fold([read.fact()])
    assert set(state.withdrawn_files) == {"a" * 64, "b" * 64} and state.withdrawn_files["b" * 64].seq == 9
    with pytest.raises(InputError, match="model_files"):
        RemovalLine.from_json(json.dumps({**json.loads(line.to_json()), "format": 5}))


def _register_again(models: Models, path: Path) -> str:
    """tom registers the file at ``path`` as a new version of man-clf (a run on man@training); its ref."""
    import dataward

    with dataward.training_run("man@training", model="man-clf", ward=models.as_("tom")) as run:
        run.load()
        run.log_artifact(path)
    return str(run.model_version["ref"])


def test_the_withdrawn_files_registered_again_are_never_approved_released_or_served(
    released: Models, tmp_path: Path
) -> None:
    """man-clf@v1 withdrawn, its very .skops (the same SHA-256, under another name) registered again as a
    new version, approved, released and served: the withdrawal was keyed by the version id alone, while
    a block is refused on the bytes under any name. A withdrawal is final on the bytes too."""
    released.as_("pat").withdraw_model(REF, reason="backdoor found in production")
    (event,) = released.ward.ledger(types=["model.withdrawn"])
    again = tmp_path / "renamed.skops"
    shutil.copyfile(released.root / "clean.skops", again)
    ref = _register_again(released, again)
    assert ref != REF
    said = r"it holds renamed.skops, the very bytes \(SHA-256\) of man-clf@v1, withdrawn by pat at .*backdoor found"
    for act in (
        lambda: released.as_("ann").approve_model(ref, reason="retrained"),
        lambda: released.as_("pat").release_model(ref, reason="second"),
        lambda: released.as_("rita").model_files(ref, tmp_path / "files"),
        lambda: released.as_("rita").model_attestation(ref),
    ):
        with pytest.raises(PolicyViolation, match=said) as refused:
            act()
        assert refused.value.exit_code == 6
    assert not (tmp_path / "files").exists() or not any((tmp_path / "files").iterdir())
    assert set(event["payload"]["files"]) | {event["payload"]["digest"]} <= _listed_digests(released)
    # Another version's own files are untouched: man-clf@v2 (other bytes) is still served.
    assert released.as_("rita").model_files("man-clf@v2", tmp_path / "v2")["model"] == "man-clf@v2"


def _listed_digests(models: Models) -> set[str]:
    """Every digest the ward's list of access removals carries for withdrawn models."""
    text = (models.ward.folder / "removals.jsonl").read_text("utf-8")
    return {d for line in text.splitlines() if line for d in json.loads(line).get("model_files", [])}


def test_withdrawn_files_stay_refused_after_the_catalog_is_restored_from_before_them(
    released: Models, tmp_path: Path
) -> None:
    """A new version released and withdrawn, then the catalog restored from a backup taken before it was
    even registered: neither the restored catalog nor its ledger knows the version, yet the same file
    registered again is refused, by the digests the list of access removals carries."""
    import pandas as pd
    import skops.io as sio

    from tests.models.conftest import text_model
    from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

    new_file = tmp_path / "new.skops"
    frame = pd.read_csv(released.root / "baseline.csv", dtype=str)
    sio.dump(text_model(frame.sample(frac=1.0, random_state=7)), new_file)  # other bytes than man-clf@v1's
    folder = released.ward.folder
    released.ward.close()
    back_up(folder, tmp_path / "backup")
    ward = Ward.open(folder)
    models = Models(ward, released.root, released.keys, released.poisoned)
    ref = _register_again(models, new_file)
    _released(models, ref)
    models.as_("pat").withdraw_model(ref, reason="exfiltrates prompts")
    ward.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    ward = Ward.open(folder)
    models = Models(ward, released.root, released.keys, released.poisoned)
    assert all(m["ref"] != ref for m in ward.models("man-clf")) or ward.model(ref)["stage"] == "candidate"
    again = _register_again(models, new_file)
    for act in (
        lambda: models.as_("ann").approve_model(again, reason="looks fine"),
        lambda: models.as_("pat").release_model(again, reason="again"),
        lambda: models.as_("rita").model_files(again, tmp_path / "files"),
    ):
        with pytest.raises(PolicyViolation, match=r"new.skops, the very bytes .* withdrawn at .*list of access"):
            act()
