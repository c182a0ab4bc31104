"""A served ward whose host clock reads behind its ledger (set back since the newest event was written):
every request is refused with ``clock_behind`` (HTTP 409), the key cache and remembered reads
notwithstanding, and ``verify``, the one command that still runs, can be started and read back by its
starter, as on a ledger that went backwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from dataward.service.ward import Ward
from tests.security.key_team import Clock
from tests.server.conftest import start_server
from tests.server.test_ledger_backwards import bearer, served_verify

API = "/api/v1"


def test_a_served_ward_behind_its_ledger_refuses_every_request_but_lets_verify_be_read(tmp_path: Path) -> None:
    future = Clock()
    future.now = datetime.now(UTC) - timedelta(days=1)
    folder = tmp_path / "ward"
    admin, key = Ward.init(folder, clock=future)
    admin.create_principal("carol")
    admin.grant("carol", "reader")
    carol = str(admin.issue_key("carol", ttl_days=2)["key"])
    server, thread, _, url = start_server(folder)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.get(f"{API}/whoami", headers=bearer(carol)).status_code == 200  # remembered now
            future.now = datetime.now(UTC) + timedelta(days=30)
            admin.create_principal("dave")  # the ledger's newest event: a month past the server's clock
            for who in (carol, key):
                refused = http.get(f"{API}/whoami", headers=bearer(who))
                assert refused.status_code == 409 and refused.json()["error"] == "clock_behind", refused.text
                assert http.get(f"{API}/datasets", headers=bearer(who)).status_code == 409
            report = served_verify(http, key)
            assert report["ok"], report["problems"]
            assert any("before the ledger's newest event" in w for w in report["warnings"]), report["warnings"]
    finally:
        admin.close()
        server.should_exit = True
        thread.join(timeout=10)
