"""JSON Lines import: types as written, line numbers, and refusals naming file, line and column."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dataward.domain.errors import InputError
from dataward.domain.records import canonical_table
from dataward.domain.schema import Schema
from dataward.io import read_table
from tests.io.samples import png_bytes, write


def _lines(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_values_and_line_numbers(tmp_path: Path, mixed_schema: Schema) -> None:
    records = [
        {"text": "a, b", "size": 2, "colour": "red", "emb": [1, 2, 3], "label": "x"},
        {"text": "c", "size": None, "colour": None, "emb": [0.5, 0.25, 0], "label": 7},
    ]
    path = write(tmp_path / "m.jsonl", _lines(*records))
    imported = read_table(path, mixed_schema)
    expected = canonical_table(mixed_schema, records)
    assert imported.table.equals(expected.cast(imported.table.schema))
    assert imported.rows.tolist() == [1, 2]
    assert imported.table.schema.equals(mixed_schema.arrow_schema())


def test_blank_lines_are_skipped_but_counted(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.ndjson", '{"text": "a", "label": "x"}\n\n  \n{"text": "b", "label": "y"}')
    imported = read_table(path, text_schema)
    assert imported.format == "jsonl"
    assert imported.rows.tolist() == [1, 4]


def test_text_that_looks_like_a_date_stays_text(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.jsonl", _lines({"text": "2020-01-01", "label": "2021-02-03"}))
    imported = read_table(path, text_schema)
    assert imported.table.column("text").to_pylist() == ["2020-01-01"]
    assert imported.table.column("label").to_pylist() == ["2021-02-03"]


def test_labels_may_mix_numbers_and_strings(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.jsonl", _lines({"text": "a", "label": 1}, {"text": "b", "label": "one"}))
    assert read_table(path, text_schema).table.column("label").to_pylist() == ["1", "one"]


def test_base64_images(tmp_path: Path, image_schema: Schema) -> None:
    image = png_bytes(3)
    path = write(tmp_path / "i.jsonl", _lines({"image": base64.b64encode(image).decode(), "label": "cat"}))
    assert read_table(path, image_schema).table.column("image").to_pylist() == [image]


def _refused(path: Path, schema: Schema) -> InputError:
    with pytest.raises(InputError) as info:
        read_table(path, schema)
    assert str(path) in info.value.message
    return info.value


def test_invalid_json_line(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    error = _refused(path, text_schema)
    assert "line 2" in error.message and "not valid JSON" in error.message


def test_line_that_is_not_an_object(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n')
    error = _refused(path, text_schema)
    assert "line 2" in error.message and "not an object" in error.message


def test_text_that_is_a_number(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.jsonl", _lines({"text": "a", "label": "x"}, {"text": 5, "label": "y"}))
    error = _refused(path, text_schema)
    assert "line 2" in error.message and "'text'" in error.message and "expected text" in error.message


def test_wrong_numeric_type(tmp_path: Path, mixed_schema: Schema) -> None:
    good = {"text": "a", "size": 1, "colour": "red", "emb": [1, 2, 3], "label": "x"}
    path = write(tmp_path / "t.jsonl", _lines(good, good, {**good, "size": "abc"}))
    error = _refused(path, mixed_schema)
    assert "line 3" in error.message and "'size'" in error.message and "abc" in error.message


def test_wrong_embedding_dimension(tmp_path: Path, mixed_schema: Schema) -> None:
    good = {"text": "a", "size": 1, "colour": "red", "emb": [1, 2, 3], "label": "x"}
    path = write(tmp_path / "t.jsonl", _lines(good, {**good, "emb": [1, 2, 3, 4]}))
    error = _refused(path, mixed_schema)
    assert "line 2" in error.message and "'emb'" in error.message and "dimension 3" in error.message


def test_missing_label_value_and_column(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "a.jsonl", _lines({"text": "a", "label": "x"}, {"text": "b"})), text_schema)
    assert "line 2" in error.message and "'label'" in error.message and "missing" in error.message
    error = _refused(write(tmp_path / "b.jsonl", _lines({"text": "a"}, {"text": "b"})), text_schema)
    assert "'label'" in error.message and "label column is missing" in error.message


def test_missing_input_column(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.jsonl", _lines({"label": "x"})), text_schema)
    assert "'text'" in error.message and "missing" in error.message


def test_undeclared_key_names_its_line(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.jsonl", _lines({"text": "a", "label": "x"}, {"text": "b", "label": "y", "note": 1}))
    error = _refused(path, text_schema)
    assert "line 2" in error.message and "'note'" in error.message and error.hint and "drop" in error.hint


def test_a_lone_surrogate_escape_names_line_and_key(tmp_path: Path, text_schema: Schema) -> None:
    """Found by fuzzing the API on a populated ward: ``\\udce0`` (half of a UTF-16 pair, alone) decoded into
    text no UTF-8 can hold, and the import failed as a server error when the column was built."""
    path = write(tmp_path / "t.jsonl", '{"text": "ok", "label": "x"}\n{"text": "a\\udce0", "label": "y"}\n')
    error = _refused(path, text_schema)
    assert "line 2" in error.message and "text holds a lone UTF-16 surrogate" in error.message, error.message
    # A pair of surrogates is one character (U+1F600), as text as any other.
    paired = write(tmp_path / "p.jsonl", '{"text": "\\ud83d\\ude00", "label": "x"}\n')
    assert read_table(paired, text_schema).table.column("text").to_pylist() == ["\U0001f600"]


def test_bad_encoding_names_line_and_key(tmp_path: Path, text_schema: Schema) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "x"}\n{"text": "caf\xe9", "label": "y"}\n')
    error = _refused(path, text_schema)
    assert "line 2" in error.message and "'text'" in error.message and "UTF-8" in error.message


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_file(tmp_path: Path, text_schema: Schema, content: str) -> None:
    assert "empty" in _refused(write(tmp_path / "t.jsonl", content), text_schema).message


def test_undeclared_key_hint_names_the_columns_a_chat_dataset_reads(tmp_path: Path) -> None:
    """A chat dataset's columns are fixed by its kind: an instruction-style line is refused with the
    columns it reads, not a hint to declare the column in a schema no command changes."""
    path = write(tmp_path / "t.jsonl", '{"prompt": "What does ls do?", "response": "It lists files."}\n')
    error = _refused(path, Schema.for_kind("chat"))
    assert "'prompt'" in error.message and "not in the dataset schema" in error.message
    assert error.hint and "declare" not in error.hint and "messages" in error.hint


@pytest.mark.parametrize(
    ("content", "line", "key"),
    [
        # Refused by pyarrow's fast reader, then named by the exact pass.
        ('{"text": "q1", "label": "neg", "label": "pos"}\n', 1, "label"),
        ('{"text": "q0", "label": "neg"}\n{"text": "a", "text": "b", "label": "x"}\n', 2, "text"),
        # Blank lines send the whole file to the exact pass; colons in values make it check every object.
        ('\n{"text": "at 10:30", "label": "neg"}\n{"text": "q2: why", "label": "neg", "label": "pos"}\n', 3, "label"),
    ],
)
def test_a_key_given_twice_is_refused(tmp_path: Path, text_schema: Schema, content: str, line: int, key: str) -> None:
    """``{"label": "neg", "label": "pos"}`` was stored as ``pos`` (the last value, as ``json`` keeps it);
    a column named twice in a CSV header is refused, and so is this."""
    error = _refused(write(tmp_path / "t.jsonl", content), text_schema)
    assert f"line {line}" in error.message and f"'{key}'" in error.message, error.message
    assert "appears 2 times" in error.message


def test_a_key_given_twice_in_a_nested_object_is_refused(tmp_path: Path) -> None:
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    good = json.dumps(line)
    bad = good.replace('"role": "user"', '"role": "user", "role": "assistant"')
    error = _refused(write(tmp_path / "t.jsonl", good + "\n" + bad + "\n"), Schema.for_kind("chat"))
    assert "line 2" in error.message and "'role'" in error.message and "appears 2 times" in error.message


def test_colons_in_values_and_nested_objects_still_read(tmp_path: Path, text_schema: Schema) -> None:
    """The repeated-key check parses such lines again: their values are unchanged."""
    path = write(tmp_path / "t.jsonl", '\n{"text": "a: b: {\\"c\\": 1}", "label": "x"}\n')
    assert read_table(path, text_schema).table.column("text").to_pylist() == ['a: b: {"c": 1}']


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_file_is_named_as_such(tmp_path: Path, text_schema: Schema, encoding: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(_lines({"text": "héllo", "label": "pos"}).encode(encoding))
    error = _refused(path, text_schema)
    assert "is not UTF-8" in error.message and "UTF-16" in error.message, error.message
    assert error.hint and "iconv" in error.hint


@pytest.mark.parametrize("indent", ["", " "], ids=["fast reader", "exact pass"])
def test_a_whole_number_label_is_kept_as_written(tmp_path: Path, text_schema: Schema, indent: str) -> None:
    """pyarrow read 18446744073709551617 (beyond int64) as a float: it and ...616 were both stored as the
    label ``18446744073709551616``, while the exact pass (taken for a line with a leading space) kept
    each as written, so the same data had different labels and record ids by which reader read it."""
    labels = ["18446744073709551617", "18446744073709551616", "123456789012345678901234567890", "9007199254740993"]
    content = "".join(f'{indent}{{"text": "t{i}", "label": {label}}}\n' for i, label in enumerate(labels))
    imported = read_table(write(tmp_path / "t.jsonl", content), text_schema)
    assert imported.table.column("label").to_pylist() == labels


def test_a_label_mixing_fractions_and_large_numbers_is_kept_as_written(tmp_path: Path, text_schema: Schema) -> None:
    """A fraction makes pyarrow read the whole column as floats, even the int64 values."""
    path = write(tmp_path / "t.jsonl", '{"text": "a", "label": 0.5}\n{"text": "b", "label": 9007199254740993}\n')
    assert read_table(path, text_schema).table.column("label").to_pylist() == ["0.5", "9007199254740993"]


def test_ordinary_number_labels_keep_their_record_ids(tmp_path: Path, text_schema: Schema) -> None:
    """Whole numbers, fractions and negative numbers read the same whichever reader reads them."""
    content = '{"text": "a", "label": 3}\n{"text": "b", "label": 3.0}\n{"text": "c", "label": -0.25}\n'
    fast = read_table(write(tmp_path / "f.jsonl", content), text_schema)
    exact = read_table(write(tmp_path / "e.jsonl", "\n" + content), text_schema)
    assert fast.table.column("label").to_pylist() == ["3", "3", "-0.25"]
    assert fast.table.column("record_id").equals(exact.table.column("record_id"))


@pytest.mark.parametrize("value", ["1e400", "-1e400", "Infinity"])
def test_an_infinite_label_is_refused(tmp_path: Path, text_schema: Schema, value: str) -> None:
    """Was stored as the label ``inf`` (or ``-inf``): one label for any number too large for a float."""
    error = _refused(write(tmp_path / "t.jsonl", f'{{"text": "a", "label": {value}}}\n'), text_schema)
    assert "line 1" in error.message and "'label'" in error.message and "infinite" in error.message
