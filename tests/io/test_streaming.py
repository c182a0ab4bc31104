"""CSV and JSON Lines are streamed: a file many blocks long is never held whole, and a file over the
row limit is refused before it has all been read."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.schema import Schema
from dataward.io import bounded, csv_reader, jsonl_reader, read_table
from dataward.io.bounded import CheckedStream, hash_file

BLOCK = 1 << 18
"""A small block, so that the files below are over a hundred blocks long."""

READ_AHEAD_BLOCKS = 32 + pa.cpu_count() + 10
"""pyarrow's CSV reader reads on a thread of its own, up to 32 blocks ahead of its parser (Arrow's
background queue, ``kDefaultBackgroundMaxQ``), and up to one more per CPU thread are in the
parser's hands: what a streamed read may hold at once, whatever the file's length, beside the
reader's own few blocks of buffers and Python objects (39.15 blocks in all were seen once on a loaded
machine, with one CPU thread: 10 blocks of room above the queue). JSON Lines is read a block at a
time."""

ROWS = 100_000
FILLER = "a plain training sentence that says nothing in particular " * 5  # ~300 bytes a record


def _write_csv(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("\ufefftext,label\n")  # a byte-order mark, as spreadsheets write
        for i in range(rows):
            out.write(f'"{FILLER}{i}, ""quoted""",{"ab"[i % 2]}\n')
    return path


def _write_jsonl(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            out.write(json.dumps({"text": f"{FILLER}{i}", "label": "ab"[i % 2]}) + "\n")
    return path


WRITERS: dict[str, Callable[[Path, int], Path]] = {"csv": _write_csv, "jsonl": _write_jsonl}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_reader, "_BLOCK_SIZE", BLOCK)
    monkeypatch.setattr(jsonl_reader, "_BLOCK_SIZE", BLOCK)
    for module in (bounded, csv_reader, jsonl_reader):
        monkeypatch.setattr(module, "CHUNK_BYTES", BLOCK)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_over_a_hundred_blocks_long_is_held_a_bounded_number_of_blocks_at_a_time(
    fmt: str, tmp_path: Path, text_schema: Schema, small_blocks: None
) -> None:
    path = WRITERS[fmt](tmp_path / f"big.{fmt}", ROWS)
    size = path.stat().st_size
    assert size > 100 * BLOCK
    reader = csv_reader.read_csv if fmt == "csv" else jsonl_reader.read_jsonl
    # A first read of a small file, outside the measurement: pyarrow imports pandas (some 26 MB of
    # module objects) the first time it converts a Python value, which is the process's memory, not
    # the reader's. Where this test ran first in its worker, that import alone came to the file's size.
    reader(WRITERS[fmt](tmp_path / f"small.{fmt}", 10), text_schema, InputLimits())
    tracemalloc.start()
    try:
        reader(path, text_schema, InputLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Reading the file whole held at least its bytes (and, for JSON Lines, its text as well); a
    # streamed read holds at most the blocks read ahead of the parser, however long the file.
    # Seen here: CSV 19 blocks, JSON Lines 7.
    assert peak < READ_AHEAD_BLOCKS * BLOCK < size / 2, f"peak {peak:,} bytes for a {size:,}-byte file"
    imported = read_table(path, text_schema)
    # Streamed or not, the result is the same: every record, numbered by line, hashed as a whole.
    first = 2 if fmt == "csv" else 1
    assert len(imported) == ROWS
    assert imported.rows[0] == first and imported.rows[-1] == ROWS + first - 1
    assert imported.table.column("text")[ROWS - 1].as_py().startswith(FILLER)
    assert imported.raw_hash == hash_file(path)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_over_the_row_limit_is_refused_before_it_is_all_read(
    fmt: str, tmp_path: Path, text_schema: Schema, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyarrow reads a bounded number of blocks ahead of the parser (READ_AHEAD_BLOCKS): about 20 seen
    # on a loaded machine, and 37 once when a benchmark ran beside the tests (its reading thread kept
    # going while the parser waited for a core). The promise is a refusal after at most that many
    # blocks, however long the file.
    path = WRITERS[fmt](tmp_path / f"many.{fmt}", 240_000)
    size = path.stat().st_size
    read: list[int] = []
    real_read = CheckedStream.read

    def counted(self: CheckedStream, n: int | None = -1) -> Any:
        chunk = real_read(self, n)
        read.append(len(chunk))
        return chunk

    monkeypatch.setattr(CheckedStream, "read", counted)
    with pytest.raises(InputError) as caught:
        read_table(path, text_schema, limits=InputLimits(max_rows=1_000))
    assert caught.value.details["limit"] == "max_rows"
    assert "the number of records (at least" in caught.value.message
    assert sum(read) < READ_AHEAD_BLOCKS * BLOCK < size / 4, f"{sum(read):,} of {size:,} bytes read first"
