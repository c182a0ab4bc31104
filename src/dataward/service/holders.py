"""Which contributions, versions and transformations hold a record, from the catalog's holder index.

Writing: every contribution row inserted with an id list, every version row inserted with a manifest
and every transformation row inserted with a lineage object is indexed in the same transaction
(``index_changes``, called wherever events are appended); a version is indexed as the change from its
parent's manifest, a lineage by the records it names (outputs and parents). ``reindex`` indexes what
was recorded before the index existed (``dataward reindex``).

Reading: ``contributions_holding`` and ``versions_holding`` answer from two catalog statements (the
indexed lists, and one block per index segment) and read any list the index does not name from the
object store (``dataward.service.idsets``), so a list recorded before the index, or missing from it,
is still searched. ``verify_index`` rebuilds the index from the id lists and reports every difference.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, exists, select

from dataward.catalog import holder_index
from dataward.catalog.projection import RowChange
from dataward.catalog.tables import contributions, holder_lists, transformations, versions
from dataward.domain.digests import from_hex
from dataward.domain.errors import DatawardError
from dataward.domain.idarrays import ID_BYTES, ids_to_binary, member_of, sorted_distinct
from dataward.domain.schema import RECORD_ID
from dataward.service.idsets import holders, id_keys, id_set
from dataward.store import ObjectStore
from dataward.store.tables import read_parquet_bytes

_written: OrderedDict[str, holder_index.Cut] = OrderedDict()
"""Id-list objects this process has just written, with their distinct ids sorted and cut into index
blocks (``remember_list``), so that indexing them does not read and decode them again, nor cut them
under the write lock; the last few only, each used once."""
_WRITTEN_KEPT = 4
_written_lock = threading.Lock()


def remember_list(digest: str, keys: np.ndarray | holder_index.Cut) -> None:
    """Note that the id-list object ``digest`` was just written with the record ids ``keys``: its
    distinct ids, sorted, as ``(n, 32)`` uint8 (what ``_ids`` reads from it), or those ids cut into
    index blocks already (``holder_index.cut_blocks``, worked out while the import waits for its
    chunk), for ``index_changes`` to index it from them. Only the write path uses them:
    ``verify_index`` and ``reindex`` always read the stored lists."""
    cut = keys if isinstance(keys, holder_index.Cut) else holder_index.cut_blocks(keys)
    with _written_lock:
        _written[digest] = cut
        _written.move_to_end(digest)
        while len(_written) > _WRITTEN_KEPT:
            _written.popitem(last=False)


def _just_written(digest: str) -> holder_index.Cut | None:
    with _written_lock:
        return _written.pop(digest, None)


def _ids(store: ObjectStore, digest: str, kind: str = holder_index.IDS) -> np.ndarray:
    """The distinct record ids an object names, sorted, as 32-byte keys (``V32``): an id list's ids,
    or a lineage object's outputs and parents. Ids that are not hex are left out (no trace can ask
    for them)."""
    columns = [RECORD_ID] if kind == holder_index.IDS else [RECORD_ID, "parent_id"]
    table = read_parquet_bytes(store.get(digest), columns)
    parts = []
    for name in columns:
        binary, valid = ids_to_binary(table.column(name))
        parts.append(np.compress(valid, binary, axis=0))
    return sorted_distinct(np.concatenate(parts)).view(f"V{ID_BYTES}").ravel()


def _rows(keys: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(keys).view(np.uint8).reshape(-1, ID_BYTES)


def expected(
    store: ObjectStore,
    object_: str,
    base: str,
    kind: str = holder_index.IDS,
    parsed: dict[tuple[str, str], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(added, removed)`` binary ids of list ``object_`` as a change from ``base`` (whole for ``""``).
    ``parsed`` keeps the ids of the objects read, for a caller that asks of many lists (a manifest is
    also its child's base)."""
    parsed = {} if parsed is None else parsed

    def ids(digest: str, kind: str) -> np.ndarray:
        if (digest, kind) not in parsed:
            parsed[(digest, kind)] = _ids(store, digest, kind)
        return parsed[(digest, kind)]

    new = ids(object_, kind)
    if not base:
        return _rows(new), np.zeros((0, ID_BYTES), np.uint8)
    old_rows, new_rows = _rows(ids(base, holder_index.IDS)), _rows(new)
    # Both sorted and distinct: what ``np.setdiff1d`` gives, by 64-bit keys rather than a sort of 32-byte
    # values (a ten-million-record version's change from its parent took seconds that way).
    added = np.compress(~member_of(new_rows, old_rows), new_rows, axis=0)
    removed = np.compress(~member_of(old_rows, new_rows), old_rows, axis=0)
    return added, removed


def index_list(
    conn: Connection,
    store: ObjectStore,
    object_: str,
    base: str,
    kind: str = holder_index.IDS,
    *,
    written: holder_index.Cut | None = None,
) -> bool:
    """Index one list unless it is indexed already; True when it was added. ``written`` (a whole id
    list's distinct ids, sorted and cut into blocks, as ``remember_list`` keeps them) spares reading
    the object and cutting its blocks."""
    if holder_index.is_listed(conn, object_, base):
        return False
    if written is not None and not base and kind == holder_index.IDS:
        added, removed = written.binary, np.zeros((0, ID_BYTES), np.uint8)
        return holder_index.add_list(conn, object_, base, added, removed, kind=kind, cut=written)
    added, removed = expected(store, object_, base, kind)
    return holder_index.add_list(conn, object_, base, added, removed, kind=kind)


def _parent_manifest(conn: Connection, parent_id: str | None) -> str:
    if parent_id is None:
        return ""
    found = conn.execute(select(versions.c.manifest_object).where(versions.c.id == parent_id)).scalar()
    return found or ""


def index_changes(conn: Connection, store: ObjectStore, changes: Iterable[RowChange]) -> None:
    """Index the id lists of the contribution and version rows that ``changes`` insert (called in the
    transaction that applies them)."""
    for change in changes:
        if change.op != "insert":
            continue
        if change.table == "contributions" and change.values.get("added_object"):
            added = change.values["added_object"]
            index_list(conn, store, added, "", written=_just_written(added))
        elif change.table == "versions" and change.values.get("manifest_object"):
            base = _parent_manifest(conn, change.values.get("parent_id"))
            index_list(conn, store, change.values["manifest_object"], base)
        elif change.table == "transformations" and change.values.get("lineage_object"):
            index_list(conn, store, change.values["lineage_object"], "", holder_index.LINEAGE)


def reindex(conn: Connection, store: ObjectStore, *, rebuild: bool = False) -> dict[str, int]:
    """Index every contribution's additions and every version's manifest not indexed yet (wards made
    before the index), or, with ``rebuild``, the whole index again from the lists (after ``verify``
    found it altered); then run every merge of segments that writes left for later. Returns how many
    lists were added, how many merges ran, and the index's size."""
    if rebuild:
        holder_index.clear(conn)
    added = 0
    for row in conn.execute(select(contributions.c.added_object).order_by(contributions.c.created_at)).all():
        if row.added_object:
            added += index_list(conn, store, row.added_object, "")
    manifests = {r.id: r.manifest_object for r in conn.execute(select(versions.c.id, versions.c.manifest_object))}
    query = select(versions.c.manifest_object, versions.c.parent_id).order_by(versions.c.created_at)
    for row in conn.execute(query).all():
        base = manifests.get(row.parent_id, "") if row.parent_id else ""
        added += index_list(conn, store, row.manifest_object, base)
    for row in conn.execute(select(transformations.c.lineage_object).order_by(transformations.c.created_at)).all():
        if row.lineage_object:
            added += index_list(conn, store, row.lineage_object, "", holder_index.LINEAGE)
    # The merges that writes left for later (beyond holder_index.MERGE_BUDGET), all of them now.
    merged = holder_index.compact(conn)
    return {"lists_added": added, "merges": merged, **holder_index.stats(conn)}


def unindexed(conn: Connection) -> int:
    """How many contributions' and versions' id lists the index does not name."""
    names = holder_index.listed(conn)
    count = sum(
        1
        for r in conn.execute(select(contributions.c.added_object))
        if r.added_object and (r.added_object, "") not in names
    )
    manifests = {r.id: r.manifest_object for r in conn.execute(select(versions.c.id, versions.c.manifest_object))}
    for r in conn.execute(select(versions.c.manifest_object, versions.c.parent_id)):
        base = manifests.get(r.parent_id, "") if r.parent_id else ""
        count += (r.manifest_object, base) not in names
    for r in conn.execute(select(transformations.c.lineage_object)):
        count += bool(r.lineage_object) and (r.lineage_object, "") not in names
    return count


def names_of(conn: Connection, objects: Iterable[str]) -> dict[tuple[str, str], int]:
    """The indexed lists among ``objects``: ``(object, base) -> list id``, every base each is indexed
    under (one statement per 900 objects)."""
    wanted = sorted({o for o in objects if o})
    out: dict[tuple[str, str], int] = {}
    query = select(holder_lists.c.id, holder_lists.c.object, holder_lists.c.base)
    for start in range(0, len(wanted), 900):
        for r in conn.execute(query.where(holder_lists.c.object.in_(wanted[start : start + 900]))):
            out[(r.object, r.base)] = int(r.id)
    return out


def held_by_any(
    conn: Connection, store: ObjectStore, objects: Sequence[str | None], record_ids: Sequence[str]
) -> np.ndarray:
    """For each of ``record_ids``, whether any of the whole id lists ``objects`` (contributions' added
    ids; None for none) holds it: from the holder index in one batched lookup for the lists it names,
    reading from the store only the lists it does not name (and, for an id that is not hex, every list)."""
    found = np.zeros(len(record_ids), dtype=bool)
    wanted = {o for o in objects if o}
    if not len(record_ids) or not wanted:
        return found
    names = names_of(conn, wanted)
    indexed = {names[(o, "")] for o in wanted if (o, "") in names}
    unindexed = sorted(o for o in wanted if (o, "") not in names)
    keys = id_keys(record_ids)
    # Hex to bytes with numpy alone (``pa.array`` of a Python list imports pandas: half a second of a
    # one-shot process). ``id_keys`` pads a short id with zero bytes, which are not hex.
    binary, valid = from_hex(np.frombuffer(keys.tobytes(), np.uint8).reshape(len(keys), -1))
    valid &= np.array([len(r) == 2 * ID_BYTES for r in record_ids], dtype=bool)
    if indexed and valid.any():
        at = np.flatnonzero(valid)
        for i, tags in zip(at.tolist(), holder_index.lookup_many(conn, binary[at]), strict=True):
            found[i] = any(not t & holder_index.REMOVED and t >> 1 in indexed for t in tags)
    if not valid.all() and indexed:
        # No index entry can name an id that is not hex: those are looked for in the lists themselves.
        odd = ~valid
        for o in sorted(wanted - set(unindexed)):
            found[odd] |= id_set(store, o).hits(keys[odd])
    for o in unindexed:
        found |= id_set(store, o).hits(keys)
    return found


class Lookup:
    """One record's entries in the index (read once per trace step), answered against the names of the
    indexed lists that its :class:`Lookups` reads for the lists asked about."""

    def __init__(self, lookups: Lookups, record_id: str) -> None:
        self.lookups = lookups
        self.store = lookups.store
        self.record_id = record_id
        try:
            digest = bytes.fromhex(record_id)
        except ValueError:
            digest = b""
        tags = holder_index.lookup(lookups.conn, digest)
        self.added = {t >> 1 for t in tags if not t & holder_index.REMOVED}
        self.removed = {t >> 1 for t in tags if t & holder_index.REMOVED}

    def contributions(self, objects: Sequence[str | None]) -> list[int]:
        """Positions in ``objects`` (contributions' added-id lists) of the lists holding the record."""
        hit, unindexed = self._whole(objects)
        if unindexed:
            found = holders(self.store, [objects[i] for i in unindexed], self.record_id)
            hit.update(unindexed[j] for j in found)
        return sorted(hit)

    def lineages(self, objects: Sequence[str | None]) -> list[int]:
        """Positions in ``objects`` (transformations' lineage objects) of those that may name the record:
        those the index says name it, and those it does not index (the caller reads them)."""
        hit, unindexed = self._whole(objects)
        return sorted(hit | set(unindexed))

    def _whole(self, objects: Sequence[str | None]) -> tuple[set[int], list[int]]:
        lists = self.lookups.names(objects)
        hit: set[int] = set()
        unindexed: list[int] = []
        for i, obj in enumerate(objects):
            if obj is None:
                continue
            lid = lists.get((obj, ""))
            if lid is None:
                unindexed.append(i)
            elif lid in self.added:
                hit.add(i)
        return hit, unindexed

    def versions(self, rows: Sequence[Any]) -> list[int]:
        """Positions in ``rows`` (version rows: ``id``, ``manifest_object``, ``parent_id``) of the
        versions whose manifest holds the record."""
        by_id = {v.id: v for v in rows}
        lists = self.lookups.names(v.manifest_object for v in rows)

        def key(v: Any) -> tuple[str, str] | None:
            if v.parent_id is None:
                return (v.manifest_object, "")
            parent = by_id.get(v.parent_id)
            return None if parent is None else (v.manifest_object, parent.manifest_object)

        unindexed = [v for v in rows if key(v) is None or key(v) not in lists]
        read = holders(self.store, [v.manifest_object for v in unindexed], self.record_id)
        held: dict[str, bool] = {v.id: False for v in unindexed}
        held.update({unindexed[j].id: True for j in read})

        def holds(v: Any) -> bool:
            # Up the parent chain to a version whose own change settles it, then back down.
            chain = []
            while v.id not in held:
                lid = lists[key(v)]  # type: ignore[index]
                if lid in self.removed:
                    held[v.id] = False
                elif lid in self.added:
                    held[v.id] = True
                elif v.parent_id is None:
                    held[v.id] = False
                else:
                    chain.append(v)
                    v = by_id[v.parent_id]
            answer = held[v.id]
            for c in chain:
                held[c.id] = answer
            return answer

        return [i for i, v in enumerate(rows) if holds(v)]


class Lookups:
    """The :class:`Lookup` of each record a trace asks about, each made once, with the names of the
    indexed lists read only for the lists asked about (each once). A trace reads in one snapshot (a
    read transaction), so the names and the entries it reads agree."""

    def __init__(self, conn: Connection, store: ObjectStore) -> None:
        self.conn, self.store = conn, store
        self._names: dict[tuple[str, str], int] = {}
        self._asked: set[str] = set()
        self._found: dict[str, Lookup] = {}
        self._unindexed: dict[frozenset[str], list[Any]] = {}

    def names(self, objects: Iterable[str | None]) -> dict[tuple[str, str], int]:
        """The indexed lists known so far, after reading the names of those of ``objects`` not asked yet."""
        new = {o for o in objects if o} - self._asked
        if new:
            self._names.update(names_of(self.conn, new))
            self._asked |= new
        return self._names

    def of(self, record_id: str) -> Lookup:
        if record_id not in self._found:
            self._found[record_id] = Lookup(self, record_id)
        return self._found[record_id]

    def contributions_adding(self, record_id: str, dataset_ids: set[str]) -> list[str]:
        """Ids of the contributions (in ``dataset_ids``) whose added ids hold ``record_id``: those whose
        list the index says holds it, found from the catalog, and those whose list it does not name,
        read from the store. In no particular order."""
        key = frozenset(dataset_ids)
        if key not in self._unindexed:
            named = exists().where(holder_lists.c.object == contributions.c.added_object, holder_lists.c.base == "")
            self._unindexed[key] = self.conn.execute(
                select(contributions.c.id, contributions.c.added_object).where(
                    contributions.c.dataset_id.in_(dataset_ids),
                    contributions.c.added_object.is_not(None),
                    ~named,
                )
            ).all()
        lookup = self.of(record_id)
        found: set[str] = set()
        lists = sorted(lookup.added)
        for start in range(0, len(lists), 900):
            adding = select(holder_lists.c.object).where(
                holder_lists.c.id.in_(lists[start : start + 900]), holder_lists.c.base == ""
            )
            found.update(
                r.id
                for r in self.conn.execute(
                    select(contributions.c.id).where(
                        contributions.c.dataset_id.in_(dataset_ids), contributions.c.added_object.in_(adding)
                    )
                )
            )
        unindexed = self._unindexed[key]
        if unindexed:
            at = holders(self.store, [c.added_object for c in unindexed], record_id)
            found.update(unindexed[i].id for i in at)
        return sorted(found)


def verify_index(conn: Connection, store: ObjectStore) -> tuple[int, list[tuple[str, str, str]]]:
    """Rebuild the holder index from the id lists it names and compare: returns the entries checked
    and ``(kind, where, detail)`` for every difference (an entry missing, added, altered or filed
    under the wrong prefix; a block whose ids and tags do not pair up)."""
    problems: list[tuple[str, str, str]] = []
    names = {int(r.id): (r.object, r.base) for r in conn.execute(select(holder_lists))}
    kinds = {int(r.id): r.kind for r in conn.execute(select(holder_lists.c.id, holder_lists.c.kind))}
    want: list[holder_index.Entries] = []
    # A manifest is read once: kept from its own list until the last list whose base it is.
    uses = Counter(base for _, base in names.values() if base)
    parsed: dict[tuple[str, str], np.ndarray] = {}
    for lid, (object_, base) in sorted(names.items()):
        try:
            added, removed = expected(store, object_, base, kinds[lid], parsed)
        except DatawardError:
            continue  # an object that cannot be read is reported by the object check
        finally:
            uses[base] -= 1
            parsed = {k: v for k, v in parsed.items() if k[1] == holder_index.IDS and uses[k[0]] > 0}
        want.append(holder_index.entries_of(lid, added, removed))
    have: list[holder_index.Entries] = []
    for bits, prefix, segment, entries in holder_index.iter_blocks(conn):
        where = f"holder index block {prefix}/{bits} of segment {segment}"
        if entries is None:
            problems.append(("altered_row", where, "its ids and tags do not pair up"))
            continue
        misplaced = holder_index.prefixes(entries.binary, bits) != prefix
        if misplaced.any():
            problems.append(("altered_row", where, f"{int(misplaced.sum())} entries filed under another id prefix"))
        have.append(entries)
    wanted, held = _keyed(holder_index.Entries.join(want)), _keyed(holder_index.Entries.join(have))
    missing = np.setdiff1d(wanted, held)
    extra = np.setdiff1d(held, wanted)
    for kind, rows_, detail in (("missing_row", missing, "entries missing"), ("extra_row", extra, "entries not in")):
        tags = np.frombuffer(rows_.tobytes(), np.uint8).reshape(-1, ID_BYTES + 4)[:, ID_BYTES:]
        lists, counts = np.unique(tags.copy().view(">u4").ravel() >> 1, return_counts=True)
        for lid, n in zip(lists.tolist(), counts.tolist(), strict=True):
            object_, base = names.get(lid, (f"#{lid} (no such list)", ""))
            what = f"id list {object_}" + (f" (change from {base})" if base else "")
            problems.append((kind, f"holder index of {what}", f"{n} {detail} the list"))
    return len(held), problems


def _keyed(entries: holder_index.Entries) -> np.ndarray:
    """Entries as sortable 36-byte keys (id, then big-endian tag), distinct."""
    rows = np.concatenate([entries.binary, entries.tags.astype(">u4").view(np.uint8).reshape(-1, 4)], axis=1)
    return np.unique(np.ascontiguousarray(rows).view(f"V{ID_BYTES + 4}").ravel())


__all__ = [
    "Lookup",
    "Lookups",
    "expected",
    "held_by_any",
    "index_changes",
    "index_list",
    "names_of",
    "reindex",
    "remember_list",
    "unindexed",
    "verify_index",
]
