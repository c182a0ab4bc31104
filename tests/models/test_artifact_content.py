"""A model file is what its bytes are, not what its name says (an input-robustness review): a pickle
renamed ``evil.onnx`` was registered as ONNX with ``unsafe: false``, and an empty ``.onnx``, 64 bytes of
0xff named ``.safetensors`` and a safetensors header claiming 10^15 bytes all registered. A file named as
safetensors, ONNX or skops is now read for its structure at registration and refused when it is not one;
every file is scanned for pickles whatever its name; and a version registered before that is scanned
again by the gate, so predictions from elsewhere cannot get a mislabeled pickle released."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skops.io as sio

import dataward
from dataward.domain.errors import InputError, PolicyViolation
from dataward.release import artifacts
from dataward.release.artifacts import hash_artifact
from tests.models.conftest import Models

MARK = "/tmp/dataward-test-artifact-content-PWNED"


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {MARK}",))


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file written by hand (the format: 8-byte header length, JSON header, the data)."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    data, at = b"", 0
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.float16): "F16"}
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtypes[array.dtype], "shape": list(array.shape), "data_offsets": [at, at + len(raw)]}
        data, at = data + raw, at + len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


def _register(models: Models, path: Path) -> dict:
    with dataward.training_run("man@training", model="man-clf", ward=models.as_("tom")) as run:
        run.load()
        run.log_artifact(path)
    assert run.model_version is not None
    return run.model_version


def test_files_that_are_not_what_their_names_say_are_refused_at_registration(models: Models, tmp_path: Path) -> None:
    bad = {
        "evil.onnx": (
            pickle.dumps(_Evil()),
            r"evil\.onnx is named as onnx but is not one: it is pickle-based .*"
            r"it looks like a pickle \(protocol",
        ),
        "zero.onnx": (b"", r"zero\.onnx is named as onnx but is not one: it is empty"),
        "garbage.safetensors": (
            b"\xff" * 64,
            r"garbage\.safetensors is named as safetensors but is not one: its header claims "
            r"18,446,744,073,709,551,615 bytes and the file holds 64; it looks like no known model format",
        ),
        "huge_hdr.safetensors": (
            (10**15).to_bytes(8, "little") + b"{}",
            r"huge_hdr\.safetensors is named as safetensors but is not one: its header claims "
            r"1,000,000,000,000,000 bytes and the file holds 10",
        ),
    }
    before = [m["ref"] for m in models.ward.models("man-clf")]
    objects = sorted(p.name for p in (models.ward.folder / "objects").rglob("*"))
    for name, (data, message) in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=message) as info:
            _register(models, tmp_path / name)
        assert info.value.exit_code == 2
    assert [m["ref"] for m in models.ward.models("man-clf")] == before
    assert sorted(p.name for p in (models.ward.folder / "objects").rglob("*")) == objects
    assert not Path(MARK).exists()


@pytest.mark.parametrize(
    ("name", "write", "says"),
    [
        # A safetensors header whose tensor lies past the data, or whose size disagrees with its shape.
        (
            "past.safetensors",
            lambda: safetensors_bytes({"w": np.zeros(2, np.float32)})[:-4],
            "lies outside the file's 4 bytes of data",
        ),
        (
            "shape.safetensors",
            lambda: safetensors_bytes({"w": np.zeros(2, np.float32)}).replace(b"[2]", b"[3]"),
            "not what its dtype and shape need",
        ),
        ("text.onnx", lambda: b"not really onnx", "it is no protobuf ModelProto"),
        ("gz.onnx", lambda: __import__("gzip").compress(b"weights" * 100), "looks like gzip-compressed data"),
        ("plain.skops", lambda: b"PK not a zip", "it is no zip archive"),
    ],
)
def test_each_format_is_read_for_its_structure(name: str, write, says: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / name).write_bytes(write())
    with pytest.raises(InputError, match=rf"{name.replace('.', '[.]')} is named as .*{says}"):
        hash_artifact(tmp_path / name, name="m")


def test_a_zip_named_skops_holding_a_pickle_or_no_schema_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "torch.skops", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Evil()))
        zf.writestr("schema.json", '{"protocol": 2}')
    with pytest.raises(InputError, match=r"torch\.skops is named as skops but is not one: it is pickle-based"):
        hash_artifact(tmp_path / "torch.skops", name="m")
    with zipfile.ZipFile(tmp_path / "bare.skops", "w") as zf:
        zf.writestr("a.npy", b"x")
    with pytest.raises(InputError, match=r"the archive holds no schema\.json"):
        hash_artifact(tmp_path / "bare.skops", name="m")


def test_real_files_of_each_format_still_register(models: Models, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.eye(2, dtype=np.float32), [0, 1])
    (tmp_path / "model.onnx").write_bytes(
        to_onnx(model, np.eye(2, dtype=np.float32), options={"zipmap": False}).SerializeToString()
    )
    weights = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.zeros(3, np.float16),
        "n": np.ones(0, np.int64),
    }
    (tmp_path / "model.safetensors").write_bytes(safetensors_bytes(weights, {"format": "np"}))
    (tmp_path / "empty.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    sio.dump(model, tmp_path / "model.skops")
    for name, kind in [
        ("model.onnx", "onnx"),
        ("model.safetensors", "safetensors"),
        ("empty.safetensors", "safetensors"),
        ("model.skops", "skops"),
    ]:
        info = _register(models, tmp_path / name)
        assert (info["format"], info["unsafe"]) == (kind, False), name
    try:  # the safetensors library's own writer, where it is installed
        from safetensors.numpy import save_file
    except ImportError:
        return
    save_file(weights, str(tmp_path / "library.safetensors"), metadata={"a": "b"})
    assert hash_artifact(tmp_path / "library.safetensors", name="m").format == "safetensors"


def test_a_pickle_under_any_name_is_flagged(tmp_path: Path) -> None:
    """Names no pickle loader reads: a pickle of protocol 0, a large one (its STOP beyond the first
    megabyte), a compressed joblib; text that happens to parse as opcodes is not one."""
    (tmp_path / "p0.dat").write_bytes(pickle.dumps(_Evil(), protocol=0))
    (tmp_path / "big.dat").write_bytes(pickle.dumps([b"x" * (3 << 20), _Evil()]))
    joblib.dump(_Evil(), tmp_path / "gz.dat", compress=3)
    for name in ("p0.dat", "big.dat", "gz.dat"):
        art = hash_artifact(tmp_path / name, name="m")
        assert art.unsafe and art.format == "pickle", name
    (tmp_path / "notes.txt").write_text("hello.")  # BINGET, APPENDS, LIST, LIST, OBJ, STOP: imports nothing
    assert not hash_artifact(tmp_path / "notes.txt", name="m").unsafe
    assert not Path(MARK).exists()


def test_predictions_from_elsewhere_cannot_release_a_mislabeled_pickle(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pickle named model.onnx registered as the scan once passed it (ONNX, unsafe: false); the gate,
    given predictions rather than running the model, scans the restored files again and will not pass."""
    (tmp_path / "model.onnx").write_bytes(pickle.dumps(_Evil()))
    with monkeypatch.context() as m:  # the registration as it was before files were read for what they are
        m.setattr(artifacts, "check_content", lambda *a: None)
        m.setattr(artifacts, "scan_file", lambda name, path: {"file": name, "pickle": False, "format": "onnx"})
        old = _register(models, tmp_path / "model.onnx")
    assert (old["format"], old["unsafe"]) == ("onnx", False)

    rita = models.as_("rita")
    rita.probe_inputs(old["ref"], tmp_path / "probes.parquet")
    probes = pq.read_table(tmp_path / "probes.parquet").to_pandas()
    clean = sio.load(models.root / "clean.skops", trusted=sio.get_untrusted_types(file=models.root / "clean.skops"))
    pd.DataFrame({"probe_id": probes["probe_id"], "prediction": clean.predict(probes["text"])}).to_csv(
        tmp_path / "predictions.csv", index=False
    )
    report = rita.model_gate(old["ref"], predictions=tmp_path / "predictions.csv")
    assert report["verdict"] != "pass"
    assert any("runs code when loaded: model.onnx is pickle-based" in r for r in report["reasons"])
    assert next(s for s in report["scan"] if s["file"] == "model.onnx")["pickle"]
    models.as_("ann").approve_model(old["ref"], reason="the gate only asked for review")
    with pytest.raises(PolicyViolation, match="its release gate verdict is review"):
        models.as_("pat").release_model(old["ref"])
    # Registered now, the same file is refused outright.
    with pytest.raises(InputError, match=r"model\.onnx is named as onnx but is not one: it is pickle-based"):
        _register(models, tmp_path / "model.onnx")
    assert not Path(MARK).exists()


def test_weights_holding_a_zip_end_record_by_chance_are_not_refused(tmp_path: Path) -> None:
    """``zipfile.is_zipfile`` finds an archive's end record anywhere in a file's last 64 KiB; quantized weights
    hold its four bytes about once in 65,000 files. A valid safetensors file of such weights is read for
    what it is, not refused as an archive that cannot be read; a tensor entry with a key the format's
    own library accepts (beyond dtype, shape and offsets) is too."""
    weights = np.frombuffer(b"\x00" * 64 + b"PK\x05\x06" + b"\x00" * 60, dtype=np.float32).copy()
    path = tmp_path / "chance.safetensors"
    path.write_bytes(safetensors_bytes({"w": weights}))
    assert hash_artifact(path, name="m").format == "safetensors"
    extra = safetensors_bytes({"w": np.zeros(2, np.float32)}).replace(b'"dtype"', b'"note":"x","dtype"', 1)
    size = int.from_bytes(extra[:8], "little") + len('"note":"x",')
    (tmp_path / "extra.safetensors").write_bytes(size.to_bytes(8, "little") + extra[8:])
    assert hash_artifact(tmp_path / "extra.safetensors", name="m").format == "safetensors"
    # A file that starts as an archive and cannot be read still counts as malicious.
    bad = tmp_path / "broken.skops"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 60 + b"PK\x05\x06" + b"\x00" * 18)
    with pytest.raises(InputError):
        hash_artifact(bad, name="m")
