"""Parquet import: Arrow types in, canonical types out, rows counted from 1."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataward.domain.errors import InputError
from dataward.domain.records import canonical_table
from dataward.domain.schema import Schema
from dataward.io import read_table
from tests.io.samples import png_bytes


def test_types_are_canonicalized(tmp_path: Path, mixed_schema: Schema) -> None:
    table = pa.table(
        {
            "text": pa.array(["a", None], pa.string()),
            "size": pa.array([3, -0], pa.int32()),
            "colour": pa.array(["red", "blue"]).dictionary_encode(),
            "emb": pa.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3]], pa.list_(pa.float64())),
            "label": pa.array([1, 2], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    imported = read_table(tmp_path / "m.parquet", mixed_schema)
    expected = canonical_table(mixed_schema, table.to_pylist())
    assert imported.table.equals(expected.cast(imported.table.schema))
    assert imported.table.column("label").to_pylist() == ["1", "2"]
    assert imported.rows.tolist() == [1, 2]


def test_pandas_index_and_record_id_columns_are_ignored(tmp_path: Path, text_schema: Schema) -> None:
    frame = pd.DataFrame({"record_id": ["stale"], "text": ["a"], "label": ["x"]}, index=[7])
    frame.to_parquet(tmp_path / "p.pq")
    imported = read_table(tmp_path / "p.pq", text_schema)
    assert imported.table.column_names == ["record_id", "text", "label"]
    assert imported.table.column("record_id").to_pylist() != ["stale"]


def test_binary_images(tmp_path: Path, image_schema: Schema) -> None:
    images = [png_bytes(1), png_bytes(2)]
    pq.write_table(pa.table({"image": pa.array(images, pa.binary()), "label": ["a", "b"]}), tmp_path / "i.parquet")
    assert read_table(tmp_path / "i.parquet", image_schema).table.column("image").to_pylist() == images


def _refused(path: Path, schema: Schema) -> InputError:
    with pytest.raises(InputError) as info:
        read_table(path, schema)
    assert str(path) in info.value.message
    return info.value


def test_bad_image_names_the_row(tmp_path: Path, image_schema: Schema) -> None:
    table = pa.table({"image": pa.array([png_bytes(1), b"\x89PNG broken"], pa.binary()), "label": ["a", "b"]})
    pq.write_table(table, tmp_path / "i.parquet")
    error = _refused(tmp_path / "i.parquet", image_schema)
    assert "row 2" in error.message and "'image'" in error.message and "not a decodable image" in error.message


def test_wrong_type_names_the_row(tmp_path: Path, mixed_schema: Schema) -> None:
    table = pa.table(
        {
            "text": ["a", "b", "c"],
            "size": ["1", "2", "abc"],
            "colour": ["r", "g", "b"],
            "emb": [[1, 2, 3]] * 3,
            "label": ["x", "y", "z"],
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    error = _refused(tmp_path / "m.parquet", mixed_schema)
    assert "row 3" in error.message and "'size'" in error.message


def test_wrong_embedding_dimension_and_non_finite(tmp_path: Path, mixed_schema: Schema) -> None:
    base = {"text": ["a", "b"], "size": [1.0, 2.0], "colour": ["r", "g"], "label": ["x", "y"]}
    pq.write_table(pa.table({**base, "emb": [[1, 2, 3], [1, 2]]}), tmp_path / "d.parquet")
    error = _refused(tmp_path / "d.parquet", mixed_schema)
    assert "row 2" in error.message and "'emb'" in error.message and "dimension 3" in error.message
    pq.write_table(pa.table({**base, "emb": [[1, 2, float("nan")], [1, 2, 3]]}), tmp_path / "n.parquet")
    error = _refused(tmp_path / "n.parquet", mixed_schema)
    assert "row 1" in error.message and "non-finite" in error.message


def test_missing_and_undeclared_columns(tmp_path: Path, text_schema: Schema) -> None:
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "a.parquet")
    assert "'label'" in _refused(tmp_path / "a.parquet", text_schema).message
    pq.write_table(pa.table({"text": ["a"], "label": ["x"], "extra": [1]}), tmp_path / "b.parquet")
    assert "'extra'" in _refused(tmp_path / "b.parquet", text_schema).message


def test_empty_and_unreadable(tmp_path: Path, text_schema: Schema) -> None:
    pq.write_table(pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())}), tmp_path / "e.pq")
    assert "no rows" in _refused(tmp_path / "e.pq", text_schema).message
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    assert "not a readable Parquet file" in _refused(tmp_path / "junk.parquet", text_schema).message
