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

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.domain.errors import AuthenticationError
from dataward.domain.schema import Schema
from dataward.ledger.signing import WardSigner
from dataward.server.assembly import hidden_password
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, write_csv
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
