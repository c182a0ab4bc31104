"""A hostile (or compromised) server answering ``stream_version`` with more than it should.

Against ``HTTPWard`` talking to a real HTTP server on loopback (``http.server`` in a thread, as in
``test_hostile_server_sizes``): an Arrow IPC message that declares a terabyte-long batch and then sends
bytes without end, which the client gathered in memory for the one read pyarrow asked of it; a stream of
ordinary batches without end, which the client read for ever; a batch larger than the answer cap. The
client now holds a stream to the download cap and each message to the answer cap, refuses what passes
either with ``ServerUnreachable``, and closes the stream: the same client asks its next question at once.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pyarrow as pa
import pytest

from dataward.client.http import HTTPWard
from dataward.domain.transport_errors import ServerUnreachable
from dataward.server.arrow_stream import MEDIA_TYPE, arrow_stream
from tests.security.hostile_http import Hostile

MiB = 1 << 20
ROUTE = "/api/v1/datasets/photos/stream"
DOCUMENT = {"dataset": "photos", "version": "photos@v1"}


def _batch(rows: int, width: int) -> pa.RecordBatch:
    return pa.record_batch({"record_id": [f"r{i}" for i in range(rows)], "image": [b"\x7f" * width] * rows})


def _stream(hostile: Hostile, pieces: Callable[[], Iterator[bytes]], *, length: int | None = None) -> None:
    """The stream route: ``pieces`` sent as chunks (or whole, with ``length`` declared first)."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", MEDIA_TYPE)
        h.send_header("X-Dataward-Document", json.dumps(DOCUMENT))
        if length is not None:
            h.send_header("Content-Length", str(length))
        else:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for piece in pieces():
            if length is None:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                h.wfile.write(piece)
            hostile.sent += len(piece)
        if length is None:
            h.wfile.write(b"0\r\n\r\n")

    hostile.routes[ROUTE] = answer


def _client(url: str, **caps: int) -> HTTPWard:
    return HTTPWard(url, key="dw_k_secret", timeout=20, **caps)


def _still_answers(hostile: Hostile, client: HTTPWard) -> None:
    """The refused stream left nothing half-read: the same client's next question is answered."""
    hostile.routes["/api/v1/whoami"] = hostile.whole(b'{"ward": "w"}')
    assert client.whoami() == {"ward": "w"}


def test_a_message_declaring_a_terabyte_batch_is_refused_before_it_is_read(hostile: Hostile) -> None:
    batch = _batch(10, 1000)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    whole = sink.getvalue().to_pybytes()
    # The batch message's metadata declares its body's length (an int64 in the flatbuffer): a terabyte.
    body = pa.ipc.read_message(pa.BufferReader(whole[len(_schema_message(batch.schema)) :])).body.size
    declared = struct.pack("<q", body)
    assert whole.count(declared) == 1
    forged = whole.replace(declared, struct.pack("<q", 1 << 40))
    message_end = len(forged) - body - 8  # the batch's body and the stream's end-of-stream marker
    total = 48 * MiB

    def pieces() -> Iterator[bytes]:
        yield forged[:message_end]
        for _ in range(total // MiB):
            yield b"\0" * MiB

    _stream(hostile, pieces)
    with _client(hostile.url) as client:
        info, batches = client.stream_version("photos")
        assert info == DOCUMENT
        with pytest.raises(ServerUnreachable, match=r"one message of the stream of photos@training .* larger than 256"):
            next(batches)
        assert next(batches, None) is None  # closed: nothing more is read of it
        _still_answers(hostile, client)
    assert hostile.sent < total  # the client did not gather what followed the declaration


def _schema_message(schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    pa.ipc.new_stream(sink, schema).close()
    return sink.getvalue().to_pybytes()[:-8]  # without the end-of-stream marker


def test_an_endless_stream_of_ordinary_batches_is_cut_off_at_the_download_cap(
    hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAWARD_MAX_DOWNLOAD_MB", "2")
    total = 48 * MiB

    def pieces() -> Iterator[bytes]:
        # Batches of 64 KiB, never the end marker.
        endless = (_batch(64, 1024) for _ in range(total // (64 << 10)))
        yield from arrow_stream(endless)

    _stream(hostile, pieces)
    with _client(hostile.url) as client:
        _, batches = client.stream_version("photos")
        read = 0
        with pytest.raises(ServerUnreachable, match=r"the stream of photos@training is larger than 2 MiB"):
            for batch in batches:
                read += batch.nbytes
        assert 0 < read <= 2 * MiB
        _still_answers(hostile, client)
    assert hostile.sent < total


def test_a_stream_declaring_more_than_the_download_cap_is_refused_at_once(hostile: Hostile) -> None:
    data = b"".join(arrow_stream(iter([_batch(8, 1024)])))
    _stream(hostile, lambda: iter([data]), length=4 * MiB)  # declares more than it holds, and than the cap
    with _client(hostile.url, max_download_bytes=MiB) as client:
        with pytest.raises(ServerUnreachable, match=r"the stream of photos@training is larger than 1 MiB"):
            client.stream_version("photos")
        _still_answers(hostile, client)


def test_a_batch_larger_than_the_answer_cap_is_refused_and_read_once_the_cap_is_raised(hostile: Hostile) -> None:
    data = b"".join(arrow_stream(iter([_batch(4, 1024), _batch(2, 2 * MiB)])))
    _stream(hostile, lambda: iter([data]))
    with _client(hostile.url, max_answer_bytes=MiB) as client:
        _, batches = client.stream_version("photos", batch_rows=4)
        assert next(batches).num_rows == 4  # the first batch is small: read
        with pytest.raises(ServerUnreachable, match=r"a batch of at most 4 rows\) is larger than 1 MiB"):
            next(batches)
        _still_answers(hostile, client)
    with _client(hostile.url, max_answer_bytes=8 * MiB) as client:
        _, batches = client.stream_version("photos", batch_rows=4)
        assert [b.num_rows for b in batches] == [4, 2]  # the whole stream, to its end marker
