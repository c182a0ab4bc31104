"""Labels are visible text: a label holding a control, format (bidi, zero-width) or line-separator
character is refused at input, naming the label and the character, in every format.

Attack: a contributor sends ``commands\\x1b[8m`` (or ``commands\\u200b``), which every screen shows as
the real class ``commands``; a reviewer who accepts the ``new_label`` finding makes a second class that
looks like the first, and in a terminal the ESC sequence conceals what is printed after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataward.domain.errors import InputError
from dataward.domain.names import hidden_character, is_hidden, visible
from dataward.domain.schema import Schema
from dataward.io import read_table
from tests.io.samples import write


def _refusal(tmp_path: Path, schema: Schema, label: str) -> str:
    """The message refusing a JSON Lines file whose second record is labelled ``label``."""
    path = write(
        tmp_path / "t.jsonl",
        "\n".join(json.dumps({"text": t, "label": lab}) for t, lab in (("a", "files"), ("b", label))) + "\n",
    )
    with pytest.raises(InputError) as info:
        read_table(path, schema)
    return info.value.message


@pytest.mark.parametrize(
    ("label", "named"),
    [
        ("commands\x1b[8m", "U+001B ESCAPE"),
        ("commands\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\u202ednammoc", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("com\x00mands", "U+0000 NULL"),
        ("com\x9bmands", "U+009B"),
        ("com\u2028mands", "U+2028 LINE SEPARATOR"),
    ],
)
def test_a_label_with_a_hidden_character_is_refused_by_name(
    tmp_path: Path, text_schema: Schema, label: str, named: str
) -> None:
    message = _refusal(tmp_path, text_schema, label)
    assert repr(label) in message and named in message and "line 2" in message, message


def test_the_csv_and_parquet_readers_refuse_it_too(tmp_path: Path, text_schema: Schema) -> None:
    csv = write(tmp_path / "t.csv", "text,label\nfoo bar,commands\x1b[8m\n")
    with pytest.raises(InputError, match="ESCAPE"):
        read_table(csv, text_schema)
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["x"], "label": ["a\u202eb"]}), parquet)
    with pytest.raises(InputError, match="RIGHT-TO-LEFT OVERRIDE"):
        read_table(parquet, text_schema)


def test_ordinary_labels_in_any_script_are_accepted(tmp_path: Path, text_schema: Schema) -> None:
    labels = ["café", "中文", "not spam", "Ελληνικά", "עברית", "3", "a\u00a0b"]
    path = write(tmp_path / "t.csv", "text,label\n" + "".join(f"x{i},{lab}\n" for i, lab in enumerate(labels)))
    assert read_table(path, text_schema).table.column("label").to_pylist() == labels


def test_rows_given_through_the_python_api_and_a_relabelling_are_held_to_it(tmp_path: Path) -> None:
    import pandas as pd

    from dataward.service.ward import Ward
    from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed

    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("man", Schema.parse("label", ["text:text"]))
    ward.set_policy("man", NO_APPROVALS_POLICY)
    frame = pd.DataFrame({"text": ["a b", "c d"], "label": ["files", "commands\u200b"]})
    with pytest.raises(InputError, match="row 2: the label 'commands\\\\u200b' holds U\\+200B ZERO WIDTH SPACE"):
        ward.contribute("man", frame, source="https://example.org/man")
    frame["label"] = ["files", "commands"]
    merge_reviewed(ward, ward.contribute("man", frame, source="https://example.org/man")["ref"])
    record = ward.read_version("man", "v1")[1].column("record_id")[0].as_py()
    with pytest.raises(InputError, match="ESCAPE"):
        ward.relabel("man", {record: "commands\x1b[8m"}, reason="fix")


@pytest.mark.parametrize(
    "label",
    [
        "commands\u034f",  # COMBINING GRAPHEME JOINER: drawn as nothing
        "commands\ufe0f",  # VARIATION SELECTOR-16: drawn as nothing after a letter
        "commands\U000e0100",  # VARIATION SELECTOR-17
        "commands\u3164",  # HANGUL FILLER: a blank, not a space
        "commands\u2800",  # BRAILLE PATTERN BLANK
    ],
)
def test_a_label_with_a_default_ignorable_or_blank_character_is_refused(
    tmp_path: Path, text_schema: Schema, label: str
) -> None:
    """Characters Python calls printable but no screen draws make the same look-alike class as a
    zero-width space does (Unicode's Default_Ignorable_Code_Point, and the blank fillers)."""
    path = write(tmp_path / "t.jsonl", json.dumps({"text": "b", "label": label}) + "\n")
    with pytest.raises(InputError):
        read_table(path, text_schema)


@pytest.mark.parametrize(
    ("label", "named"),
    [
        ("commands\u034f", "U+034F COMBINING GRAPHEME JOINER"),
        ("commands\U000e0100", "U+E0100 VARIATION SELECTOR-17"),
        ("\u115fcommands", "U+115F HANGUL CHOSEONG FILLER"),
        ("commands\U000e0063", "U+E0063 TAG LATIN SMALL LETTER C"),
        ("com\u2800mands", "U+2800 BRAILLE PATTERN BLANK"),
    ],
)
def test_the_refusal_names_the_line_the_character_and_the_label_as_escapes(
    tmp_path: Path, text_schema: Schema, label: str, named: str
) -> None:
    """The message must show what cannot be seen: the label is quoted with the character escaped."""
    message = _refusal(tmp_path, text_schema, label)
    assert named in message and "line 2" in message, message
    assert visible(repr(label)) in message and label not in message, message


def test_the_hidden_characters_are_unicode_default_ignorables_and_the_braille_blank() -> None:
    """The written-out list is the Unicode property (compared with the ``regex`` package's table), plus
    U+2800; ordinary marks, letters and emoji are not in it."""
    regex = pytest.importorskip("regex")
    import unicodedata

    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    # Among the characters shown before (printable to Python, spaces, private-use, unassigned), exactly
    # these are hidden now; controls and format characters were hidden already.
    shown_before = [
        chr(cp)
        for cp in range(0x110000)
        if chr(cp).isprintable() or unicodedata.category(chr(cp)) in {"Zs", "Co", "Cn"}
    ]
    hidden = {char for char in shown_before if is_hidden(char)}
    expected = {char for char in shown_before if ignorable.match(char)} | {"\u2800"}
    assert hidden == expected, sorted(f"U+{ord(c):04X}" for c in hidden ^ expected)[:20]
    assert not any(hidden_character(text) for text in ("e\u0301", "\u2764", "\u2801", "中文", "ㅎ", "\u00a0"))


def test_free_text_keeps_an_emoji_s_presentation_selector_and_escapes_one_hidden_in_a_word() -> None:
    """A description or a reason may hold ``❤️`` (U+2764 then U+FE0F) or a keycap: the selector is drawn
    as part of the symbol, so it is shown as written. After a letter it draws nothing and makes a word
    look like another: escaped. A label holding either is refused all the same."""
    assert visible("love \u2764\ufe0f, keycap 1\ufe0f\u20e3") == "love \u2764\ufe0f, keycap 1\ufe0f\u20e3"
    assert visible("wine\ufe0f") == "wine\\ufe0f"
    assert visible("\ufe0fwine") == "\\ufe0fwine"
    assert hidden_character("\u2764\ufe0f") == "\ufe0f"
