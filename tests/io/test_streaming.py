"""CSV and JSON Lines are streamed: a file many blocks long is never held whole, and a file over the
row limit is refused before it has all been read."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.schema import Schema
from dataward.io import bounded, csv_reader, jsonl_reader, read_table
from dataward.io.bounded import CheckedStream, hash_file

BLOCK = 1 << 20
"""A small block, so that the files below are some thirty blocks long."""

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
def test_a_file_thirty_blocks_long_is_never_held_whole(
    fmt: str, tmp_path: Path, text_schema: Schema, small_blocks: None
) -> None:
    path = WRITERS[fmt](tmp_path / f"big.{fmt}", ROWS)
    size = path.stat().st_size
    assert size > 25 * BLOCK
    reader = csv_reader.read_csv if fmt == "csv" else jsonl_reader.read_jsonl
    tracemalloc.start()
    try:
        reader(path, text_schema, InputLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Reading the file whole held at least its bytes (and, for JSON Lines, its text as well), so a peak
    # below the file's size shows it was never held whole. Streamed reads usually peak under a third of
    # it, but decoded blocks awaiting the garbage collector once took it to 63% on a clean CI run.
    assert peak < size, f"peak {peak:,} bytes for a {size:,}-byte file"
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
    # pyarrow reads a bounded number of blocks ahead of the parser: about 20 of 1 MiB seen on a loaded
    # machine, and half the file once when a benchmark ran beside the tests (its reading thread kept
    # going while the parser waited for a core). The promise is a refusal before the file is all read:
    # a fifth of it at least stays unread.
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
    assert sum(read) < 0.8 * size, f"{sum(read):,} of {size:,} bytes read before the refusal"
