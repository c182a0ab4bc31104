"""Near copies of quarantined records: new records that differ from a quarantined one only in their
text's spacing or Unicode form (``domain.normalized``) are held back like exact copies, at contribute
(``held_back``, ``held_back_by``) and at merge.

The normalized identities of a quarantined contribution's records are worked out from the records
themselves (read from the store and checked against their ids, as every read is), then kept: in this
process, and in a file under ``cache/near_copies/`` in the ward folder, keyed by the contribution's id
list, the schema's encoding and the normalization's name, and authenticated with a key derived from the
ward's signing key (a file written without it, or altered, is a miss). Quarantines are rare and
contributions frequent: a contribute reads the quarantined records once per ward, not each time. The
cache is never the only source of truth: a miss reads the records again. Nothing is worked out when the
ward holds no quarantine, or when the dataset has no text column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection

from dataward.catalog import record_index
from dataward.domain.errors import IntegrityViolation
from dataward.domain.hashing import blake3_hex
from dataward.domain.idarrays import member_of, sorted_distinct
from dataward.domain.normalized import NORMALIZATION, encoding_key, normalized_digest_array, text_columns
from dataward.domain.schema import Schema
from dataward.service import rows
from dataward.service.embedding_cache import WardEmbeddingCache
from dataward.service.recordstore import (
    chunk_digests,
    locate_stored,
    read_id_digests,
    records_in_chunks,
    serve_located,
)
from dataward.service.removal_list import listed_removals

FOLDER = Path("cache") / "near_copies"
"""Where the kept digests live, inside the ward folder."""
CACHE_CONTEXT = "dataward 2027-01-10 near-copy digests MAC v1"
"""The BLAKE3 key-derivation context of the cache's MAC key."""
MAX_ENTRIES = 256
"""Quarantined id lists kept at most (32 bytes a record: a million-record quarantine is 32 MB)."""

_memo: dict[str, np.ndarray] = {}
"""Cache key -> sorted distinct normalized digests, for this process (a key names the records' ids,
the schema's encoding and the normalization, so the answer never changes)."""


@dataclass(frozen=True)
class Quarantined:
    """A quarantined contribution whose near copies are held back: its id list, and the schema of its
    dataset (``None`` when the catalog does not know its dataset: the ward's list of removals names a
    contribution the restored catalog predates)."""

    added_object: str
    schema: Schema | None


def empty_digests() -> np.ndarray:
    """No digests: a ``(0, 32)`` uint8 array."""
    return np.zeros((0, 32), dtype=np.uint8)


def _cache_key(added_object: str, schema: Schema) -> str:
    return blake3_hex(repr((NORMALIZATION, added_object, encoding_key(schema))).encode())


def records_normalized(
    conn: Connection, ward: Any, binary: np.ndarray, schema: Schema
) -> tuple[np.ndarray, np.ndarray] | None:
    """The normalized identities of the records ``binary`` (``(n, 32)`` digests) the ward stores, each
    record read from the store and checked against its id (an altered one is an ``IntegrityViolation``),
    and which rows of ``binary`` they are: a record the record index does not know (a catalog restored
    from before it) has none. ``None`` for a schema without text input columns."""
    if not text_columns(schema):
        return None
    chunk_of, row_of = record_index.locate(conn, binary) if len(binary) else (np.zeros(0, np.int64),) * 2
    stored = chunk_of >= 0
    if not stored.any():
        return empty_digests(), stored
    if not stored.all():
        binary, chunk_of, row_of = binary[stored], chunk_of[stored], row_of[stored]
    digests = chunk_digests(conn, np.unique(chunk_of).tolist())
    if len(digests) != len(np.unique(chunk_of)):
        # The index points into a chunk the catalog does not list: refused, as every read (names it).
        chunk_of, row_of, digests = locate_stored(conn, binary, np.ones(len(binary), dtype=bool))
    table = serve_located(ward.store, binary, chunk_of, row_of, digests, schema)
    normalized = normalized_digest_array(schema, table)
    return (normalized if normalized is not None else empty_digests()), stored


def quarantined_normalized(
    conn: Connection, ward: Any, quarantined: Quarantined, schema: Schema, *, of_all: int = 0
) -> np.ndarray:
    """The sorted distinct normalized identities of a quarantined contribution's records, as a record of
    ``schema`` would have them: none when its dataset's encoding is another (no record of ``schema``
    can be a near copy of them), or when its records cannot be read and its dataset is unknown.

    ``of_all``: how many quarantined contributions the caller reads in turn. The file cache keeps at
    least that many: every contribute reads them all in the same order, and a cache that keeps fewer
    evicts, least recently used first, the very entry read next (each process read every one again)."""
    own = quarantined.schema if quarantined.schema is not None else schema
    if encoding_key(own) != encoding_key(schema) or not text_columns(schema):
        return empty_digests()
    key = _cache_key(quarantined.added_object, schema)
    found = _memo.get(key)
    if found is not None:
        return found
    cache = WardEmbeddingCache(
        ward.folder, ward.signer, folder=FOLDER, context=CACHE_CONTEXT, max_entries=max(MAX_ENTRIES, of_all)
    )
    kept = cache.get(key)
    if kept is not None and kept.dtype == np.uint8 and kept.ndim == 2 and kept.shape[1] == 32:
        _memo[key] = kept
        return kept
    ids = read_id_digests(ward.store, quarantined.added_object)
    try:
        found = records_normalized(conn, ward, ids, own)
        if found is not None and not found[1].all():
            found = _from_listed_chunks(conn, ward, quarantined.added_object, ids, own, *found)
    except IntegrityViolation as exc:
        if quarantined.schema is not None or exc.details.get("problem") in UNREADABLE:
            # A quarantined record altered, or a chunk the list names missing or altered: refused, as
            # any read of them (``verify`` says more). Never taken for "no near copies".
            raise
        return empty_digests()  # the dataset unknown: its records are of another encoding
    normalized, stored = found if found is not None else (empty_digests(), np.ones(len(ids), dtype=bool))
    distinct = sorted_distinct(normalized)
    # A record neither the catalog indexes nor a chunk on the list of removals holds (a line older than
    # format 4 names none) has no near copies found: its exact id still holds it back (``verify`` warns).
    # Such an answer is not kept (a later record of it is).
    if stored.all():
        cache.put(key, distinct)
        _memo[key] = distinct
    return distinct


UNREADABLE = frozenset({"missing", "corrupted", "not_in_chunks"})
"""The ``problem`` of an ``IntegrityViolation`` that says a quarantined record cannot be read (an object
missing or altered; records the chunks named for them do not hold), whatever the schema: refused even
when the quarantined contribution's dataset is unknown (where a record that does not hash to its id
under the contributing dataset's schema only says that its encoding is another)."""


def _from_listed_chunks(
    conn: Connection,
    ward: Any,
    added_object: str,
    ids: np.ndarray,
    schema: Schema,
    normalized: np.ndarray,
    stored: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``records_normalized``'s answer for the quarantined id list ``added_object`` (``ids``), completed
    with the records the record index does not know (a catalog restored from before their contribution),
    read from the chunks the ward's list of removals names for them, each verified by its digest and
    every record re-hashed against its id (``recordstore.records_in_chunks``). Unchanged when the list
    names no chunk of them (a line older than format 4)."""
    chunks = listed_removals(conn).chunks_of(added_object)
    if chunks is None:
        return normalized, stored
    unindexed = ~stored
    content, held = records_in_chunks(ward.store, chunks, ids[unindexed], schema)
    if not held.all():
        raise IntegrityViolation(
            f"{int((~held).sum())} record(s) of the quarantined id list {added_object} are neither indexed "
            f"by the catalog nor held by the chunks the ward's list of removals names for them ({', '.join(chunks)})",
            hint="run `dataward verify`; put back the object store's objects from a backup",
            digest=added_object,
            problem="not_in_chunks",
        )
    more = normalized_digest_array(schema, content)
    if more is not None and len(more):
        normalized = np.concatenate([normalized, more]) if len(normalized) else more
    return normalized, np.ones(len(ids), dtype=bool)


def schema_of(conn: Connection, dataset_id: str | None) -> Schema | None:
    """The schema of the dataset ``dataset_id`` (``None`` for none, or one the catalog lacks)."""
    if dataset_id is None:
        return None
    row = conn.execute(rows.datasets.select().where(rows.datasets.c.id == dataset_id)).first()
    return rows.dataset_schema(row) if row is not None else None


def near_copies(normalized: np.ndarray, quarantined: np.ndarray) -> np.ndarray:
    """Row by row, whether each normalized identity is among the quarantined ones."""
    if not len(quarantined) or not len(normalized):
        return np.zeros(len(normalized), dtype=bool)
    return member_of(normalized, quarantined)


__all__ = [
    "Quarantined",
    "empty_digests",
    "near_copies",
    "quarantined_normalized",
    "records_normalized",
    "schema_of",
]
