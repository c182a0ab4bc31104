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
    # joblib's lz4 compression (an LZ4 frame: magic, descriptor, then blocks): the scan reads no LZ4, and
    # joblib.load unpickles it under any name, so it is not analysed and counts as malicious.
    "weights.bin": b"\x04\x22\x4d\x18\x64\x40\xa7" + bytes(range(200)),
    "lz4_member.zip": _zip({"weights": b"\x04\x22\x4d\x18\x64\x40\xa7" + bytes(64)}),
}


def _found_malicious(tmp_path: Path, name: str, data: bytes) -> Path:
    """``data`` written to ``tmp_path / name``, asserted to scan as a malicious pickle; its path."""
    path = tmp_path / name
    path.write_bytes(data)
    scan = scan_file(name, path)
    assert scan["pickle"], scan
    assert scan["severity"] in ("LIKELY_OVERTLY_MALICIOUS", "OVERTLY_MALICIOUS"), scan
    return path


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_a_pickle_stream_at_the_start_of_any_file_or_member_is_found(tmp_path: Path, name: str) -> None:
    path = _found_malicious(tmp_path, name, HIDDEN[name])
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


# --- A second review: bytes the unpickler reads that the walk refused, and containers read two ways -------

PRINT = b"cbuiltins\nprint\n(S'PWNED'\ntR."  # protocol 0: print('PWNED'); never unpickled here


def _npy_header(version: int, header_size: int = 12_000) -> bytes:
    """A numpy file of objects whose header is longer than numpy's default limit (10,000 bytes), which
    ``numpy.load(allow_pickle=True)`` lifts, then a pickle stream."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = (header + " " * (header_size - len(header) - 1) + "\n").encode()
    length = len(header).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + length + header + PRINT


def _lzma_small_dictionary(data: bytes) -> bytes:
    import lzma

    return lzma.compress(data, format=lzma.FORMAT_ALONE, filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 8192}])


def _zfile(data: bytes) -> bytes:
    """joblib's format before 0.9.3 (``read_zfile``): b"ZF", the length in hexadecimal over 19 bytes, zlib."""
    import zlib

    return b"ZF" + hex(len(data)).encode().ljust(19) + zlib.compress(data)


HIDDEN_2 = {
    "octal.dat": b"I010\n0" + PRINT + b"\x00junk",  # strtol reads 010 (octal), int(x, 0) refuses it
    "sign_octal.dat": b"I -010\n0" + PRINT + b"\x00junk",  # leading blank and sign, as strtol reads
    "nul_int.dat": b"I12\x00zz\n0" + PRINT + b"\x00junk",  # strtol stops at the NUL, as the unpickler does
    "octal_member.zip": _zip({"payload": b"I010\n0" + PRINT + b"\x00junk"}),
    "latin.dat": b"S'\xc3\xa9'\n0" + PRINT + b"\x00junk",  # a STRING of non-ASCII bytes (torch: utf-8/latin-1)
    "bighdr.npy": _npy_header(1),
    "bighdr_v2.dat": _npy_header(2),
    "bighdr.npz": _zip({"arr_0.npy": _npy_header(1)}),
    "small_dict.bin": _lzma_small_dictionary(PRINT),  # starts 5d 00 20: joblib tests 5d 00 alone
    "small_dict.txt": _lzma_small_dictionary(b"I010\n0" + PRINT + b"\x00junk"),
    "zfile.dat": _zfile(PRINT),
    "zfile_member.zip": _zip({"model": _zfile(PRINT + b"\x00junk")}),
}


@pytest.mark.parametrize("name", sorted(HIDDEN_2))
def test_pickles_the_unpickler_reads_but_the_walk_refused_are_found(tmp_path: Path, name: str) -> None:
    _found_malicious(tmp_path, name, HIDDEN_2[name])


def _stored_zip(members: list[tuple[str, bytes]], comment_pad: int = 0) -> tuple[bytes, int, int, int]:
    """A zip of stored members, with the offset, size and count of its central directory."""
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for i, (name, data) in enumerate(members):
            info = zipfile.ZipInfo(name)
            if i == 0 and comment_pad:
                info.comment = b"x" * comment_pad
            zf.writestr(info, data)
    data = buffer.getvalue()
    end = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack("<HII", data[end + 10 : end + 20])
    return data, offset, size, count


def _two_directories() -> bytes:
    """A checkpoint PyTorch's miniz reads as a malicious ``archive/data.pkl`` (the end record's offset) and
    Python's zipfile as a harmless README (it sees data before the archive and shifts every offset)."""
    import struct

    evil = [("archive/data.pkl", b"\x80\x02" + PRINT), ("archive/byteorder", b"little"), ("archive/version", b"3\n")]
    decoy = [("archive/README", b"nothing to see here")]
    m, mo, ms, mc = _stored_zip(evil)
    b, bo, bs, _ = _stored_zip(decoy)
    if bs < ms:
        b, bo, bs, _ = _stored_zip(decoy, ms - bs)
    else:
        m, mo, ms, mc = _stored_zip(evil, bs - ms)
    assert bs == ms and bo <= mo
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, mc, mc, ms, mo, 0)
    return m[: mo + ms] + b[:bo] + b"\x00" * (mo - bo) + b[bo : bo + bs] + end


def test_a_zip_two_readers_read_differently_is_malicious(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    path.write_bytes(_two_directories())
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["archive/README"]  # what Python sees
    scan = scan_file(path.name, path)
    assert scan["pickle"] and scan["severity"] == "OVERTLY_MALICIOUS", scan
    assert "two readers see different files" in scan["analysis"][0]
    # Inside another archive too.
    (tmp_path / "outer.zip").write_bytes(_zip({"ckpt.pt": _two_directories()}))
    scan = scan_file("outer.zip", tmp_path / "outer.zip")
    assert scan["pickle"] and "two readers see different files" in scan["analysis"][0], scan


def test_a_zip_with_a_local_header_its_directory_does_not_list_is_malicious(tmp_path: Path) -> None:
    """A reader walking local headers from byte 0 (as streaming unzippers do) finds a member the central
    directory leaves out."""
    hidden = _zip({"archive/data.pkl": b"\x80\x02" + PRINT})
    hidden = hidden[: hidden.find(b"PK\x01\x02")]  # its local header and data only
    shown = _zip({"archive/README": b"nothing"})
    import struct

    # Shift the shown archive's offsets past the hidden member, so that Python finds no data before it.
    cd = shown.find(b"PK\x01\x02")
    end = shown.rfind(b"PK\x05\x06")
    directory = bytearray(shown[cd:end])
    (offset,) = struct.unpack("<I", directory[42:46])
    directory[42:46] = struct.pack("<I", offset + len(hidden))
    record = bytearray(shown[end:])
    record[16:20] = struct.pack("<I", cd + len(hidden))
    data = hidden + shown[:cd] + bytes(directory) + bytes(record)
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["archive/README"]
    scan = scan_file(path.name, path)
    assert scan["pickle"] and "a local header at byte 0" in scan["analysis"][0], scan


def test_text_that_reads_as_an_import_then_junk_is_no_pickle(tmp_path: Path) -> None:
    """``click\\nnumpy\\n...`` reads as GLOBAL('lick', 'numpy') then a memo store: an import that nothing
    calls. Only a stream that reaches a call runs code."""
    files = {
        "requirements.txt": b"click\nnumpy\nrequests\n",
        "labels.txt": b"cat\ndog\nrabbit\n",
        "zfs.txt": b"ZFS pool notes: nothing compressed here.\n",
        "lzma_like.bin": b"\x5d\x00" + bytes(range(200)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert not scan_file(name, tmp_path / name)["pickle"], name
