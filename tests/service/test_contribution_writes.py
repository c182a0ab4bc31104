"""A contribution's id list and its new records' chunk are stored on threads of their own: a failure on
either side fails the submission with that error and records nothing; what was stored meanwhile is
whole, content-addressed and harmless (the ward verifies, and the same file is taken again)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from dataward.catalog.tables import contributions as contributions_table
from dataward.catalog.tables import holder_lists
from dataward.domain import records
from dataward.domain.schema import Schema
from dataward.io import read_table
from dataward.service import contributions, recordstore
from dataward.service.contributions import ContributionService
from dataward.service.ward import Ward
from dataward.store import tables as stored_tables
from tests.helpers import fail_hashing_batch, wine_rows, wine_schema_specs, wine_ward, write_csv


def _ward(tmp_path: Path) -> tuple[Ward, Path]:
    return wine_ward(tmp_path / "ward"), write_csv(tmp_path / "a.csv", wine_rows(0, 60))


def _taken_again(ward: Ward, path: Path) -> None:
    """The ward verifies, and the same file is then submitted in full."""
    assert ward.verify().ok
    c = ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    assert c["added"] == 60 and [x["ref"] for x in ward.contributions("wine")] == [c["ref"]]
    assert ward.verify().ok


def test_an_id_list_that_fails_to_store_fails_the_submission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ward, path = _ward(tmp_path)

    def lost(self: ContributionService, *args: object) -> str:
        raise OSError("connection lost while writing the id list")

    monkeypatch.setattr(ContributionService, "_put_id_list", lost)
    with pytest.raises(OSError, match="writing the id list"):
        ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    # Not a contribution without its id list: nothing is recorded.
    assert ward.contributions("wine") == []
    monkeypatch.undo()
    _taken_again(ward, path)


def test_a_chunk_that_fails_to_store_fails_the_submission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ward, path = _ward(tmp_path)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(contributions, "stage_new_records", full)
    with pytest.raises(OSError, match="no space left"):
        ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    assert ward.contributions("wine") == []
    # The id list stored meanwhile is whole: an object no row names, which verify passes.
    store = ward.services.contributions.store
    assert all(store.verify(d) for d in store.iter_digests())
    monkeypatch.undo()
    _taken_again(ward, path)


def test_a_chunk_that_fails_on_its_thread_fails_the_submission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk is encoded and stored on a thread of its own while the index blocks are worked out:
    its failure there is the submission's error, and nothing is recorded."""
    ward, path = _ward(tmp_path)
    threads: list[str] = []

    def full(*args: object, **kwargs: object) -> str:
        threads.append(threading.current_thread().name)
        raise OSError("no space left on device while writing the chunk")

    monkeypatch.setattr(recordstore, "_store_chunk", full)
    with pytest.raises(OSError, match="while writing the chunk"):
        ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    assert threads and threads[0] != threading.main_thread().name
    assert ward.contributions("wine") == []
    # Nor is the id list indexed for trace: the chunk's error came before the write.
    with ward.db.reading() as conn:
        assert conn.execute(select(func.count()).select_from(holder_lists)).scalar_one() == 0
    monkeypatch.undo()
    _taken_again(ward, path)


def _named_objects(ward: Ward) -> set[str]:
    """The chunk and id-list objects the ward's contributions name."""
    with ward.db.reading() as conn:
        rows = conn.execute(select(contributions_table.c.chunk_object, contributions_table.c.added_object)).all()
    return {d for row in rows for d in row if d is not None}


@pytest.mark.parametrize("second", ["overlapping", "repeated", "same"])
def test_a_chunk_written_ahead_is_stored_only_when_every_record_is_new(tmp_path: Path, second: str) -> None:
    """The chunk of every row is encoded before the staging knows which rows are new (a bet that all
    are): when some are not (records stored already, a record twice in the file, the same file again),
    it is given up and stores nothing; the store gains only the chunk of the new records and the id list."""
    ward, path = _ward(tmp_path)
    ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    rows = {
        "overlapping": wine_rows(30, 60) + wine_rows(60, 90),
        "repeated": wine_rows(60, 90) + wine_rows(60, 61),
        "same": wine_rows(0, 60),
    }[second]
    store = ward.services.contributions.store
    before = set(store.iter_digests())
    c = ward.contribute("wine", write_csv(tmp_path / "b.csv", rows), source="https://archive.example/b", gate=False)
    assert c["new_records"] == {"overlapping": 30, "repeated": 30, "same": 0}[second]
    assert set(store.iter_digests()) - before == _named_objects(ward) - before
    assert ward.verify().ok


def test_a_chunk_written_ahead_that_fails_fails_the_submission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk begun before the staging's look-up (from the file's records as their ids are worked
    out, or from a data frame's table) fails on its thread: that is the submission's error, nothing is
    recorded, and the same records are taken again."""
    ward, path = _ward(tmp_path)

    def broken(*args: object, **kwargs: object) -> object:
        raise OSError("no space left on device while encoding the chunk")

    monkeypatch.setattr(stored_tables, "records_to_parquet", broken)
    monkeypatch.setattr(recordstore, "_chunk_of", broken)
    with pytest.raises(OSError, match="while encoding the chunk"):
        ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    with pytest.raises(OSError, match="while encoding the chunk"):
        ward.contribute("wine", pd.read_csv(path), source="https://archive.example/a", gate=False)
    assert ward.contributions("wine") == []
    monkeypatch.undo()
    _taken_again(ward, path)


def test_a_staging_that_fails_gives_up_the_chunk_written_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the staging fails before it knows which rows are new, the chunk begun ahead is given up (its
    thread does not wait for a verdict that never comes) and stores nothing."""
    ward, path = _ward(tmp_path)
    store = ward.services.contributions.store
    before = set(store.iter_digests())

    def lookup_fails(*args: object) -> object:
        raise RuntimeError("the catalog went away")

    monkeypatch.setattr(recordstore, "_new_rows", lookup_fails)
    with pytest.raises(RuntimeError, match="went away"):
        ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    assert ward.contributions("wine") == []
    # Only the id list, stored beside, is new (a whole object no row names, which verify passes).
    assert len(set(store.iter_digests()) - before) == 1
    monkeypatch.undo()
    _taken_again(ward, path)


def test_records_stored_meanwhile_are_indexed_from_a_chunk_of_what_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submission whose records were partly stored by another between its staging and its write
    indexes a new chunk of the rest, not the staged chunk's blocks: every record is found where it is."""
    ward, path = _ward(tmp_path)
    half = write_csv(tmp_path / "half.csv", wine_rows(0, 30))
    service = ward.services.contributions
    staging = recordstore.stage_new_records

    def staged_then_overtaken(conn, store, table, binary=None, *, pool=None, ahead=None):  # type: ignore[no-untyped-def]
        staged = staging(conn, store, table, binary, pool=pool, ahead=ahead)
        if table.num_rows == 60:
            service.contribute("wine", half, source="https://archive.example/half", gate=False)
        return staged

    monkeypatch.setattr(contributions, "stage_new_records", staged_then_overtaken)
    c = ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    assert c["added"] == 60 and c["new_records"] == 30
    assert ward.verify().ok


def test_the_stored_objects_are_the_bytes_of_the_canonical_tables(tmp_path: Path) -> None:
    """The import stores its chunk and id list from the ids' digests without building their hex: the
    objects are byte for byte those of the canonical table (hex ids) written as before, so the same
    records give the same chunk whichever way they were read."""
    ward, path = _ward(tmp_path)
    c = ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    label, specs = wine_schema_specs()
    imported = read_table(path, Schema.parse(label, specs))
    table = imported.table  # the hex ids, built on first use
    assert table.column(0).to_pylist() == imported.record_ids and len(set(imported.record_ids)) == 60
    store = ward.services.contributions.store
    row = ward.services.contributions.contribution(c["ref"])
    with ward.db.reading() as conn:
        chunk_object, added_object = conn.execute(
            select(contributions_table.c.chunk_object, contributions_table.c.added_object).where(
                contributions_table.c.id == row["id"]
            )
        ).one()
    assert chunk_object == store.put(recordstore.table_to_parquet(table))
    assert added_object == store.put(
        recordstore.table_to_parquet(recordstore.ids_table(table.column(0), imported.rows))
    )


def test_a_chunk_encoded_while_its_ids_are_hashed_is_the_chunk_of_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the ids hashed in many batches on threads and the chunk cut into many row groups, each row
    group encoded as soon as its ids are known, the import stores the bytes of the whole table encoded
    at once, and every record is found where the index says."""
    monkeypatch.setattr(records, "_BATCH_BYTES", 1_500)  # a dozen batches of a few rows
    monkeypatch.setattr(stored_tables, "ROW_GROUP_ROWS", 7)
    ward, path = _ward(tmp_path)
    label, specs = wine_schema_specs()
    imported = read_table(path, Schema.parse(label, specs))
    assert len(records._batches(records._RowEncoding(Schema.parse(label, specs), imported.content).sizes())) > 4
    c = ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    with ward.db.reading() as conn:
        chunk_object = conn.execute(
            select(contributions_table.c.chunk_object).where(contributions_table.c.number == c["number"])
        ).scalar_one()
    data = ward.services.contributions.store.get(chunk_object)
    assert data == recordstore.table_to_parquet(imported.table)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 9
    assert ward.verify().ok


def test_ids_that_fail_to_hash_while_the_chunk_is_encoded_store_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of ids that fails to hash while the chunk's row groups are being encoded fails the
    submission with that error: the chunk is given up, no object is stored, and the file is taken
    again."""
    monkeypatch.setattr(records, "_BATCH_BYTES", 1_500)
    monkeypatch.setattr(stored_tables, "ROW_GROUP_ROWS", 7)
    ward, path = _ward(tmp_path)
    store = ward.services.contributions.store
    before = set(store.iter_digests())
    fail_hashing_batch(monkeypatch, 5)
    with pytest.raises(RuntimeError, match="nulls"):
        ward.contribute("wine", path, source="https://archive.example/a", gate=False)
    assert ward.contributions("wine") == []
    assert set(store.iter_digests()) == before
    monkeypatch.undo()
    _taken_again(ward, path)
