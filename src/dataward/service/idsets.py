"""Record-id lists of content-addressed objects, parsed once per process and searched in place.

``trace`` asks, of every contribution's id list and every version's manifest, whether it holds one
record. Parsing each Parquet object on every call made a trace cost one object read per contribution
and version. Objects are immutable (their name is their content hash), so a parsed list can be kept
for the life of the process and a lookup is a binary search over a NumPy array. The cache is bounded
(``DATAWARD_IDSET_CACHE_IDS``, in record ids; 8 million by default, about 0.6 GB): the least recently
used lists are dropped beyond it.

Asking the same question of every list costs one search per list, which grows with the number of
contributions and versions. :func:`holders` answers "which of these lists hold this record" from one
sorted array of 8-byte id prefixes over every list it has been asked about (built once per process
from the parsed lists, extended as new lists appear), then confirms each candidate on the whole id:
a lookup costs a binary search whatever the number of lists.

Only lookups for lineage go through here; reads that serve data (export, load, verify) still read
and check the objects themselves. ``trace`` asks the catalog's holder index first
(``dataward.service.holders``) and comes here only for the lists that index does not name (a ward
made before it, until ``dataward reindex``) and for a holder's row.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataward.domain.idarrays import integers
from dataward.domain.schema import RECORD_ID
from dataward.service.recordstore import parquet_to_table
from dataward.store import ObjectStore

_ID_WIDTH = 64
_DEFAULT_BUDGET = 8_000_000


def _budget() -> int:
    try:
        return max(0, int(os.environ.get("DATAWARD_IDSET_CACHE_IDS", _DEFAULT_BUDGET)))
    except ValueError:
        return _DEFAULT_BUDGET


@dataclass(frozen=True)
class IdSet:
    """One id-list object: its ids sorted (``S64``), where each sorted id was in the list, and the
    list's ``row`` column (the line or row in the submitted file) when it has one."""

    sorted_ids: np.ndarray
    order: np.ndarray
    rows: np.ndarray | None

    def __len__(self) -> int:
        return len(self.sorted_ids)

    def position(self, record_id: str) -> int | None:
        """Where ``record_id`` is in the list (None: absent)."""
        key = record_id.encode("ascii", "replace")
        i = int(np.searchsorted(self.sorted_ids, key))
        if i < len(self.sorted_ids) and self.sorted_ids[i] == key:
            return int(self.order[i])
        return None

    def __contains__(self, record_id: object) -> bool:
        return isinstance(record_id, str) and self.position(record_id) is not None

    def row(self, record_id: str) -> int | None:
        """The file row of ``record_id`` (its 1-based position when the list has no rows)."""
        at = self.position(record_id)
        if at is None:
            return None
        return int(self.rows[at]) if self.rows is not None else at + 1

    def members(self, candidates: Iterable[str]) -> set[str]:
        """Those of ``candidates`` in the list, in one vectorized search."""
        wanted = list(dict.fromkeys(candidates))
        hit = self.hits(id_keys(wanted))
        return {c for c, h in zip(wanted, hit.tolist(), strict=True) if h}

    def hits(self, keys: np.ndarray) -> np.ndarray:
        """For each of ``keys`` (from :func:`id_keys`), whether the list holds it."""
        if not len(keys) or not len(self.sorted_ids):
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self.sorted_ids, keys), len(self.sorted_ids) - 1)
        return self.sorted_ids[at] == keys

    def ids(self) -> list[str]:
        """The ids in list order."""
        out = np.empty_like(self.sorted_ids)
        out[self.order] = self.sorted_ids
        return [i.decode("ascii") for i in out.tolist()]


def id_keys(ids: Iterable[str]) -> np.ndarray:
    """Record ids as the fixed-width keys :meth:`IdSet.hits` searches for."""
    return np.array([i.encode("ascii", "replace") for i in ids], dtype=f"S{_ID_WIDTH}")


def _as_fixed(column: pa.ChunkedArray) -> np.ndarray:
    """The id column as a fixed-width byte array, without a Python object per id when it can."""
    array = pc.cast(column, pa.string()).combine_chunks()
    if array.null_count == 0 and len(array):
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
        if np.all(np.diff(offsets) == _ID_WIDTH):
            data = array.buffers()[2]
            return np.frombuffer(data, dtype=f"S{_ID_WIDTH}", count=len(array), offset=int(offsets[0])).copy()
    return np.array([s.encode("utf-8") for s in array.to_pylist()], dtype=f"S{_ID_WIDTH}")


def _parse(data: bytes) -> IdSet:
    table = parquet_to_table(data)
    ids = _as_fixed(table.column(RECORD_ID))
    order = np.argsort(ids, kind="stable")
    rows = integers(table.column("row")) if "row" in table.column_names else None
    return IdSet(sorted_ids=ids[order], order=order, rows=rows)


_EMPTY = IdSet(np.empty(0, dtype=f"S{_ID_WIDTH}"), np.empty(0, dtype=np.int64), None)
_cache: OrderedDict[str, IdSet] = OrderedDict()
_held = 0
_lock = threading.Lock()


def id_set(store: ObjectStore, digest: str | None) -> IdSet:
    """The parsed id list of object ``digest`` (empty for none), from the cache when it is there."""
    global _held
    if digest is None:
        return _EMPTY
    with _lock:
        found = _cache.get(digest)
        if found is not None:
            _cache.move_to_end(digest)
            return found
    parsed = _parse(store.get(digest))
    budget = _budget()
    with _lock:
        if digest not in _cache and len(parsed) <= budget:
            _cache[digest] = parsed
            _held += len(parsed)
            while _held > budget and _cache:
                _, dropped = _cache.popitem(last=False)
                _held -= len(dropped)
    return parsed


_NIBBLE = np.full(256, 0, dtype=np.uint64)
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint64)


def prefix_keys(fixed: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each hex id (an ``S64`` array, as :func:`id_keys` makes) as a uint64."""
    if not len(fixed):
        return np.zeros(0, dtype=np.uint64)
    text = np.frombuffer(np.ascontiguousarray(fixed).tobytes(), dtype=np.uint8).reshape(len(fixed), -1)[:, :16]
    nibbles = _NIBBLE[text]
    out = np.zeros(len(fixed), dtype=np.uint64)
    for i in range(16):
        out = (out << np.uint64(4)) | nibbles[:, i]
    return out


@dataclass(frozen=True)
class _Segment:
    """The 8-byte prefixes of the ids of several lists, sorted, with the list each came from."""

    digests: tuple[str, ...]
    keys: np.ndarray
    owners: np.ndarray

    @classmethod
    def of(cls, digests: Sequence[str], sets: Sequence[IdSet]) -> _Segment:
        keys = [prefix_keys(s.sorted_ids) for s in sets]
        owners = [np.full(len(k), i, dtype=np.int32) for i, k in enumerate(keys)]
        flat = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
        order = np.argsort(flat, kind="stable")
        return cls(tuple(digests), flat[order], (np.concatenate(owners) if owners else np.zeros(0, np.int32))[order])

    def candidates(self, key: np.uint64) -> list[str]:
        left = int(np.searchsorted(self.keys, key, side="left"))
        right = int(np.searchsorted(self.keys, key, side="right"))
        return [self.digests[i] for i in self.owners[left:right].tolist()]


def _merge(segments: Sequence[_Segment]) -> _Segment:
    """One segment holding what ``segments`` hold, so a lookup stays a handful of binary searches."""
    digests: list[str] = []
    owners = []
    for seg in segments:
        owners.append(seg.owners + len(digests))
        digests.extend(seg.digests)
    keys = np.concatenate([seg.keys for seg in segments])
    order = np.argsort(keys, kind="stable")
    return _Segment(tuple(digests), keys[order], np.concatenate(owners)[order])


_segments: list[_Segment] = []
_indexed: set[str] = set()
_MAX_SEGMENTS = 8


def holders(store: ObjectStore, digests: Sequence[str | None], record_id: str) -> list[int]:
    """The positions in ``digests`` (id-list objects; None for none) of the lists holding
    ``record_id``, in order: the same answer as asking each list, in one search."""
    global _segments
    wanted = {d for d in digests if d is not None}
    if not wanted or not _RECORD_HEX(record_id):
        return []
    with _lock:
        missing = sorted(wanted - _indexed)
    if missing:
        segment = _Segment.of(missing, [id_set(store, d) for d in missing])
        with _lock:
            # Another thread may have indexed some of them meanwhile: a list in two segments is
            # harmless (candidates are a set).
            _segments.append(segment)
            _indexed.update(missing)
            if len(_segments) > _MAX_SEGMENTS:
                _segments = [_merge(_segments)]
    key = prefix_keys(id_keys([record_id]))[0]
    with _lock:
        segments = list(_segments)
    found: set[str] = set()
    for seg in segments:
        found.update(d for d in seg.candidates(key) if d in wanted)
    # Prefixes can collide: each candidate is confirmed on the whole id.
    holding = {d for d in found if record_id in id_set(store, d)}
    return [i for i, d in enumerate(digests) if d in holding]


def ids_starting(store: ObjectStore, digests: Iterable[str | None], prefix: str) -> list[str]:
    """The distinct ids held by the id lists ``digests`` (None for none) that start with ``prefix``
    (lowercase hex), sorted: two binary searches per list, each list parsed once per process."""
    low = prefix.encode("ascii")
    high = low + b"g"  # sorts after every id starting with the prefix: "g" follows each hex digit
    found: set[str] = set()
    for digest in dict.fromkeys(d for d in digests if d is not None):
        ids = id_set(store, digest).sorted_ids
        start, end = np.searchsorted(ids, np.array([low, high], dtype=ids.dtype))
        found.update(i.decode("ascii") for i in ids[start:end].tolist())
    return sorted(found)


def _RECORD_HEX(record_id: str) -> bool:
    return len(record_id) == _ID_WIDTH and all(ch in "0123456789abcdef" for ch in record_id)


def clear() -> None:
    """Forget every parsed list and the index over them (benchmarks measure a cold process with it)."""
    global _held, _segments
    with _lock:
        _cache.clear()
        _held = 0
        _segments = []
        _indexed.clear()


__all__ = ["IdSet", "clear", "holders", "id_keys", "id_set", "prefix_keys"]
