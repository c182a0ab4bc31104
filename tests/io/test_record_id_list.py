"""Lists of record ids to remove: plain text, CSV, JSON Lines or Parquet, validated."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataward.domain.errors import InputError, NotFound
from dataward.io import read_record_ids
from tests.io.samples import write

A, B = "a" * 64, "0123456789abcdef" * 4


def test_plain_list_with_comments_and_repeats(tmp_path: Path) -> None:
    path = write(tmp_path / "ids.txt", f"# removed after review\n{A}\n\n  {B.upper()}  \n{A}\n")
    assert read_record_ids(path) == [A, B]


def test_tabular_files(tmp_path: Path) -> None:
    assert read_record_ids(write(tmp_path / "ids.csv", f"record_id,text\n{A},x\n{B},y\n")) == [A, B]
    lines = "".join(json.dumps({"record_id": i}) + "\n" for i in (B, A))
    assert read_record_ids(write(tmp_path / "ids.jsonl", lines)) == [B, A]
    pq.write_table(pa.table({"record_id": [A], "label": ["x"]}), tmp_path / "ids.parquet")
    assert read_record_ids(tmp_path / "ids.parquet") == [A]


def test_invalid_id_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_record_ids(write(tmp_path / "ids.txt", f"{A}\nnot-an-id\n"))
    assert "line 2" in info.value.message and "not a record id" in info.value.message
    with pytest.raises(InputError) as info:
        read_record_ids(write(tmp_path / "ids.csv", f"record_id\n{A}\n{A[:-1]}\n"))
    assert "line 3" in info.value.message and "'record_id'" in info.value.message
    pq.write_table(pa.table({"record_id": [A, None]}), tmp_path / "ids.parquet")
    with pytest.raises(InputError, match="row 2"):
        read_record_ids(tmp_path / "ids.parquet")


def test_missing_column_and_empty_list(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no record_id column"):
        read_record_ids(write(tmp_path / "ids.csv", f"id\n{A}\n"))
    with pytest.raises(InputError, match="line 1"):
        read_record_ids(write(tmp_path / "ids.jsonl", json.dumps({"id": A}) + "\n"))
    with pytest.raises(InputError, match="lists no record ids"):
        read_record_ids(write(tmp_path / "ids.txt", "# nothing\n"))
    with pytest.raises(NotFound, match="no such file"):
        read_record_ids(tmp_path / "absent.txt")
