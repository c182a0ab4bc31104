"""OpenLineage RunEvents for contributions, transformations, merges and promotions, sent through the
client's own configuration to a small receiving server the test starts, and to a file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dataward.domain.schema import RECORD_ID, Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, **json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def _ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    return ward


def test_run_events_reach_an_http_endpoint(
    tmp_path: Path, receiver: tuple[str, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = receiver
    monkeypatch.setenv("OPENLINEAGE_URL", url)
    ward = _ward(tmp_path)
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="https://scrape.example/a")
    merge_reviewed(ward, "wine#1")
    ward.promote("wine@v1", reason="baseline")
    with ward.transform("filter", inputs="wine@v1", params={"min_alcohol": 13}) as t:
        kept = [r for r in t.read().to_pylist() if r["alcohol"] >= 13]
        t.write(kept, parents=[[r[RECORD_ID]] for r in kept])
    jobs = [(e["job"]["name"], e["eventType"]) for e in received]
    assert jobs[:2] == [("wine.contribute", "START"), ("wine.contribute", "COMPLETE")]
    assert {name for name, _ in jobs} == {"wine.contribute", "wine.merge", "wine.promote", "wine.transform.filter"}
    assert all(e["path"] == "/api/v1/lineage" for e in received)
    by_job: dict[str, dict] = {}
    for e in received:
        if e["eventType"] == "COMPLETE":
            by_job.setdefault(e["job"]["name"], e)  # the first run of each job
    submitted = by_job["wine.contribute"]
    (source,) = submitted["inputs"]
    assert source["namespace"] == "https://scrape.example" and source["name"] == "https://scrape.example/a"
    assert source["facets"]["version"]["datasetVersion"].startswith("b3:")
    merged = by_job["wine.merge"]
    (version,) = merged["outputs"]
    v1 = ward.versions("wine")[0]
    assert version["name"] == "wine@v1" and version["facets"]["dataward"]["kind"] == "version"
    assert version["namespace"] == f"dataward://{ward.ward_id}"
    assert by_job["wine.promote"]["outputs"][0]["facets"]["dataward"]["stage"] == "training"
    step = by_job["wine.transform.filter"]
    assert step["inputs"][0]["name"] == "wine@v1" and step["outputs"][0]["name"] == "wine#2"
    assert v1["ref"] == "wine@v1"
    # START and COMPLETE of one step share its run id, derived from the ledger event.
    runs = {e["run"]["runId"] for e in received if e["job"]["name"] == "wine.merge"}
    assert len(runs) == 1


def test_run_events_go_to_a_file_and_an_unreachable_backend_fails_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(out))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    ward = _ward(tmp_path)
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40)), source="s3://vendor/a.csv")
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    monkeypatch.delenv("OPENLINEAGE__TRANSPORT__TYPE")
    monkeypatch.delenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH")
    monkeypatch.delenv("OPENLINEAGE__TRANSPORT__APPEND")
    # Nothing listens on port 9; no retries, so the test does not wait out the client's backoff.
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY__TOTAL", "0")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY__CONNECT", "0")
    other = Ward.open(ward.folder)
    assert other.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(40, 60)), source="s3://vendor/b.csv")
    assert other.verify().ok
    assert "were not sent" in caplog.text
