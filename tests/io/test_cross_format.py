"""The same content has the same record ids whether it arrives as CSV, JSON Lines or Parquet,
and an export imports again unchanged."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_wine

from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io import read_table, write_table
from tests.io.conftest import REPO
from tests.io.samples import png_bytes

SHIPPED_TEXT = REPO / "examples" / "data" / "man_sections.csv"


def _wine() -> tuple[pd.DataFrame, Schema]:
    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace("/", "_"))
    features = [c for c in frame.columns if c != "target"]
    schema = Schema(label="target", inputs=tuple(Column(c, ColumnKind.NUMERIC) for c in features))
    return frame, schema


def _text() -> pd.DataFrame:
    """A text set with the characters that break naive parsers, plus the shipped sample if present."""
    tricky = pd.DataFrame(
        {
            "text": ["comma, inside", 'quote " inside', "new\nline", "  spaces  ", "ünïcödé ✓", ""],
            "label": ["a", "b", "a", "b", "c", "c"],
        }
    )
    if SHIPPED_TEXT.is_file():
        shipped = pd.read_csv(SHIPPED_TEXT, dtype=str, keep_default_na=False).head(300)
        tricky = pd.concat([tricky, shipped[["text", "label"]]], ignore_index=True)
    return tricky


def _write_all(frame: pd.DataFrame, tmp_path: Path) -> dict[str, Path]:
    paths = {fmt: tmp_path / f"data.{fmt}" for fmt in ("csv", "jsonl", "parquet")}
    frame.to_csv(paths["csv"], index=False, quoting=csv.QUOTE_MINIMAL)
    frame.to_json(paths["jsonl"], orient="records", lines=True, force_ascii=False)
    frame.to_parquet(paths["parquet"], index=False)
    return paths


def _ids(path: Path, schema: Schema) -> list[str]:
    return read_table(path, schema).table.column("record_id").to_pylist()


def test_wine_ids_agree_across_formats(tmp_path: Path) -> None:
    frame, schema = _wine()
    paths = _write_all(frame, tmp_path)
    ids = {fmt: _ids(path, schema) for fmt, path in paths.items()}
    assert len(ids["csv"]) == len(frame) == 178
    assert ids["csv"] == ids["jsonl"] == ids["parquet"]
    assert len(set(ids["csv"])) == 178


def test_text_ids_agree_across_formats(tmp_path: Path) -> None:
    frame = _text()
    schema = Schema(label="label", inputs=(Column("text", ColumnKind.TEXT),))
    paths = _write_all(frame, tmp_path)
    tables = {fmt: read_table(path, schema).table for fmt, path in paths.items()}
    assert tables["csv"].equals(tables["jsonl"])
    assert tables["csv"].equals(tables["parquet"])
    assert tables["csv"].column("text").to_pylist() == frame["text"].tolist()


def test_changing_one_value_changes_one_id(tmp_path: Path) -> None:
    frame, schema = _wine()
    base = _ids(_write_all(frame, tmp_path)["parquet"], schema)
    changed = frame.copy()
    changed.loc[5, "alcohol"] += 0.01
    (tmp_path / "changed").mkdir()
    other = _ids(_write_all(changed, tmp_path / "changed")["csv"], schema)
    differs = [i for i, (a, b) in enumerate(zip(base, other, strict=True)) if a != b]
    assert differs == [5]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_then_import_keeps_every_record(tmp_path: Path, fmt: str) -> None:
    schema = Schema(
        label="label",
        inputs=(
            Column("text", ColumnKind.TEXT),
            Column("x", ColumnKind.NUMERIC),
            Column("kind", ColumnKind.CATEGORICAL),
            Column("image", ColumnKind.IMAGE),
            Column("emb", ColumnKind.EMBEDDING, dim=4),
        ),
    )
    rng = np.random.default_rng(0)
    rows = [
        {
            "text": f'record {i}, with "quotes"\nand a line break' if i % 3 == 0 else f"record {i}",
            "x": None if i == 4 else float(rng.normal()) * 10 ** int(rng.integers(-5, 5)),
            "kind": None if i == 2 else ["red", "green"][i % 2],
            "image": png_bytes(i),
            "emb": rng.normal(size=4).astype(np.float32).tolist(),
            "label": str(i % 3),
        }
        for i in range(12)
    ]
    source = tmp_path / "source.jsonl"
    source.write_text("".join(json.dumps({**r, "image": base64.b64encode(r["image"]).decode()}) + "\n" for r in rows))
    original = read_table(source, schema).table
    exported = write_table(original, tmp_path / f"export.{fmt}", fmt)
    again = read_table(exported, schema).table
    assert again.equals(original)
    assert not list(tmp_path.glob(".export*"))


def test_parquet_export_keeps_the_canonical_schema(tmp_path: Path) -> None:
    frame, schema = _wine()
    paths = _write_all(frame, tmp_path)
    table = read_table(paths["csv"], schema).table
    write_table(table, tmp_path / "out.parquet", "parquet")
    assert pq.read_table(tmp_path / "out.parquet").schema.equals(schema.arrow_schema())
    assert pa.types.is_string(table.schema.field("target").type)
