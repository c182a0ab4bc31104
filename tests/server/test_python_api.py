"""``dataward.open`` on a URL, the Python API over HTTP, and ``dataward serve`` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import dataward
from dataward.client import HTTPWard
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


def test_environment_url_wins_and_a_dead_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_URL", f"http://127.0.0.1:{free_port()}")
    ward = dataward.open(key="dw_aaaaaaaa_" + "b" * 52)
    assert isinstance(ward, HTTPWard)
    with pytest.raises(ServerUnreachable) as refused:
        ward.datasets()
    assert refused.value.exit_code == 1 and "DATAWARD_URL" in (refused.value.hint or "")


@pytest.mark.slow
def test_dataward_serve_runs_workers_that_share_jobs(tmp_path: Path) -> None:
    folder = tmp_path / "ward"
    _, key = dataward.init(folder)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAWARD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "dataward", "serve", "--ward", str(folder), "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "dataward serve did not start"
            time.sleep(0.2)
        ward = HTTPWard(url, key=key)
        assert ward.whoami()["principal"] == "admin"
        # Several jobs, each polled over fresh connections that either worker may answer.
        for _ in range(2):
            with HTTPWard(url, key=key) as client:
                assert client.verify().ok
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
