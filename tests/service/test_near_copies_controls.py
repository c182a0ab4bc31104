"""Near copies made with control characters no screen draws (a bell, a NUL, DEL, a C1 control) are
held back like re-spaced ones; a change a model reads differently (letter case, a homoglyph, a
dropped full stop) is not a near copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.normalized import normalized_digest_array, normalized_text
from dataward.domain.records import canonical_table
from dataward.domain.schema import Schema
from tests.service.test_near_copies_held_back import _jsonl, _rows, _text_ward


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t + "\x07",  # a bell at the end
        lambda t: t.replace(" ", " \x00", 1),  # a NUL inside
        lambda t: t.replace("The", "The\x08", 1),  # a backspace
        lambda t: t + "\x7f",  # DEL
        lambda t: t.replace(" ", "\x80 ", 1),  # a C1 control
    ],
    ids=["bell", "nul", "backspace", "del", "c1"],
)
def test_control_characters_do_not_make_a_quarantined_record_new(tmp_path: Path, change) -> None:
    ward, bad = _text_ward(tmp_path)
    rows = [{**r, "text": change(r["text"])} for r in _rows(100, 120)]
    sent = ward.contribute("notes", _jsonl(tmp_path / "again.jsonl", rows), source="vendor")
    assert sent["held_back"] == 20
    assert sent["held_back_by"] == [
        {"why": "quarantined", "contribution": bad["ref"], "same_dataset": True, "records": 20, "match": "normalized"}
    ]
    assert ward.merge(sent["ref"])["held_back_of_contribution"] == 20


@pytest.mark.parametrize(
    "change",
    [str.lower, lambda t: t.rstrip("."), lambda t: t.replace("e", "\u0435", 1)],
    ids=["case", "full-stop", "cyrillic-e"],
)
def test_a_change_a_model_reads_differently_is_not_a_near_copy(tmp_path: Path, change) -> None:
    ward, _ = _text_ward(tmp_path)
    rows = [{**r, "text": change(r["text"])} for r in _rows(100, 120)]
    sent = ward.contribute("notes", _jsonl(tmp_path / "other.jsonl", rows), source="vendor")
    assert sent["held_back"] == 0


def test_normalized_text_keeps_what_is_drawn_and_folds_line_ends() -> None:
    assert normalized_text("a\tb\r\n c\x1f") == "a b c"
    assert normalized_text("a\x00b\x07") == "ab"
    assert normalized_text("Caf\u00e9 \ufb01") == "Café fi"
    assert normalized_text("x\ue000") == "x\ue000"  # a private-use glyph is drawn (as a box at least)


@pytest.mark.parametrize("name", ["", " ", "\u200b"], ids=["empty", "space", "zero-width"])
def test_a_chat_message_with_a_name_of_nothing_drawn_is_a_near_copy(name: str) -> None:
    schema = Schema.for_kind("chat")
    said = [{"role": "user", "content": "What does ls do?"}, {"role": "assistant", "content": "Lists files."}]
    named = [{**said[0], "name": name}, said[1]]
    other = [{**said[0], "name": "ann"}, said[1]]
    table = canonical_table(schema, [{"messages": m} for m in (said, named, other)])
    digests = normalized_digest_array(schema, table)
    assert (digests[0] == digests[1]).all()
    assert not (digests[0] == digests[2]).all()  # a real name is another message


@pytest.mark.parametrize("given", ["", " ", "\u200b"], ids=["empty", "space", "zero-width"])
def test_an_instruction_with_an_input_of_nothing_drawn_is_a_near_copy(given: str) -> None:
    schema = Schema.for_kind("instruction")
    said = {"prompt": "Say hi", "response": "hi"}
    table = canonical_table(schema, [said, {**said, "input": given}, {**said, "input": "x"}])
    digests = normalized_digest_array(schema, table)
    assert (digests[0] == digests[1]).all()
    assert not (digests[0] == digests[2]).all()  # an input that says something is another record
