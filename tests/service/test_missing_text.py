"""A missing value in a text column is a missing value, whichever marker pandas used for it.

pandas 3 keeps text in its ``str`` dtype, whose missing value is NaN: a ``None`` put in a text column
reaches the ward as a float NaN, and an object column may hold ``pd.NA``. Each is the missing value
``None`` is (and a JSON ``null``), with the same record id, and a language-model field that must hold
text says it is missing, naming row and column, rather than that a float was given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY

NOTES = Schema.parse("label", ["text:text", "note:text"])
MARKERS = {"None": None, "nan": np.nan, "float32 nan": np.float32("nan"), "NA": pd.NA}


def _ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("notes", NOTES)
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    return ward


def _notes(missing: Any) -> pd.DataFrame:
    # An object column keeps the marker as given; pandas' own str column turns None into NaN.
    note = pd.Series(["seen twice", missing], dtype=object if missing is pd.NA else None)
    return pd.DataFrame({"text": ["first", "second"], "note": note, "label": ["a", "b"]})


def _ids(ward: Ward, ref: str) -> set[str]:
    return set(ward.dataset("notes").version(ref).to_pandas()["record_id"])


@pytest.mark.parametrize("marker", list(MARKERS), ids=list(MARKERS))
def test_a_missing_text_value_from_pandas_is_the_missing_value_of_a_json_null(tmp_path: Path, marker: str) -> None:
    ward = _ward(tmp_path)
    lines = [{"text": "first", "note": "seen twice", "label": "a"}, {"text": "second", "note": None, "label": "b"}]
    nulls = tmp_path / "nulls.jsonl"
    nulls.write_text("".join(json.dumps(r) + "\n" for r in lines), "utf-8")
    ward.merge(ward.contribute("notes", nulls, source="json")["id"])
    again = ward.contribute("notes", _notes(MARKERS[marker]), source="pandas")
    assert again["added"] == 2 and again["new_records"] == 0  # the very records of the JSON file
    ward.merge(again["id"])
    assert _ids(ward, "v2") == _ids(ward, "v1")
    read = ward.dataset("notes").version("v2").to_pandas().set_index("text")
    assert read.loc["first", "note"] == "seen twice" and pd.isna(read.loc["second", "note"])


def test_none_and_nan_in_a_text_column_have_one_record_id(tmp_path: Path) -> None:
    ward = _ward(tmp_path)
    ward.merge(ward.contribute("notes", _notes(None), source="none")["id"])
    nan = ward.contribute("notes", _notes(np.nan), source="nan")
    assert nan["new_records"] == 0
    ward.merge(nan["id"])
    assert _ids(ward, "v1") == _ids(ward, "v2") and len(_ids(ward, "v2")) == 2


def test_an_empty_csv_text_field_is_empty_text(tmp_path: Path) -> None:
    """CSV cannot tell a missing text from an empty one: an empty field is the empty text, as it has
    always been read (changing it would change the id of every such record already imported), and it
    is accepted, not refused."""
    ward = _ward(tmp_path)
    path = tmp_path / "notes.csv"
    path.write_text('text,note,label\nfirst,seen twice,a\nsecond,,a\n"third","",a\n', "utf-8")
    imported = ward.contribute("notes", path, source="csv")
    assert imported["added"] == 3
    ward.merge(imported["id"])
    empty = pd.DataFrame({"text": ["second", "third"], "note": ["", ""], "label": ["a", "a"]})
    assert ward.contribute("notes", empty, source="pandas", gate=False)["new_records"] == 0


@pytest.mark.parametrize("marker", list(MARKERS), ids=list(MARKERS))
def test_a_language_model_prompt_missing_in_pandas_is_refused_as_missing(tmp_path: Path, marker: str) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("howto", Schema.for_kind("instruction"))
    frame = pd.DataFrame(
        {
            "prompt": pd.Series(["What is ls?", MARKERS[marker]], dtype=object if marker == "NA" else None),
            "response": ["It lists files.", "It copies files."],
        }
    )
    with pytest.raises(InputError) as info:
        ward.contribute("howto", frame, source="pandas")
    message = info.value.message
    assert "row 2, column 'prompt'" in message and "missing" in message and "float" not in message


def test_a_language_model_input_missing_in_pandas_is_an_absent_input(tmp_path: Path) -> None:
    """``input`` is optional in instruction data: missing there is accepted, as a JSON null is."""
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("howto", Schema.for_kind("instruction"))
    frame = pd.DataFrame(
        {"prompt": ["What is ls?", "What is cp?"], "input": ["in /tmp", None], "response": ["It lists.", "It copies."]}
    )
    assert ward.contribute("howto", frame, source="pandas", gate=False)["added"] == 2
