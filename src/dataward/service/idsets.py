"""Record-id lists of content-addressed objects, parsed once per process and searched in place.

``trace`` asks, of every contribution's id list and every version's manifest, whether it holds one
record. Parsing each Parquet object on every call made a trace cost one object read per contribution
and version. Objects are immutable (their name is their content hash), so a parsed list can be kept
for the life of the process and a lookup is a binary search over a NumPy array. The cache is bounded
(``DATAWARD_IDSET_CACHE_IDS``, in record ids; 8 million by default, about 0.6 GB): the least recently
used lists are dropped beyond it.

Only lookups for lineage go through here; reads that serve data (export, load, verify) still read
and check the objects themselves.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    rows = table.column("row").to_numpy() if "row" in table.column_names else None
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


def clear() -> None:
    """Forget every parsed list (benchmarks measure a cold process with it)."""
    global _held
    with _lock:
        _cache.clear()
        _held = 0


__all__ = ["IdSet", "clear", "id_keys", "id_set"]
