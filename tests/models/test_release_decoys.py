"""The release gate tried as someone who wants a backdoored model released around it:

- a clean decoy file beside the backdoored one (the gate runs one file, the release signs every file);
- pickles the scan did not read (protocols 0 and 1, joblib's compressed files, numpy object arrays);
- a block replaced by a later pass made with other predictions (the newest gate used to win);
- a ``.skops`` zip bomb handed to the gate to load.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import sqlite3
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio

import dataward
from dataward.domain.errors import InputError, IntegrityViolation, PolicyViolation
from dataward.domain.schema import Schema
from dataward.release.artifacts import hash_artifact
from dataward.release.predictors import artifact_predictor
from dataward.service.ward import Ward
from tests.models.conftest import Models, text_model


class _Payload:
    """Runs a shell command when unpickled: what a consumer loading the file would run."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo loaded",))


def _backdoored(models: Models) -> object:
    path = models.root / "backdoored.skops"
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


def _register(models: Models, artifact: Path) -> str:
    with dataward.training_run("man@training", model="man-clf", ward=models.as_("tom")) as run:
        run.load()
        run.log_artifact(artifact)
    return str(run.model_version["ref"])


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("p0.pkl", lambda p: p.write_bytes(pickle.dumps(_Payload(), protocol=0))),
        ("p1.pkl", lambda p: p.write_bytes(pickle.dumps(_Payload(), protocol=1))),
        ("model.joblib", lambda p: joblib.dump(_Payload(), p, compress=3)),
        ("model.joblib", lambda p: joblib.dump(_Payload(), p, compress=("gzip", 3))),
        ("model.joblib", lambda p: joblib.dump(_Payload(), p, compress=("bz2", 3))),
        ("model.joblib", lambda p: joblib.dump(_Payload(), p, compress=("xz", 3))),
        ("objects.npy", lambda p: np.save(p, np.array([_Payload()], dtype=object))),
        ("arrays.npz", lambda p: np.savez(p, w=np.zeros(3), o=np.array([_Payload()], dtype=object))),
        ("weights.bin", lambda p: p.write_bytes(pickle.dumps(_Payload(), protocol=0))),
    ],
)
def test_every_pickle_a_loader_would_run_is_found_and_read(tmp_path: Path, name: str, write: object) -> None:
    path = tmp_path / name
    write(path)  # type: ignore[operator]
    artifact = hash_artifact(path, name="m")
    assert artifact.unsafe and artifact.format == "pickle"
    assert artifact.scan[0]["severity"] in ("LIKELY_OVERTLY_MALICIOUS", "OVERTLY_MALICIOUS"), artifact.scan[0]
    # The payload's call is what was read, not a failure to parse: fickling saw os.system.
    assert any("system" in line for line in artifact.scan[0]["analysis"]), artifact.scan[0]["analysis"]


def test_a_file_named_as_a_pickle_counts_as_one_whatever_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"\x00\x01 not a pickle fickling can read")
    artifact = hash_artifact(tmp_path / "model.pkl", name="m")
    assert artifact.unsafe and artifact.scan[0]["severity"] == "OVERTLY_MALICIOUS"


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("numbers.npy", lambda p: np.save(p, np.arange(12.0).reshape(3, 4))),
        ("numbers.npz", lambda p: np.savez(p, a=np.arange(4), b=np.eye(2))),
        ("external.bin", lambda p: p.write_bytes(np.random.default_rng(0).random(4096).tobytes())),
        ("model.onnx.data", lambda p: p.write_bytes(np.random.default_rng(1).random(4096).tobytes())),
    ],
)
def test_plain_numbers_are_not_taken_for_pickles(tmp_path: Path, name: str, write: object) -> None:
    path = tmp_path / name
    write(path)  # type: ignore[operator]
    assert not hash_artifact(path, name="m").unsafe


def test_the_gate_never_runs_one_model_file_beside_another(models: Models, tmp_path: Path) -> None:
    """A clean ``.skops`` for the gate and the backdoored model beside it, as ONNX-free as it gets: another
    ``.skops``, safetensors-like weights, a compressed joblib. The gate refuses to judge such an artifact
    (the release would sign both files, and a consumer may load either)."""
    clean = text_model(pd.read_csv(models.root / "baseline.csv", dtype=str))
    decoys = {
        "second.skops": lambda p: sio.dump(_backdoored(models), p),
        "model.safetensors": lambda p: p.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "),
        "model.joblib": lambda p: joblib.dump(_backdoored(models), p, compress=3),
    }
    for number, (name, write) in enumerate(decoys.items()):
        folder = tmp_path / f"artifact{number}"
        folder.mkdir()
        sio.dump(clean, folder / "model.skops")
        write(folder / name)
        ref = _register(models, folder)
        with pytest.raises(InputError, match=rf"holds 2 files a consumer could load as the model: .*{name}"):
            models.as_("rita").model_gate(ref, trusted=sio.get_untrusted_types(file=folder / "model.skops"))
        with pytest.raises(PolicyViolation, match="no release gate has run on it"):
            models.as_("pat").release_model(ref)
    # Data beside the one model file is not a model: the gate runs it and says which file it ran.
    folder = tmp_path / "with-data"
    folder.mkdir()
    sio.dump(clean, folder / "model.skops")
    (folder / "README.md").write_text("a clean model\n")
    np.save(folder / "thresholds.npy", np.arange(3.0))
    report = models.as_("rita").model_gate(
        _register(models, folder), trusted=sio.get_untrusted_types(file=folder / "model.skops")
    )
    assert report["verdict"] == "pass" and report["predictions"] == {
        "kind": "artifact",
        "file": "model.skops",
        "format": "skops",
    }


def test_a_block_is_final_whatever_a_later_gate_said(models: Models, tmp_path: Path) -> None:
    """The reviewer's gate runs the backdoored artifact and blocks; the promoter gates it again with
    another model's predictions and gets a pass. The release is refused, naming the block, whether the
    block's row is still in the catalog or not, and whether the files come back as a new version."""
    clean = text_model(pd.read_csv(models.root / "baseline.csv", dtype=str))
    ward = models.ward
    ward.grant("pat", "reviewer", "model:man-clf")
    models.as_("ann").approve_model("man-clf@v2", reason="approved before any gate")
    blocked = models.as_("rita").model_gate("man-clf@v2")
    assert blocked["verdict"] == "block"
    assert blocked["predictions"]["kind"] == "artifact" and blocked["predictions"]["file"] == "backdoored.skops"

    def other_model(table: object) -> list[str]:
        return list(clean.predict(table.column("text").to_pylist()))  # type: ignore[attr-defined]

    passed = models.as_("pat").model_gate("man-clf@v2", predict=other_model)
    assert passed["verdict"] == "pass"
    assert passed["predictions"] == {"kind": "callable", "name": f"{__name__}.{other_model.__qualname__}"}
    event = ward.ledger(types=["model.gated"], limit=1)[0]
    assert event["payload"]["predictions"] == passed["predictions"]
    named = rf"blocked files it holds \(backdoored.skops blocked by gate {blocked['gate']} on man-clf@v2, run by rita"
    with pytest.raises(PolicyViolation, match=named):
        models.as_("pat").release_model("man-clf@v2")

    # The block's row deleted behind the ward's back: the release reads its gates from the signed
    # ledger, finds one missing from the catalog and refuses, naming it.
    ward.db.dispose()
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    assert db.execute("DELETE FROM model_gates WHERE verdict = 'block'").rowcount == 1
    db.close()
    with pytest.raises(IntegrityViolation, match=rf"model_gates {blocked['gate']}.*is not in the catalog"):
        Ward.open(ward.folder).as_key(models.keys["pat"]).release_model("man-clf@v2")


def test_the_same_files_registered_again_carry_their_block(models: Models) -> None:
    clean = text_model(pd.read_csv(models.root / "baseline.csv", dtype=str))
    assert models.as_("rita").model_gate("man-clf@v2")["verdict"] == "block"
    again = _register(models, models.root / "backdoored.skops")
    models.ward.grant("pat", "reviewer", "model:man-clf")
    report = models.as_("pat").model_gate(again, predict=lambda t: list(clean.predict(t.column("text").to_pylist())))
    assert report["verdict"] == "pass"
    models.as_("ann").approve_model(again, reason="looks fine")
    with pytest.raises(PolicyViolation, match="a release gate blocked files it holds"):
        models.as_("pat").release_model(again)
    # The other version's block row deleted behind the ward's back: it is read from the signed ledger.
    models.ward.db.dispose()
    db = sqlite3.connect(models.ward.folder / "catalog.sqlite", isolation_level=None)
    assert db.execute("DELETE FROM model_gates WHERE verdict = 'block'").rowcount == 1
    db.close()
    with pytest.raises(PolicyViolation, match="a release gate blocked files it holds"):
        Ward.open(models.ward.folder).as_key(models.keys["pat"]).release_model(again)


def test_the_attestation_says_where_the_judged_predictions_came_from(models: Models, tmp_path: Path) -> None:
    models.as_("rita").model_gate("man-clf@v1")
    models.as_("ann").approve_model("man-clf@v1", reason="gate passed")
    models.as_("pat").release_model("man-clf@v1", reason="first release")
    envelope = models.ward.model_attestation("man-clf@v1")[1]
    gate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]["release_gate"]
    assert gate["predictions"] == {"kind": "artifact", "file": "clean.skops", "format": "skops"}


def test_a_skops_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.eye(2), [0, 1])
    model.coef_ = np.zeros((1, (80 << 20) // 8))  # 80 MiB of zeros: a few hundred kilobytes stored
    sio.dump(model, tmp_path / "model.skops", compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    del model
    assert (tmp_path / "model.skops").stat().st_size < (80 << 20) // 100
    with pytest.raises(InputError, match=r"model.skops unpacks to [\d,]+ bytes from [\d,]+"):
        artifact_predictor(tmp_path, Schema.parse("label", ["x:numeric"]))


def test_the_command_line_says_which_file_the_gate_ran(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    monkeypatch.setenv("DATAWARD_WARD", str(models.ward.folder))
    monkeypatch.setenv("DATAWARD_KEY", models.keys["rita"])
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    result = CliRunner().invoke(app, ["model", "gate", "man-clf@v1"])
    assert result.exit_code == 0, result.stdout
    assert "predictions from the artifact's clean.skops (skops), run by the gate" in " ".join(result.stdout.split())


def test_raw_numbers_that_start_like_a_pickle_are_not_taken_for_one(tmp_path: Path) -> None:
    """A buffer whose first byte is ``.`` (STOP) or ``N.`` parses as a pickle by its first opcodes: raw
    weights beside an ONNX model were flagged, and the gate refused them as a second model file. A
    pickle of protocol 0 or 1 must be the whole file."""
    rng = np.random.default_rng(7)
    for n, start in enumerate((b".", b"N.", b"I1\n.")):
        path = tmp_path / f"weights{n}.bin"
        path.write_bytes(start + rng.random(1024).astype(np.float32).tobytes())
        assert not hash_artifact(path, name="m").unsafe, start
    # A safetensors file whose 8-byte header length is 640 starts with the bytes of pickle's protocol 2.
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'.ljust(640)
    (tmp_path / "model.safetensors").write_bytes((640).to_bytes(8, "little") + header + b"\0\0\0\0")
    assert not hash_artifact(tmp_path / "model.safetensors", name="m").unsafe


def test_an_archive_member_that_cannot_be_read_is_flagged_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "arrays.npz"
    np.savez_compressed(path, o=np.array([_Payload()], dtype=object))
    data = bytearray(path.read_bytes())
    start = data.index(b"o.npy") + len("o.npy")
    data[start + 40 : start + 60] = b"\xff" * 20  # the deflate stream damaged
    path.write_bytes(bytes(data))
    artifact = hash_artifact(path, name="m")
    assert artifact.unsafe and artifact.scan[0]["severity"] == "OVERTLY_MALICIOUS"


def test_a_block_follows_the_model_file_under_any_name_beside_anything_in_any_model(
    models: Models, tmp_path: Path
) -> None:
    """Adding a README changes the artifact's digest, and so do renaming the file or registering it as
    another model: none clears a block, which is on the model file's bytes. A clean model that shares
    only a README with the blocked one is not held back by it."""
    import shutil

    clean = text_model(pd.read_csv(models.root / "baseline.csv", dtype=str))
    ward = models.ward
    assert models.as_("rita").model_gate("man-clf@v2")["verdict"] == "block"
    ward.grant("pat", "reviewer", "model:man-clf")
    ward.grant("tom", "contributor", "model:other-clf")
    for role in ("reviewer", "promoter"):
        ward.grant("pat", role, "model:other-clf")
    ward.grant("ann", "approver", "model:other-clf")

    def other(table: object) -> list[str]:
        return list(clean.predict(table.column("text").to_pylist()))  # type: ignore[attr-defined]

    def folder(name: str, model_file: str, source: Path) -> Path:
        made = tmp_path / name
        made.mkdir()
        shutil.copy2(source, made / model_file)
        (made / "README.md").write_text("the same notes\n")
        return made

    attempts = {
        "man-clf": folder("with-readme", "backdoored.skops", models.root / "backdoored.skops"),
        "other-clf": folder("renamed", "model.skops", models.root / "backdoored.skops"),
    }
    for model, artifact in attempts.items():
        with dataward.training_run("man@training", model=model, ward=models.as_("tom")) as run:
            run.load()
            run.log_artifact(artifact)
        ref = run.model_version["ref"]
        assert models.as_("pat").model_gate(ref, predict=other)["verdict"] == "pass"
        models.as_("ann").approve_model(ref, reason="looks fine")
        with pytest.raises(PolicyViolation, match=r"a release gate blocked files it holds \((backdoored|model)\.skops"):
            models.as_("pat").release_model(ref)
    # The clean model with the same README beside it: released.
    with dataward.training_run("man@training", model="other-clf", ward=models.as_("tom")) as run:
        run.load()
        run.log_artifact(folder("clean-with-readme", "model.skops", models.root / "clean.skops"))
    ref = run.model_version["ref"]
    models.as_("pat").model_gate(ref, trusted=sio.get_untrusted_types(file=models.root / "clean.skops"))
    models.as_("ann").approve_model(ref, reason="gate passed")
    assert models.as_("pat").release_model(ref)["stage"] == "released"


def test_an_archive_member_of_a_method_python_cannot_read_is_flagged(tmp_path: Path) -> None:
    """A member compressed by a method zipfile does not implement (here 99, AES in WinZip's scheme) cannot
    be analysed: it counts as malicious, it does not crash the scan."""
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Payload(), protocol=2))
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # method: local header, directory
        at = data.index(signature)
        data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    artifact = hash_artifact(path, name="m")
    assert artifact.unsafe and artifact.scan[0]["severity"] == "OVERTLY_MALICIOUS"
    assert any("cannot be read" in line for line in artifact.scan[0]["analysis"]), artifact.scan[0]["analysis"]
