"""CSV import: quoting, line numbers, and every refusal naming file, line and column."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from dataward.domain.errors import InputError, NotFound
from dataward.domain.records import canonical_table
from dataward.domain.schema import Schema
from dataward.io import read_table
from tests.io.samples import png_bytes, write


def test_quoted_commas_quotes_and_newlines(tmp_path: Path, text_schema: Schema) -> None:
    path = write(
        tmp_path / "t.csv",
        'text,label\n"hello, world",greeting\n"she said ""hi""\nthen left",story\nplain,3\n',
    )
    imported = read_table(path, text_schema)
    assert imported.table.column("text").to_pylist() == ["hello, world", 'she said "hi"\nthen left', "plain"]
    assert imported.table.column("label").to_pylist() == ["greeting", "story", "3"]
    # The header is line 1; the second record spans lines 3 and 4.
    assert imported.rows.tolist() == [2, 3, 5]
    assert imported.format == "csv"
    assert imported.table.schema.equals(text_schema.arrow_schema())


def test_ids_equal_the_domain_canonical_table(tmp_path: Path, mixed_schema: Schema) -> None:
    path = write(
        tmp_path / "m.csv",
        "label,text,size,colour,emb\n"
        'a,first,1.5,red,"[0.1, 0.2, 0.3]"\n'
        'b,second,,blue,"[1,2,3]"\n'
        '3.0,third, -0.0 ,,"[0,0,0]"\n',
    )
    imported = read_table(path, mixed_schema)
    expected = canonical_table(
        mixed_schema,
        [
            {"text": "first", "size": 1.5, "colour": "red", "emb": [0.1, 0.2, 0.3], "label": "a"},
            {"text": "second", "size": None, "colour": "blue", "emb": [1, 2, 3], "label": "b"},
            {"text": "third", "size": 0.0, "colour": None, "emb": [0, 0, 0], "label": "3.0"},
        ],
    )
    assert imported.table.column("record_id").to_pylist() == expected.column("record_id").to_pylist()
    # CSV labels are text: "3.0" stays "3.0" (a Parquet float label 3.0 would be "3").
    assert imported.table.column("label").to_pylist() == ["a", "b", "3.0"]
    assert imported.table.column("size").to_pylist() == [1.5, None, 0.0]


def test_blank_lines_and_crlf_keep_line_numbers(tmp_path: Path, text_schema: Schema) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"text,label\r\none,a\r\n\r\ntwo,b\r\n")
    imported = read_table(path, text_schema)
    assert imported.table.column("text").to_pylist() == ["one", "two"]
    assert imported.rows.tolist() == [2, 4]


def test_byte_order_mark_is_ignored(tmp_path: Path, text_schema: Schema) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nx,a\n")
    assert read_table(path, text_schema).table.column("text").to_pylist() == ["x"]


def test_raw_hash_is_the_hash_of_the_file(tmp_path: Path, text_schema: Schema) -> None:
    from dataward.domain.hashing import content_hash

    path = write(tmp_path / "t.csv", "text,label\nx,a\n")
    assert read_table(path, text_schema).raw_hash == content_hash(path.read_bytes())


def test_base64_images_in_csv(tmp_path: Path, image_schema: Schema) -> None:
    image = png_bytes(1)
    path = write(tmp_path / "i.csv", f"image,label\n{base64.b64encode(image).decode()},cat\n")
    assert read_table(path, image_schema).table.column("image").to_pylist() == [image]


def _refused(path: Path, schema: Schema) -> InputError:
    with pytest.raises(InputError) as info:
        read_table(path, schema)
    assert str(path) in info.value.message
    return info.value


def test_bad_encoding_names_line_and_column(tmp_path: Path, text_schema: Schema) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nfine,a\ncaf\u00e9,b\n".encode("latin-1"))
    error = _refused(path, text_schema)
    assert "line 3" in error.message and "'text'" in error.message and "UTF-8" in error.message
    assert error.details == {"file": str(path), "line": 3, "column": "text"}


def test_missing_label_column(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.csv", "text,class\nx,a\n"), text_schema)
    assert "line 1" in error.message and "'label'" in error.message and "label column is missing" in error.message


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs"), ("|", "pipes")])
def test_a_header_separated_otherwise_names_its_separator(
    tmp_path: Path, text_schema: Schema, sep: str, word: str
) -> None:
    error = _refused(write(tmp_path / "t.csv", f"text{sep}label\nx{sep}a\n"), text_schema)
    assert "label column is missing" in error.message
    assert f"separated by {word} ({sep!r})" in (error.hint or "")
    # A header that is simply wrong keeps the usual hint.
    error = _refused(write(tmp_path / "u.csv", "text,class\nx,a\n"), text_schema)
    assert "separated by" not in (error.hint or "")


def test_missing_input_column(tmp_path: Path, mixed_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.csv", "text,size,colour,label\nx,1,red,a\n"), mixed_schema)
    assert "'emb'" in error.message and "missing" in error.message


def test_undeclared_column_is_refused_with_a_hint(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.csv", "text,label,notes\nx,a,n\n"), text_schema)
    assert "'notes'" in error.message and "not in the dataset schema" in error.message
    # A dataset's schema is fixed when it is created: the hint names the columns it reads, not a change
    # to the schema that no command makes.
    assert error.hint and "declare" not in error.hint and "text, label" in error.hint and "drop" in error.hint


def test_duplicate_header(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.csv", "text,label,text\nx,a,y\n"), text_schema)
    assert "line 1" in error.message and "'text'" in error.message and "2 times" in error.message


def test_wrong_type_names_line_and_column(tmp_path: Path, mixed_schema: Schema) -> None:
    rows = "".join(f'r{i},{i}.5,red,"[1,2,3]",a\n' for i in range(50))
    path = write(tmp_path / "t.csv", "text,size,colour,emb,label\n" + rows + 'bad,abc,red,"[1,2,3]",a\n')
    error = _refused(path, mixed_schema)
    assert "line 52" in error.message and "'size'" in error.message and "abc" in error.message


def test_wrong_embedding_dimension(tmp_path: Path, mixed_schema: Schema) -> None:
    path = write(tmp_path / "t.csv", 'text,size,colour,emb,label\nx,1,red,"[1,2,3]",a\ny,2,red,"[1,2]",a\n')
    error = _refused(path, mixed_schema)
    assert "line 3" in error.message and "'emb'" in error.message and "dimension 3" in error.message


def test_embedding_that_is_not_json(tmp_path: Path, mixed_schema: Schema) -> None:
    path = write(tmp_path / "t.csv", 'text,size,colour,emb,label\nx,1,red,"1;2;3",a\n')
    error = _refused(path, mixed_schema)
    assert "line 2" in error.message and "'emb'" in error.message and "JSON list" in error.message


def test_row_with_wrong_number_of_fields(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.csv", "text,label\nx,a\ny\nz,c\n"), text_schema)
    assert "line 3" in error.message and "'label'" in error.message and "found 1 fields" in error.message
    error = _refused(write(tmp_path / "u.csv", 'text,label\nx,a\n"multi\nline",b\ny,a,extra\n'), text_schema)
    assert "line 5" in error.message and "found 3 fields" in error.message


def test_unterminated_quote(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.csv", 'text,label\nx,a\n"never closed,b\n'), text_schema)
    assert "line 3" in error.message


def test_missing_label_value(tmp_path: Path, text_schema: Schema) -> None:
    error = _refused(write(tmp_path / "t.csv", "text,label\nx,a\ny,  \n"), text_schema)
    assert "line 3" in error.message and "'label'" in error.message and "empty" in error.message


@pytest.mark.parametrize("content", ["", "\n", "text,label\n"])
def test_empty_file(tmp_path: Path, text_schema: Schema, content: str) -> None:
    error = _refused(write(tmp_path / "t.csv", content), text_schema)
    assert "empty" in error.message or "no records" in error.message


def test_image_that_does_not_decode(tmp_path: Path, image_schema: Schema) -> None:
    good = base64.b64encode(png_bytes(1)).decode()
    junk = base64.b64encode(b"GIF89a but not really").decode()
    path = write(tmp_path / "i.csv", f"image,label\n{good},cat\n{junk},dog\n")
    error = _refused(path, image_schema)
    assert "line 3" in error.message and "'image'" in error.message and "not a decodable image" in error.message


def test_image_that_is_not_base64(tmp_path: Path, image_schema: Schema) -> None:
    error = _refused(write(tmp_path / "i.csv", "image,label\nnot base64!,cat\n"), image_schema)
    assert "line 2" in error.message and "base64" in error.message


def test_unknown_extension_and_missing_file(tmp_path: Path, text_schema: Schema) -> None:
    with pytest.raises(InputError, match="extension"):
        read_table(write(tmp_path / "t.txt", "text,label\nx,a\n"), text_schema)
    assert read_table(tmp_path / "t.txt", text_schema, format="csv").table.num_rows == 1
    with pytest.raises(NotFound, match="no such file"):
        read_table(tmp_path / "absent.csv", text_schema)
    with pytest.raises(InputError, match="unknown input format"):
        read_table(tmp_path / "t.txt", text_schema, format="xlsx")


def test_a_path_that_is_no_regular_file_says_what_it_is(tmp_path: Path, text_schema: Schema) -> None:
    """/dev/stdin (a pipe) and /dev/zero read "is a folder, not a file"."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # never opened: nothing blocks
    for path, kind in [(fifo, "a pipe"), (Path("/dev/zero"), "a character device")]:
        with pytest.raises(InputError, match=f"is not a regular file: it is {kind}"):
            read_table(path, text_schema, format="csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InputError, match="is a folder, not a file"):
        read_table(tmp_path / "folder.csv", text_schema, format="csv")


def test_numbers_in_text_are_kept_as_written(tmp_path: Path, text_schema: Schema) -> None:
    path = write(tmp_path / "t.csv", "text,label\n007,1\n1e3,2.50\n")
    imported = read_table(path, text_schema)
    assert imported.table.column("text").to_pylist() == ["007", "1e3"]
    assert imported.table.column("label").to_pylist() == ["1", "2.50"]
    assert json.dumps(imported.rows.tolist()) == "[2, 3]"


def test_error_after_a_multi_line_record_names_the_physical_line(tmp_path: Path, mixed_schema: Schema) -> None:
    path = write(
        tmp_path / "t.csv",
        'text,size,colour,emb,label\n"two\nlines",1,red,"[1,2,3]",a\n"three\nmore\nlines",x,red,"[1,2,3]",a\n',
    )
    error = _refused(path, mixed_schema)
    assert "line 4" in error.message and "'size'" in error.message


def test_a_value_longer_than_a_parse_block_is_read_whole(tmp_path: Path, text_schema: Schema) -> None:
    long_text = "word " * 1_200_000  # 6 MB, more than one pyarrow block
    path = write(tmp_path / "t.csv", f'text,label\nshort,a\n"{long_text}",b\n')
    imported = read_table(path, text_schema)
    assert imported.table.column("text").to_pylist() == ["short", long_text]
    assert imported.rows.tolist() == [2, 3]


def test_a_parquet_file_read_as_csv_or_json_lines_is_named_as_such(tmp_path: Path, text_schema: Schema) -> None:
    """`contribute data.parquet --format csv` (or Parquet saved as .jsonl) was refused for its first line,
    quoting its binary footer bytes as a column name: the refusal says it is a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a"], "label": ["x"]}), path)
    for fmt in ("csv", "jsonl", "json"):
        with pytest.raises(InputError, match="is a Parquet file") as info:
            read_table(path, text_schema, format=fmt)
        assert "PAR1" not in info.value.message and "--format parquet" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("encoding", "says"),
    [
        ("utf-16", "UTF-16 (little-endian) text, as its byte-order mark (FF FE) says"),
        ("utf-16-be", "looks like UTF-16 (big-endian) text"),
        ("utf-16-le", "looks like UTF-16 (little-endian) text"),
        ("utf-32", "UTF-32 (little-endian) text, as its byte-order mark (FF FE 00 00) says"),
    ],
)
def test_a_utf16_file_is_named_as_such(tmp_path: Path, text_schema: Schema, encoding: str, says: str) -> None:
    """A spreadsheet's "Unicode text" is UTF-16: it was refused for a column named
    ``'\\udcff\\udcfet\\x00e\\x00x\\x00t\\x00'``, or for a missing label column without its mark."""
    path = tmp_path / "t.csv"
    path.write_bytes("text,label\nhéllo,pos\n".encode(encoding))
    error = _refused(path, text_schema)
    assert "is not UTF-8" in error.message and says in error.message, error.message
    assert "\\x00" not in error.message and "\\udc" not in error.message
    assert error.hint and "iconv" in error.hint and "t.utf8.csv" in error.hint
