"""A version's records as an Arrow IPC stream, written batch by batch as the ward loads them.

The guarded loader's checks that concern the whole version (stage, ledger, manifest, barred records)
run before the answer starts, so a refusal is an ordinary error document. What can only fail later,
a record failing its hash in a batch not yet read, ends the stream with an empty batch whose custom
metadata ``dataward-error`` holds the error document; a stream that ends well ends with an empty
batch whose ``dataward-end`` metadata is the number of rows sent. A client that sees neither was cut
off, and must not take what it received for the whole version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa

from dataward.domain.errors import DatawardError

MEDIA_TYPE = "application/vnd.apache.arrow.stream"
END = b"dataward-end"
ERROR = b"dataward-error"


class _Drain:
    """A write-only file the IPC writer writes into; ``take`` hands over what was written since."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def arrow_stream(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    """The bytes of an Arrow IPC stream of ``batches``, one piece per batch, ended as the module says."""
    from dataward.server.jobs import error_body

    sink = _Drain()
    writer: pa.ipc.RecordBatchStreamWriter | None = None
    schema = pa.schema([])
    rows = 0
    try:
        for batch in batches:
            if writer is None:
                schema = batch.schema
                writer = pa.ipc.new_stream(sink, schema)
            writer.write_batch(batch)
            rows += batch.num_rows
            yield sink.take()
        metadata = {END: str(rows).encode()}
    except DatawardError as exc:
        metadata = {ERROR: json.dumps(error_body(exc), default=str).encode()}
    if writer is None:
        writer = pa.ipc.new_stream(sink, schema)
    writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema), custom_metadata=metadata)
    writer.close()
    yield sink.take()
