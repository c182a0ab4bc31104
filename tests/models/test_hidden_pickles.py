"""Pickles the registration scan used to miss (a security review): ``pickle.load`` reads a stream from byte
0, stops at its STOP and needs no PROTO header, so a stream that runs code was passed as ``pickle: false``
when something followed it (a newline, junk, a zip archive), when its PROTO header was cut off, when it was
gzip-compressed at protocol 0, when it was a member of a legacy PyTorch tar checkpoint, and when it sat in
a ``.skops`` zip under a name the scan did not read. ``release: unsafe_artifacts: refuse`` and the rule
against decoy files rest on that flag. Every file, member and inflated stream is now walked from byte 0;
honest files of each format still register as safe. Nothing here is ever unpickled."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

import dataward
from dataward.domain.errors import InputError, PolicyViolation
from dataward.release import artifacts
from dataward.release.artifacts import hash_artifact, scan_file
from tests.helpers import TINY_ONNX
from tests.models.conftest import Models, text_model
from tests.models.test_artifact_content import safetensors_bytes


class _Payload:
    """Runs a shell command when unpickled (never done here)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo PWNED",))


P0, P2, P4 = (pickle.dumps(_Payload(), protocol=k) for k in (0, 2, 4))


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


HIDDEN = {
    "p0_newline.pt": P0 + b"\n",  # protocol 0, one byte after STOP
    "p0_space.npy": P0 + b" ",
    "p1_junk.bin": pickle.dumps(_Payload(), protocol=1) + b"junk",
    "p4_noproto.bin": P4[2:] + b"\x00" * 8,  # PROTO header cut off
    "p2_noproto.ckpt": P2[2:] + b"junk",
    "model.dat": gzip.compress(P0),  # gzip of a protocol-0 pickle
    "model.pt": gzip.compress(P0 + b"\n"),
    "legacy.pt": _tar({n: P2 for n in ("sys_info", "pickle", "storages", "tensors")}),  # torch's legacy tar
    "legacy_noproto.tar": _tar({"pickle": P2[2:] + b"\x00"}),
    "front.zip": P0 + _zip({"notes.txt": b"x"}),  # a pickle in front of a zip
    "front.pt": P2[2:] + _zip({"archive/data/0": b"\x00" * 8}),
    "member.zip": _zip({"model.joblib": P4, "payload": P0 + b"\n"}),
    "gzip_member.zip": _zip({"weights": gzip.compress(P4[2:] + b"x")}),
    "nested.zip": _zip({"inner.zip": _zip({"archive/data.pkl": P2})}),
    "model.tar.gz": _tar({"model/weights": P0 + b"\n"}, "w:gz"),
}


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_a_pickle_stream_at_the_start_of_any_file_or_member_is_found(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(HIDDEN[name])
    scan = scan_file(name, path)
    assert scan["pickle"], scan
    assert scan["severity"] in ("LIKELY_OVERTLY_MALICIOUS", "OVERTLY_MALICIOUS"), scan
    art = hash_artifact(path, name="m")
    assert art.unsafe and art.format == "pickle"


@pytest.mark.parametrize("name", ["p0_newline.pt", "p4_noproto.bin", "model.dat", "front.zip", "legacy.pt"])
def test_a_hidden_pickle_under_a_safe_formats_name_is_refused(tmp_path: Path, name: str) -> None:
    for suffix in (".onnx", ".safetensors"):
        path = tmp_path / (Path(name).stem + suffix)
        path.write_bytes(HIDDEN[name])
        with pytest.raises(
            InputError, match=rf"{path.name.replace('.', '[.]')} is named as .* it is pickle-based.*; it looks like"
        ):
            hash_artifact(path, name="m")


@pytest.mark.parametrize(
    ("member", "data"),
    [
        ("model.joblib", P4),
        ("payload", P4),
        ("data.PKL", P4),
        ("nested.zip", _zip({"archive/data.pkl": P2})),
        ("1234.npy", P0 + b"\n"),  # a name skops writes, bytes that are no numpy file
        ("99.bin", P2[2:]),
    ],
    ids=["model.joblib", "payload", "data.PKL", "nested.zip", "1234.npy", "99.bin"],
)
def test_a_skops_archive_with_a_pickle_member_is_refused(
    models: Models, tmp_path: Path, member: str, data: bytes
) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes((models.root / "clean.skops").read_bytes())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(member, data)
    with pytest.raises(InputError, match=r"model\.skops is named as skops but is not one: it is pickle-based"):
        hash_artifact(path, name="m")


def test_a_skops_archive_with_a_member_skops_does_not_write_is_refused(models: Models, tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes((models.root / "clean.skops").read_bytes())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("README.txt", b"nothing that runs")
    with pytest.raises(InputError, match=r"'README\.txt', a member skops does not write"):
        hash_artifact(path, name="m")


def test_refuse_policy_refuses_a_hidden_pickle_beside_a_clean_model(models: Models, tmp_path: Path) -> None:
    """The attack end to end: a clean .skops for the gate and a protocol-0 pickle followed by a newline as
    ``pytorch_model.pt``, which registered as safe and was released under ``unsafe_artifacts: refuse``."""
    models.ward.set_policy(
        "man",
        "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\nrelease:\n  unsafe_artifacts: refuse\n",
    )
    folder = tmp_path / "art"
    folder.mkdir()
    (folder / "model.skops").write_bytes((models.root / "clean.skops").read_bytes())
    (folder / "pytorch_model.pt").write_bytes(P0 + b"\n")
    before = len(models.ward.models("man-clf"))
    with (
        pytest.raises(PolicyViolation, match="runs code when loaded"),
        dataward.training_run("man@training", model="man-clf", ward=models.as_("tom")) as run,
    ):
        run.load()
        run.log_artifact(folder)
    assert len(models.ward.models("man-clf")) == before


def test_archives_nested_too_deep_or_inflating_too_much_are_not_analysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = b"harmless"
    for level in range(artifacts.MAX_NESTING + 1):
        deep = _zip({f"level{level}.zip" if level else "notes.txt": deep})
    (tmp_path / "deep.zip").write_bytes(deep)
    scan = scan_file("deep.zip", tmp_path / "deep.zip")
    assert scan["pickle"] and scan["severity"] == "OVERTLY_MALICIOUS"
    assert "nested more than 3 deep" in scan["analysis"][0]

    # A stream that is still a valid pickle after many opcodes is not handed to fickling whole.
    (tmp_path / "nones.dat").write_bytes(b"N" * (1 << 17))
    scan = scan_file("nones.dat", tmp_path / "nones.dat")
    assert scan["pickle"] and scan["severity"] == "OVERTLY_MALICIOUS"
    assert "still unfinished after 65,536 opcodes" in scan["analysis"][0]

    # A gzip-compressed tar is read through as it inflates: within the budget, then past it.
    (tmp_path / "big.tar.gz").write_bytes(_tar({"zeros": b"\x00" * (64 << 10), "notes.txt": b"x"}, "w:gz"))
    assert not scan_file("big.tar.gz", tmp_path / "big.tar.gz")["pickle"]
    monkeypatch.setattr(artifacts, "MAX_INFLATED_BYTES", 16 << 10)
    scan = scan_file("big.tar.gz", tmp_path / "big.tar.gz")
    assert scan["pickle"] and scan["severity"] == "OVERTLY_MALICIOUS"
    assert scan["analysis"] == ["(inflates to more than 0 MiB when scanned): not analysed: treated as malicious"]


def test_honest_files_stay_safe(models: Models, tmp_path: Path) -> None:
    import scipy.sparse

    clean = text_model(pd.read_csv(models.root / "baseline.csv", dtype=str))
    files = {
        "numbers.npy": _npy(np.arange(12.0).reshape(3, 4)),
        "model.onnx": TINY_ONNX,
        "model.safetensors": safetensors_bytes({"w": np.arange(6, dtype=np.float32)}),
        "notes.txt": b"The model was trained on the reviewed data. It is final.",
        "hello.txt": b"hello.",
        "data.csv": b"city,population\nParis,2100000\nNice,340000\n",
        "labels.csv": b"text,label\ncall me.,commands\n",
        "arrays.zip": _zip({"a.npy": _npy(np.eye(3)), "b.txt": b"hello."}),
        "arrays.tar": _tar({"a.npy": _npy(np.eye(3)), "README": b"weights."}),
        "text.gz": gzip.compress(b"hello.\n" * 100),
    }
    folder = tmp_path / "honest"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    sio.dump(clean, folder / "model.skops")
    # skops' other member kinds: a sparse matrix (.npz) and bytes (<uuid>.bin) beside arrays (.npy).
    sio.dump({"m": scipy.sparse.csr_matrix(np.eye(3)), "raw": b"hello.", "w": np.ones(3)}, folder / "extra.skops")
    with zipfile.ZipFile(folder / "extra.skops") as zf:
        assert {Path(n).suffix for n in zf.namelist()} == {".json", ".npz", ".bin", ".npy"}
    for path in sorted(folder.iterdir()):
        scan = scan_file(path.name, path)
        assert not scan["pickle"], scan
    for name, kind in [("model.skops", "skops"), ("extra.skops", "skops"), ("model.onnx", "onnx")]:
        art = hash_artifact(folder / name, name="m")
        assert (art.format, art.unsafe) == (kind, False)
    assert not hash_artifact(folder / "model.safetensors", name="m").unsafe
