"""A block and a withdrawal are final on a model's bytes, whatever the file is named.

The attacker's view: the blocked (or withdrawn) model file registered again under a name without a
model's suffix (``serving/model``, ``v1``, ``man-clf-v1.skops.bak``), beside a clean decoy ``model.skops``
for the gate to run. What counted as a model file was decided by the name alone, so the gate ran the
decoy, the block and withdrawal checks compared only the files named as models, and the release signed
(and ``model files`` served) the blocked bytes. Files that are no model (a README, a CSV of labels)
shared with a blocked or withdrawn version still carry nothing: a retrain beside them is released.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

import dataward
from dataward.domain.errors import InputError, PolicyViolation
from tests.models.conftest import Models, text_model


def _register(models: Models, artifact: Path) -> str:
    with dataward.training_run("man@training", model="man-clf", ward=models.as_("tom")) as run:
        run.load()
        run.log_artifact(artifact)
    return str(run.model_version["ref"])


def _trusted(models: Models) -> list[str]:
    return sio.get_untrusted_types(file=models.root / "clean.skops")


def _retrained(models: Models, path: Path, seed: int) -> Path:
    """A clean model trained again on a sample of the baseline: other bytes than man-clf@v1's."""
    frame = pd.read_csv(models.root / "baseline.csv", dtype=str).sample(frac=0.9, random_state=seed)
    sio.dump(text_model(frame), path)
    return path


def _clean_predictions(models: Models) -> object:
    clean = text_model(pd.read_csv(models.root / "baseline.csv", dtype=str))
    return lambda table: list(clean.predict(table.column("text").to_pylist()))


@pytest.mark.parametrize("hidden", ["serving/model", "weights.dat"])
def test_a_blocked_model_renamed_beside_a_decoy_is_neither_gated_on_the_decoy_nor_released(
    models: Models, tmp_path: Path, hidden: str
) -> None:
    """man-clf@v2 blocked; its very bytes registered again as ``serving/model`` beside a clean decoy
    ``model.skops``. The gate sees two models and runs neither; a gate run on other predictions may pass,
    but the release names the block on the renamed file."""
    assert models.as_("rita").model_gate("man-clf@v2")["verdict"] == "block"
    art = tmp_path / "art"
    (art / hidden).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(models.root / "clean.skops", art / "model.skops")
    shutil.copy(models.root / "backdoored.skops", art / hidden)
    ref = _register(models, art)
    with pytest.raises(InputError, match=rf"holds 2 files a consumer could load as the model: .*{hidden}"):
        models.as_("rita").model_gate(ref, trusted=_trusted(models))
    assert models.as_("rita").model_gate(ref, predict=_clean_predictions(models))["verdict"] == "pass"
    models.as_("ann").approve_model(ref, reason="gate passed")
    with pytest.raises(PolicyViolation, match=rf"a release gate blocked files it holds \({hidden} blocked by gate"):
        models.as_("pat").release_model(ref)


def test_a_blocked_model_alone_under_another_models_name_and_no_suffix_is_not_released(
    models: Models, tmp_path: Path
) -> None:
    """The blocked bytes as the one file ``model`` of another model (with a README): still blocked."""
    ward = models.ward
    assert models.as_("rita").model_gate("man-clf@v2")["verdict"] == "block"
    ward.grant("tom", "contributor", "model:other-clf")
    ward.grant("rita", "reviewer", "model:other-clf")
    ward.grant("ann", "approver", "model:other-clf")
    ward.grant("pat", "promoter", "model:other-clf")
    art = tmp_path / "other"
    art.mkdir()
    shutil.copy(models.root / "backdoored.skops", art / "model")
    (art / "README.md").write_text("a model\n")
    with dataward.training_run("man@training", model="other-clf", ward=models.as_("tom")) as run:
        run.load()
        run.log_artifact(art)
    ref = str(run.model_version["ref"])
    assert models.as_("rita").model_gate(ref, predict=_clean_predictions(models))["verdict"] == "pass"
    models.as_("ann").approve_model(ref, reason="gate passed")
    with pytest.raises(PolicyViolation, match=r"blocked files it holds \(model blocked by gate .* on man-clf@v2"):
        models.as_("pat").release_model(ref)


@pytest.fixture
def withdrawn(models: Models) -> Models:
    """man-clf@v1 gated, approved, released and withdrawn."""
    models.as_("rita").model_gate("man-clf@v1", trusted=_trusted(models))
    models.as_("ann").approve_model("man-clf@v1", reason="gate passed")
    models.as_("pat").release_model("man-clf@v1")
    models.as_("pat").withdraw_model("man-clf@v1", reason="backdoor found")
    return models


def test_a_withdrawn_model_renamed_without_a_model_suffix_is_never_served(withdrawn: Models, tmp_path: Path) -> None:
    art = tmp_path / "a"
    art.mkdir()
    shutil.copy(withdrawn.root / "clean.skops", art / "man-clf-v1.skops.bak")
    (art / "README.md").write_text("x\n")
    ref = _register(withdrawn, art)
    said = r"it holds man-clf-v1.skops.bak, the very bytes \(SHA-256\) of man-clf@v1, withdrawn by pat"
    for act in (
        lambda: withdrawn.as_("rita").model_files(ref, tmp_path / "out"),
        lambda: withdrawn.as_("rita").model_attestation(ref),
        lambda: withdrawn.as_("ann").approve_model(ref, reason="looks fine"),
        lambda: withdrawn.as_("pat").release_model(ref),
    ):
        with pytest.raises(PolicyViolation, match=said):
            act()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_a_withdrawn_model_beside_a_fresh_decoy_is_neither_gated_approved_nor_released(
    withdrawn: Models, tmp_path: Path
) -> None:
    art = tmp_path / "b"
    art.mkdir()
    _retrained(withdrawn, art / "model.skops", seed=3)
    shutil.copy(withdrawn.root / "clean.skops", art / "v1")
    ref = _register(withdrawn, art)
    with pytest.raises(InputError, match=r"holds 2 files a consumer could load as the model: model.skops, v1"):
        withdrawn.as_("rita").model_gate(ref, trusted=_trusted(withdrawn))
    said = r"it holds v1, the very bytes \(SHA-256\) of man-clf@v1"
    with pytest.raises(PolicyViolation, match=said):
        withdrawn.as_("ann").approve_model(ref, reason="gate passed")
    with pytest.raises(PolicyViolation, match=said):
        withdrawn.as_("pat").release_model(ref)
    with pytest.raises(PolicyViolation, match=said):
        withdrawn.as_("rita").model_files(ref, tmp_path / "out")


def test_a_retrain_beside_the_same_readme_and_data_as_a_blocked_and_a_withdrawn_version_is_released(
    withdrawn: Models, tmp_path: Path
) -> None:
    """Files that are no model carry nothing: a blocked version and a withdrawn one each held a README and
    a CSV of labels; a retrain (other model bytes) beside the very same README and CSV is gated on its one
    model file, approved, released and served."""
    models = withdrawn

    def folder(name: str, model: Path) -> Path:
        made = tmp_path / name
        made.mkdir()
        shutil.copy(model, made / "model.skops")
        (made / "README.md").write_text("the same notes\n")
        (made / "labels.csv").write_text("label\ncommands\nfiles\n")
        np.save(made / "thresholds.npy", np.arange(3.0))
        return made

    blocked = _register(models, folder("blocked", models.root / "backdoored.skops"))
    assert models.as_("rita").model_gate(blocked, trusted=_trusted(models))["verdict"] == "block"
    released = _register(models, folder("released", _retrained(models, tmp_path / "r.skops", seed=5)))
    models.as_("rita").model_gate(released, trusted=_trusted(models))
    models.as_("ann").approve_model(released, reason="gate passed")
    models.as_("pat").release_model(released)
    models.as_("pat").withdraw_model(released, reason="leaks")

    retrain = _register(models, folder("retrain", _retrained(models, tmp_path / "n.skops", seed=11)))
    report = models.as_("rita").model_gate(retrain, trusted=_trusted(models))
    assert report["verdict"] == "pass" and report["predictions"]["file"] == "model.skops"
    models.as_("ann").approve_model(retrain, reason="gate passed")
    assert models.as_("pat").release_model(retrain)["stage"] == "released"
    served = models.as_("rita").model_files(retrain, tmp_path / "out")
    assert served["model"] == retrain
    assert (tmp_path / "out" / "README.md").read_text() == "the same notes\n"


def test_a_model_is_known_by_its_bytes_and_plain_data_is_not(models: Models, tmp_path: Path) -> None:
    from dataward.release.predictors import is_model_file, model_kind

    shutil.copy(models.root / "clean.skops", tmp_path / "model")
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    (tmp_path / "weights.dat").write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 8)
    (tmp_path / "README.md").write_text("# a model\nsee model.skops\n")
    (tmp_path / "labels.csv").write_text("label\ncommands\n")
    np.save(tmp_path / "numbers.npy", np.arange(12.0))
    np.savez(tmp_path / "numbers.npz", a=np.arange(4))
    (tmp_path / "model.onnx.data").write_bytes(np.random.default_rng(1).random(4096).tobytes())
    (tmp_path / "weights.bin").write_bytes(np.random.default_rng(2).random(4096).tobytes())
    (tmp_path / "empty").write_bytes(b"")
    assert model_kind(tmp_path / "model") == "skops"
    assert model_kind(tmp_path / "weights.dat") == "safetensors"
    for data in ("README.md", "labels.csv", "numbers.npy", "numbers.npz", "model.onnx.data", "weights.bin", "empty"):
        assert model_kind(tmp_path / data) is None, data
    for name in ("model.pt", "weights.pth", "last.ckpt", "m.skops", "m.onnx"):
        assert is_model_file(name), name
    # ONNX external data is often named .bin: a .bin is a model by its bytes (a pickle), not by its name.
    for name in ("README.md", "numbers.npy", "weights.bin"):
        assert not is_model_file(name), name
