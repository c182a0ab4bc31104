"""``.json`` import: a top-level JSON array of objects reads as the same records as JSON Lines, within
the same limits; JSON Lines under a ``.json`` name still reads; a malformed array names its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.io import read_table
from dataward.service.ward import Ward
from tests.io.samples import write

RECORDS = [
    {"text": "a, b", "size": 2, "colour": "red", "emb": [1, 2, 3], "label": "x"},
    {"text": "c", "size": None, "colour": None, "emb": [0.5, 0.25, 0], "label": 7},
    {"text": "d\ne", "size": 1.5, "colour": "blue", "emb": [0, 0, 0], "label": "y"},
]


def test_a_json_array_reads_as_the_same_records_as_json_lines(tmp_path: Path, mixed_schema: Schema) -> None:
    lines = read_table(write(tmp_path / "m.jsonl", "".join(json.dumps(r) + "\n" for r in RECORDS)), mixed_schema)
    text = json.dumps(RECORDS, indent=2)
    array = read_table(write(tmp_path / "m.json", text), mixed_schema)
    assert array.format == "json" and array.record_ids == lines.record_ids
    # Each record's place is the line its element starts on.
    assert array.rows.tolist() == [n for n, line in enumerate(text.split("\n"), start=1) if line == "  {"]
    # JSON Lines under a .json name (as Hugging Face's Dataset.to_json writes it) reads too.
    renamed = read_table(write(tmp_path / "l.json", (tmp_path / "m.jsonl").read_text()), mixed_schema)
    assert renamed.record_ids == lines.record_ids


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[{"text": "a", "label": "x"}', "is not closed"),
        ('[{"text": "a", "label": "x"} {"text": "b", "label": "x"}]', "expected ',' or ']'"),
        ('[{"text": "a", "label": "x"}] []', "more after the JSON array"),
        ('[\n{"text": "a", "label": "x"},\n["b", "x"]]', "line 3: the line is a JSON list, not an object"),
    ],
)
def test_a_malformed_json_array_is_refused_naming_the_place(
    tmp_path: Path, text_schema: Schema, text: str, problem: str
) -> None:
    with pytest.raises(InputError, match=problem):
        read_table(write(tmp_path / "bad.json", text), text_schema)


def test_a_json_array_is_held_to_the_input_limits(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "many.json", json.dumps([{"text": str(i), "label": "x"} for i in range(5)]))
    with pytest.raises(InputError) as caught:
        read_table(path, text_schema, limits={"max_rows": 3})
    assert caught.value.details["limit"] == "max_rows"
    long = write(tmp_path / "long.json", json.dumps([{"text": "x" * 5000, "label": "x"}]))
    with pytest.raises(InputError) as caught:
        read_table(long, text_schema, limits={"max_record_bytes": 1024})
    assert caught.value.details["limit"] == "max_record_bytes"


def test_a_ward_takes_a_contribution_from_a_json_array(tmp_path: Path, text_schema: Schema) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("d", text_schema)
    ward.set_policy("d", "approvals:\n  required: 0\nfirst_import: self-reference\n")
    path = write(tmp_path / "c.json", json.dumps([{"text": "hello", "label": "a"}, {"text": "bye", "label": "b"}]))
    contribution = ward.contribute("d", path, source="s", gate=False)
    assert contribution["added"] == 2


def test_a_key_given_twice_in_an_element_is_refused(tmp_path: Path, text_schema: Schema) -> None:
    path = write(
        tmp_path / "t.json", '[{"text": "q1", "label": "neg"},\n {"text": "q2", "label": "neg", "label": "pos"}]\n'
    )
    with pytest.raises(InputError) as caught:
        read_table(path, text_schema)
    assert "line 2" in caught.value.message and "'label'" in caught.value.message
    assert "appears 2 times" in caught.value.message
