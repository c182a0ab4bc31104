"""Training runs and the model registry through a server (``/api/v1`` and ``HTTPWard``): the same answers
as the embedded ward, the same refusals, files that arrive whole, and an artifact folder that cannot
write outside itself on the server."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import skops.io as sio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import dataward
from dataward.client.http import HTTPWard
from dataward.domain.errors import AccessDenied, InputError, NotFound, PolicyViolation
from dataward.provenance.attestation import verify_bundle
from tests.helpers import TINY_ONNX
from tests.models.conftest import TRIGGER, Models, text_model
from tests.server.conftest import start_server


@pytest.fixture
def served(models: Models) -> Iterator[dict[str, HTTPWard]]:
    """The models ward served; an HTTPWard per person (and the admin)."""
    server, thread, _, url = start_server(models.ward.folder)
    keys = {**models.keys, "admin": (models.ward.folder / "credentials").read_text().strip()}
    clients = {name: HTTPWard(url, key=key) for name, key in keys.items()}
    try:
        yield clients
    finally:
        for c in clients.values():
            c.close()
        server.should_exit = True
        thread.join(timeout=10)


def _same(value: Any) -> Any:
    """A document as JSON would carry it (tuples are lists, keys sorted)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def test_the_registry_reads_the_same_served_as_embedded(models: Models, served: dict[str, HTTPWard]) -> None:
    rita = models.as_("rita")
    assert _same(served["rita"].models()) == _same(rita.models())
    assert _same(served["rita"].model("man-clf@v2")) == _same(rita.model("man-clf@v2"))
    embedded = rita.model_gate("man-clf@v2")
    report = served["rita"].model_gate_report("man-clf@v2")
    assert report["verdict"] == "block" and _same(report) == _same(rita.model_gate_report("man-clf@v2"))
    over_http = served["rita"].model_gate("man-clf@v2")
    assert over_http["verdict"] == embedded["verdict"] == "block"
    assert over_http["reasons"] == embedded["reasons"] and TRIGGER in over_http["reasons"][0]
    assert over_http["gate"] != embedded["gate"]  # a second gate run, recorded as such


def test_train_gate_approve_and_release_through_the_server(
    models: Models, served: dict[str, HTTPWard], tmp_path: Path
) -> None:
    tom, rita, ann, pat = (served[n] for n in ("tom", "rita", "ann", "pat"))
    with dataward.training_run("man@training", model="man-clf", params={"C": 1}, ward=tom) as run:
        frame = run.load()  # through the server's guarded loader, recorded in the run
        sio.dump(text_model(frame), tmp_path / "model.skops")
        run.log_artifact(tmp_path / "model.skops")
    registered = run.model_version
    assert registered is not None and registered["ref"] == "man-clf@v3"
    assert registered["datasets"] == ["man@v1"] and registered["trained_by"] == "tom"
    assert _same(models.ward.model("man-clf@v3"))["digest"] == registered["digest"]

    gate = rita.model_gate("man-clf@v3")
    assert gate["verdict"] == "pass", gate["reasons"]
    with pytest.raises(PolicyViolation, match="separation of duties: 'tom' trained this model"):
        served["admin"].grant("tom", "approver", "model:man-clf")
        tom.approve_model("man-clf@v3", reason="mine")
    with pytest.raises(AccessDenied):
        ann.release_model("man-clf@v3")
    ann.approve_model("man-clf@v3", reason="checked")
    released = pat.release_model("man-clf@v3", reason="over HTTP")
    assert released["stage"] == "released" and released["gate"] == "pass"
    envelopes = pat.model_attestation("man-clf@v3")
    assert _same(envelopes) == _same(models.ward.model_attestation("man-clf@v3"))
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(models.ward.public_key()["public_key"]))
    assert verify_bundle("\n".join(json.dumps(e) for e in envelopes), key).ok

    files = rita.model_files("man-clf@v3", tmp_path / "files")
    assert files["folder"] == str(tmp_path / "files") and files["digest"] == registered["digest"]
    assert (tmp_path / "files" / "model.skops").read_bytes() == (tmp_path / "model.skops").read_bytes()


def test_probe_set_and_predictions_made_here(models: Models, served: dict[str, HTTPWard], tmp_path: Path) -> None:
    rita = served["rita"]
    info = rita.probe_inputs("man-clf@v2", tmp_path / "probes.parquet")
    models.as_("rita").probe_inputs("man-clf@v2", tmp_path / "embedded.parquet")
    assert info["path"] == str(tmp_path / "probes.parquet")
    assert pq.read_table(tmp_path / "probes.parquet").equals(pq.read_table(tmp_path / "embedded.parquet"))
    backdoored = sio.load(
        models.root / "backdoored.skops", trusted=sio.get_untrusted_types(file=models.root / "backdoored.skops")
    )
    by_callable = rita.model_gate("man-clf@v2", predict=lambda t: backdoored.predict(t.column("text").to_pylist()))
    assert by_callable["verdict"] == "block" and TRIGGER in by_callable["reasons"][0]
    # A missing predictions file is not found (exit 3), as a missing data file is, not bad input.
    with pytest.raises(NotFound, match=r"nothing\.csv: no such file"):
        rita.model_gate("man-clf@v2", predictions=tmp_path / "nothing.csv")


def test_a_request_cannot_make_the_server_trust_a_skops_type(
    models: Models, served: dict[str, HTTPWard], tmp_path: Path
) -> None:
    """A trainer registers a .skops model whose pipeline runs a shell command when it predicts; a reviewer
    gating it over HTTP names the two types it needs trusted (the refusal lists them). The server would
    run the command in its own process, beside the signing key: a request may trust no type the
    operator did not allow."""
    import subprocess

    import numpy as np
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "ran"
    evil = make_pipeline(
        FunctionTransformer(np.full_like, kw_args={"fill_value": f"touch {marker}"}, validate=False),
        FunctionTransformer(subprocess.getoutput, validate=False),
        DummyClassifier(strategy="most_frequent").fit([[0]], ["commands"]),
    )
    sio.dump(evil, tmp_path / "evil.skops")
    needed = sio.get_untrusted_types(file=tmp_path / "evil.skops")
    assert set(needed) == {"numpy.full_like", "subprocess.getoutput"}
    with dataward.training_run("man@training", model="man-clf", ward=models.as_("tom")) as run:
        run.load()
        run.log_artifact(tmp_path / "evil.skops")
    ref = run.model_version["ref"]
    with pytest.raises(InputError, match="names types skops does not trust"):
        served["rita"].model_gate(ref)
    with pytest.raises(
        InputError, match=r"does not let a \.skops file rebuild numpy\.full_like, subprocess\.getoutput"
    ):
        served["rita"].model_gate(ref, trusted=needed)
    assert not marker.exists()
    assert not models.ward.ledger(types=["model.gated"])


def test_only_the_operator_names_the_skops_types_a_server_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import uvicorn
    from typer.testing import CliRunner

    from dataward.cli.app import app
    from dataward.server.app import app_from_environment
    from dataward.service.ward import Ward

    Ward.init(tmp_path / "ward")
    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_k: None)
    for name in list(os.environ):
        if name.startswith("DATAWARD_"):
            monkeypatch.delenv(name)
    for extra, trusted in (([], ()), (["--trust-skops-type", "a.B", "--trust-skops-type", "c.d"], ("a.B", "c.d"))):
        result = CliRunner().invoke(app, ["serve", "--ward", str(tmp_path / "ward"), *extra])
        assert result.exit_code == 0, result.output
        assert app_from_environment().state.dataward.settings.skops_trusted == trusted


def test_an_artifact_folder_is_carried_whole_and_cannot_write_outside_itself(
    models: Models, served: dict[str, HTTPWard], tmp_path: Path
) -> None:
    tom = served["tom"]
    folder = tmp_path / "clf"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(TINY_ONNX)
    (folder / "sub" / "config.json").write_text('{"labels": 3}')
    run = tom.start_training_run("man-clf", params={})
    tom.record_training_read(run["run"], "man", "training")
    info = tom.finish_training_run(run["run"], folder)
    files = {f["file"] for f in info["scan"]}
    assert files == {"model.onnx", "sub/config.json"}, info["scan"]
    # A tar with a member climbing out of the folder, sent by hand, is refused and nothing is registered.
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:") as tar:
        data = b"owned"
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    (tmp_path / "evil.tar").write_bytes(evil.getvalue())
    run = tom.start_training_run("man-clf", params={})
    tom.record_training_read(run["run"], "man", "training")
    upload = tom._upload_as(tmp_path / "evil.tar", "clf.tar")
    body = {"upload": upload, "name": "clf", "kind": "folder", "params": {}, "metrics": {}}
    with pytest.raises(
        InputError, match=r"'\.\./\.\./escaped\.txt', which is a link, a device or a path that would land"
    ):
        tom._job(f"/training-runs/{run['run']}/finish", body)
    assert next(m["ref"] for m in models.ward.models("man-clf")) == info["ref"]  # nothing newer registered
    assert not (Path(tempfile.gettempdir()) / "escaped.txt").exists()
    with pytest.raises(InputError, match="not a plain file or folder name"):
        tom._job(
            f"/training-runs/{run['run']}/finish",
            {**body, "name": "../clf", "upload": tom._upload_as(tmp_path / "evil.tar", "x")},
        )


def test_the_model_commands_answer_the_same_against_a_server(
    models: Models, served: dict[str, HTTPWard], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    runner = CliRunner()
    url = served["rita"].url

    def cli(where: str, *args: str) -> tuple[int, Any]:
        if where == "served":
            monkeypatch.setenv("DATAWARD_URL", url)
            monkeypatch.delenv("DATAWARD_WARD", raising=False)
        else:
            monkeypatch.delenv("DATAWARD_URL", raising=False)
            monkeypatch.setenv("DATAWARD_WARD", str(models.ward.folder))
        monkeypatch.setenv("DATAWARD_KEY", models.keys["rita"])
        result = runner.invoke(app, [*args, "--json"])
        return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else result.output

    code, gated = cli("served", "model", "gate", "man-clf@v2", "--html", str(tmp_path / "gate.html"))
    assert code == 9 and gated["verdict"] == "block" and TRIGGER in (tmp_path / "gate.html").read_text()
    for args in (("model", "list"), ("model", "show", "man-clf@v2"), ("model", "report", "man-clf@v2")):
        embedded, served_answer = cli("embedded", *args), cli("served", *args)
        assert embedded == served_answer, args
    assert cli("served", "model", "report", "man-clf@v2")[0] == 9  # the stored verdict's exit code
    code, denied = cli("served", "model", "release", "man-clf@v2")
    assert code == 6 and denied["error"] == "access_denied"  # rita is no promoter, over HTTP as embedded
    # What a person sees: the verdict, the reasons with the trigger named, the probe table.
    monkeypatch.setenv("DATAWARD_URL", url)
    shown = runner.invoke(app, ["model", "report", "man-clf@v2"])
    assert shown.exit_code == 9 and "release gate man-clf@v2: block" in shown.output
    assert TRIGGER in shown.output and "Backdoor probe" in shown.output
    listed = runner.invoke(app, ["model", "list"])
    assert listed.exit_code == 0 and "man-clf@v2" in listed.output


def test_a_number_the_ledger_cannot_sign_is_a_bad_request_not_a_server_error(
    models: Models, served: dict[str, HTTPWard]
) -> None:
    """Found by the API fuzz test: a training run's parameter beyond +/-(2**53 - 1) answered 500."""
    with pytest.raises(InputError, match="ledger can sign"):
        served["tom"].start_training_run("man-clf", params={"n": 5924703690747794723700736})


def test_a_negative_release_gate_seed_is_a_bad_request_not_a_server_error(
    models: Models, served: dict[str, HTTPWard]
) -> None:
    """Found by fuzzing the API on a populated ward: a negative seed reached the probes' generator and the
    gate's job failed as an internal error."""
    import httpx

    rita = served["rita"]
    response = httpx.post(
        f"{rita.url}/api/v1/models/man-clf@v2/gate",
        headers={"Authorization": f"Bearer {models.keys['rita']}"},
        json={"seed": -28835},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "bad_input" and "seed" in body["message"] and body["exit_code"] == 2
    with pytest.raises(InputError, match=r"seed must be between 0 and 4294967295, got -1"):
        models.as_("rita").model_gate("man-clf@v2", seed=-1)
    assert models.ward.model("man-clf@v2")["release_gate"] is None  # no gate run was recorded


def test_a_model_version_number_beyond_the_catalog_names_nothing(models: Models, served: dict[str, HTTPWard]) -> None:
    """Found by fuzzing the API on a populated ward: man-clf@v99999999999999999999999 failed in the database
    driver and answered 500; man-clf@v² passed str.isdigit() and failed int()."""
    import httpx

    headers = {"Authorization": f"Bearer {models.keys['rita']}"}
    url = served["rita"].url
    missing = httpx.get(f"{url}/api/v1/models/man-clf@v99999999999999999999999", headers=headers, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found", missing.text
    superscript = httpx.get(f"{url}/api/v1/models/man-clf@v\u00b2", headers=headers, timeout=30)
    assert superscript.status_code == 422 and "cannot read model version" in superscript.json()["message"]


def test_withdraw_and_the_refusal_to_serve_through_the_server(
    models: Models, served: dict[str, HTTPWard], tmp_path: Path
) -> None:
    """Through a server as in a ward folder: an affected model's files are refused unless accepted (the
    warning travels with them), only a promoter withdraws, and a withdrawn model is never served."""
    from dataward.domain.errors import Conflict

    ref = "man-clf@v1"
    models.as_("rita").model_gate(ref)
    models.as_("ann").approve_model(ref, reason="gate passed")
    served["pat"].release_model(ref, reason="over HTTP")
    models.ward.quarantine_contribution("man#1", reason="the debian mirror was compromised")
    with pytest.raises(PolicyViolation, match="quarantined contribution man#1") as refused:
        served["rita"].model_files(ref, tmp_path / "refused")
    assert "dataward model withdraw" in (refused.value.hint or "")
    taken = served["rita"].model_files(ref, tmp_path / "taken", accept_affected=True)
    assert "man#1" in taken["warning"] and (tmp_path / "taken" / "clean.skops").is_file()
    with pytest.raises(AccessDenied):
        served["ann"].withdraw_model(ref, reason="not mine to withdraw")
    with pytest.raises(InputError, match="needs a reason"):
        served["pat"].withdraw_model(ref, reason=" ")
    done = served["pat"].withdraw_model(ref, reason="trained on man#1")
    assert done["stage"] == "withdrawn" and done["by"] == "pat"
    assert served["rita"].model(ref)["withdrawal"]["reason"] == "trained on man#1"
    with pytest.raises(Conflict, match="already withdrawn"):
        served["pat"].withdraw_model(ref, reason="again")
    for serve in (
        lambda: served["rita"].model_files(ref, tmp_path / "files", accept_affected=True),
        lambda: served["rita"].model_attestation(ref),
    ):
        with pytest.raises(PolicyViolation, match="withdrawn by pat"):
            serve()
