"""A job and an upload belong to the key that made them, not only to its principal.

Attack: a principal holds two keys, one narrowed to ``dataset:secret`` and one to ``dataset:wine``.
With the narrow ``wine`` key it reads the job the ``secret`` key started (the whole imported
contribution's result) and submits the ``secret`` key's uploads, although that key may not see
``secret`` at all. A job or an upload read or named with another key answers as one that does not
exist, as anything else the caller may not see does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.domain.schema import Schema
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served

API = "/api/v1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def keys(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """carol contributes to and reads both ``wine`` and ``secret``, with one key narrowed to each."""
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    for name in ("wine", "secret"):
        admin.create_dataset(name, Schema.parse(label, specs))
        admin.set_policy(name, LIGHT_GATE_POLICY)
    admin.create_principal("carol")
    for name in ("wine", "secret"):
        admin.grant("carol", "contributor", f"dataset:{name}")
        admin.grant("carol", "reader", f"dataset:{name}")
    csv = write_csv(tmp_path_factory.mktemp("data") / "batch.csv", wine_rows(0, 30, shuffled=True))
    return {
        "secret": str(admin.issue_key("carol", scopes=["dataset:secret"])["key"]),
        "wine": str(admin.issue_key("carol", scopes=["dataset:wine"])["key"]),
        "csv": str(csv),
    }


def upload(http: httpx.Client, key: str, csv: str) -> str:
    headers = {**bearer(key), "Content-Type": "application/octet-stream"}
    answer = http.post(f"{API}/uploads", params={"filename": "b.csv"}, headers=headers, content=Path(csv).read_bytes())
    assert answer.status_code == 201, answer.text
    return str(answer.json()["upload"])


def contribute(http: httpx.Client, key: str, dataset: str, upload_id: str) -> httpx.Response:
    body = {"upload": upload_id, "source": f"https://example.org/{upload_id}.csv", "gate": False}
    return http.post(f"{API}/datasets/{dataset}/contributions", headers=bearer(key), json=body)


def finished(http: httpx.Client, key: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (state := http.get(f"{API}/jobs/{job_id}", headers=bearer(key)).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return dict(state)


def test_a_job_is_read_only_with_the_key_that_started_it(http: httpx.Client, keys: dict[str, str]) -> None:
    started = contribute(http, keys["secret"], "secret", upload(http, keys["secret"], keys["csv"]))
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    state = finished(http, keys["secret"], job_id)
    assert state["status"] == "succeeded" and state["result"]["dataset"] == "secret", state
    # The same principal's other key answers as for a job that does not exist.
    other = http.get(f"{API}/jobs/{job_id}", headers=bearer(keys["wine"]))
    missing = http.get(f"{API}/jobs/j_{'0' * 24}", headers=bearer(keys["wine"]))
    assert other.status_code == missing.status_code == 404, other.text
    assert other.json()["error"] == "not_found" and "secret" not in other.text
    assert other.json()["hint"] == missing.json()["hint"]


def test_an_upload_is_named_only_with_the_key_that_sent_it(http: httpx.Client, keys: dict[str, str]) -> None:
    sent = upload(http, keys["wine"], keys["csv"])
    taken = contribute(http, keys["secret"], "secret", sent)
    assert taken.status_code == 404 and taken.json()["error"] == "not_found", taken.text
    # Refused with the other key, it is not consumed: the key that sent it still names it.
    started = contribute(http, keys["wine"], "wine", sent)
    assert started.status_code == 202, started.text
    assert finished(http, keys["wine"], started.json()["id"])["status"] == "succeeded"
