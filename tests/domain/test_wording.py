"""Messages that name a word known only at run time take the right article ("an instruction dataset")."""

from __future__ import annotations

import pandas as pd
import pytest

from dataward.domain.conversation import label_value
from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.domain.wording import a_or_an
from dataward.gates import scan
from dataward.gates.selftest_llm import llm_frame
from dataward.io.header import check_columns


@pytest.mark.parametrize(
    ("word", "said"),
    [
        ("instruction", "an instruction"),
        ("email", "an email"),
        ("object", "an object"),
        ("int", "an int"),
        ("'outcome'", "an 'outcome'"),
        ("unknown", "an unknown"),
        ("chat", "a chat"),
        ("preference", "a preference"),
        ("'label'", "a 'label'"),
        ("user", "a user"),
        ("uint8", "a uint8"),
        ("unique", "a unique"),
    ],
)
def test_the_article_follows_how_the_word_begins(word: str, said: str) -> None:
    assert a_or_an(word) == said


def test_an_instruction_dataset_is_named_with_its_article() -> None:
    instruction = Schema.for_kind("instruction")
    with pytest.raises(InputError, match=r"^an instruction dataset has the fixed columns"):
        Schema("kind", (Column("text", ColumnKind.TEXT),), kind="instruction")
    with pytest.raises(ValueError, match="column of an instruction dataset must be 'instruction'"):
        label_value(instruction, "chat")
    with pytest.raises(InputError) as missing:
        llm_frame(pd.DataFrame({"prompt": ["q"]}), "clean contribution", instruction)
    assert (missing.value.hint or "").startswith("an instruction dataset has ")


def test_a_label_column_and_a_value_type_are_named_with_their_article(tmp_path) -> None:
    schema = Schema("outcome", (Column("x", ColumnKind.NUMERIC),))
    with pytest.raises(InputError) as missing:
        check_columns(tmp_path / "f.csv", ["x"], schema)
    assert (missing.value.hint or "").startswith("add an 'outcome' column")
    images = {"label": "label", "inputs": [{"name": "image", "kind": "image"}]}
    frame = pd.DataFrame({"image": [b"\x89PNG", 7], "label": ["a", "b"]})
    with pytest.raises(InputError, match="holds an int, where an image column takes"):
        scan(None, frame, images)
