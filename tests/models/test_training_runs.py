"""Training runs and the registry: what a run records, the artifact's manifest and signature, files that
run code when loaded, runs that fail, and the same through the command line."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dataward
from dataward.cli.app import app
from dataward.domain.errors import InputError, PolicyViolation
from dataward.release.predictors import artifact_predictor
from tests.models.conftest import Models


def test_a_run_records_code_params_data_and_a_signed_manifest(models: Models, tmp_path: Path) -> None:
    ward = models.ward
    info = ward.model("man-clf@v1")
    assert info["datasets"] == ["man@v1"] and info["trained_by"] == "tom" and info["stage"] == "candidate"
    assert info["run"]["params"] == {"C": 5} and info["run"]["code"]["kind"] in ("git", "file")
    assert info["run"]["code"]["path"].endswith("conftest.py") and info["format"] == "skops" and not info["unsafe"]
    sha = hashlib.sha256((models.root / "clean.skops").read_bytes()).hexdigest()
    (manifest, *_) = ward.model_attestation("man-clf@v1")
    import base64

    statement = json.loads(base64.b64decode(manifest["payload"]))
    assert statement["predicate"]["resources"] == [{"name": ".", "algorithm": "sha256", "digest": sha}]
    assert statement["subject"][0]["digest"]["sha256"] == info["digest"]
    kinds = [e["type"] for e in ward.ledger(newest_first=False) if e["type"].startswith(("training.", "model."))]
    assert kinds[:4] == ["training.started", "training.read", "training.finished", "model.registered"]
    ward.model_files("man-clf@v1", tmp_path / "restored")
    assert hashlib.sha256((tmp_path / "restored" / "clean.skops").read_bytes()).hexdigest() == sha
    # A file given as the folder was a FileExistsError traceback: it is bad input, and left as it was.
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is a file"):
        ward.model_files("man-clf@v1", tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # Nor into the ward's own files, from Python as from the command line.
    with pytest.raises(InputError, match="inside the ward's own files"):
        ward.model_files("man-clf@v1", ward.folder / "objects")
    with pytest.raises(InputError, match="inside the ward's own files"):
        ward.probe_inputs("man-clf@v1", ward.folder / "catalog.sqlite")
    assert ward.verify().ok


def test_a_pickle_is_flagged_never_loaded_and_refused_when_the_policy_says_so(models: Models, tmp_path: Path) -> None:
    ward, tom = models.ward, models.as_("tom")
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with dataward.training_run("man@training", model="man-clf", ward=tom) as run:
        run.load()
        run.log_artifact(artifact)
    flagged = run.model_version
    assert flagged is not None and flagged["unsafe"] and flagged["format"] == "pickle"
    assert "model.pkl is pickle-based" in flagged["warning"]
    assert flagged["scan"][0]["scanner"] == "fickling"
    with pytest.raises(InputError, match="pickle-based files are never loaded"):
        artifact_predictor(artifact.parent, None, ())  # type: ignore[arg-type]
    report = models.as_("rita").model_gate(flagged["ref"], predict=lambda t: ["commands"] * t.num_rows)
    assert report["verdict"] != "pass" and any("runs code when loaded" in r for r in report["reasons"])

    ward.set_policy(
        "man",
        "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\nrelease:\n  unsafe_artifacts: refuse\n",
    )
    before = len(ward.models("man-clf"))
    with (
        pytest.raises(PolicyViolation, match="runs code when loaded"),
        dataward.training_run("man@training", model="man-clf", ward=tom) as run,
    ):
        run.load()
        run.log_artifact(artifact)
    assert len(ward.models("man-clf")) == before


def test_runs_that_fail_or_read_nothing_make_no_model(models: Models) -> None:
    ward, tom = models.ward, models.as_("tom")
    with pytest.raises(ZeroDivisionError), dataward.training_run("man@training", model="man-clf", ward=tom) as run:
        run.load()
        _ = 1 / 0
    assert ward.ledger(types=["training.failed"], limit=1)[0]["payload"]["reason"].startswith("ZeroDivisionError")
    with (
        pytest.raises(PolicyViolation, match="read no dataset through the guarded loader"),
        dataward.training_run("man@training", model="man-clf", ward=tom) as run,
    ):
        run.log_artifact(models.root / "clean.skops")
    with (
        pytest.raises(PolicyViolation, match="requires a candidate version"),
        dataward.training_run("man@v1", model="man-clf", ward=tom) as run,
    ):
        run.load("man@v1", stage="candidate")
    assert [e["payload"]["reason"][:15] for e in ward.ledger(types=["training.failed"], limit=1)] == ["PolicyViolation"]
    assert len(ward.models("man-clf")) == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({1: 2}, "training parameters may have only text keys, not 1 (int)"),
        ({(1, 2): 3}, "training parameters may have only text keys, not (1, 2) (tuple)"),
        ({"grid": [{"C": {0.1: 1}}]}, "only text keys, not 0.1 (float)"),
        ([1, 2], "training parameters must be a mapping of names to values, not a list"),
    ],
    ids=["int key", "tuple key", "nested key", "list"],
)
def test_parameters_that_are_no_mapping_of_names_are_refused(models: Models, params: object, message: str) -> None:
    """``{1: 2}`` was recorded as ``{"1": 2}``; a tuple key and a list reached the caller as raw TypeErrors
    (from the JSON encoder, and ``dict()``)."""
    tom = models.as_("tom")
    runs = len(models.ward.ledger(types=["training.started"]))
    with pytest.raises(InputError) as caught:
        dataward.training_run("man@training", model="man-clf", params=params, ward=tom)  # type: ignore[arg-type]
    assert message in caught.value.message
    with pytest.raises(InputError) as caught:
        tom.start_training_run("man-clf", params=params)  # type: ignore[arg-type]
    assert message in caught.value.message
    assert len(models.ward.ledger(types=["training.started"])) == runs  # nothing recorded


def test_another_principal_cannot_write_into_someone_elses_run(models: Models) -> None:
    ward = models.ward
    run = models.as_("tom").start_training_run("man-clf", params={})
    ward.create_principal("eve")
    ward.grant("eve", "contributor", "model:man-clf")
    ward.grant("eve", "reader", "dataset:man")
    eve = ward.as_key(ward.issue_key("eve")["key"])
    with pytest.raises(PolicyViolation, match="started by another principal"):
        eve.record_training_read(run["run"], "man", "training")
    with pytest.raises(PolicyViolation, match="started by another principal"):
        eve.finish_training_run(run["run"], models.root / "backdoored.skops")


def test_the_command_line_records_a_run_and_releases(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("DATAWARD_WARD", str(models.ward.folder))
    monkeypatch.delenv("DATAWARD_URL", raising=False)

    def cli(who: str, *args: str) -> tuple[int, dict]:
        monkeypatch.setenv("DATAWARD_KEY", models.keys[who])
        result = runner.invoke(app, [*args, "--json"])
        return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}

    script = tmp_path / "train.sh"
    script.write_text("python train.py\n")
    code, started = cli("tom", "train", "start", "man-clf", "--param", "C=1", "--script", str(script))
    assert code == 0 and started["code"]["kind"] in ("file", "git") and started["params"] == {"C": 1}
    code, loaded = cli("tom", "train", "load", started["run"], "man@training", "-o", str(tmp_path / "train.parquet"))
    assert code == 0 and loaded["records"] == 800 and loaded["read"] == ["man@v1"]
    code, refused = cli(
        "tom", "train", "finish", started["run"], str(models.root / "backdoored.skops"), "--metric", "f1"
    )
    assert code != 0 and "--metric 'f1' is not KEY=VALUE" in refused["message"]
    artifact = str(models.root / "backdoored.skops")
    code, registered = cli("tom", "train", "finish", started["run"], artifact, "--metric", "val_f1=0.91")
    assert code == 0 and registered["ref"] == "man-clf@v3"
    assert registered["run"]["metrics"] == {"val_f1": 0.91}  # typed, and kept with the model version
    assert cli("tom", "model", "show", "man-clf@v3")[1]["run"]["metrics"] == {"val_f1": 0.91}
    code, report = cli("rita", "model", "gate", "man-clf@v3", "--html", str(tmp_path / "r.html"))
    assert code == 9 and report["verdict"] == "block"  # exit 9: block, as the data gates
    code, report = cli("rita", "model", "gate", "man-clf@v1")
    assert code == 0 and report["verdict"] == "pass"
    code, refused = cli("tom", "model", "approve", "man-clf@v1", "--reason", "mine")
    assert code == 6 and refused["error"] == "access_denied"  # tom holds no approver role
    assert cli("ann", "model", "approve", "man-clf@v1", "--reason", "checked")[0] == 0
    code, released = cli("pat", "model", "release", "man-clf@v1")
    assert code == 0 and released["stage"] == "released"
    bundle, pem = tmp_path / "model.intoto.jsonl", tmp_path / "ward.pem"
    assert cli("pat", "model", "attest", "man-clf@v1", "-o", str(bundle))[0] == 0
    monkeypatch.delenv("DATAWARD_KEY")  # the admin's local credentials
    assert runner.invoke(app, ["ledger", "public-key", "-o", str(pem)]).exit_code == 0
    code, check = cli("pat", "verify", "--attestation", str(bundle), "--public-key", str(pem))
    assert code == 0 and check["ok"] and len(check["statements"]) == 2
    code, listed = cli("pat", "model", "list")
    assert code == 0 and [m["stage"] for m in listed if m["ref"] == "man-clf@v1"] == ["released"]


def test_numbers_the_ledger_cannot_sign_are_refused_before_anything_is_recorded(models: Models) -> None:
    """Run parameters and metrics go into signed events, hashed as RFC 8785 JSON: an integer beyond
    +/-(2**53 - 1) is plain JSON but not signable. It is refused as bad input, naming the bound, before
    any event is written (it once reached the event's seal and failed there as a server error)."""
    ward, tom = models.ward, models.as_("tom")
    started = len(ward.ledger(types=["training.started"]))
    with pytest.raises(InputError, match=r"ledger can sign .*2\*\*53"):
        tom.start_training_run("man-clf", params={"steps": 5924703690747794723700736})
    assert len(ward.ledger(types=["training.started"])) == started
    run = tom.start_training_run("man-clf", params={"steps": 2**53 - 1})  # the largest signable integer
    finished, versions = len(ward.ledger(types=["training.finished"])), len(ward.models("man-clf"))
    with pytest.raises(InputError, match="ledger can sign"):
        tom.finish_training_run(run["run"], models.root / "clean.skops", metrics={"seen": -(2**60)})
    assert len(ward.ledger(types=["training.finished"])) == finished and len(ward.models("man-clf")) == versions


def test_train_load_writes_the_format_its_extension_names_and_refuses_others(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("DATAWARD_WARD", str(models.ward.folder))
    monkeypatch.setenv("DATAWARD_KEY", models.keys["tom"])
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    run = models.as_("tom").start_training_run("man-clf", params={})["run"]
    reads_before = len(models.ward.ledger(types=["training.read"]))

    refused = runner.invoke(app, ["train", "load", run, "man@training", "-o", str(tmp_path / "x.txt"), "--json"])
    assert refused.exit_code == 2, refused.stdout
    assert "'.txt'" in json.loads(refused.stdout)["message"] and not (tmp_path / "x.txt").exists()
    assert len(models.ward.ledger(types=["training.read"])) == reads_before  # refused before any work

    loaded = runner.invoke(app, ["train", "load", run, "man@training", "-o", str(tmp_path / "x.jsonl"), "--json"])
    assert loaded.exit_code == 0, loaded.stdout
    lines = (tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == json.loads(loaded.stdout)["records"] == 800 and "record_id" in json.loads(lines[0])
    # `.json` is JSON Lines, as `export` writes it.
    loaded = runner.invoke(app, ["train", "load", run, "man@training", "-o", str(tmp_path / "x.json"), "--json"])
    assert loaded.exit_code == 0, loaded.stdout
    assert (tmp_path / "x.json").read_text(encoding="utf-8").splitlines() == lines
