"""A server that stops closes the catalog it opened, as a command does when it ends: a folder's SQLite
log (up to 32 MB) is copied into the database and removed then, not left on disk for the next process."""

from __future__ import annotations

from pathlib import Path

import httpx

from dataward.service.ward import Ward
from tests.server.conftest import start_server


def test_a_stopped_server_leaves_no_catalog_log_behind(tmp_path: Path) -> None:
    folder = tmp_path / "ward"
    opened, key = Ward.init(folder)
    opened.close()
    log = folder / "catalog.sqlite-wal"
    assert not log.exists()
    server, thread, _, url = start_server(folder)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            made = http.post("/api/v1/principals", json={"name": "carol"}, headers={"Authorization": f"Bearer {key}"})
            assert made.status_code == 201, made.text
        assert log.exists()  # the server's connections hold the log while it serves
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not log.exists(), "the server stopped without closing its catalog"
    with Ward.open(folder) as reopened:  # what the log held is in the database
        assert "carol" in [p["name"] for p in reopened.principals()]
