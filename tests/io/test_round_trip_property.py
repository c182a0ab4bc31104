"""Any text survives export and import in every format with the same record ids."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataward.domain.records import canonical_table
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io import read_table, write_table

SCHEMA = Schema(label="label", inputs=(Column("text", ColumnKind.TEXT), Column("x", ColumnKind.NUMERIC)))

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
# Labels with control, format or line-separator characters are refused at input (io.columns.checked_label).
labels = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp")), min_size=1, max_size=10).filter(
    lambda s: s.strip() == s and s != ""
)
numbers = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
records = st.lists(st.fixed_dictionaries({"text": texts, "x": numbers, "label": labels}), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_export_import_round_trip(rows: list[dict[str, object]]) -> None:
    expected = canonical_table(SCHEMA, rows)
    with tempfile.TemporaryDirectory() as folder:
        for fmt in ("csv", "jsonl", "parquet"):
            path = write_table(expected, Path(folder) / f"records.{fmt}", fmt)
            again = read_table(path, SCHEMA).table
            assert again.column("record_id").to_pylist() == expected.column("record_id").to_pylist(), fmt
            assert again.equals(expected.cast(again.schema)), fmt
            assert isinstance(again, pa.Table)
