"""Schemas and small real data sets for the import/export tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.schema import Column, ColumnKind, Schema

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def text_schema() -> Schema:
    return Schema(label="label", inputs=(Column("text", ColumnKind.TEXT),))


@pytest.fixture
def mixed_schema() -> Schema:
    return Schema(
        label="label",
        inputs=(
            Column("text", ColumnKind.TEXT),
            Column("size", ColumnKind.NUMERIC),
            Column("colour", ColumnKind.CATEGORICAL),
            Column("emb", ColumnKind.EMBEDDING, dim=3),
        ),
    )


@pytest.fixture
def image_schema() -> Schema:
    return Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE),))
