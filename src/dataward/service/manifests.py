"""Version manifests: a version's record ids, sorted, each with the chunk and row that hold it.

A manifest is a content-addressed Parquet object whose digest the signed ledger records with the
version. Its columns:

* ``record_id``: the version's distinct ids as 32-byte digests, in ascending order (so checking what
  the version id commits to is one pass over the column, not a sort);
* ``chunk``: the digest of the chunk object holding each record (dictionary-encoded: a version holds
  few chunks), listed in the order they came into the dataset's versions;
* ``row``: the record's row in that chunk.

The locations make a manifest self-locating: a version is read chunk by chunk from its manifest alone,
without a lookup in the catalog's record index, and an edit of the catalog (an index entry, a chunk row)
cannot redirect it. Every record served is still re-hashed and checked against its id
(``recordstore.serve_located``). Manifests written before locations existed hold ``record_id`` only and
are read through the record index, as every read was then.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection

from dataward.catalog import record_index
from dataward.domain.errors import DatawardError, IntegrityViolation
from dataward.domain.idarrays import binary_to_ids, ids_to_binary, integers, same_ids, take_ids
from dataward.domain.schema import RECORD_ID, Schema
from dataward.service.recordstore import (
    chunk_digests,
    load_records,
    locate_stored,
    serve_located,
    stored_id_digests,
)
from dataward.store import ObjectStore
from dataward.store.tables import binary_id_array, read_parquet_bytes, table_to_parquet

CHUNK = "chunk"
ROW = "row"
_HINT = "run `dataward verify` to see what was altered"


@dataclass(frozen=True)
class VersionManifest:
    """A manifest as read: ``ids`` (``(n, 32)`` uint8 digests in the manifest's order) with ``valid``
    (false for a value that is not a record id), and for a self-locating manifest each record's
    position in ``chunks`` and row in that chunk (None for a manifest of ids only)."""

    digest: str
    ids: np.ndarray
    valid: np.ndarray
    chunks: tuple[str, ...] | None = None
    chunk_of: np.ndarray | None = None
    row_of: np.ndarray | None = None

    @property
    def located(self) -> bool:
        """Whether the manifest says where each record is stored."""
        return self.chunks is not None

    def slice(self, start: int, stop: int) -> VersionManifest:
        """The manifest's records ``start`` to ``stop`` (in its order), as a manifest of their own."""
        if not self.located:
            return VersionManifest(self.digest, self.ids[start:stop], self.valid[start:stop])
        assert self.chunk_of is not None and self.row_of is not None
        return VersionManifest(
            self.digest,
            self.ids[start:stop],
            self.valid[start:stop],
            self.chunks,
            self.chunk_of[start:stop],
            self.row_of[start:stop],
        )

    def take(self, index: np.ndarray) -> VersionManifest:
        """The manifest's records at ``index`` (positions in its order), as a manifest of their own."""
        if not self.located:
            return VersionManifest(self.digest, take_ids(self.ids, index), self.valid[index])
        assert self.chunk_of is not None and self.row_of is not None
        return VersionManifest(
            self.digest,
            take_ids(self.ids, index),
            self.valid[index],
            self.chunks,
            self.chunk_of[index],
            self.row_of[index],
        )

    def hex_ids(self) -> pa.Array:
        """The ids as hex strings, in the manifest's order."""
        return binary_to_ids(self.ids)


def write_manifest(
    conn: Connection,
    store: ObjectStore,
    members: np.ndarray,
    parent: VersionManifest | None = None,
    chunks: Sequence[str] = (),
    recorded: Callable[[], Collection[str]] = frozenset,
) -> str:
    """Store the manifest of a version holding ``members`` (sorted distinct digests, every one of them
    stored already: a merge's or a rollback's records) and return its digest.

    A record the self-locating manifest ``parent`` lists keeps its location from there (checked when
    the parent was written); the others are found in ``chunks`` (the merged contribution's own chunk:
    its id column is read, sequentially, instead of looking each id up), then in the record index. A
    location the index gives must be in a chunk the signed ledger recorded (``recorded()``) and hold
    that id at that row, or nothing is signed (``IntegrityViolation``): an index or chunk row edited
    behind the ward's back cannot seal a wrong or forged location into a version. Chunks are listed in
    the parent's order, then ``chunks``, then any other in the order the ward stored them."""
    n = len(members)
    chunk_of = np.full(n, -1, dtype=np.int64)
    row_of = np.full(n, -1, dtype=np.int64)
    listed: list[str] = []
    if parent is not None and parent.located and len(parent.ids):
        assert parent.chunks is not None and parent.chunk_of is not None and parent.row_of is not None
        at = record_index.match(parent.ids, members)
        kept = np.flatnonzero(at >= 0)
        chunk_of[kept] = parent.chunk_of[at[kept]]
        row_of[kept] = parent.row_of[at[kept]]
        listed = list(parent.chunks)
    for digest in chunks:
        fresh = np.flatnonzero(chunk_of < 0)
        if not len(fresh):
            break
        held = _chunk_ids(store, digest)
        at = record_index.match(held, take_ids(members, fresh))
        found = np.flatnonzero(at >= 0)
        if len(found):
            if digest not in listed:
                listed.append(digest)
            chunk_of[fresh[found]] = listed.index(digest)
            row_of[fresh[found]] = at[found]
    fresh = np.flatnonzero(chunk_of < 0)
    if len(fresh):
        chunk_ids, rows = record_index.locate(conn, take_ids(members, fresh))
        missing = np.flatnonzero(chunk_ids < 0)
        if len(missing):
            raise IntegrityViolation(
                f"{len(missing)} record(s) of the new version are not stored, "
                f"e.g. {bytes(members[fresh[missing[0]]]).hex()}",
                hint=_HINT,
            )
        catalog_ids = np.unique(chunk_ids).tolist()  # ascending: the order the ward stored the chunks in
        digests = chunk_digests(conn, catalog_ids)
        unknown = sorted(set(catalog_ids) - set(digests))
        if unknown:
            raise IntegrityViolation(
                f"the record index points into chunk #{unknown[0]}, which the catalog does not list", hint=_HINT
            )
        # The catalog's chunk rows are not signed: a chunk the index leads to must be one the signed
        # ledger recorded (``recorded``), or an edited row would seal a forged chunk into the version.
        known = recorded()
        forged = sorted(digests[c] for c in catalog_ids if digests[c] not in known and digests[c] not in listed)
        if forged:
            raise IntegrityViolation(
                f"the record index leads to chunk {forged[0]}, which no signed contribution stored: "
                "the catalog's chunk rows were altered",
                hint=_HINT,
            )
        position = {digest: i for i, digest in enumerate(listed)}
        for catalog_id in catalog_ids:
            position.setdefault(digests[catalog_id], len(position))
        listed = list(position)
        by_catalog_id = {c: position[digests[c]] for c in catalog_ids}
        chunk_of[fresh] = np.array([by_catalog_id[c] for c in chunk_ids.tolist()], dtype=np.int64)
        row_of[fresh] = rows
        _check_locations(store, listed, members, fresh, chunk_of, row_of)
    # Only chunks that still hold a record of the version stay listed (a removal can empty one).
    used = np.unique(chunk_of)
    renumber = np.full(len(listed), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    listed, chunk_of = [listed[u] for u in used.tolist()], renumber[chunk_of]
    positions = pa.array(chunk_of.astype(np.int32), pa.int32())
    chunk = pa.DictionaryArray.from_arrays(positions, pa.array(listed, pa.string()))
    table = pa.table({RECORD_ID: binary_id_array(members), CHUNK: chunk, ROW: pa.array(row_of, pa.int64())})
    return store.put(table_to_parquet(table))


def _check_locations(
    store: ObjectStore,
    listed: list[str],
    members: np.ndarray,
    which: np.ndarray,
    chunk_of: np.ndarray,
    row_of: np.ndarray,
    known_ids: dict[str, np.ndarray] | None = None,
) -> None:
    """Refuse (``IntegrityViolation``) unless row ``row_of[i]`` of chunk ``listed[chunk_of[i]]`` holds
    the id ``members[i]``, for each ``i`` in ``which``. Only the chunks' id columns are decoded (the
    store re-hashes each object it reads); the records' contents are checked when they are served."""
    for position in np.unique(chunk_of[which]).tolist():
        rows_here = which[chunk_of[which] == position]
        digest = listed[position]
        if known_ids is not None and digest in known_ids:
            stored = known_ids[digest]  # read for an earlier manifest of the same ``verify``
        else:
            stored = _chunk_ids(store, digest)
            if known_ids is not None:
                known_ids[digest] = stored
        wanted = row_of[rows_here]
        outside = np.flatnonzero((wanted < 0) | (wanted >= len(stored)))
        if len(outside):
            raise IntegrityViolation(
                f"the record index points at row {int(wanted[outside[0]])} of chunk {digest}, "
                f"which has {len(stored)} rows",
                hint=_HINT,
            )
        wrong = np.flatnonzero(~same_ids(take_ids(stored, wanted), take_ids(members, rows_here)))
        if len(wrong):
            i = int(rows_here[wrong[0]])
            raise IntegrityViolation(
                f"the record index places record {bytes(members[i]).hex()} at row {int(row_of[i])} of chunk "
                f"{digest}, which holds another record: the record index was altered",
                hint=_HINT,
            )


def _chunk_ids(store: ObjectStore, digest: str) -> np.ndarray:
    """The ids a chunk object stores, as ``(n, 32)`` uint8 digests (zero rows for values that are not
    ids, which match nothing)."""
    return stored_id_digests(store, digest)[0]


def read_manifest(store: ObjectStore, digest: str) -> VersionManifest:
    """The manifest object ``digest`` (re-hashed by the store on read). A self-locating manifest whose
    locations do not decode (nulls, a position outside its chunk list) is an ``IntegrityViolation``."""
    data = store.get(digest)
    try:
        table = read_parquet_bytes(data)
        ids, valid = ids_to_binary(table.column(RECORD_ID))
        if CHUNK not in table.column_names:
            return VersionManifest(digest, ids, valid)
        chunk = table.column(CHUNK).combine_chunks()
        row = table.column(ROW).combine_chunks() if ROW in table.column_names else None
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
    except (KeyError, ValueError, pa.ArrowException) as exc:
        raise IntegrityViolation(f"object {digest} is not a version manifest ({exc})", hint=_HINT) from None
    if row is None or chunk.null_count or row.null_count or chunk.dictionary.null_count:
        raise IntegrityViolation(f"manifest {digest} has records without a location", hint=_HINT)
    if not pa.types.is_integer(row.type) or not pa.types.is_string(chunk.dictionary.type):
        raise IntegrityViolation(f"manifest {digest} has locations of the wrong types", hint=_HINT)
    chunk_of = integers(chunk.indices).astype(np.int64)
    listed = tuple(chunk.dictionary.to_pylist())
    if len(chunk_of) and (chunk_of.min() < 0 or chunk_of.max() >= len(listed)):
        raise IntegrityViolation(f"manifest {digest} locates records in chunks it does not list", hint=_HINT)
    return VersionManifest(digest, ids, valid, listed, chunk_of, integers(row).astype(np.int64))


def location_problems(
    store: ObjectStore,
    manifest: VersionManifest,
    recorded: Collection[str],
    known_ids: dict[str, np.ndarray] | None = None,
) -> list[str]:
    """What is wrong with a self-locating manifest's locations (for ``verify``): chunks no signed
    contribution stored, rows outside their chunk, rows holding another record. A chunk that cannot be
    read is reported by the object checks and skipped here. ``known_ids`` keeps each chunk's ids read
    for the next manifest that lists it."""
    if not manifest.located:
        return []
    assert manifest.chunks is not None and manifest.chunk_of is not None and manifest.row_of is not None
    listed = list(manifest.chunks)
    problems = [
        f"locates records in chunk {c}, which no signed contribution stored" for c in listed if c not in recorded
    ]
    for position, digest in enumerate(listed):
        which = np.flatnonzero(manifest.chunk_of == position)
        if not len(which) or digest not in recorded:
            continue
        try:
            _check_locations(store, listed, manifest.ids, which, manifest.chunk_of, manifest.row_of, known_ids)
        except IntegrityViolation as exc:
            problems.append(exc.message.replace("the record index", "the manifest", 1))
        except DatawardError:
            continue
    return problems


def load_version(conn: Connection, store: ObjectStore, manifest: VersionManifest, schema: Schema) -> pa.Table:
    """The canonical table of a version's records, in its manifest's order (ascending id). A
    self-locating manifest is read chunk by chunk from its own locations; one of ids only, through the
    record index. Either way every record served is checked against its id."""
    if not manifest.located:
        return load_records(conn, store, manifest.hex_ids(), schema)
    assert manifest.chunks is not None and manifest.chunk_of is not None and manifest.row_of is not None
    return serve_located(
        store,
        manifest.ids,
        manifest.chunk_of,
        manifest.row_of,
        dict(enumerate(manifest.chunks)),
        schema,
        located_by=f"manifest {manifest.digest}",
    )


@dataclass(frozen=True)
class StoragePlan:
    """A version's records in the order they are stored: chunk by chunk, in row order within a chunk. Record
    ``i`` is ``ids[i]``, at row ``row_of[i]`` of chunk ``digests[chunk_of[i]]``; ``located_by`` names
    what gave the locations (the signed manifest, or the record index for a manifest of ids only)."""

    ids: np.ndarray
    chunk_of: np.ndarray
    row_of: np.ndarray
    digests: dict[int, str]
    located_by: str

    def __len__(self) -> int:
        return len(self.ids)

    def part(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Records ``start`` to ``stop``: their ids, chunks and rows (``recordstore.ChunkCursor.serve``'s
        arguments)."""
        return self.ids[start:stop], self.chunk_of[start:stop], self.row_of[start:stop]


def storage_plan(conn: Connection, manifest: VersionManifest) -> StoragePlan:
    """The version's records chunk by chunk (see ``StoragePlan``): a stream that follows it reads each
    chunk once, where the manifest's id order asks every chunk for a few records of every batch."""
    if manifest.located:
        assert manifest.chunks is not None and manifest.chunk_of is not None and manifest.row_of is not None
        chunk_of, row_of = manifest.chunk_of, manifest.row_of
        digests, located_by = dict(enumerate(manifest.chunks)), f"manifest {manifest.digest}"
        rank = chunk_of  # the signed manifest's own order of its chunks
    else:
        chunk_of, row_of, digests = locate_stored(conn, manifest.ids, manifest.valid)
        located_by = "the record index"
        # Chunks in the order of their digests, not of the catalog's numbers for them: every stream of
        # the version (a torch worker's, say) then sees one order, whatever the catalog's rows say.
        lookup = np.zeros(max(digests, default=0) + 1, dtype=np.int64)
        for position, index in enumerate(sorted(digests, key=digests.__getitem__)):
            lookup[index] = position
        rank = lookup[chunk_of]
    order = _storage_order(rank, row_of)
    return StoragePlan(take_ids(manifest.ids, order), chunk_of[order], row_of[order], digests, located_by)


def _storage_order(rank: np.ndarray, row_of: np.ndarray) -> np.ndarray:
    """The positions of a version's records chunk by chunk (ascending ``rank``), each chunk in its own
    row order: a batch of a chunk is then a run of its rows. What ``np.lexsort((row_of, rank))`` gives:
    the chunks grouped by a radix sort on their small ranks, and each one's rows placed by a scatter.
    Rows that cannot be placed so (two records at one row, or a row below 0: locations from an edited
    record index) are sorted instead, every record kept: serving them is then refused, naming the
    records, by the check of each record against its row."""
    if len(rank) == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = int(rank.min()), int(rank.max())
    if low == high:  # one chunk
        grouped, cuts = np.arange(len(rank), dtype=np.int64), np.zeros(0, dtype=np.int64)
    else:
        grouped = np.argsort(rank.astype(np.uint16) if high < 1 << 16 else rank, kind="stable")
        cuts = np.flatnonzero(np.diff(rank[grouped])) + 1
    parts = []
    for members in np.split(grouped, cuts):
        rows = row_of[members]
        placed = None
        if int(rows.min()) >= 0:
            slot = np.full(int(rows.max()) + 1, -1, dtype=np.int64)
            slot[rows] = members
            placed = slot[slot >= 0]
        if placed is None or len(placed) != len(members):
            placed = members[np.argsort(rows, kind="stable")]
        parts.append(placed)
    return np.concatenate(parts)


__all__ = [
    "CHUNK",
    "ROW",
    "StoragePlan",
    "VersionManifest",
    "load_version",
    "read_manifest",
    "storage_plan",
    "write_manifest",
]
