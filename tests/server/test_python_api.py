"""``dataward.open`` on a URL, the Python API over HTTP, and ``dataward serve`` as a real process."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import dataward
from dataward.client import HTTPWard
from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.domain.transport_errors import ServerUnreachable
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served, free_port


def test_open_a_url_gives_the_http_client_and_the_same_records(served: Served, tmp_path: Path) -> None:
    ward = dataward.open(served.url, key=served.admin_key)
    assert isinstance(ward, HTTPWard)
    label, specs = wine_schema_specs()
    ward.create_dataset("grapes", Schema.parse(label, specs))
    ward.set_policy("grapes", NO_APPROVALS_POLICY)
    info = ward.dataset("grapes").contribute(write_csv(tmp_path / "g.csv", wine_rows(0, 25)), source="s")
    ward.merge(info["ref"])
    ward.promote("grapes@v1", reason="ok")
    served_frame = ward.dataset("grapes").version("training").to_pandas()
    embedded = Ward.open(served.ward, key=served.admin_key)
    local_frame = embedded.dataset("grapes").version("training").to_pandas()
    assert served_frame.equals(local_frame) and len(served_frame) == 25
    assert ward.dataset("grapes").version("training").info["number"] == 1
    # An export into a folder that does not exist is refused by both, naming it; neither creates it.
    missing = tmp_path / "no" / "such" / "folder" / "out.parquet"
    for either in (ward, embedded):
        with pytest.raises(InputError, match="no such folder"):
            either.export("grapes@v1", missing)
    assert not (tmp_path / "no").exists()


def test_environment_url_wins_and_a_dead_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_URL", f"http://127.0.0.1:{free_port()}")
    ward = dataward.open(key="dw_aaaaaaaa_" + "b" * 52)
    assert isinstance(ward, HTTPWard)
    with pytest.raises(ServerUnreachable) as refused:
        ward.datasets()
    assert refused.value.exit_code == 1 and "DATAWARD_URL" in (refused.value.hint or "")


def test_a_url_without_its_scheme_is_refused_as_a_url_not_looked_for_as_a_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DATAWARD_URL=localhost:8000 (no http://) was opened as a ward folder: 'no ward at localhost:8000
    (missing ward.json)', with a hint about --ward. Both the library and the CLI name the URL's fault."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAWARD_URL", "localhost:8000")
    with pytest.raises(InputError, match="not the URL of a served ward") as refused:
        dataward.open(key="dw_aaaaaaaa_" + "b" * 52)
    assert "http://localhost:8000" in (refused.value.hint or "")
    result = CliRunner().invoke(app, ["whoami"])
    assert result.exit_code == 2 and "not the URL of a served ward" in result.output
    assert "ward.json" not in result.output and "http://localhost:8000" in result.output
    monkeypatch.delenv("DATAWARD_URL")
    result = CliRunner().invoke(app, ["--url", "127.0.0.1:8000", "whoami"])
    assert result.exit_code == 2 and "http://127.0.0.1:8000" in result.output


def test_dataward_serve_hands_its_settings_to_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dataward serve` migrates the ward once, puts its settings in the environment and asks uvicorn
    for worker processes built by a factory; the factory then serves that ward. (Spawning the worker
    processes themselves is uvicorn's; `make demo-server` runs them for real.)"""
    import uvicorn
    from typer.testing import CliRunner

    from dataward.cli.app import app
    from dataward.server.app import app_from_environment

    folder = tmp_path / "ward"
    _, key = dataward.init(folder)
    asked: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: asked.update(target=target, **options))
    for name in list(os.environ):
        if name.startswith("DATAWARD_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(
        app, ["serve", "--ward", str(folder), "--port", "8123", "--workers", "3", "--max-upload-mb", "7"]
    )
    assert result.exit_code == 0, result.output
    assert asked["target"] == "dataward.server.app:app_from_environment" and asked["factory"] is True
    assert (asked["workers"], asked["port"], asked["host"]) == (3, 8123, "127.0.0.1")
    assert os.environ["DATAWARD_SERVER_WARD"] == str(folder.resolve())
    assert os.environ["DATAWARD_SERVER_MAX_UPLOAD_BYTES"] == str(7 << 20)
    # What each worker process does with that environment: build the app and serve the ward.
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app_from_environment(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        ward = HTTPWard(f"http://127.0.0.1:{port}", key=key)
        assert ward.whoami()["principal"] == "admin" and ward.verify().ok
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for name in list(os.environ):  # set by the command itself, not by monkeypatch: remove them here
            if name.startswith("DATAWARD_SERVER_"):
                del os.environ[name]


def test_serve_refuses_a_folder_that_is_not_a_ward(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    result = CliRunner().invoke(app, ["serve", "--ward", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "dataward init" in result.output


def test_serve_refuses_an_unauthenticated_scheduler_on_another_host(tmp_path: Path, monkeypatch) -> None:
    """Whoever reaches a plain tcp:// scheduler can forge verdicts and run code in the server: refused
    before the server starts, unless the operator accepts it."""
    import uvicorn
    from typer.testing import CliRunner

    from dataward.cli.app import app

    folder = tmp_path / "ward"
    dataward.init(folder)
    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(args))
    for name in list(os.environ):
        if name.startswith("DATAWARD_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["serve", "--ward", str(folder), "--scheduler", "tcp://192.0.2.1:8786"])
    assert result.exit_code == 2 and "refusing the Dask scheduler" in result.output and not started
    assert "DATAWARD_SCHEDULER" not in os.environ
    monkeypatch.setenv("DATAWARD_SCHEDULER", "tcp://192.0.2.1:8786")
    monkeypatch.setenv("DATAWARD_ALLOW_INSECURE_SCHEDULER", "1")  # the operator's explicit opt-in
    result = CliRunner().invoke(app, ["serve", "--ward", str(folder)])
    assert result.exit_code == 0 and len(started) == 1, result.output
    for name in list(os.environ):  # set by the command itself, not by monkeypatch: remove them here
        if name.startswith("DATAWARD_SERVER_"):
            del os.environ[name]


def test_a_frame_the_embedded_ward_refuses_is_refused_over_http_too(served: Served) -> None:
    """A list of rows, or a DataFrame giving a column name twice, is an ``InputError`` naming the problem,
    as from a folder, not pandas' or AttributeError's own message."""
    import pandas as pd

    ward = dataward.open(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    ward.create_dataset("twice", Schema.parse(label, specs))
    frame = pd.DataFrame(wine_rows(0, 5))
    with pytest.raises(InputError, match="must be a file or folder path, a pandas DataFrame or a pyarrow Table"):
        ward.contribute("twice", frame.to_dict("records"), source="pandas")
    with pytest.raises(InputError, match=f"column '{label}': the column name appears 2 times among its columns"):
        ward.contribute("twice", pd.concat([frame, frame[[label]]], axis=1), source="pandas")
    assert ward.contributions("twice") == []


def test_serve_on_a_port_in_use_is_a_conflict_named_before_uvicorn_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn logs 'address already in use' and exits 3, which the CLI's exit codes read as not_found:
    serve refuses the address itself (conflict, exit 4), naming it, and never starts the server."""
    import socket

    import uvicorn
    from typer.testing import CliRunner

    from dataward.cli.app import app

    folder = tmp_path / "ward"
    dataward.init(folder)
    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: started.append(args))
    for name in list(os.environ):
        if name.startswith("DATAWARD_"):
            monkeypatch.delenv(name)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--ward", str(folder), "--port", str(port)])
    assert result.exit_code == 4, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output
    assert not started
    result = CliRunner().invoke(app, ["serve", "--ward", str(folder), "--host", "192.0.2.1"])
    assert result.exit_code == 2 and "--host" in result.output and not started
