"""Archive bombs: a small tar that unpacks far past every limit, played against the one place that unpacks
tars (``dataward.io.archives``, behind a training run's artifact folder on the server and
``HTTPWard.model_files`` on the client) and the zip archives the artifact scan opens.

A GNU/PAX *sparse* member declares a size far beyond the bytes it carries: 10 KB of tar made a 64 GiB
file on the server before. Every member is now checked before anything is written.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import pytest

from dataward.domain.errors import InputError
from dataward.io.archives import ArchiveLimits, extract_tar
from dataward.release import artifacts


def sparse_tar(path: Path, declared: int = 64 << 20, name: str = "weights.bin") -> Path:
    """A ~10 KB tar whose one member is a PAX (GNU 0.1) sparse file of ``declared`` bytes holding one real byte."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo(name)
        member.size = 1
        member.pax_headers = {"GNU.sparse.map": "0,1", "GNU.sparse.size": str(declared), "GNU.sparse.name": name}
        tar.addfile(member, io.BytesIO(b"x"))
    path.write_bytes(buf.getvalue())
    return path


def plain_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, mode="w:") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


GENEROUS = ArchiveLimits.within(1 << 30)


def test_a_sparse_member_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = sparse_tar(tmp_path / "bomb.tar")
    assert archive.stat().st_size < 16 << 10
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"'weights\.bin', a sparse file \(it declares 67,108,864 bytes\)"):
        extract_tar(archive, out, GENEROUS, what="the artifact folder 'm'")
    assert list(out.iterdir()) == []


def test_a_member_over_the_limit_is_refused(tmp_path: Path) -> None:
    archive = plain_tar(tmp_path / "big.tar", {"ok.txt": b"a" * 10, "big.bin": b"b" * 5000})
    with pytest.raises(InputError, match=r"'big\.bin', which is 5,000 bytes, over .*max_member_bytes"):
        extract_tar(archive, tmp_path / "out", ArchiveLimits(4096, 1 << 20), what="the archive")
    assert not (tmp_path / "out" / "ok.txt").exists()  # checked first, written only after


def test_the_unpacked_total_is_bounded(tmp_path: Path) -> None:
    archive = plain_tar(tmp_path / "many.tar", {f"f{i}.bin": b"c" * 3000 for i in range(4)})
    with pytest.raises(InputError, match=r"'f3\.bin', which takes the unpacked total to 12,000 bytes.*max_total_bytes"):
        extract_tar(archive, tmp_path / "out", ArchiveLimits.within(10_000), what="the archive")


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = plain_tar(tmp_path / "swarm.tar", {f"f{i}": b"" for i in range(12)})
    with pytest.raises(InputError, match=r"more than 10 members \(max_members\)"):
        extract_tar(archive, tmp_path / "out", ArchiveLimits.within(1 << 20, max_members=10), what="the archive")


def test_links_are_refused_even_inside_the_folder(tmp_path: Path) -> None:
    buf = tmp_path / "links.tar"
    with tarfile.open(buf, mode="w:") as tar:
        link = tarfile.TarInfo("alias")
        link.type = tarfile.SYMTYPE
        link.linkname = "weights.bin"
        tar.addfile(link)
    with pytest.raises(InputError, match=r"'alias', which is a link"):
        extract_tar(buf, tmp_path / "out", GENEROUS, what="the archive")


def test_plain_files_unpack_whole(tmp_path: Path) -> None:
    archive = plain_tar(tmp_path / "ok.tar", {"model.onnx": b"onnx", "sub/config.json": b"{}"})
    extract_tar(archive, tmp_path / "out", ArchiveLimits.within(1 << 10), what="the archive")
    assert (tmp_path / "out" / "model.onnx").read_bytes() == b"onnx"
    assert (tmp_path / "out" / "sub" / "config.json").read_bytes() == b"{}"


def test_a_zip_bomb_pickle_member_is_not_unpacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PyTorch-style zip whose data.pkl unpacks past the limit: not read, and counted as malicious."""
    monkeypatch.setattr(artifacts, "MAX_PICKLE_MEMBER_BYTES", 1 << 10)
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps([0] * 5000, protocol=2))
    assert path.stat().st_size < 1 << 10
    scan = artifacts.scan_file("model.pt", path)
    assert scan["pickle"] and scan["severity"] == "OVERTLY_MALICIOUS"
    assert "not analysed" in scan["analysis"][0]
