"""Exports are written whole or not at all, in the documented encodings."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from dataward.domain.errors import InputError
from dataward.io import write_table
from tests.io.samples import png_bytes


def _table() -> pa.Table:
    return pa.table(
        {
            "record_id": ["a" * 64],
            "image": pa.array([png_bytes(1)], pa.large_binary()),
            "emb": pa.array([[0.5, 0.25]], pa.list_(pa.float32(), 2)),
            "label": ["cat"],
        }
    )


def test_jsonl_encodes_images_as_base64_and_embeddings_as_lists(tmp_path: Path) -> None:
    path = write_table(_table(), tmp_path / "out.jsonl", "jsonl")
    record = json.loads(path.read_text().strip())
    assert base64.b64decode(record["image"]) == png_bytes(1)
    assert record["emb"] == [0.5, 0.25]
    assert list(record) == ["record_id", "image", "emb", "label"]


def test_csv_encodes_images_and_embeddings_as_text(tmp_path: Path) -> None:
    lines = write_table(_table(), tmp_path / "out.csv", "csv").read_text().splitlines()
    assert lines[0] == '"record_id","image","emb","label"'
    assert base64.b64encode(png_bytes(1)).decode() in lines[1]
    assert '"[0.5, 0.25]"' in lines[1]


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.parquet"
    target.write_bytes(b"previous export")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_table(_table(), target, "parquet")
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_unknown_format_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown export format"):
        write_table(_table(), tmp_path / "out.xlsx", "xlsx")
    with pytest.raises(InputError, match="no such folder"):
        write_table(_table(), tmp_path / "absent" / "out.csv", "csv")


def test_a_destination_is_checked_before_the_work_it_is_to_hold(tmp_path: Path) -> None:
    from dataward.io.writers import check_destination

    assert check_destination(tmp_path / "report.html") == tmp_path / "report.html"
    with pytest.raises(InputError, match="no such folder"):
        check_destination(tmp_path / "missing" / "report.html", "HTML report")
    with pytest.raises(InputError, match="names a folder"):
        check_destination(tmp_path)
    with pytest.raises(InputError, match="names a folder"):
        check_destination(tmp_path / "..")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="permission denied"):
            check_destination(locked / "report.html")
