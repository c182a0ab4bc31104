"""A DataFrame or Arrow table given to ``contribute`` in Python is held to a file's column rules.

A column of the schema left out (or misspelt) is refused, not read as a missing value in every record;
a column the schema does not declare, or a name given twice, is refused as a file's header is; anything
that is neither a path nor a table is an ``InputError``. A refused frame stores nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

NOTES = Schema.parse("label", ["text:text", "note:text"])
FRAME = pd.DataFrame({"text": ["first", "second", "third"], "note": ["x", None, "y"], "label": ["a", "b", "a"]})


def _ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("notes", NOTES)
    return ward


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (FRAME.drop(columns=["note"]), "the DataFrame, column 'note': the text input column is missing"),
        (FRAME.rename(columns={"note": "notes"}), "the DataFrame, column 'note': the text input column is missing"),
        (FRAME.assign(extra=1), "the DataFrame, column 'extra': the column is not in the dataset schema"),
        (pd.concat([FRAME, FRAME[["text"]]], axis=1), "column 'text': the column name appears 2 times"),
        (pa.Table.from_pandas(FRAME).drop_columns(["label"]), "the Arrow table, column 'label': the label column"),
        ([{"text": "first", "note": "x", "label": "a"}], "must be a file or folder path, a pandas DataFrame or a"),
        (FRAME.iloc[:0], "the DataFrame holds no records"),
    ],
    ids=["left out", "misspelt", "undeclared", "twice", "arrow", "list", "empty"],
)
def test_a_frame_is_held_to_the_column_rules_of_a_file_and_stores_nothing(tmp_path: Path, frame, message) -> None:
    ward = _ward(tmp_path)
    before = len(ward.ledger())
    with pytest.raises(InputError) as caught:
        ward.contribute("notes", frame, source="pandas", gate=False)
    assert message in str(caught.value)
    assert len(ward.ledger()) == before and ward.contributions("notes") == []


def test_a_frame_with_its_pandas_index_or_a_record_id_column_is_accepted(tmp_path: Path) -> None:
    ward = _ward(tmp_path)
    shuffled = pa.Table.from_pandas(FRAME.iloc[[2, 0]], preserve_index=True)  # its index: __index_level_0__
    assert "__index_level_0__" in shuffled.column_names
    assert ward.contribute("notes", shuffled, source="arrow", gate=False)["added"] == 2
    exported = FRAME.assign(record_id=["r1", "r2", "r3"])  # recomputed from the content, as for a file
    assert ward.contribute("notes", exported, source="pandas", gate=False)["added"] == 3
