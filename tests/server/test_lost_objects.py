"""A stored object lost or altered behind the ward's back, read in a folder and over real HTTP.

The ledger says the object exists, so its absence is data loss or tampering, not "no such thing": every
read path (records, export, load, stream) refuses with ``IntegrityViolation`` (exit 7, HTTP 500) and
points at ``dataward verify``, which lists the same object as ``missing``. What a server answers names
the object by its digest and the version being read, never by a path on the server's disk; the path goes
to the server's log, where its operator finds the file to restore. ``POST /checkpoints`` does not name
the server's folder either.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dataward.api import WardAPI
from dataward.catalog.tables import contributions, gate_runs
from dataward.client import HTTPWard
from dataward.domain.errors import IntegrityViolation
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, wine_ward, write_csv
from tests.server.conftest import start_server

MODES = ("embedded", "http")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served ward whose ``wine@v1`` is in training, made of one contribution stored as one chunk;
    the admin's key and that chunk's digest and file."""
    root = tmp_path_factory.mktemp("lost-objects")
    ward = wine_ward(root / "ward")
    merge_reviewed(ward, ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 60)), source="a")["id"])
    ward.promote("wine@v1")
    with ward.db.reading() as conn:
        chunk = conn.execute(select(contributions.c.chunk_object)).scalar_one()
        report = conn.execute(select(gate_runs.c.report_object)).scalar_one()
    admin = str(ward.credential)
    path = Path(ward.store.path_of(chunk))
    ward.db.dispose()
    server, thread, _settings, url = start_server(root / "ward")
    try:
        yield {
            "url": url,
            "admin": admin,
            "chunk": chunk,
            "file": path,
            "report": report,
            "report_file": Path(ward.store.path_of(report)),
            "folder": root / "ward",
            "root": root,
        }
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _ward(served: dict[str, Any], mode: str) -> WardAPI:
    if mode == "embedded":
        return Ward.open(served["folder"], key=served["admin"])
    return HTTPWard(served["url"], key=served["admin"])


def _reads(w: WardAPI, out: Path) -> dict[str, Callable[[], Any]]:
    return {
        "records": lambda: w.read_version("wine", "v1"),
        "export": lambda: w.export("wine@v1", out / "export.parquet"),
        "load": lambda: w.load_version("wine", "v1"),
        "stream": lambda: list(w.stream_version("wine", "v1", batch_rows=10)[1]),
    }


class _Moved:
    """The chunk's file set aside (lost) or replaced by other bytes (altered) for the test, then put back."""

    def __init__(self, file: Path, *, altered: bool) -> None:
        self.file, self.kept, self.altered = file, file.with_name(file.name + ".kept"), altered

    def __enter__(self) -> None:
        os.replace(self.file, self.kept)
        if self.altered:
            self.file.write_bytes(b"not the chunk")

    def __exit__(self, *_exc: object) -> None:
        if self.file.exists():
            os.chmod(self.file, 0o644)
            self.file.unlink()
        os.replace(self.kept, self.file)


def _leaks(text: str, served: dict[str, Any]) -> bool:
    """Whether ``text`` names anything of the server's disk."""
    shard = f"{served['file'].parent.name}/{served['file'].name}"  # the file's name is part of the digest
    return str(served["root"]) in text or shard in text or "/objects" in text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("read", ["records", "export", "load", "stream"])
def test_a_lost_object_is_an_integrity_violation_on_every_read(
    served: dict[str, Any], mode: str, read: str, tmp_path: Path
) -> None:
    w = _ward(served, mode)
    with _Moved(served["file"], altered=False), pytest.raises(IntegrityViolation) as info:
        _reads(w, tmp_path)[read]()
    exc = info.value
    assert exc.exit_code == 7 and exc.code == "integrity_violation"
    assert served["chunk"] in exc.message and "missing" in exc.message and "wine@v1" in exc.message
    assert "dataward verify" in (exc.hint or "")
    if mode == "http":
        assert not _leaks(f"{exc.message} {exc.hint} {exc.details}", served), exc.to_dict()
    # Put back, the version reads again.
    assert _reads(w, tmp_path)[read]() is not None


@pytest.mark.parametrize("mode", MODES)
def test_a_lost_gate_report_is_an_integrity_violation(served: dict[str, Any], mode: str) -> None:
    with _Moved(served["report_file"], altered=False), pytest.raises(IntegrityViolation) as info:
        _ward(served, mode).gate_report("wine#1")
    assert served["report"] in info.value.message and "gate report of wine#1" in info.value.message
    assert not _leaks(str(info.value), served), info.value.to_dict()


def test_verify_names_the_same_object_missing(served: dict[str, Any]) -> None:
    with _Moved(served["file"], altered=False):
        problems = Ward.open(served["folder"], key=served["admin"]).verify().problems
    assert [p.kind for p in problems if p.area == "objects" and served["chunk"] in p.where] == ["missing"]


@pytest.mark.parametrize("altered", [False, True], ids=["lost", "altered"])
def test_the_server_answers_with_the_digest_and_logs_the_path(
    served: dict[str, Any], altered: bool, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Authorization": f"Bearer {served['admin']}"}
    with (
        _Moved(served["file"], altered=altered),
        caplog.at_level(logging.WARNING, logger="dataward.server"),
        httpx.Client(base_url=served["url"], headers=headers, timeout=30) as http,
    ):
        answer = http.get("/api/v1/datasets/wine/records", params={"version": "v1"})
    body = answer.json()
    assert answer.status_code == 500 and body["error"] == "integrity_violation" and body["exit_code"] == 7
    assert served["chunk"] in body["message"] and "wine@v1" in body["message"]
    assert not _leaks(answer.text, served), body
    # The operator's log has the file to restore.
    assert str(served["file"]) in caplog.text


@pytest.mark.parametrize("altered", [False, True], ids=["lost", "altered"])
def test_a_local_operator_is_shown_the_file(served: dict[str, Any], altered: bool) -> None:
    """Embedded, the ward's folder is the caller's own: the error says which file to restore."""
    from tests.helpers import run_cli

    with _Moved(served["file"], altered=altered):
        done = run_cli(
            served["folder"], "export", "wine@v1", "-o", str(served["root"] / "out.parquet"), key=served["admin"]
        )
    assert done.returncode == 7, done.stderr
    assert served["chunk"] in done.stderr and str(served["file"]) in done.stderr.replace("\n", "")


def test_a_checkpoint_made_over_http_does_not_name_the_server_folder(served: dict[str, Any]) -> None:
    made = HTTPWard(served["url"], key=served["admin"]).checkpoint()
    assert not _leaks(str(made), served) and str(served["folder"]) not in str(made), made
    # The file it names is one the ward keeps.
    listed = HTTPWard(served["url"], key=served["admin"]).checkpoints()
    assert made["kept"] in {c["file"] for c in listed}
    # Embedded, the operator is told where it is on disk.
    local = Ward.open(served["folder"], key=served["admin"]).checkpoint()
    assert Path(local["kept"]).is_file() and Path(local["kept"]).is_relative_to(served["folder"])
