"""Self-locating version manifests: each record's chunk and row, read without the record index.

A version's manifest lists its ids sorted, each with the chunk and row that hold it. Reads follow the
manifest alone, every record still re-hashed against its id; manifests of ids only (written before
locations existed) still read, through the index; locations that do not decode are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import text

from dataward.catalog import record_index
from dataward.domain.errors import IntegrityViolation
from dataward.domain.idarrays import binary_to_ids, ids_to_binary, member_of, sorted_distinct, strictly_ascending
from dataward.domain.schema import Schema
from dataward.service import manifests, recordstore
from dataward.service.manifests import load_version, read_manifest
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv

SCHEMA = Schema.parse(*wine_schema_specs())


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    """wine@v1 (records 0-60, one chunk) and wine@v2: 30 of them removed, 60-120 added (a second chunk)
    with 10 repeats of v1's records, which are stored once."""
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("wine", SCHEMA)
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    first = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a")
    merge_reviewed(ward, first["ref"])
    v1 = ward.dataset("wine").version("v1").to_arrow().column("record_id").to_pylist()
    rows = wine_rows(0, 60)[:10] + wine_rows(60, 120)
    second = ward.contribute("wine", write_csv(tmp_path / "b.csv", rows), source="b", removes=v1[:30])
    merge_reviewed(ward, second["ref"])
    return ward


def _manifest(ward: Ward, number: int) -> manifests.VersionManifest:
    with ward.db.reading() as conn:
        digest = conn.execute(text("SELECT manifest_object FROM versions WHERE number = :n"), {"n": number}).scalar()
    return read_manifest(ward.store, digest)


def test_a_manifest_locates_every_record_where_the_index_does(ward: Ward) -> None:
    manifest = _manifest(ward, 2)
    assert manifest.located and strictly_ascending(manifest.ids)
    ids = manifest.hex_ids().to_pylist()
    assert len(ids) == len(set(ids)) >= 90
    with ward.db.reading() as conn:
        where = recordstore.locate_records(conn, ids)
        chunks = [r[0] for r in conn.execute(text("SELECT digest FROM chunks ORDER BY id"))]
    assert manifest.chunks == tuple(chunks)  # both chunks, in the order the ward stored them
    assert manifest.chunk_of is not None and manifest.row_of is not None
    located = [(manifest.chunks[c], int(r)) for c, r in zip(manifest.chunk_of, manifest.row_of, strict=True)]
    assert located == [where[i] for i in ids]


def test_a_merge_keeps_the_parent_minus_removals_plus_additions(ward: Ward) -> None:
    v1 = set(_manifest(ward, 1).hex_ids().to_pylist())
    v2 = set(_manifest(ward, 2).hex_ids().to_pylist())
    removed = set(ward.dataset("wine").version("v1").to_arrow().column("record_id").to_pylist()[:30])
    with ward.db.reading() as conn:
        added_object = conn.execute(text("SELECT added_object FROM contributions WHERE number = 2")).scalar()
    added = set(recordstore.read_ids(ward.store, added_object))
    assert removed <= v1 and len(v2 - v1) == 60
    assert v2 == (v1 - removed) | added
    assert ward.verify().ok


def test_a_version_is_read_without_the_record_index(ward: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    before = ward.dataset("wine").version("v2").to_arrow()

    def no_index(*_: object, **__: object) -> None:
        raise AssertionError("the record index was consulted")

    monkeypatch.setattr(record_index, "locate", no_index)
    again = Ward.open(ward.folder).dataset("wine").version("v2").to_arrow()
    assert again.equals(before)
    assert again.column("record_id").to_pylist() == sorted(again.column("record_id").to_pylist())


def test_a_manifest_of_ids_only_still_reads_through_the_index(ward: Ward) -> None:
    located = _manifest(ward, 2)
    ids_only = ward.store.put(recordstore.table_to_parquet(recordstore.ids_table(located.hex_ids())))
    legacy = read_manifest(ward.store, ids_only)
    assert not legacy.located
    with ward.db.reading() as conn:
        whole = load_version(conn, ward.store, located, SCHEMA)
        assert load_version(conn, ward.store, legacy, SCHEMA).equals(whole)
        for manifest in (legacy, located):
            batches = [
                load_version(conn, ward.store, manifest.slice(s, s + 7), SCHEMA) for s in range(0, len(whole), 7)
            ]
            assert pa.concat_tables(batches).equals(whole)


@pytest.mark.parametrize(
    "damage",
    ["another chunk", "null row", "no row column", "row outside the chunk", "row of another record"],
)
def test_locations_that_do_not_hold_up_are_refused(ward: Ward, damage: str) -> None:
    good = _manifest(ward, 2)
    assert good.chunks is not None and good.chunk_of is not None and good.row_of is not None
    chunk_of, rows = good.chunk_of.astype(np.int32), good.row_of.copy()
    columns: dict[str, pa.Array] = {}
    if damage == "another chunk":
        chunk_of[3] = 1 - chunk_of[3]
        rows[3] = 0
    elif damage == "row outside the chunk":
        rows[3] = 10_000
    elif damage == "row of another record":
        rows[3] = 1 if rows[3] == 0 else 0
    chunk = pa.DictionaryArray.from_arrays(pa.array(chunk_of), pa.array(good.chunks))
    columns = {"record_id": recordstore.ids_table(good.hex_ids()).column("record_id").combine_chunks(), "chunk": chunk}
    if damage == "null row":
        columns["row"] = pa.array([None if i == 3 else int(r) for i, r in enumerate(rows)], pa.int64())
    elif damage != "no row column":
        columns["row"] = pa.array(rows, pa.int64())
    digest = ward.store.put(recordstore.table_to_parquet(pa.table(columns)))
    victim = good.hex_ids()[3].as_py()
    expected = {
        "another chunk": f"record {victim} is located at row 0 of chunk .* by manifest {digest}",
        "null row": "without a location",
        "no row column": "without a location",
        "row outside the chunk": "row 10000 of chunk",
        "row of another record": f"record {victim} is located at row .* by manifest {digest}",
    }[damage]
    with ward.db.reading() as conn, pytest.raises(IntegrityViolation, match=expected):
        load_version(conn, ward.store, read_manifest(ward.store, digest), SCHEMA)


def test_member_of_and_strictly_ascending_agree_with_python_sets() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        pool = rng.integers(0, 256, (8, 32), dtype=np.uint8)
        pool[:4, :31] = pool[0, :31]  # ids differing in the last byte only
        pool[4:7, :8] = pool[7, :8]  # ids sharing their first 8 bytes
        query = pool[rng.integers(0, 8, rng.integers(0, 25))]
        reference = pool[rng.integers(0, 8, rng.integers(0, 25))]
        held = {bytes(r) for r in reference}
        assert member_of(query, reference).tolist() == [bytes(q) in held for q in query]
        distinct = sorted_distinct(query)
        assert strictly_ascending(distinct)
        if len(distinct) > 1:
            assert not strictly_ascending(distinct[::-1])
            assert not strictly_ascending(np.concatenate((distinct, distinct[-1:])))


def test_the_records_hash_of_digests_is_that_of_the_sorted_hex() -> None:
    rng = np.random.default_rng(8)
    binary = sorted_distinct(rng.integers(0, 256, (500, 32), dtype=np.uint8))
    hex_ids = binary_to_ids(binary).to_pylist()
    assert hex_ids == sorted(hex_ids)
    assert recordstore.digests_hash(binary) == recordstore.records_hash(hex_ids)
    assert recordstore.digests_hash(binary[:0]) == recordstore.records_hash([])
    summary = recordstore.summarize_digests(binary, np.ones(len(binary), dtype=bool))
    shuffled = binary[rng.permutation(len(binary))]
    assert summary == recordstore.summarize_digests(shuffled, np.ones(len(binary), dtype=bool))
    assert ids_to_binary(pa.array(hex_ids))[0].tobytes() == binary.tobytes()


def test_a_merge_takes_its_parents_locations_and_finds_the_new_records_in_their_chunk(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    original = record_index.locate

    def counting(conn: object, binary: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        asked.append(len(binary))
        return original(conn, binary, valid)  # type: ignore[arg-type]

    monkeypatch.setattr(record_index, "locate", counting)
    third = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(120, 125)), source="c", gate=False)
    asked.clear()
    ward.run_gate(third["ref"])
    asked.clear()
    merge_reviewed(ward, third["ref"])
    # v2's records keep the locations v2's manifest gives; the new ones are read off their chunk.
    assert asked == []
    v3 = _manifest(ward, 3)
    assert len(v3.ids) == len(_manifest(ward, 2).ids) + 5 and v3.chunks is not None and len(v3.chunks) == 3
    assert Ward.open(ward.folder).dataset("wine").version("v3").to_arrow().num_rows == len(v3.ids)


def test_a_merge_refuses_to_seal_a_location_the_edited_index_gives(ward: Ward, tmp_path: Path) -> None:
    """Records brought back after a removal are stored already, in an older chunk: their rows come from
    the record index. An entry moved to another row is caught against the chunk before the version is
    signed, and nothing is recorded."""
    third = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(0, 60)), source="c", gate=False)
    ward.run_gate(third["ref"])
    with ward.db.transaction() as conn:
        # v1's chunk is one block, in id order; v2 removed v1's 30 smallest ids, the first entry among them.
        oldest = conn.execute(text("SELECT min(id) FROM chunks")).scalar()
        blob = conn.execute(text("SELECT rows FROM record_blocks WHERE chunk = :c"), {"c": oldest}).scalar()
        moved = bytes([blob[0] ^ 1]) + bytes(blob[1:])  # the first entry's row r becomes r ^ 1
        conn.execute(text("UPDATE record_blocks SET rows = :r WHERE chunk = :c"), {"r": moved, "c": oldest})
    events = len(ward.ledger(limit=10_000))
    with pytest.raises(IntegrityViolation, match=r"the record index places record .* which holds another record"):
        merge_reviewed(ward, third["ref"])
    assert len(ward.ledger(limit=10_000)) == events
    assert [v["number"] for v in ward.versions("wine")] == [1, 2]


def test_a_version_that_removes_a_whole_chunk_no_longer_lists_it(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("wine", SCHEMA)
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    for name, (start, stop) in {"a": (0, 20), "b": (20, 40)}.items():
        merge_reviewed(
            ward,
            ward.contribute("wine", write_csv(tmp_path / f"{name}.csv", wine_rows(start, stop)), source=name)["ref"],
        )
    first_chunk = _manifest(ward, 1).chunks
    gone = _manifest(ward, 1).hex_ids().to_pylist()
    merge_reviewed(ward, ward.contribute("wine", None, source="cleanup", removes=gone)["ref"])
    v3 = _manifest(ward, 3)
    assert first_chunk is not None and v3.chunks is not None
    assert len(v3.ids) == 20 and len(v3.chunks) == 1 and v3.chunks[0] not in first_chunk
    assert ward.dataset("wine").version("v3").to_arrow().num_rows == 20


def test_verify_checks_a_manifests_locations(ward: Ward) -> None:
    """``verify`` reads each self-locating manifest's locations against the chunks: a chunk no
    contribution stored, and a row holding another record, are reported; the ward's own are clean."""
    good = _manifest(ward, 2)
    assert good.chunks is not None and good.chunk_of is not None and good.row_of is not None
    recorded = set(good.chunks)
    assert manifests.location_problems(ward.store, good, recorded) == []
    assert manifests.location_problems(ward.store, good, recorded - {good.chunks[0]}) == [
        f"locates records in chunk {good.chunks[0]}, which no signed contribution stored"
    ]
    rows = good.row_of.copy()
    rows[0] = 1 if rows[0] == 0 else 0
    moved = manifests.VersionManifest(good.digest, good.ids, good.valid, good.chunks, good.chunk_of, rows)
    (problem,) = manifests.location_problems(ward.store, moved, recorded)
    assert "the manifest places record" in problem and "which holds another record" in problem
    assert ward.verify().ok
