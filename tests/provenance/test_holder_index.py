"""The holder index (which contributions and versions hold a record, kept in the catalog for ``trace``):
it gives what reading every id list gives, a trace from a record reads only the lists of the records'
own contributions, wards made before it still trace correctly and are indexed by ``reindex``, and an
index edited behind the ward's back is reported by ``verify``."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, insert, inspect, select, update
from typer.testing import CliRunner

from dataward.catalog import holder_index
from dataward.catalog.database import MIGRATIONS
from dataward.catalog.tables import contributions, holder_blocks, holder_lists, holder_segments, versions
from dataward.cli.app import app
from dataward.domain.schema import Schema
from dataward.service import derived, holders, idsets
from dataward.service.holders import held_by_any
from dataward.service.recordstore import locate_records, manifest_ids, read_ids
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


@pytest.fixture(autouse=True)
def _cold() -> None:
    idsets.clear()
    derived.clear()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite ward built once for the module; each test works on its own copy."""
    folder = tmp_path_factory.mktemp("holders")
    _ward(folder).db.dispose()
    return folder / "ward"


def _copy(built: Path, tmp_path: Path) -> Ward:
    shutil.copytree(built, tmp_path / "ward")
    return Ward.open(tmp_path / "ward")


BATCHES = [(0, 40), (30, 70), (70, 90)]


def _ward(tmp_path: Path, catalog_url: str | None = None, batches: list[tuple[int, int]] = BATCHES) -> Ward:
    """Two contributions merged (v1, v2), a relabelling of two records of the first (a transformation
    with its lineage, not merged), a third contribution quarantined after merging (v3, then the rollback
    v4, which removes its records: a version that is a removal from its parent)."""
    ward, _ = Ward.init(tmp_path / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    for i, (a, b) in enumerate(batches):
        info = ward.contribute("wine", write_csv(tmp_path / f"{i}.csv", wine_rows(a, b)), source=f"s3://b/{i}.csv")
        merge_reviewed(ward, info["ref"])
        if i == 0:
            first = ward.read_version("wine", "v1")[1].to_pylist()[1:3]
            relabel = {r["record_id"]: "3" if str(r["cultivar"]) != "3" else "1" for r in first}
    ward.relabel("wine", relabel, reason="test: annotator pass", version="v1", gate=False)
    ward.quarantine_contribution(f"wine#{len(batches)}", reason="test: bad batch")
    return ward


def _truth(ward: Ward, record_id: str) -> tuple[list[str], list[str]]:
    """The contributions and versions holding a record, by reading every list."""
    with ward.db.reading() as conn:
        cs = conn.execute(select(contributions).order_by(contributions.c.created_at)).all()
        vs = conn.execute(select(versions).order_by(versions.c.created_at)).all()
    held_c = [f"wine#{c.number}" for c in cs if record_id in read_ids(ward.store, c.added_object)]
    held_v = [f"wine@v{v.number}" for v in vs if record_id in manifest_ids(ward.store, v.manifest_object)]
    return held_c, held_v


def _traced(ward: Ward, record_id: str) -> tuple[list[str], list[str]]:
    idsets.clear()
    out = ward.trace(record_id)
    return [c["ref"] for c in out["contributions"]], [v["ref"] for v in out["versions"]]


def _added(ward: Ward, number: int) -> str:
    with ward.db.reading() as conn:
        return conn.execute(select(contributions.c.added_object).where(contributions.c.number == number)).scalar_one()


def _samples(ward: Ward, batches: int = 3) -> list[str]:
    ids = [read_ids(ward.store, _added(ward, n)) for n in range(1, batches + 1)]
    # One record the relabelling made (found through its lineage).
    relabelled = ward.trace(ward.read_version("wine", "v1")[1].to_pylist()[1]["record_id"])["derived"][0]["record"]
    if batches == 2:
        # Only in #1; in #1 and in the quarantined #2 (the overlap); only in #2 (in v2, not in v3).
        return [ids[0][0], ids[0][35], ids[1][-1], relabelled]
    # Only in #1; in #1 and #2 (the overlap); only in #2; in the quarantined #3 (in v3, not in v4).
    return [ids[0][0], ids[0][35], ids[1][-1], ids[2][5], relabelled]


def test_trace_answers_from_the_index_and_reads_only_the_holders_lists(built: Path, tmp_path: Path) -> None:
    ward = _copy(built, tmp_path)
    with ward.db.reading() as conn:
        # Four contributions (the relabelling's too), four versions, one lineage.
        assert holder_index.stats(conn)["lists"] == 9
    for rid in _samples(ward):
        assert _traced(ward, rid) == _truth(ward, rid)
        # A cold trace parsed no list but those of the contributions that added the record (for its row).
        holding = {_added(ward, int(c["ref"].split("#")[1])) for c in ward.trace(rid)["contributions"]}
        idsets.clear()
        ward.trace(rid)
        assert set(idsets._cache) == holding
    quarantined = _samples(ward)[3]
    assert _traced(ward, quarantined)[1] == ["wine@v3"]  # the rollback v4 removed it
    # An id no list holds is found nowhere; a near miss sharing its first 8 bytes is not confused.
    near = _samples(ward)[0][:16] + "0" * 48
    with pytest.raises(Exception, match="no contribution ever added"):
        ward.trace(near)
    report = ward.verify()
    assert report.ok and report.checked["holder_entries"] > 0 and report.warnings == []


def test_a_contribution_is_indexed_from_the_ids_it_wrote_as_from_its_stored_list(tmp_path: Path) -> None:
    """The id list just written is indexed from the digests in hand, not read back: the entries are
    those the stored list gives (``verify`` rebuilds them from it), a file's repeated records once."""
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    rows = wine_rows(0, 30)
    info = ward.contribute("wine", write_csv(tmp_path / "a.csv", rows + rows[3:9]), source="s3://b/a.csv", gate=False)
    assert holders._written == {}  # taken by the index, not left behind
    with ward.db.reading() as conn:
        assert holder_index.stats(conn)["entries"] == 30
        checked, problems = holders.verify_index(conn, ward.store)
    assert (checked, problems) == (30, [])
    ids = read_ids(ward.store, _added(ward, info["number"]))
    assert len(ids) == 36 and _traced(ward, ids[4])[0] == ["wine#1"]


def test_a_record_filed_again_under_a_chunk_no_row_names_is_reported_by_verify(tmp_path: Path) -> None:
    """The record index files an id under a chunk id; a lookup takes the first chunk that files it. An id
    filed again, with its own row, under chunk id -1 (written with the catalog's foreign keys off, as any
    SQLite session has them) names no chunk at all: verify must say so, not compare it with the last
    chunk's name (numpy indexing from the end), which is the chunk the id really is in."""
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    rows = wine_rows(0, 60)
    ward.contribute("wine", write_csv(tmp_path / "a.csv", rows[:30]), source="s3://b/a.csv", gate=False)
    ward.contribute("wine", write_csv(tmp_path / "b.csv", rows[30:]), source="s3://b/b.csv", gate=False)
    rid = read_ids(ward.store, _added(ward, 2))[0]
    assert ward.verify().ok
    with ward.db.reading() as conn:
        (_, row) = locate_records(conn, [rid])[rid]
    ward.db.dispose()
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute(
        "INSERT INTO record_blocks (bits, prefix, chunk, ids, rows) VALUES (0, 0, -1, ?, ?)",
        (bytes.fromhex(rid), row.to_bytes(4, "little")),
    )
    db.close()
    report = Ward.open(ward.folder).verify()
    assert not report.ok
    assert ("records", "altered_row") in {(p.area, p.kind) for p in report.problems}


def test_segments_stay_few_and_every_entry_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    rng = np.random.default_rng(3)
    lists = [rng.integers(0, 256, size=(int(rng.integers(1, 300)), 32), dtype=np.uint8) for _ in range(60)]
    with ward.db.transaction() as conn:
        for i, ids in enumerate(lists):
            assert holder_index.add_list(conn, f"obj{i}", "", ids)
        assert not holder_index.add_list(conn, "obj0", "", lists[0])  # indexed once
        stats = holder_index.stats(conn)
        assert stats["entries"] == sum(len(x) for x in lists)
        # Size-tiered: fewer than FANOUT segments per size class.
        sizes = [n for (n,) in conn.execute(select(holder_segments.c.entries))]
        classes = [int(np.log(n) // np.log(holder_index.FANOUT)) for n in sizes]
        assert max(classes.count(c) for c in set(classes)) < holder_index.FANOUT
        names = {v: k[0] for k, v in holder_index.listed(conn).items()}
        for i in (0, 17, 59):
            for row in (0, len(lists[i]) - 1):
                found = {names[t >> 1] for t in holder_index.lookup(conn, lists[i][row].tobytes())}
                assert f"obj{i}" in found
        # Many at once (in statements of 64 ids) answer as one at a time: every id of three lists, ids
        # held by two lists, ids no list holds, a near miss sharing an id's first 8 bytes, an id twice.
        assert holder_index.add_list(conn, "again", "", lists[3][:5])
        monkeypatch.setattr(holder_index, "_MANY_BATCH", 64)
        near = lists[0][:1].copy()
        near[0, 8:] ^= 0xFF
        unknown = rng.integers(0, 256, size=(20, 32), dtype=np.uint8)
        asked = np.concatenate(
            [lists[0], lists[17], lists[3][:5], unknown, near, lists[59], lists[5][:1], lists[5][:1]]
        )
        many = holder_index.lookup_many(conn, asked)
        assert many == [holder_index.lookup(conn, row.tobytes()) for row in asked]
        assert all(len(tags) == 2 for tags in many[len(lists[0]) + len(lists[17]) :][:5])
        assert not any(many[-len(lists[59]) - 23 : -len(lists[59]) - 2])


def test_merges_past_a_writes_budget_wait_and_reindex_runs_them(tmp_path: Path) -> None:
    """A write merges segments only within its budget of entries; what is past it waits (every entry
    still found), and ``reindex`` runs every merge left."""
    ward, _ = Ward.init(tmp_path / "ward")
    rng = np.random.default_rng(5)
    lists = [rng.integers(0, 256, size=(100, 32), dtype=np.uint8) for _ in range(8)]

    def found_everywhere(conn: Any) -> bool:
        names = {v: k[0] for k, v in holder_index.listed(conn).items()}
        return all(
            f"obj{i}" in {names[t >> 1] for t in holder_index.lookup(conn, ids[row].tobytes())}
            for i, ids in enumerate(lists)
            for row in (0, 99)
        )

    with ward.db.transaction() as conn:
        for i, ids in enumerate(lists):
            assert holder_index.add_list(conn, f"obj{i}", "", ids, merge_budget=399)
        # Four 100-entry segments are due to merge (400 entries), past the budget: all eight are left.
        assert holder_index.stats(conn)["segments"] == 8
        assert found_everywhere(conn)
        assert holder_index.add_list(conn, "obj8", "", lists[0][:5], merge_budget=400) is True
        # The merge due (the eight 100-entry segments, 800 entries) is past a budget of 400 too: left.
        assert holder_index.stats(conn)["segments"] == 9
        assert holder_index.merges_due(conn) == 1
    assert any("dataward reindex" in w for w in ward.verify().warnings)
    info = ward.reindex()
    assert (info["merges"], info["segments"], info["entries"]) == (1, 2, 805)
    with ward.db.reading() as conn:
        assert found_everywhere(conn)
        assert holder_index.merges_due(conn) == 0


def _alembic(ward: Ward, action: str, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with ward.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def test_a_ward_made_before_the_index_traces_the_same_and_is_indexed_by_reindex(
    built: Path, tmp_path: Path, catalog_url: str | None
) -> None:
    # On PostgreSQL a smaller ward: two contributions merged, the second quarantined (v3 removes it).
    batches = 3 if catalog_url is None else 2
    ward = _copy(built, tmp_path) if catalog_url is None else _ward(tmp_path, catalog_url, BATCHES[:batches])
    samples = _samples(ward, batches)
    expected = {rid: _truth(ward, rid) for rid in samples}
    whole = {rid: ward.trace(rid) for rid in samples}
    with ward.db.reading() as conn:
        lists = holder_index.stats(conn)["lists"]
    # The schema of a ward from before the index: the step drops its tables, and upgrading makes them empty.
    _alembic(ward, "downgrade", "0008")
    with ward.db.reading() as conn:
        assert not {"holder_lists", "holder_blocks", "holder_segments"} & set(inspect(conn).get_table_names())
    old = Ward.open(ward.folder)
    with old.db.reading() as conn:
        assert holder_index.stats(conn)["lists"] == 0
    for rid in samples:
        assert _traced(old, rid) == expected[rid]  # every list read, as before the index
        assert old.trace(rid) == whole[rid]
    report = old.verify()
    assert report.ok and any("dataward reindex" in w for w in report.warnings)
    # The contributions and versions, the rollback, the relabelling's contribution and lineage.
    assert old.reindex()["lists_added"] == lists == 2 * batches + 3
    assert old.reindex()["lists_added"] == 0
    for rid in samples:
        assert _traced(old, rid) == expected[rid]
        assert old.trace(rid) == whole[rid]
    report = old.verify()
    assert report.ok and report.warnings == []
    with old.db.reading() as conn:  # many at once, on either catalog, as one at a time
        tags = holder_index.lookup_many(conn, np.array([np.frombuffer(bytes.fromhex(r), np.uint8) for r in samples]))
        assert all(tags) and tags == [holder_index.lookup(conn, bytes.fromhex(r)) for r in samples]


def _entry_block(conn, record_id: str):  # type: ignore[no-untyped-def]
    """The block holding a record's entries, and the index of its first entry in it."""
    digest = np.frombuffer(bytes.fromhex(record_id), np.uint8)
    for block in conn.execute(select(holder_blocks)).all():
        ids = np.frombuffer(bytes(block.ids), np.uint8).reshape(-1, 32)
        at = np.flatnonzero((ids == digest).all(axis=1))
        if len(at):
            return block, int(at[0])
    raise AssertionError("no entry")


def _where(block) -> dict:  # type: ignore[no-untyped-def]
    return {"bits": block.bits, "prefix": block.prefix, "segment": block.segment}


def _edit(ward: Ward, statement) -> None:  # type: ignore[no-untyped-def]
    with ward.db.engine.begin() as conn:
        conn.execute(statement)


def test_an_index_edited_behind_the_wards_back_is_reported_by_verify(built: Path, tmp_path: Path) -> None:
    ward = _copy(built, tmp_path)
    rid = _samples(ward)[0]
    c = holder_blocks.c

    # 1. The attacker drops a record's entry from its block: a trace would miss the holder; verify says so.
    with ward.db.reading() as conn:
        block, at = _entry_block(conn, rid)
    ids, tags = bytes(block.ids), bytes(block.tags)
    cut = {"ids": ids[: at * 32] + ids[at * 32 + 32 :], "tags": tags[: at * 4] + tags[at * 4 + 4 :]}
    _edit(ward, update(holder_blocks).where(*(c[k] == v for k, v in _where(block).items())).values(**cut))
    report = ward.verify()
    assert not report.ok
    assert {(p.area, p.kind) for p in report.problems} == {("holders", "missing_row")}

    # 2. ... or points the entry at another list (the tag names a list that does not hold the record).
    other = bytearray(tags)
    other[at * 4 : at * 4 + 4] = (int.from_bytes(tags[at * 4 : at * 4 + 4], "little") ^ 2).to_bytes(4, "little")
    _edit(
        ward,
        update(holder_blocks).where(*(c[k] == v for k, v in _where(block).items())).values(ids=ids, tags=bytes(other)),
    )
    kinds = {(p.area, p.kind) for p in ward.verify().problems}
    assert {("holders", "missing_row"), ("holders", "extra_row")} <= kinds

    # 3. ... or files it under another prefix, where no lookup would look.
    _edit(ward, update(holder_blocks).where(*(c[k] == v for k, v in _where(block).items())).values(ids=ids, tags=tags))
    assert ward.verify().ok
    with ward.db.reading() as conn:
        beside = conn.execute(
            select(holder_blocks).where(c.segment == block.segment, c.bits == block.bits, c.prefix == block.prefix ^ 1)
        ).first()
    entry = {"ids": ids[at * 32 : at * 32 + 32], "tags": tags[at * 4 : at * 4 + 4]}
    if beside is None:
        _edit(
            ward, insert(holder_blocks).values(bits=block.bits, prefix=block.prefix ^ 1, segment=block.segment, **entry)
        )
    else:
        _edit(
            ward,
            update(holder_blocks)
            .where(*(c[k] == v for k, v in _where(beside).items()))
            .values(ids=bytes(beside.ids) + entry["ids"], tags=bytes(beside.tags) + entry["tags"]),
        )
    _edit(ward, update(holder_blocks).where(*(c[k] == v for k, v in _where(block).items())).values(**cut))
    problems = ward.verify().problems
    assert any(p.area == "holders" and "another id prefix" in p.detail for p in problems)

    # 4. ... or removes the name of a list: its entries are then no list's (verify), and a trace reads
    # that list itself, so it still finds the holder.
    _edit(ward, update(holder_blocks).where(*(c[k] == v for k, v in _where(block).items())).values(ids=ids, tags=tags))
    if beside is None:
        _edit(ward, delete(holder_blocks).where(c.prefix == block.prefix ^ 1, c.segment == block.segment))
    else:
        _edit(
            ward,
            update(holder_blocks)
            .where(*(c[k] == v for k, v in _where(beside).items()))
            .values(ids=bytes(beside.ids), tags=bytes(beside.tags)),
        )
    assert ward.verify().ok
    truth = _truth(ward, rid)
    first = _added(ward, 1)
    _edit(ward, delete(holder_lists).where(holder_lists.c.object == first, holder_lists.c.base == ""))
    assert _traced(ward, rid) == truth
    # Which of some records a key's contributions added (a key's trace asks it): the list the index no
    # longer names is read, the others answered from the index; an id that is not hex is looked for.
    lists = [_added(ward, n) for n in (1, 2)]
    records = [read_ids(ward.store, lists[0])[0], read_ids(ward.store, lists[1])[-1], "f" * 64, "not-hex"]
    with ward.db.reading() as conn:
        assert held_by_any(conn, ward.store, lists, records).tolist() == [True, True, False, False]
        assert held_by_any(conn, ward.store, lists[1:], records).tolist() == [False, True, False, False]
    report = ward.verify()
    assert [(p.area, p.kind) for p in report.problems] == [("holders", "extra_row")]
    # The repair: the index rebuilt from the lists, as `dataward reindex --rebuild` does.
    result = CliRunner().invoke(app, ["--ward", str(ward.folder), "reindex", "--rebuild", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["lists_added"] == 9
    assert ward.verify().ok


def test_an_emptied_index_never_denies_a_records_origin(built: Path, tmp_path: Path) -> None:
    """A catalog writer deletes the index's blocks: a trace of a record the loader still serves must not
    answer that no contribution ever added it (not found, exit 3). The signed id lists are read before
    that answer, and an index that disagrees with them is refused (integrity_violation, exit 7); an id no
    list holds is still not found, and ``reindex --rebuild`` restores the trace."""
    from dataward.domain.errors import IntegrityViolation, NotFound

    ward = _copy(built, tmp_path)
    rid = _samples(ward)[0]
    near = rid[:16] + "0" * 48
    assert _traced(ward, rid) == _truth(ward, rid)
    _edit(ward, delete(holder_blocks))
    idsets.clear()
    with pytest.raises(IntegrityViolation, match="holder index names no contribution") as refused:
        ward.trace(rid)
    assert refused.value.exit_code == 7 and refused.value.details["row"].startswith("contributions c_")
    with pytest.raises(NotFound, match="no contribution ever added"):
        ward.trace(near)
    ward.reindex(rebuild=True)
    assert _traced(ward, rid) == _truth(ward, rid)
