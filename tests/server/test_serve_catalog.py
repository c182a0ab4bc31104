"""``dataward serve --catalog postgresql://... --store LOCATION --signing-key FILE``: a ward served from
its parts, with no ward folder on the server, in several worker processes, on a throwaway PostgreSQL
cluster. The server is the real command, started as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from dataward.client import HTTPWard
from dataward.domain.errors import AccessDenied, AuthenticationError, NotFound
from dataward.domain.schema import Schema
from dataward.ledger.signing import WardSigner
from dataward.server.assembly import hidden_password
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import free_port

pytestmark = pytest.mark.postgres


@dataclass
class Parts:
    catalog: str
    store: Path
    signing_key: Path
    admin_key: str
    root: Path


@pytest.fixture(scope="module")
def parts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Parts:
    """A ward made on PostgreSQL and a folder store, whose folder is then gone: the server gets only
    the catalog URL, the store and the signing key."""
    from tests.conftest import _create_database

    catalog = _create_database(request.getfixturevalue("postgres_server"))
    root = tmp_path_factory.mktemp("parts")
    made = root / "made"
    ward, admin_key = Ward.init(made, catalog_url=catalog, store_url=str(root / "objects"))
    ward.db.dispose()
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700)
    shutil.copy(made / "keys" / "ward-ed25519.pem", secrets / "ward.pem")
    shutil.rmtree(made)
    return Parts(catalog, root / "objects", secrets / "ward.pem", admin_key, root)


def serve(parts: Parts, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "dataward", "serve", "--catalog", parts.catalog, "--store", str(parts.store)]
    args += ["--signing-key", str(parts.signing_key), "--state", str(parts.root / "state")]
    args += ["--port", str(port), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAWARD_KEY", "DATAWARD_WARD", "DATAWARD_URL"))}
    # Its log goes to a file: a pipe nobody reads would fill and stall the server.
    log = (parts.root / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def wait_until_up(proc: subprocess.Popen[bytes], url: str) -> None:
    # Generous: each worker process imports the whole application, slow on a busy machine.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the server did not start")


@pytest.fixture(scope="module")
def server(parts: Parts) -> Iterator[str]:
    proc, url = serve(parts, "--workers", "2")
    try:
        wait_until_up(proc, url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_served_from_parts_in_two_workers(server: str, parts: Parts, tmp_path: Path) -> None:
    admin = HTTPWard(server, key=parts.admin_key)
    assert admin.whoami()["principal"] == "admin"
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.set_policy("wine", LIGHT_GATE_POLICY)
    # A contribution runs as a job in one worker; its state is answered by whichever worker is asked.
    c = admin.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40)), source="https://example.org/a")
    assert c["status"] in ("gated", "submitted") and c["added"] == 40
    assert [x["ref"] for x in admin.contributions("wine")] == ["wine#1"]
    # The objects went to the store given on the command line.
    assert any(p.is_file() for p in parts.store.rglob("*"))
    assert admin.verify().ok


def test_revocation_reaches_every_worker(server: str, parts: Parts) -> None:
    admin = HTTPWard(server, key=parts.admin_key)
    admin.create_principal("pia")
    key = admin.issue_key("pia")["key"]
    pia = HTTPWard(server, key=key)
    assert pia.whoami()["principal"] == "pia"
    admin.revoke_key(key.rsplit("_", 1)[0], reason="test")
    # Connections are spread over both workers: none of them lets the key in any more.
    for _ in range(8):
        with pytest.raises(AuthenticationError):
            HTTPWard(server, key=key).whoami()


def _stages(server: str, key: str, dataset: str) -> list[str]:
    # A new connection each time, so that the requests are spread over both workers.
    answer = httpx.get(f"{server}/api/v1/datasets/{dataset}/versions", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return [v["stage"] for v in answer.json()]


def test_a_write_from_another_process_is_read_at_once_by_every_worker(
    server: str, parts: Parts, tmp_path: Path
) -> None:
    from dataward.server.assembly import assemble_ward

    admin = HTTPWard(server, key=parts.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("reds", Schema.parse(label, specs))
    admin.set_policy("reds", NO_APPROVALS_POLICY)
    c = admin.contribute("reds", write_csv(tmp_path / "r.csv", wine_rows(0, 20)), source="s")
    admin.merge(c["ref"])
    admin.create_principal("rhea")
    admin.grant("rhea", "reader", "dataset:reds")
    key = admin.issue_key("rhea")["key"]
    for _ in range(8):  # remembered by both workers
        assert _stages(server, key, "reds") == ["candidate"]
    # Promoted by another process on the same catalog (an operator's CLI): only the ledger head
    # tells the workers that what they remember is out of date.
    outside = assemble_ward(parts.catalog, str(parts.store), parts.signing_key, tmp_path / "state")
    try:
        outside.as_key(parts.admin_key).promote("reds@v1", reason="ok")
        for _ in range(8):
            assert _stages(server, key, "reds") == ["training"]
    finally:
        outside.db.dispose()


def test_a_grant_taken_away_between_the_first_statement_and_the_transaction_is_refused(
    server: str, parts: Parts, tmp_path: Path
) -> None:
    """On PostgreSQL a served read's first statement (auth epoch, ledger head) runs on its own; when
    the read then needs its transaction, the caller is checked again in that snapshot. Here the
    reader's grant is taken away, by another process's connection, right after the first statement."""
    from dataward.server.assembly import assemble_ward

    admin = HTTPWard(server, key=parts.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("blanc", Schema.parse(label, specs))
    admin.create_principal("bea")
    admin.grant("bea", "reader", "dataset:blanc")
    key = admin.issue_key("bea")["key"]
    served = assemble_ward(parts.catalog, str(parts.store), parts.signing_key, tmp_path / "served")
    outside = assemble_ward(parts.catalog, str(parts.store), parts.signing_key, tmp_path / "outside").as_key(
        parts.admin_key
    )
    served.remember_callers()
    served.remember_reads()
    try:
        assert served.as_key(key).versions("blanc") == []  # the key is remembered, and the read
        assert served.context.reads is not None
        served.context.reads.clear()  # but not the read: it needs the catalog again
        taken: list[dict[str, Any]] = []

        def take_after_first(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            alone = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
            if " AS head" in statement and alone and not taken:
                taken.append(outside.revoke_grant("bea", "reader", "dataset:blanc"))

        event.listen(served.db.engine, "after_cursor_execute", take_after_first)
        with pytest.raises((AccessDenied, NotFound)):
            served.as_key(key).versions("blanc")
        assert taken and taken[0]["revoked"]
    finally:
        served.db.dispose()
        outside.db.dispose()


def test_state_folder_holds_no_secret(server: str, parts: Parts) -> None:
    state = parts.root / "state"
    names = {p.name for p in state.rglob("*")}
    assert "ward.json" in names and "credentials" not in names
    key_pem = parts.signing_key.read_bytes()
    for path in state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key_pem not in data and parts.admin_key.encode() not in data
    assert oct(state.stat().st_mode & 0o777) == "0o700"


def test_catalog_password_is_never_written_down() -> None:
    shown = hidden_password("postgresql+psycopg://dataward:s3cret-pw@db.internal:5432/ward")
    assert "s3cret-pw" not in shown and "db.internal" in shown


def refused_start(parts: Parts, catalog: str, signing_key: Path) -> str:
    """Run ``dataward serve`` in this process (it must refuse before serving); its error text."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    args = ["serve", "--catalog", catalog, "--store", str(parts.store), "--signing-key", str(signing_key)]
    result = CliRunner().invoke(app, [*args, "--state", str(parts.root / "refused"), "--port", str(free_port())])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert "Traceback" not in text
    return text


def test_wrong_signing_key_refuses_to_start(parts: Parts) -> None:
    other = parts.root / "other.pem"
    WardSigner.generate().save(other)
    assert "is not the key of ward" in refused_start(parts, parts.catalog, other)
    assert not (parts.root / "refused").exists()  # nothing made for a ward it will not serve


def test_catalog_without_a_ward_refuses_to_start(parts: Parts, request: pytest.FixtureRequest) -> None:
    from tests.conftest import _create_database

    empty = _create_database(request.getfixturevalue("postgres_server"))
    assert "holds no ward" in refused_start(parts, empty, parts.signing_key)
    password = "postgresql+psycopg://dataward:s3cret-pw@127.0.0.1:1/none"
    text = refused_start(parts, password, parts.signing_key)
    assert "cannot read a ward" in text and "s3cret-pw" not in text
