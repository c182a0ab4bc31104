"""A running server never accepts a ledger that went backwards.

The outside trial's attack on a served ward: while the server runs, someone who can write the catalog
deletes the newest events (a key's revocation and what came after) and sets the key's ``revoked_at``
back to NULL, and deletes the checkpoints kept in the ward folder too. The server read the longer
ledger: from then on it refuses every request with ``integrity_violation`` naming the cut, the revived
key included, however long its key cache has lapsed. And the honest path: many requests in parallel
with writes are never taken for a cut (a request that started before a newer event was committed
legitimately sees an older head)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from dataward.service.ward import Ward
from tests.server.conftest import Served, serve_ward

API = "/api/v1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def served(tmp_path: Path, catalog_url: str | None) -> Iterator[Served]:
    """A server of its own (its catalog SQLite or PostgreSQL): the attack leaves its ward refusing
    everything."""
    yield from serve_ward(tmp_path, catalog_url=catalog_url)


def _carol(served: Served) -> str:
    admin = Ward.open(served.ward, key=served.admin_key)
    admin.create_principal("carol")
    admin.grant("carol", "reader")
    key = str(admin.issue_key("carol", ttl_days=5)["key"])
    admin.close()
    return key


def test_parallel_requests_and_writes_are_never_taken_for_a_cut(served: Served) -> None:
    carol = _carol(served)
    statuses: list[int] = []
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=served.url, timeout=60) as http:
            while not stop.is_set():
                statuses.append(http.get(f"{API}/whoami", headers=bearer(carol)).status_code)
                statuses.append(http.get(f"{API}/ledger/head", headers=bearer(served.admin_key)).status_code)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        with httpx.Client(base_url=served.url, timeout=60) as http:
            for n in range(6):
                issued = http.post(f"{API}/keys", json={"principal": "carol"}, headers=bearer(served.admin_key))
                assert issued.status_code == 201, issued.text
                revoked = http.post(
                    f"{API}/keys/{issued.json()['key'][:11]}/revoke",
                    json={"reason": f"honest {n}"},
                    headers=bearer(served.admin_key),
                )
                assert revoked.status_code == 200, revoked.text
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
    assert statuses and set(statuses) == {200}
    # Another process's verify of the same ward: clean.
    assert Ward.open(served.ward).verify().ok


def test_a_served_ward_whose_ledger_is_cut_refuses_the_revived_key(served: Served) -> None:
    carol = _carol(served)
    key_id = carol[3:11]
    with httpx.Client(base_url=served.url, timeout=60) as http:
        assert http.get(f"{API}/whoami", headers=bearer(carol)).status_code == 200
        revoked = http.post(
            f"{API}/keys/dw_{key_id}/revoke", json={"reason": "stolen"}, headers=bearer(served.admin_key)
        )
        assert revoked.status_code == 200, revoked.text
        refused = http.get(f"{API}/whoami", headers=bearer(carol))
        assert refused.status_code == 401 and refused.json()["error"] == "key_revoked"
        head = http.get(f"{API}/ledger/head", headers=bearer(served.admin_key)).json()

        # Straight on the catalog, as its writer (no signing key): the revocation and what followed deleted.
        catalog = Ward.open(served.ward).db
        try:
            with catalog.engine.begin() as conn:
                seq = conn.execute(
                    text("SELECT min(seq) FROM ledger_events WHERE type = 'key.revoked' AND subject LIKE :k"),
                    {"k": f"%{key_id}%"},
                ).scalar_one()
                conn.execute(text("DELETE FROM ledger_events WHERE seq >= :s"), {"s": seq})
                conn.execute(text("UPDATE api_keys SET revoked_at = NULL WHERE id = :k"), {"k": key_id})
        finally:
            catalog.dispose()
        for kept in (served.ward / "checkpoints").glob("*.json"):
            kept.unlink()  # the server's memory alone must catch it

        for _ in range(2):  # not remembered as fine either
            answer = http.get(f"{API}/whoami", headers=bearer(carol))
            assert answer.status_code == 500, answer.text
            assert answer.json()["error"] == "integrity_violation"
            assert "went backwards" in answer.json()["message"]
            assert f"ends at event #{seq - 1}" in answer.json()["message"]
        lowered = http.get(f"{API}/ledger/head", headers=bearer(served.admin_key))
        assert lowered.status_code == 500 and lowered.json()["error"] == "integrity_violation"
        assert f"event #{head['seq']}" in lowered.json()["message"]
        # Verify is not refused: it diagnoses what the others refuse (docs/threat-model.md).
        report = served_verify(http, served.admin_key)
        assert not report["ok"] and report["first_bad_event"] == seq, report["problems"]
        assert any(p["kind"] == "missing" for p in report["problems"])


def served_verify(http: httpx.Client, key: str) -> dict:
    """Run verify as a job on the server and wait for its report."""
    started = http.post(f"{API}/verify", json={}, headers=bearer(key))
    assert started.status_code == 202, started.text
    job = started.json()
    for _ in range(600):
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
        answer = http.get(f"{API}/jobs/{job['id']}", headers=bearer(key))
        assert answer.status_code == 200, answer.text
        job = answer.json()
    assert job["status"] == "succeeded", job
    return job["result"]
