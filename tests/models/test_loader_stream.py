"""Streamed loads through a server: batches arrive as the server loads them (the client has read a small
part of the answer when the first batch is handed over), a record failing its hash in a later batch ends
the stream with that error, and a stream cut off before its end is never taken for the whole version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import dataward
from dataward.client.http import HTTPWard
from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import Schema
from dataward.domain.transport_errors import ServerUnreachable
from dataward.service.ward import Ward
from tests.models.test_loader import served, template, ward  # noqa: F401  (fixtures)
from tests.security.test_guarded_reads import damage_in_place, where
from tests.server.conftest import start_server


class CountingTransport(httpx.HTTPTransport):
    """Counts the body bytes of ``/stream`` answers the client pulls; ends the body after ``cut`` bytes."""

    def __init__(self, cut: int | None = None) -> None:
        super().__init__()
        self.pulled = 0
        self.cut = cut

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("/stream") or response.status_code != 200:
            return response
        transport = self

        class Body(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                for chunk in response.stream:  # type: ignore[union-attr]
                    if transport.cut is not None and transport.pulled + len(chunk) >= transport.cut:
                        yield chunk[: transport.cut - transport.pulled]
                        transport.pulled = transport.cut
                        return  # the connection "drops": the body ends early
                    transport.pulled += len(chunk)
                    yield chunk

            def close(self) -> None:
                response.close()

        return httpx.Response(response.status_code, headers=response.headers, stream=Body(), request=request)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A served ward whose ``notes`` dataset has 3,000 records of about 600 bytes (v1, a candidate)."""
    root = tmp_path_factory.mktemp("big-stream")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "text": [" ".join(f"w{v}" for v in rng.integers(0, 5000, 110)) for _ in range(3000)],
            "label": [("a", "b", "c")[i % 3] for i in range(3000)],
        }
    )
    frame.to_csv(root / "notes.csv", index=False)
    opened, key = Ward.init(root / "ward")
    opened.create_dataset("notes", Schema.parse("label", ["text:text"]))
    policy = "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [duplicates]\n"
    opened.set_policy("notes", policy)
    first = opened.contribute("notes", root / "notes.csv", source="tests")
    pending = [i["id"] for i in opened.review_list(contribution=first["ref"])]
    if pending:  # decided by a reviewer other than the submitter
        opened.create_principal("rita")
        opened.grant("rita", "reviewer", "dataset:notes")
        opened.as_key(opened.issue_key("rita")["key"]).review_decide(pending, "accept", reason="test data")
    opened.merge(first["ref"])
    opened.db.dispose()
    server, thread, _, url = start_server(root / "ward")
    try:
        yield url, key
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_first_batch_arrives_before_most_of_the_version_is_read(big: tuple[str, str]) -> None:
    url, key = big
    counting = CountingTransport()
    with HTTPWard(url, key=key, transport=counting) as client:
        info, batches = client.stream_version("notes", "v1", stage=None, batch_rows=100)
        assert info["number"] == 1 and counting.pulled == 0  # nothing of the body is read until asked
        first = next(batches)
        at_first = counting.pulled
        rows = first.num_rows + sum(b.num_rows for b in batches)
        total = counting.pulled
    assert first.num_rows == 100 and rows == 3000
    assert total > 1_500_000  # the version is about 2 MB on the wire
    assert at_first < total / 10, (at_first, total)
    # The same records as a whole read (which gives the version's id order; a stream, the order the
    # records were stored in).
    with HTTPWard(url, key=key) as client:
        streamed = [
            r for b in client.stream_version("notes", "v1", stage=None, batch_rows=700)[1] for r in b.to_pylist()
        ]
        whole = client.load_version("notes", "v1", stage=None)[1].to_pylist()
    assert sorted(streamed, key=lambda r: r["record_id"]) == whole


def test_a_stream_cut_off_is_not_taken_for_the_whole_version(big: tuple[str, str]) -> None:
    url, key = big
    for cut in (300_000, 1_000_000):
        with HTTPWard(url, key=key, transport=CountingTransport(cut=cut)) as client:
            _, batches = client.stream_version("notes", "v1", stage=None, batch_rows=100)
            received = 0
            with pytest.raises(ServerUnreachable, match="cut off before its end"):
                for batch in batches:
                    received += batch.num_rows
            assert 0 < received < 3000


def test_a_record_failing_its_hash_in_a_later_batch_ends_the_stream_with_that_error(
    ward: Ward,  # noqa: F811
    served: HTTPWard,  # noqa: F811
) -> None:
    """wine@v2's records come from two stored chunks, read from where its manifest locates them: the
    chunk that does not hold the first record is overwritten behind the ward's back. Each read of a
    chunk re-hashes it, so the stream fails at the first record of that chunk: the records before it
    arrive."""
    order = [
        r["record_id"] for b in ward.stream_version("wine", "v2", stage=None, batch_rows=1)[1] for r in b.to_pylist()
    ]
    chunks = [where(ward, r)[0] for r in order]
    first_damaged = next(i for i, c in enumerate(chunks) if c != chunks[0])
    victim = order[chunks.index(chunks[first_damaged], first_damaged)]
    digest = damage_in_place(ward, victim)
    _, batches = served.stream_version("wine", "v2", stage=None, batch_rows=1)
    received = 0
    with pytest.raises(IntegrityViolation, match=f"object {digest}"):
        for batch in batches:
            received += batch.num_rows
    assert received == first_damaged > 0  # the records before the damaged chunk's first one, nothing after
    with pytest.raises(IntegrityViolation, match=f"object {digest}"):
        list(dataward.stream("wine@v2", stage=None, batch_rows=5, ward=served))


def test_refusals_come_before_the_stream_starts(served: HTTPWard, tmp_path: Path) -> None:  # noqa: F811
    from dataward.domain.errors import PolicyViolation

    with pytest.raises(PolicyViolation, match="requires a training version"):
        served.stream_version("wine", "v2")
