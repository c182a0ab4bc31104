"""Image folders: one class per sub-folder, bytes kept as found, undecodable files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import InputError
from dataward.domain.hashing import content_hash, json_hash
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io import read_table
from tests.io.samples import png_bytes


def _folder(root: Path, layout: dict[str, bytes]) -> Path:
    for relative, data in layout.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_folder_import(tmp_path: Path, image_schema: Schema) -> None:
    layout = {"dog/b.png": png_bytes(2), "cat/z.png": png_bytes(3), "cat/a.png": png_bytes(1)}
    root = _folder(tmp_path / "imgs", {**layout, "cat/.DS_Store": b"junk", ".hidden/x.png": b"junk"})
    imported = read_table(root, image_schema)
    assert imported.format == "images"
    assert imported.paths == ["cat/a.png", "cat/z.png", "dog/b.png"]
    assert imported.rows.tolist() == [1, 2, 3]
    assert imported.table.column("label").to_pylist() == ["cat", "cat", "dog"]
    assert imported.table.column("image").to_pylist() == [layout[p] for p in imported.paths]
    expected = json_hash([[p, content_hash(layout[p])] for p in imported.paths])
    assert imported.raw_hash == expected


def test_raw_hash_changes_when_a_file_moves(tmp_path: Path, image_schema: Schema) -> None:
    first = read_table(_folder(tmp_path / "a", {"cat/1.png": png_bytes(1)}), image_schema)
    second = read_table(_folder(tmp_path / "b", {"dog/1.png": png_bytes(1)}), image_schema)
    assert first.raw_hash != second.raw_hash


def test_undecodable_file_is_named(tmp_path: Path, image_schema: Schema) -> None:
    root = _folder(tmp_path / "imgs", {"cat/a.png": png_bytes(1), "cat/b.png": b"\x89PNG\r\n\x1a\n truncated"})
    with pytest.raises(InputError) as info:
        read_table(root, image_schema)
    message = info.value.message
    assert str(root) in message and "cat/b.png" in message and "'image'" in message
    assert "not a decodable image" in message


def test_pickle_disguised_as_an_image_is_refused(tmp_path: Path, image_schema: Schema) -> None:
    import pickle

    root = _folder(tmp_path / "imgs", {"cat/a.png": pickle.dumps({"boom": 1})})
    with pytest.raises(InputError, match="not a decodable image") as info:
        read_table(root, image_schema)
    # Pillow's reason names the buffer it read ('<_io.BytesIO object at 0x7f...>'): not shown to people.
    assert "object at 0x" not in info.value.message and "cannot identify image file" in info.value.message


def test_folder_without_class_folders(tmp_path: Path, image_schema: Schema) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no class sub-folders"):
        read_table(tmp_path / "empty", image_schema)
    root = _folder(tmp_path / "loose", {"a.png": png_bytes(1)})
    with pytest.raises(InputError, match="outside any class folder"):
        read_table(root, image_schema)
    (tmp_path / "hollow" / "cat").mkdir(parents=True)
    with pytest.raises(InputError, match="no image files"):
        read_table(tmp_path / "hollow", image_schema)


def test_schema_must_be_one_image_column(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", {"cat/a.png": png_bytes(1)})
    schema = Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE), Column("note", ColumnKind.TEXT)))
    with pytest.raises(InputError, match="exactly one image column"):
        read_table(root, schema)
