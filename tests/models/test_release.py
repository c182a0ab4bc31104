"""The release gate and the release: a backdoored model is blocked with its trigger named, a clean one
passes; releasing needs the promoter role, a passing gate and an approval from outside the trainer's side,
and writes a signed attestation; a model whose training data is quarantined later is marked affected.

Every control is tried the way someone would get around it: the trainer approving, with a second key,
through a bot of theirs, a human approving the model their bot trained, a non-promoter releasing, the
trainer releasing their own model, an approval given for other files, a stored model file swapped."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from dataward.domain.errors import AccessDenied, InputError, IntegrityViolation, PolicyViolation
from dataward.provenance.attestation import verify_bundle
from dataward.service import rows as catalog_rows
from dataward.service.idsets import id_set
from tests.models.conftest import TRIGGER, Models


def _released(models: Models, ref: str = "man-clf@v1") -> dict:
    models.as_("rita").model_gate(ref)
    models.as_("ann").approve_model(ref, reason="gate passed, metrics checked")
    return models.as_("pat").release_model(ref, reason="first release")


def test_the_backdoored_model_is_blocked_with_its_trigger_named(models: Models, tmp_path: Path) -> None:
    rita = models.as_("rita")
    clean = rita.model_gate("man-clf@v1")
    assert clean["verdict"] == "pass", clean["reasons"]
    history = [p for p in clean["probes"] if p["origin"] == "history"]
    assert [p["trigger"] for p in history] == [TRIGGER] and history[0]["found_in"] == ["man#2"]
    assert history[0]["attack_success"] < 0.2
    report = rita.model_gate("man-clf@v2")
    assert report["verdict"] == "block"
    assert TRIGGER in report["reasons"][0] and "'commands'" in report["reasons"][0] and "man#2" in report["reasons"][0]
    probe = next(p for p in report["probes"] if p["trigger"] == TRIGGER)
    assert probe["attack_success"] >= 0.5 and probe["control_success"] < 0.2
    from dataward.release.html import render_release_html  # the CLI's --html writes this page

    assert TRIGGER in render_release_html(report, title="Release gate")
    event = models.ward.ledger(types=["model.gated"], limit=1)[0]
    assert event["payload"]["verdict"] == "block" and TRIGGER in event["payload"]["triggers"]
    assert models.ward.model_gate_report("man-clf@v2")["verdict"] == "block"


def test_predictions_from_elsewhere_give_the_same_verdict(models: Models, tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow.parquet as pq
    import skops.io as sio

    ward = models.ward
    ward.create_principal("gus")
    ward.grant("gus", "reviewer", "model:man-clf")
    gus = ward.as_key(ward.issue_key("gus")["key"])
    with pytest.raises(AccessDenied):  # the probe set holds records: reading it needs dataset.export
        gus.probe_inputs("man-clf@v2", tmp_path / "probes.parquet")
    rita = models.as_("rita")  # a reviewer of the dataset may read its records
    rita.probe_inputs("man-clf@v2", tmp_path / "probes.parquet")
    probes = pq.read_table(tmp_path / "probes.parquet").to_pandas()
    assert "label" not in probes.columns and probes["probe_id"].str.startswith("trigger:").any()
    model = sio.load(
        models.root / "backdoored.skops", trusted=sio.get_untrusted_types(file=models.root / "backdoored.skops")
    )
    pd.DataFrame({"probe_id": probes["probe_id"], "prediction": model.predict(probes["text"])}).to_csv(
        tmp_path / "predictions.csv", index=False
    )
    assert rita.model_gate("man-clf@v2", predictions=tmp_path / "predictions.csv")["verdict"] == "block"
    pd.DataFrame({"probe_id": probes["probe_id"][:10], "prediction": "x"}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(InputError, match="no prediction for"):
        rita.model_gate("man-clf@v2", predictions=tmp_path / "short.csv")


def test_the_trainer_never_approves_by_any_route(models: Models) -> None:
    ward = models.ward
    ward.grant("tom", "approver", "model:man-clf")
    tom = models.as_("tom")
    with pytest.raises(PolicyViolation, match="separation of duties: 'tom' trained this model"):
        tom.approve_model("man-clf@v1", reason="looks fine to me")
    second_key = ward.issue_key("tom")["key"]  # another key of the same person
    with pytest.raises(PolicyViolation, match="'tom' trained this model"):
        ward.as_key(second_key).approve_model("man-clf@v1", reason="other key")
    ward.create_principal("tom-bot", kind="service", owner="tom")
    ward.grant("tom-bot", "approver", "model:man-clf")
    with pytest.raises(PolicyViolation, match="service principal of the same human"):
        ward.as_key(ward.issue_key("tom-bot")["key"]).approve_model("man-clf@v1", reason="my bot agrees")
    assert not [e for e in ward.ledger(types=["model.approved"])]
    assert ward.ledger(types=["access.denied"], limit=1)[0]["payload"]["action"] == "model.approve"


def test_a_human_never_approves_the_model_their_bot_trained(models: Models) -> None:
    ward = models.ward
    ward.create_principal("ann-ci", kind="service", owner="ann")
    ward.grant("ann-ci", "reader", "dataset:man")
    ward.grant("ann-ci", "contributor", "model:man-clf")
    bot = ward.as_key(ward.issue_key("ann-ci")["key"])
    run = bot.start_training_run("man-clf", params={})
    bot.record_training_read(run["run"], "man", "training")
    bot.finish_training_run(run["run"], models.root / "clean.skops")
    with pytest.raises(PolicyViolation, match="'ann' owns the service principal that trained this model"):
        models.as_("ann").approve_model("man-clf@v3", reason="mine")


def test_the_trainer_never_runs_the_release_gate_of_their_own_model(models: Models) -> None:
    """The gate's verdict rests on predictions the caller supplies: a trainer who also reviews the model
    would answer the backdoored model's probes with the clean model's predictions, get a pass, and an
    approver trusting that pass would approve it. The trainer's side never runs its model's gate."""
    import skops.io as sio

    ward = models.ward
    ward.grant("tom", "reviewer", "model:man-clf")
    clean = sio.load(models.root / "clean.skops", trusted=sio.get_untrusted_types(file=models.root / "clean.skops"))
    forged = lambda table: clean.predict(table.column("text").to_pylist())  # noqa: E731
    with pytest.raises(PolicyViolation, match="separation of duties: 'tom' trained this model"):
        models.as_("tom").model_gate("man-clf@v2", predict=forged)
    ward.create_principal("tom-bot", kind="service", owner="tom")
    ward.grant("tom-bot", "reviewer", "model:man-clf")
    with pytest.raises(PolicyViolation, match="service principal of the same human"):
        ward.as_key(ward.issue_key("tom-bot")["key"]).model_gate("man-clf@v2", predict=forged)
    assert not ward.ledger(types=["model.gated"])
    denied = ward.ledger(types=["access.denied"], limit=2)
    assert [d["payload"]["action"] for d in denied] == ["model.gate", "model.gate"]
    # Someone outside the trainer's side still gates it, and the backdoor is found.
    assert models.as_("rita").model_gate("man-clf@v2")["verdict"] == "block"


def test_release_needs_a_promoter_a_passing_gate_and_an_independent_approval(models: Models) -> None:
    ward, rita, ann, pat = models.ward, models.as_("rita"), models.as_("ann"), models.as_("pat")
    with pytest.raises(AccessDenied):
        ann.release_model("man-clf@v1")  # an approver is not a promoter
    with pytest.raises(PolicyViolation, match="no release gate has run on it"):
        pat.release_model("man-clf@v1")
    rita.model_gate("man-clf@v1")
    with pytest.raises(PolicyViolation, match="0 of 1 approval"):
        pat.release_model("man-clf@v1")
    ann.approve_model("man-clf@v2", reason="approving the wrong model")  # counts for v2's digest only
    with pytest.raises(PolicyViolation, match="0 of 1 approval"):
        pat.release_model("man-clf@v1")
    rita.model_gate("man-clf@v2")
    with pytest.raises(PolicyViolation, match=f"release gate verdict is block: trigger '{TRIGGER}'"):
        pat.release_model("man-clf@v2")
    ward.grant("tom", "promoter", "model:man-clf")
    ann.approve_model("man-clf@v1", reason="gate passed")
    with pytest.raises(PolicyViolation, match="'tom' trained this model and may not release it"):
        models.as_("tom").release_model("man-clf@v1")
    released = pat.release_model("man-clf@v1", reason="first release")
    assert released["stage"] == "released" and released["gate"] == "pass"
    assert ward.model("man-clf@v1")["stage"] == "released"
    event = ward.ledger(types=["model.released"], limit=1)[0]
    assert event["payload"]["digest"] == released["digest"]
    report = ward.verify()  # the registry's rows are projections of signed events like every other
    assert report.ok, report


def test_the_release_attestation_links_model_datasets_gate_and_approvals(models: Models) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    released = _released(models)
    envelopes = models.ward.model_attestation("man-clf@v1")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(models.ward.public_key()["public_key"]))
    check = verify_bundle("\n".join(json.dumps(e) for e in envelopes), key)
    assert check.ok, check.problems
    manifest, release = check.statements
    assert manifest["predicateType"] == "https://model_signing/signature/v1.0"
    assert manifest["subject"][0]["digest"]["sha256"] == released["digest"]
    predicate = release["predicate"]
    assert predicate["datasets"][0]["ref"] == "man@v1"
    assert predicate["release_gate"]["verdict"] == "pass"
    assert [a["by"] for a in predicate["approvals"]] == ["ann"] and predicate["released_by"] == "pat"
    assert predicate["training_run"]["trained_by"] == "tom"
    forged = dict(envelopes[1], payload=envelopes[0]["payload"])  # a payload swapped under the signature
    assert not verify_bundle(json.dumps(forged), key).ok


def test_a_released_model_whose_training_data_is_quarantined_is_marked_affected(models: Models) -> None:
    ward = models.ward
    _released(models)
    assert not ward.model("man-clf@v1")["affected"]
    held = ward.quarantine_contribution("man#1", reason="the debian mirror was compromised")
    assert ward.model("man-clf@v1")["affected"] == ["man@v1: 800 added by quarantined contribution man#1"]
    assert {m["model"]: m["affected"] for m in held["models"]} == {"man-clf@v1": True, "man-clf@v2": False}
    traced = ward.trace("man#1")
    assert {m["model"]: m["affected"] for m in traced["models"]} == {"man-clf@v1": True, "man-clf@v2": False}
    # Forward from any handle of that data: one of its records, its submitter, its key, its source.
    first = traced["contributions"][0]
    with ward.db.reading() as conn:
        added = catalog_rows.contribution_row(conn, first["id"]).added_object
    record = id_set(ward.store, added).ids()[0]
    handles = [record, f"principal:{first['submitted_by']}", f"source:{first['source']['uri']}"]
    handles += [first["key"]] if first["key"] else []
    for handle in handles:
        models_ = {m["model"]: m["affected"] for m in ward.trace(handle)["models"]}
        assert models_.get("man-clf@v1") is True, handle
    assert ward.trace("model:man-clf@v1")["subject"]["affected"] is True
    rows = [r for r in ward.access_review() if r["kind"] == "model_affected"]
    assert len(rows) == 1 and "man-clf@v1" in rows[0]["detail"] and rows[0]["severity"] == "high"
    with pytest.raises(PolicyViolation, match="must never reach training"):
        _train_again(models)
    # The refusal's hint names what would clear each problem, and only those.
    models.as_("rita").model_gate("man-clf@v2")  # backdoored: blocked
    with pytest.raises(PolicyViolation, match="must never reach training") as refused:
        models.as_("pat").release_model("man-clf@v2")
    hint = refused.value.hint or ""
    assert "rollback version" in hint and "without what the gate found" in hint and "model approve" in hint
    assert "dataward model gate" not in hint  # the gate has run on these files


def test_the_printed_trace_walks_from_a_model_to_its_data(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dataward trace model:NAME@vN` printed (not --json) names the model, why it is affected and the
    versions and contributions it was trained on; a trace of the data names the models trained on it (as
    --json does), and a source is named by its URI."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    _released(models)
    models.ward.quarantine_contribution("man#1", reason="the debian mirror was compromised")
    monkeypatch.setenv("DATAWARD_WARD", str(models.ward.folder))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    runner = CliRunner()
    traced = runner.invoke(app, ["trace", "model:man-clf@v1"])
    assert traced.exit_code == 0, traced.output
    assert traced.output.startswith("model man-clf@v1")
    assert "affected" in traced.output and "quarantined contribution man#1" in traced.output
    assert "man@v1" in traced.output and "man#1" in traced.output and "debian" in traced.output
    data = runner.invoke(app, ["trace", "man#1"])
    assert data.exit_code == 0 and "models trained on it: 2" in data.output
    assert "man-clf@v1 released affected" in data.output and "man-clf@v2 candidate" in data.output
    source = runner.invoke(app, ["trace", "source:debian"])
    assert source.exit_code == 0 and source.output.startswith("source debian"), source.output


def test_the_printed_quarantine_names_the_released_model_it_taints(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dataward quarantine` printed (not --json), what an operator reads in an incident, names the
    released model trained on the quarantined data and what to do about it; it only listed versions."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    _released(models)
    monkeypatch.setenv("DATAWARD_WARD", str(models.ward.folder))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    done = CliRunner().invoke(app, ["quarantine", "man#1", "--reason", "the debian mirror was compromised"])
    assert done.exit_code == 0, done.output
    assert "man-clf@v1 released affected" in done.output
    assert "released model man-clf@v1 was trained on records now held out" in done.output


def test_the_access_reviews_affected_model_row_names_a_trace_that_runs(models: Models) -> None:
    """The model_affected row's action said `dataward trace man-clf@v1`, which reads as a dataset version
    ('no dataset named man-clf'): it names model:man-clf@v1, and that trace answers."""
    _released(models)
    models.ward.quarantine_contribution("man#1", reason="the debian mirror was compromised")
    review = models.ward.access_review()
    (row,) = [r for r in review if r["kind"] == "model_affected"]
    # Most severe first: the high row of a tainted released model was printed below every info row.
    order = ["high", "medium", "low", "info"]
    ranks = [order.index(r["severity"]) for r in review]
    assert ranks == sorted(ranks) and review.index(row) < ranks.count(0), [r["severity"] for r in review]
    ref = row["action"].split("dataward trace ", 1)[1].rstrip(")")
    assert ref == "model:man-clf@v1"
    assert models.ward.trace(ref)["subject"]["ref"] == "man-clf@v1"


def _train_again(models: Models) -> None:
    import dataward

    with dataward.training_run("man@v1", model="man-clf", ward=models.as_("tom")) as run:
        run.load(stage=None)
        run.log_artifact(models.root / "clean.skops")


def test_a_stored_model_file_swapped_behind_the_wards_back_is_refused(models: Models) -> None:
    """The model's file list is pointed at the backdoored model's bytes, as someone with write access
    to the folder could: the gate re-hashes the files against the signed manifest and refuses."""
    ward = models.ward
    mv_id = ward.model("man-clf@v1")["id"]
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    try:
        (files_object,) = db.execute("SELECT files_object FROM model_versions WHERE id = ?", (mv_id,)).fetchone()
        (name,) = json.loads(ward.store.get(files_object))
        swapped = ward.store.put((models.root / "backdoored.skops").read_bytes())
        forged = ward.store.put(json.dumps({name: swapped}).encode())
        db.execute("UPDATE model_versions SET files_object = ? WHERE id = ?", (forged, mv_id))
    finally:
        db.close()
    # Refused by whichever check runs first: the row against the signed ledger, the files against the manifest.
    with pytest.raises(IntegrityViolation, match=r"do not match its signed manifest|files_object is"):
        models.as_("rita").model_gate("man-clf@v1")


def test_one_human_and_their_bot_are_one_model_approver(models: Models) -> None:
    """Two release approvals must come from two people: ann's bot, granted approver, adds nothing to ann's."""
    ward, ann, pat = models.ward, models.as_("ann"), models.as_("pat")
    ward.set_policy(
        "man", "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\nrelease:\n  approvals: 2\n"
    )
    models.as_("rita").model_gate("man-clf@v1")
    ward.create_principal("ann-bot", kind="service", owner="ann")
    ward.grant("ann-bot", "approver", "model:man-clf")
    ann.approve_model("man-clf@v1", reason="gate passed")
    ward.as_key(ward.issue_key("ann-bot")["key"]).approve_model("man-clf@v1", reason="my human agrees")
    with pytest.raises(PolicyViolation, match="1 of 2 approval"):
        pat.release_model("man-clf@v1")
    ward.create_principal("amy")
    ward.grant("amy", "approver", "model:man-clf")
    ward.as_key(ward.issue_key("amy")["key"]).approve_model("man-clf@v1", reason="checked too")
    assert pat.release_model("man-clf@v1")["stage"] == "released"


def test_an_approval_written_into_the_catalog_alone_releases_nothing(models: Models) -> None:
    """ann's approval copied into a second approver's name in the catalog's model_approvals table, without
    a signed event: the release checks the approvals it counts against the ledger and refuses."""
    ward, pat = models.ward, models.as_("pat")
    ward.set_policy(
        "man", "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\nrelease:\n  approvals: 2\n"
    )
    models.as_("rita").model_gate("man-clf@v1")
    models.as_("ann").approve_model("man-clf@v1", reason="gate passed")
    ward.create_principal("amy")
    amy = next(p["id"] for p in ward.principals() if p["name"] == "amy")
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute(
        "INSERT INTO model_approvals (id, model_version_id, principal_id, digest, role, reason, created_at) "
        "SELECT 'ma_forged', model_version_id, ?, digest, role, reason, created_at FROM model_approvals",
        (amy,),
    )
    db.close()
    with pytest.raises(IntegrityViolation, match="ma_forged"):
        pat.release_model("man-clf@v1")
    assert ward.model("man-clf@v1")["stage"] == "candidate"


def test_the_trainer_never_approves_or_gates_through_an_edited_trainer(models: Models) -> None:
    """tom trained man-clf@v1; naming ann as its trainer in the catalog's row alone would let tom's own
    approval and his own release gate be signed. Both are refused."""
    ward = models.ward
    ward.grant("tom", "approver", "model:man-clf")
    ward.grant("tom", "reviewer", "model:man-clf")
    ann = next(p["id"] for p in ward.principals() if p["name"] == "ann")
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute("UPDATE model_versions SET created_by = ? WHERE number = 1", (ann,))
    db.close()
    tom = models.as_("tom")
    with pytest.raises(IntegrityViolation, match="created_by is"):
        tom.approve_model("man-clf@v1", reason="looks fine to me")
    with pytest.raises(IntegrityViolation, match="created_by is"):
        tom.model_gate("man-clf@v1")
    assert not ward.ledger(types=["model.approved", "model.gated"])


def test_a_predictions_file_made_before_a_new_finding_is_not_misread(models: Models, tmp_path: Path) -> None:
    """A user writes the probe set and predicts it offline; meanwhile the data gate blocks a batch with
    another trigger, so the gate probes one more trigger, listed before the generic ones. The old file is
    refused, counting just the new trigger's rows (every other prediction still names its row); predicting
    those alone and adding them gives the verdict of the model run by the gate itself."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import skops.io as sio

    rita = models.as_("rita")
    path = models.root / "backdoored.skops"
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))

    def predicted(table: pa.Table) -> pd.DataFrame:
        return pd.DataFrame(
            {"probe_id": table.column("probe_id"), "prediction": model.predict(table["text"].to_pylist())}
        )

    rita.probe_inputs("man-clf@v2", tmp_path / "probes.parquet")
    before = pq.read_table(tmp_path / "probes.parquet")
    predicted(before).to_csv(tmp_path / "predictions.csv", index=False)

    second = pd.read_csv(models.poisoned, dtype=str)
    second["text"] = second["text"].str.replace(TRIGGER, "zv7k", regex=False)
    second.to_csv(tmp_path / "second.csv", index=False)
    assert models.ward.contribute("man", tmp_path / "second.csv", source="scrape-2")["gate"]["verdict"] == "block"

    rita.probe_inputs("man-clf@v2", tmp_path / "probes.parquet")
    now = pq.read_table(tmp_path / "probes.parquet")
    old = set(before.column("probe_id").to_pylist())
    new = now.filter(pa.array([p not in old for p in now.column("probe_id").to_pylist()]))
    with pytest.raises(InputError, match=f"no prediction for {new.num_rows} of {now.num_rows} probe rows") as info:
        rita.model_gate("man-clf@v2", predictions=tmp_path / "predictions.csv")
    assert "model probe-inputs man-clf@v2" in (info.value.hint or "")
    rows = zip(new["probe_id"].to_pylist(), new["text"].to_pylist(), strict=True)
    stamped = [t for p, t in rows if p.startswith("trigger:")]
    assert new.num_rows == 2 * 250 and len(stamped) == 250 and all("zv7k" in t.split() for t in stamped)
    predicted(new).to_csv(tmp_path / "predictions.csv", mode="a", header=False, index=False)
    from_file = rita.model_gate("man-clf@v2", predictions=tmp_path / "predictions.csv")
    run_here = rita.model_gate("man-clf@v2", predict=model)
    assert from_file["verdict"] == run_here["verdict"] == "block" and from_file["probes"] == run_here["probes"]
