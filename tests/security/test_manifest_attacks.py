"""Attacks on self-locating manifests by someone who can write the catalog and the object store but
does not hold the signing key: forged chunks sealed into merges or rollbacks, objects that are not
chunks or manifests, the removal gate's base version, adversarial digests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import text

from dataward.domain.errors import DatawardError, InputError, IntegrityViolation
from dataward.service import recordstore
from dataward.service.manifests import load_version, read_manifest
from dataward.service.ward import Ward
from dataward.store.tables import parquet_to_table, table_to_parquet
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.security.test_guarded_reads import sql, where
from tests.store.test_manifests import SCHEMA, _manifest
from tests.store.test_manifests import ward as ward


def _removed_in_v2(ward: Ward) -> list[str]:
    v1 = set(_manifest(ward, 1).hex_ids().to_pylist())
    v2 = set(_manifest(ward, 2).hex_ids().to_pylist())
    return sorted(v1 - v2)


def _forge_chunk(ward: Ward, digest: str, row: int, *, alter: bool) -> str:
    """A copy of chunk ``digest`` (same ids), with row ``row``'s label altered (``alter``) or only
    re-encoded with an extra column (content intact)."""
    table = parquet_to_table(ward.store.get(digest))
    if alter:
        labels = table.column("cultivar").to_pylist()
        labels[row] = "2" if labels[row] != "2" else "0"
        table = table.set_column(table.column_names.index("cultivar"), "cultivar", pa.array(labels, pa.string()))
    else:
        table = table.append_column("x", pa.array([0] * table.num_rows))
    return ward.store.put(table_to_parquet(table))


@pytest.mark.parametrize("alter", [True, False], ids=["label changed", "re-encoded"])
def test_a_forged_chunk_row_cannot_be_sealed_into_a_merge(ward: Ward, tmp_path: Path, alter: bool) -> None:
    """Records brought back after a removal are located through the record index and the catalog's
    chunk row, neither of them signed. The row's digest swapped for a forged chunk with the same ids
    (a label changed, or the same content re-encoded): the merge refuses to seal a chunk no signed
    contribution stored, records nothing, and a merge after the catalog is put back goes through."""
    back = _removed_in_v2(ward)
    third = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(0, 60)), source="c", gate=False)
    ward.run_gate(third["ref"])
    genuine, row = where(ward, back[0])
    forged = _forge_chunk(ward, genuine, row, alter=alter)
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, genuine)
    with pytest.raises(IntegrityViolation, match=f"chunk {forged}, which no signed contribution stored"):
        merge_reviewed(ward, third["ref"])
    assert [v["number"] for v in ward.versions("wine")] == [1, 2]
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", genuine, forged)
    merge_reviewed(ward, third["ref"])
    v3 = _manifest(ward, 3)
    assert v3.chunks is not None and forged not in v3.chunks and genuine in v3.chunks
    assert ward.verify().ok


@pytest.mark.parametrize("bogus", ["not parquet", "no record_id", "ids as list"])
def test_chunk_row_pointed_at_a_bogus_object_during_a_merge(ward: Ward, tmp_path: Path, bogus: str) -> None:
    """The merge's index-located records are checked by reading the catalog chunk's id column
    (manifests._chunk_ids): an object that is not a chunk must be an IntegrityViolation, not a crash."""
    back = _removed_in_v2(ward)
    third = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(0, 60)), source="c", gate=False)
    ward.run_gate(third["ref"])
    genuine, _ = where(ward, back[0])
    if bogus == "not parquet":
        data = b"hello, not a parquet file"
    elif bogus == "no record_id":
        data = table_to_parquet(pa.table({"x": pa.array([1, 2, 3])}))
    else:
        import io

        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.table({"record_id": pa.array([[1], [2]], pa.list_(pa.int64()))}), buf)
        data = buf.getvalue()
    forged = ward.store.put(data)
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, genuine)
    with pytest.raises(IntegrityViolation):
        merge_reviewed(ward, third["ref"])


@pytest.mark.parametrize("bogus", ["not parquet", "no record_id"])
def test_chunk_row_pointed_at_a_bogus_object_on_an_index_read(ward: Ward, bogus: str) -> None:
    """Reads through the record index (a contribution's records): an integrity error, not a crash."""
    ids = _manifest(ward, 2).hex_ids().to_pylist()
    genuine, _ = where(ward, ids[0])
    data = b"junk" if bogus == "not parquet" else table_to_parquet(pa.table({"x": pa.array([1])}))
    forged = ward.store.put(data)
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, genuine)
    with ward.db.reading() as conn, pytest.raises(IntegrityViolation):
        recordstore.load_records(conn, ward.store, ids[:5], SCHEMA)


def _crafted(ward: Ward, kind: str) -> bytes:
    import io

    import pyarrow.parquet as pq

    good = _manifest(ward, 2)
    assert good.chunks is not None and good.chunk_of is not None and good.row_of is not None
    ids = pa.array([bytes(r) for r in good.ids], pa.binary(32))
    chunk = pa.DictionaryArray.from_arrays(pa.array(good.chunk_of.astype(np.int32)), pa.array(good.chunks))
    row = pa.array(good.row_of, pa.int64())
    if kind == "not parquet":
        return b"junk junk junk"
    if kind == "chunk as int64":
        chunk = pa.array(good.chunk_of, pa.int64())
    elif kind == "chunk dictionary of binary":
        chunk = pa.DictionaryArray.from_arrays(
            pa.array(good.chunk_of.astype(np.int32)), pa.array([c.encode() for c in good.chunks], pa.binary())
        )
    elif kind == "row as string":
        row = pa.array([str(int(r)) for r in good.row_of], pa.string())
    elif kind == "row as float":
        row = pa.array(good.row_of.astype(np.float64) + 0.25, pa.float64())
    elif kind == "row as uint64 huge":
        row = pa.array(good.row_of.astype(np.uint64) + np.uint64(2**64 - 2**32), pa.uint64())
    elif kind == "chunk path traversal":
        chunk = pa.DictionaryArray.from_arrays(
            pa.array(good.chunk_of.astype(np.int32)), pa.array(["../../catalog.sqlite"] * len(good.chunks))
        )
    elif kind == "no record_id":
        buf = io.BytesIO()
        pq.write_table(pa.table({"chunk": chunk, "row": row}), buf)
        return buf.getvalue()
    elif kind == "duplicate chunk column":
        table = pa.Table.from_arrays([ids, chunk, chunk, row], names=["record_id", "chunk", "chunk", "row"])
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()
    buf = io.BytesIO()
    pq.write_table(pa.table({"record_id": ids, "chunk": chunk, "row": row}), buf)
    return buf.getvalue()


KINDS = [
    "not parquet",
    "chunk as int64",
    "chunk dictionary of binary",
    "row as string",
    "row as float",
    "row as uint64 huge",
    "chunk path traversal",
    "no record_id",
    "duplicate chunk column",
]


@pytest.mark.parametrize("kind", KINDS)
def test_crafted_manifest_read_raises_only_integrity_errors(ward: Ward, kind: str) -> None:
    """Whatever an object named as a manifest holds, reading it is an integrity error or a read of the
    genuine records (every record is still checked against its id), never a crash."""
    digest = ward.store.put(_crafted(ward, kind))
    try:
        with ward.db.reading() as conn:
            table = load_version(conn, ward.store, read_manifest(ward.store, digest), SCHEMA)
    except DatawardError as exc:
        assert isinstance(exc, IntegrityViolation | InputError), exc
        return
    assert table.equals(ward.dataset("wine").version("v2").to_arrow())


@pytest.mark.parametrize("kind", ["not parquet", "chunk as int64", "row as string", "other version"])
def test_the_removal_gate_reads_its_base_version_as_every_read_does(ward: Ward, tmp_path: Path, kind: str) -> None:
    """The removal gate's base version row pointed at another manifest (or at junk) is refused: its row
    is checked against the signed ledger before its manifest is read."""
    v2_ids = _manifest(ward, 2).hex_ids().to_pylist()
    c = ward.contribute("wine", None, source="rm", removes=v2_ids[:5], gate=False)
    with ward.db.reading() as conn:
        v1 = conn.execute(text("SELECT manifest_object FROM versions WHERE number = 1")).scalar()
    digest = v1 if kind == "other version" else ward.store.put(_crafted(ward, kind))
    sql(ward, "UPDATE versions SET manifest_object = ? WHERE number = 2", digest)
    with pytest.raises(IntegrityViolation, match="manifest_object"):
        ward.run_gate(c["ref"])


def test_idarrays_on_adversarial_digests() -> None:
    from dataward.domain.idarrays import member_of, sorted_distinct, strictly_ascending

    rng = np.random.default_rng(11)
    for _trial in range(200):
        n = int(rng.integers(2, 3000))
        pool = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        # many ids sharing 8-byte prefixes, and prefixes differing only in low bits (row-bit truncation)
        k = int(rng.integers(1, 6))
        pool[:, :7] = rng.integers(0, 256, (k, 7), dtype=np.uint8)[rng.integers(0, k, n)]
        pool[:, 7] = rng.integers(0, 4, n)
        pool[:, 8:31] = 0
        pool[:, 31] = rng.integers(0, 3, n)
        query = pool[rng.integers(0, n, int(rng.integers(0, 50)))]
        ref = pool[rng.integers(0, n, int(rng.integers(1, 200)))]
        held = {bytes(r) for r in ref}
        assert member_of(query, ref).tolist() == [bytes(q) in held for q in query]
        distinct = sorted_distinct(pool)
        assert [bytes(r) for r in distinct] == sorted({bytes(r) for r in pool})
        assert strictly_ascending(distinct)
        if len(distinct) > 1:
            swapped = distinct.copy()
            i = int(rng.integers(0, len(distinct) - 1))
            swapped[[i, i + 1]] = swapped[[i + 1, i]]
            assert not strictly_ascending(swapped)
            dup = distinct.copy()
            dup[i + 1] = dup[i]
            assert not strictly_ascending(dup)


def test_contribution_chunk_object_pointed_at_another_chunk_is_refused(ward: Ward, tmp_path: Path) -> None:
    third = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(120, 130)), source="c", gate=False)
    ward.run_gate(third["ref"])
    with ward.db.reading() as conn:
        first_chunk = conn.execute(text("SELECT digest FROM chunks ORDER BY id LIMIT 1")).scalar()
    sql(ward, "UPDATE contributions SET chunk_object = ? WHERE number = 3", first_chunk)
    with pytest.raises(IntegrityViolation):
        merge_reviewed(ward, third["ref"])


def test_a_version_emptied_by_removals_reads_and_verifies(ward: Ward) -> None:
    ids = _manifest(ward, 2).hex_ids().to_pylist()
    merge_reviewed(ward, ward.contribute("wine", None, source="all", removes=ids)["ref"])
    v3 = _manifest(ward, 3)
    assert len(v3.ids) == 0
    assert Ward.open(ward.folder).dataset("wine").version("v3").to_arrow().num_rows == 0
    assert ward.verify().ok


def test_a_forged_chunk_row_cannot_be_sealed_into_a_rollback(ward: Ward) -> None:
    """Quarantining wine#2 restores the 30 records it removed: not in v2's manifest, they are located
    through the record index and the catalog's chunk row. A forged chunk there refuses the rollback."""
    back = _removed_in_v2(ward)
    genuine, row = where(ward, back[0])
    forged = _forge_chunk(ward, genuine, row, alter=True)
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, genuine)
    with pytest.raises(IntegrityViolation, match="which no signed contribution stored"):
        ward.quarantine_contribution("wine#2", reason="leak")
    assert [v["number"] for v in ward.versions("wine")] == [1, 2]


def _var_binary_chunk(ward: Ward, digest: str) -> str:
    """The chunk re-written with its ids as variable-length binary (same 32 bytes each)."""
    import io

    import pyarrow.parquet as pq

    from dataward.store.tables import read_parquet_bytes

    table = read_parquet_bytes(ward.store.get(digest))
    col = table.column("record_id").combine_chunks()
    if col.type != pa.binary(32):
        col = pa.array([bytes.fromhex(v) for v in col.to_pylist()], pa.binary(32))
    table = table.set_column(0, "record_id", col.cast(pa.binary()))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return ward.store.put(buf.getvalue())


@pytest.mark.parametrize("path", ["merge", "index read"])
def test_chunk_ids_as_variable_binary(ward: Ward, tmp_path: Path, path: str) -> None:
    back = _removed_in_v2(ward)
    if path == "merge":
        third = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(0, 60)), source="c", gate=False)
        ward.run_gate(third["ref"])
    genuine, _ = where(ward, back[0])
    forged = _var_binary_chunk(ward, genuine)
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, genuine)
    with pytest.raises(IntegrityViolation):
        if path == "merge":
            merge_reviewed(ward, third["ref"])
        else:
            with ward.db.reading() as conn:
                recordstore.load_records(conn, ward.store, back[:3], SCHEMA)


def test_a_chunk_forged_within_the_hashs_blind_spot_is_not_sealed(tmp_path: Path) -> None:
    """A forged chunk differing from the genuine one only where the record hash cannot tell (a missing
    value stored as NaN, which the record encoding folds together) is not sealed into a version either."""
    import pyarrow.compute as pc

    from tests.helpers import NO_APPROVALS_POLICY

    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("wine", SCHEMA)
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    rows = wine_rows(0, 20)
    feature = next(k for k in rows[0] if k != "cultivar")
    rows[0] = {**rows[0], feature: ""}
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", rows), source="a")["ref"])
    v1 = ward.dataset("wine").version("v1").to_arrow()
    victim = next(
        r for r, v in zip(v1.column("record_id").to_pylist(), v1.column(feature).to_pylist(), strict=True) if v is None
    )
    merge_reviewed(ward, ward.contribute("wine", None, source="rm", removes=[victim])["ref"])
    third = ward.contribute("wine", write_csv(tmp_path / "c.csv", rows[:3]), source="c", gate=False)
    ward.run_gate(third["ref"])
    genuine, _row = where(ward, victim)
    table = parquet_to_table(ward.store.get(genuine))
    i = table.column_names.index(feature)
    table = table.set_column(i, feature, pc.fill_null(table.column(feature), float("nan")))
    forged = ward.store.put(table_to_parquet(table))
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, genuine)
    with pytest.raises(IntegrityViolation, match="which no signed contribution stored"):
        merge_reviewed(ward, third["ref"])
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", genuine, forged)
    merge_reviewed(ward, third["ref"])
    served = Ward.open(ward.folder).dataset("wine").version("v3").to_arrow()
    assert not served.column(feature)[served.column("record_id").to_pylist().index(victim)].is_valid


def test_record_index_match_on_shared_prefixes() -> None:
    from dataward.catalog.record_index import match

    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        pool = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        pool[:, :8] = rng.integers(0, 3, (n, 1), dtype=np.uint8)
        pool[:, 8:31] = 0
        pool[:, 31] = rng.integers(0, 4, n)
        stored = pool[rng.integers(0, n, int(rng.integers(1, 100)))]
        query = pool[rng.integers(0, n, int(rng.integers(1, 100)))]
        first: dict[bytes, int] = {}
        for j, s in enumerate(stored):
            first.setdefault(bytes(s), j)
        assert match(stored, query).tolist() == [first.get(bytes(q), -1) for q in query]
