"""Overriding a gate's block: two distinct owners or admins, never the submitter or its bot's owner;
afterwards the contribution is a review like any other, and the override is traced, audited, verified."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from dataward.domain.errors import AccessDenied, Conflict, InputError, IntegrityViolation, PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_schema_specs, write_csv

POLICY = "gate:\n  detectors: [duplicates]\n"


def _build_team(tmp_path: Path) -> dict[str, Ward]:
    """wine with a training version; owners ann (who owns the scraper bot), ben (who owns benbot) and
    cat; dan is approver and reviewer; sam is an owner who also contributes."""
    admin, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    admin.set_policy("wine", POLICY)
    admin.merge(admin.contribute("wine-val", write_csv(tmp_path / "v.csv", wine_rows(120, 178)), source="c")["ref"])
    for name in ("ann", "ben", "cat", "dan", "sam"):
        admin.create_principal(name)
    admin.create_principal("scraper", kind="service", owner="ann")
    admin.create_principal("benbot", kind="service", owner="ben")
    for name in ("ann", "ben", "cat", "sam", "benbot"):
        admin.grant(name, "owner", "dataset:wine")
    admin.grant("dan", "approver", "dataset:wine")
    admin.grant("dan", "reviewer", "dataset:wine")
    admin.grant("scraper", "contributor", "dataset:wine")
    team = {"admin": admin}
    for name in ("ann", "ben", "cat", "dan", "sam", "scraper", "benbot"):
        team[name] = admin.as_key(admin.issue_key(name)["key"])
    first = admin.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 120, shuffled=True)), source="a")
    assert first["gate"]["verdict"] != "block"
    if pending := [item["id"] for item in admin.review_list(contribution=first["ref"])]:
        team["dan"].review_decide(pending, "accept", reason="checked")
    team["dan"].approve(first["ref"], reason="checked")
    admin.merge(first["ref"])
    admin.promote("wine@v1")
    return team


@pytest.fixture(scope="module")
def team_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The team's ward (``_build_team``: its gated, approved, merged and promoted training version is most
    of a test's setup) built once per module, and the keys of its people."""
    team = _build_team(tmp_path_factory.mktemp("team"))
    keys = {name: str(ward.credential) for name, ward in team.items() if name != "admin"}
    team["admin"].close()
    return team["admin"].folder, keys


@pytest.fixture
def team(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Ward]:
    """The team of ``_build_team`` in a ward of the test's own at ``tmp_path / "ward"``: a copy of the
    module's ``team_template`` when the test's module imports that fixture too (this one and
    test_transferred_bot_separation), else built afresh (the other modules that import ``team``)."""
    if not hasattr(request.module, "team_template"):
        return _build_team(tmp_path)
    template, keys = request.getfixturevalue("team_template")
    folder = shutil.copytree(template, tmp_path / "ward")
    admin = Ward.open(folder, key=(folder / "credentials").read_text("utf-8").strip())
    # The copy's signed ledger folded in this process, as the build's merge and promotion fold it: a test
    # of what the process folded before another process wrote starts from the same state.
    admin.contribution("wine#1")
    return {"admin": admin, **{name: admin.as_key(key) for name, key in keys.items()}}


def _blocked(ward: Ward, tmp_path: Path, name: str = "b") -> dict:
    """A batch of trusted records under other labels: exact conflicts, which the gate blocks."""
    rows = wine_rows(0, 40, shuffled=True)
    for row in rows:
        row["cultivar"] = (int(row["cultivar"]) + 1) % 3
    c = ward.contribute("wine", write_csv(tmp_path / f"{name}.csv", rows), source=f"https://vendor.example/{name}")
    assert c["gate"]["verdict"] == "block"
    return c


def _denials(ward: Ward) -> list[dict]:
    return [e for e in ward.ledger(types=["access.denied"]) if e["payload"]["action"] == "gate.override"]


def test_two_distinct_owners_lift_a_block_and_it_becomes_a_review(team: dict[str, Ward], tmp_path: Path) -> None:
    c = _blocked(team["scraper"], tmp_path)
    ref = c["ref"]
    with pytest.raises(PolicyViolation, match="block"):
        team["admin"].merge(ref)
    first = team["ben"].override_block(ref, reason="vendor relabelled these on purpose; checked 10 rows")
    assert first["status"] == "requested" and first["gate_verdict"] == "block"
    assert team["admin"].contribution(ref)["gate_verdict"] == "block"
    done = team["cat"].override_block(ref, reason="agreed after reading the vendor's changelog")
    assert done["status"] == "overridden" and done["requested_by"] == "ben" and done["role"] == "owner"
    assert team["admin"].contribution(ref)["gate_verdict"] == "review"

    # Flagged records still wait for a reviewer, and the policy's approval still applies.
    queue = team["dan"].review_list(contribution=ref)
    assert len(queue) == 40
    with pytest.raises(Conflict, match="await review"):
        team["admin"].merge(ref)
    for item in queue:
        team["dan"].review_decide([item["id"]], "accept", reason="relabelled by the vendor")
    with pytest.raises(PolicyViolation, match="0 of 1 valid approval"):
        team["admin"].merge(ref)
    team["dan"].approve(ref, reason="vendor changelog checked")
    assert team["admin"].merge(ref)["records"] == 160

    events = team["admin"].ledger(types=["gate.override", "gate.overridden"], newest_first=False)
    assert [e["type"] for e in events] == ["gate.override.requested", "gate.overridden"]
    assert events[1]["payload"]["previous_verdict"] == "block" and events[1]["payload"]["verdict"] == "review"

    traced = team["admin"].trace(ref)["contributions"][0]["overrides"]
    assert [(o["step"], o["by"]) for o in traced] == [("requested", "ben"), ("confirmed", "cat")]
    assert traced[0]["reason"].startswith("vendor relabelled")
    audit = [r for r in team["admin"].access_review() if r["kind"] == "block_overridden"]
    assert len(audit) == 1 and audit[0]["contribution"] == ref and audit[0]["principal"] == "cat"
    assert "ben" in audit[0]["detail"] and "changelog" in audit[0]["detail"] and audit[0]["at"]
    assert team["admin"].verify().ok


def test_the_bots_owner_the_same_owner_twice_and_the_same_human_are_refused(
    team: dict[str, Ward], tmp_path: Path
) -> None:
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    with pytest.raises(PolicyViolation, match="owns the service principal"):
        team["ann"].override_block(ref, reason="my bot is fine")
    team["ben"].override_block(ref, reason="checked")
    with pytest.raises(PolicyViolation, match="already requested"):
        team["ben"].override_block(ref, reason="really checked")
    with pytest.raises(PolicyViolation, match="same human"):
        team["benbot"].override_block(ref, reason="my human says so")
    assert len(_denials(team["admin"])) == 3
    assert team["admin"].contribution(ref)["gate_verdict"] == "block"
    pending = [r for r in team["admin"].access_review() if r["kind"] == "block_override_pending"]
    assert [r["principal"] for r in pending] == ["ben"]
    team["admin"].reject(ref, reason="poisoned after all")
    assert not [r for r in team["admin"].access_review() if r["kind"] == "block_override_pending"]


def test_a_request_by_someone_who_lost_their_rights_counts_for_nothing(team: dict[str, Ward], tmp_path: Path) -> None:
    """ben asks, then is taken off the dataset (or disabled): cat's confirmation would lift the block on
    one standing owner's word. It is a fresh request instead, and a second standing owner must confirm."""
    admin = team["admin"]
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    team["ben"].override_block(ref, reason="checked")
    admin.revoke_grant("ben", "owner", "dataset:wine")
    second = team["cat"].override_block(ref, reason="agreed")
    assert second["status"] == "requested" and second["gate_verdict"] == "block"
    assert admin.contribution(ref)["gate_verdict"] == "block"
    done = team["sam"].override_block(ref, reason="agreed too")
    assert done["status"] == "overridden" and done["requested_by"] == "cat"
    assert admin.contribution(ref)["gate_verdict"] == "review"

    # The same for a requester whose principal was disabled, and for one acting through their bot.
    ref = _blocked(team["scraper"], tmp_path, "b2")["ref"]
    team["benbot"].override_block(ref, reason="my human checked")
    admin.disable_principal("ben", reason="left the company")
    assert team["cat"].override_block(ref, reason="agreed")["status"] == "requested"
    assert admin.contribution(ref)["gate_verdict"] == "block"
    assert admin.verify().ok


def test_the_submitter_cannot_take_part_even_as_owner(team: dict[str, Ward], tmp_path: Path) -> None:
    ref = _blocked(team["sam"], tmp_path)["ref"]
    with pytest.raises(PolicyViolation, match="submitted this contribution"):
        team["sam"].override_block(ref, reason="mine is fine")
    team["ben"].override_block(ref, reason="checked")
    with pytest.raises(PolicyViolation, match="submitted this contribution"):
        team["sam"].override_block(ref, reason="confirming my own")
    assert team["admin"].contribution(ref)["gate_verdict"] == "block"


def test_approvers_and_reviewers_cannot_override(team: dict[str, Ward], tmp_path: Path) -> None:
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    with pytest.raises(AccessDenied) as refused:
        team["dan"].override_block(ref, reason="I approve lots of things")
    assert type(refused.value) is AccessDenied
    dan = next(p["id"] for p in team["admin"].principals() if p["name"] == "dan")
    assert _denials(team["admin"])[0]["actor"]["principal"] == dan


def test_only_a_block_is_overridden_and_only_once(team: dict[str, Ward], tmp_path: Path) -> None:
    rows = wine_rows(0, 10, shuffled=True)  # exact copies of trusted records: not a block
    clean = team["scraper"].contribute("wine", write_csv(tmp_path / "c.csv", rows), source="s")
    assert clean["gate"]["verdict"] != "block"
    with pytest.raises(Conflict, match="only a block"):
        team["ben"].override_block(clean["ref"], reason="no need")
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    with pytest.raises(InputError, match="reason"):
        team["ben"].override_block(ref, reason="  ")
    team["ben"].override_block(ref, reason="checked")
    team["cat"].override_block(ref, reason="checked too")
    with pytest.raises(Conflict, match="already overridden"):
        team["admin"].override_block(ref, reason="a third time")
    # A re-run of the gate keeps the override for this content: it adds flags, not a block.
    rerun = team["dan"].run_gate(ref)
    assert rerun["verdict"] == "block" and team["admin"].contribution(ref)["gate_verdict"] == "review"
    team["admin"].reject(ref, reason="changed our minds")
    with pytest.raises(Conflict):
        team["ben"].override_block(ref, reason="after rejection")


def test_verify_catches_an_override_edited_behind_the_ledgers_back(team: dict[str, Ward], tmp_path: Path) -> None:
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    team["ben"].override_block(ref, reason="checked")
    team["cat"].override_block(ref, reason="checked too")
    assert team["admin"].verify().ok
    db = sqlite3.connect(team["admin"].folder / "catalog.sqlite")
    db.execute("UPDATE gate_overrides SET reason = 'nothing to see' WHERE step = 'requested'")
    db.execute("DELETE FROM gate_overrides WHERE step = 'confirmed'")
    db.commit()
    db.close()
    problems = {(p.kind, p.where.split()[0]) for p in team["admin"].verify().problems}
    assert ("altered_row", "gate_overrides") in problems and ("missing_row", "gate_overrides") in problems


def test_a_request_written_into_the_catalog_alone_is_no_second_person(team: dict[str, Ward], tmp_path: Path) -> None:
    """ben's request is forged straight into the catalog's override table, with no signed event: cat's
    override would confirm it and lift the block on cat's word alone. It is refused instead."""
    admin = team["admin"]
    c = _blocked(team["scraper"], tmp_path)
    ben = next(p["id"] for p in admin.principals() if p["name"] == "ben")
    db = sqlite3.connect(admin.folder / "catalog.sqlite", isolation_level=None)
    db.execute(
        "INSERT INTO gate_overrides (id, contribution_id, gate_run, principal_id, step, role, reason, "
        "content_hash, created_at) SELECT 'ov_forged', id, gate_run, ?, 'requested', 'owner', 'checked', "
        "content_hash, created_at FROM contributions WHERE id = ?",
        (ben, c["id"]),
    )
    db.close()
    with pytest.raises(IntegrityViolation, match=r"ov_forged"):
        team["cat"].override_block(c["ref"], reason="agreed")
    assert admin.contribution(c["ref"])["gate_verdict"] == "block"
    assert not admin.ledger(types=["gate.overridden"])


def test_the_printed_override_names_a_review_list_command_that_runs(
    team: dict[str, Ward], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confirmation printed by `dataward gate override` names `dataward review list --contribution
    REF`: the option exists and lists that contribution's flagged records only."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    ref = _blocked(team["scraper"], tmp_path)["ref"]
    _blocked(team["scraper"], tmp_path, name="other")  # another contribution's records stay out of the list
    team["ben"].override_block(ref, reason="vendor relabelled these on purpose")
    monkeypatch.setenv("DATAWARD_WARD", str(tmp_path / "ward"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    runner = CliRunner()
    monkeypatch.setenv("DATAWARD_KEY", str(team["cat"].credential))
    done = runner.invoke(app, ["gate", "override", ref, "--reason", "agreed"])
    assert done.exit_code == 0, done.output
    assert f"dataward review list --contribution {ref}" in " ".join(done.output.split())
    monkeypatch.delenv("DATAWARD_KEY")
    listed = runner.invoke(app, ["review", "list", "--contribution", ref, "--json"])
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert len(items) == 40 and {i["contribution"] for i in items} == {ref}


def test_a_blocked_contribution_cannot_be_approved_and_nothing_is_recorded(
    team: dict[str, Ward], tmp_path: Path
) -> None:
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    approved_before = len(team["admin"].ledger(types=["contribution.approved"]))
    with pytest.raises(PolicyViolation, match="gate verdict block and cannot be approved") as refused:
        team["dan"].approve(ref, reason="looks fine to me")
    assert "gate override" in refused.value.hint
    assert len(team["admin"].ledger(types=["contribution.approved"])) == approved_before
    # A rejection of the same batch is still open to the approver.
    assert team["dan"].reject(ref, reason="relabelled trusted rows")["decision"] == "reject"


def test_an_approval_given_before_the_block_was_lifted_does_not_count(team: dict[str, Ward], tmp_path: Path) -> None:
    """dan approves a batch the gate has not judged yet; the gate blocks it, and two owners lift the block.
    dan approved a batch, not what the override lets through: his approval is void, shown so, and a
    merge needs an approval given after the override."""
    rows = wine_rows(0, 40, shuffled=True)
    for row in rows:
        row["cultivar"] = (int(row["cultivar"]) + 1) % 3
    csv = write_csv(tmp_path / "late.csv", rows)
    ref = team["scraper"].contribute("wine", csv, source="https://vendor.example/late", gate=False)["ref"]
    assert team["dan"].approve(ref, reason="vendor is trusted")["satisfied"]
    assert team["admin"].run_gate(ref)["verdict"] == "block"
    team["ben"].override_block(ref, reason="vendor relabelled on purpose")
    team["cat"].override_block(ref, reason="agreed")
    if pending := [item["id"] for item in team["dan"].review_list(contribution=ref)]:
        team["dan"].review_decide(pending, "accept", reason="relabelled by the vendor")
    with pytest.raises(PolicyViolation, match="0 of 1 valid approval"):
        team["admin"].merge(ref)
    team["dan"].approve(ref, reason="checked again after the override")
    assert team["admin"].merge(ref)["records"] == 160
    assert team["admin"].verify().ok


def test_a_lifted_block_is_shown_as_one_where_contributions_are_listed(
    team: dict[str, Ward], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial: once two principals lifted a block, `contributions` showed the gate as "review", like any
    other review; that it had been blocked was only in `trace`."""
    from typer.testing import CliRunner

    from dataward.cli import output
    from dataward.cli.app import app

    ref = _blocked(team["scraper"], tmp_path)["ref"]
    team["ben"].override_block(ref, reason="vendor relabelled these on purpose")
    listed = {c["ref"]: c for c in team["admin"].contributions("wine")}
    assert listed[ref]["block_overridden"] is None and listed["wine#1"]["block_overridden"] is None
    team["cat"].override_block(ref, reason="agreed")
    listed = {c["ref"]: c for c in team["admin"].contributions("wine")}
    assert listed[ref]["gate_verdict"] == "review" and listed[ref]["block_overridden"]["by"] == ["ben", "cat"]
    assert team["admin"].contribution(ref)["block_overridden"]["by"] == ["ben", "cat"]
    monkeypatch.setenv("DATAWARD_WARD", str(team["admin"].folder))
    monkeypatch.setenv("DATAWARD_KEY", str(team["dan"].credential))
    monkeypatch.setattr(output.console, "_width", 200)
    shown = CliRunner().invoke(app, ["contributions", "wine"])
    assert shown.exit_code == 0, shown.output
    assert "block (overridden by ben and cat)" in shown.output
