"""The holder index: which id lists (contributions' additions, versions' manifests) hold a record.

``trace`` from a record asks every contribution and version whether it holds the record. Answering
from the id-list objects means reading and parsing every one of them in a fresh process. This index
answers from the catalog instead, reading a handful of small blocks whatever the ward's size:

* ``holder_lists`` names each indexed list: a contribution's added ids or a root version's manifest
  (``base`` empty: every id is an entry), or a version's manifest as a change from its parent's
  manifest (``base`` the parent's manifest: an entry per id added, an entry per id removed), so a
  version does not repeat its parent's ids.
* the entries, ``(32-byte id, tag)`` with ``tag = list id * 2 (+ 1 for a removal)``, are kept in
  size-tiered segments (``holder_segments``): each list's entries become a new segment, and whenever
  ``FANOUT`` segments share a size class they are merged into one. A ward of N entries has
  ``O(FANOUT * log N)`` segments, and every entry is rewritten ``O(log N)`` times over the ward's life.
* a segment is stored in blocks (``holder_blocks``) of about ``record_index.BLOCK_TARGET`` entries, one
  per id prefix, as the record index stores chunks: a lookup reads one block per segment and
  compares whole 32-byte ids.

The index is derived data: nothing here is in the ledger, ``verify`` rebuilds it from the id lists and
reports any difference, and a list the index does not name is read by ``trace`` itself (see
``dataward.service.holders``), so a list recorded before the index existed, or whose name was removed
from it, is never missed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, text

from dataward.catalog.record_index import (
    BLOCK_TARGET,
    MAX_BITS,
    _short_prefixes,
    bits_for,
    block_rows,
    insert_blocks,
    prefixes,
)
from dataward.catalog.tables import holder_blocks, holder_lists, holder_segments
from dataward.domain.idarrays import ID_BYTES, take_ids

FANOUT = 4
"""Segments of one size class merged at once (size class: ``floor(log_FANOUT(entries))``)."""
REMOVED = 1
"""Tag bit of an entry for an id a version removed from its parent's manifest."""
MERGE_BUDGET = 1 << 20
"""Entries a write transaction may merge (``add_list``): a merge that would take it past this waits for
a later write or for ``reindex``, so that no contribution's transaction rewrites millions of entries
(four 1,000,000-entry segments took about 4 s). Segments left unmerged are still read by every lookup
and checked by ``verify``; they cost a lookup one more block each."""


@dataclass(frozen=True)
class Entries:
    """Index entries: ``binary[i]`` (32-byte ids, ``(n, 32)`` uint8) with ``tags[i]`` (uint32)."""

    binary: np.ndarray
    tags: np.ndarray

    def __len__(self) -> int:
        return len(self.tags)

    @staticmethod
    def empty() -> Entries:
        return Entries(np.zeros((0, ID_BYTES), np.uint8), np.zeros(0, np.uint32))

    @staticmethod
    def join(parts: list[Entries]) -> Entries:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Entries.empty()
        return Entries(np.concatenate([p.binary for p in parts]), np.concatenate([p.tags for p in parts]))


def entries_of(list_id: int, added: np.ndarray, removed: np.ndarray | None = None) -> Entries:
    """The entries of list ``list_id``: its ``added`` ids (or every id of a full list), and the ids it
    ``removed`` from its base."""
    if removed is None or not len(removed):
        # A whole list (an import's ids): its ids as they are, not a copy.
        return Entries(added.reshape(-1, ID_BYTES), np.full(len(added), list_id * 2, np.uint32))
    tags = np.concatenate(
        [np.full(len(added), list_id * 2, np.uint32), np.full(len(removed), list_id * 2 + REMOVED, np.uint32)]
    )
    return Entries(np.concatenate([added, removed]).reshape(-1, ID_BYTES), tags)


IDS, LINEAGE = "ids", "lineage"
"""Kinds of list: an id-list object (its record ids), or a lineage object (the outputs and parents it names)."""


def listed(conn: Connection) -> dict[tuple[str, str], int]:
    """Every indexed list: ``(object, base) -> list id`` (``base`` is ``""`` for a full list)."""
    query = select(holder_lists.c.id, holder_lists.c.object, holder_lists.c.base)
    return {(r.object, r.base): int(r.id) for r in conn.execute(query)}


def is_listed(conn: Connection, object_: str, base: str) -> bool:
    """Whether list ``object_`` (as a change from ``base``, or whole for ``""``) is indexed."""
    found = conn.execute(
        select(holder_lists.c.id).where(holder_lists.c.object == object_, holder_lists.c.base == base)
    ).first()
    return found is not None


def add_list(
    conn: Connection,
    object_: str,
    base: str,
    added: np.ndarray,
    removed: np.ndarray | None = None,
    *,
    kind: str = IDS,
    merge_budget: int | None = MERGE_BUDGET,
    cut: Cut | None = None,
) -> bool:
    """Index one list (inside the caller's write transaction): ``added`` holds the ids the list adds
    to ``base`` (every id when ``base`` is ``""``), ``removed`` those it drops. Returns False when the
    list was indexed already (objects are content-addressed, so it is the same list). The merges this
    sets off are bounded by ``merge_budget`` entries (see ``compact``; None: every merge due).
    ``cut``: ``cut_blocks(added)``, worked out before the write transaction; used only for a list
    without removals, and only when it was cut from ``added`` itself (else the blocks are cut here)."""
    if is_listed(conn, object_, base):
        return False
    count = len(added) + (0 if removed is None else len(removed))
    made = conn.execute(insert(holder_lists).values(object=object_, base=base, kind=kind, entries=count))
    list_id = made.inserted_primary_key[0]
    entries = entries_of(int(list_id), added, removed)
    if len(entries):
        whole = removed is None or not len(removed)
        _write_segment(conn, entries, cut if whole and cut is not None and cut.binary is added else None)
        compact(conn, budget=merge_budget)
    return True


def _size_class(entries: int) -> int:
    return int(np.floor(np.log(max(entries, 1)) / np.log(FANOUT)))


@dataclass(frozen=True)
class Cut:
    """How a segment's entries are cut into blocks (``cut_blocks``): ``order`` puts them in prefix
    order (None: they are in it already), and block ``i`` holds the ordered entries
    ``starts[i]:stops[i]``, of prefix ``prefixes[i]`` at ``bits`` bits. ``binary``: the ids cut."""

    binary: np.ndarray
    bits: int
    order: np.ndarray | None
    prefixes: list[int]
    starts: list[int]
    stops: list[int]


def cut_blocks(binary: np.ndarray) -> Cut:
    """The blocks of a segment of the ids ``binary`` (``(n, 32)`` uint8): by prefix at ``bits_for(n)``
    bits, in the order given within one (a radix sort on 16-bit prefixes, the usual case). Ids
    already in prefix order (a whole list's ids come sorted) are not moved. It depends on the ids
    alone, not on the list or segment they go to: an import works it out beside its chunk."""
    bits = bits_for(len(binary))
    if not len(binary):
        return Cut(binary, bits, None, [], [], [])
    keys = _short_prefixes(binary, bits)
    order = None
    if len(keys) > 1 and (keys[1:] < keys[:-1]).any():
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], cuts))
    stops = np.concatenate((cuts, [len(keys)]))
    return Cut(binary, bits, order, keys[starts].tolist(), starts.tolist(), stops.tolist())


def _write_segment(conn: Connection, entries: Entries, cut: Cut | None = None) -> int:
    """Write ``entries`` as a new segment; ``cut``: ``cut_blocks(entries.binary)`` when known."""
    segment = int(conn.execute(insert(holder_segments).values(entries=len(entries))).inserted_primary_key[0])
    if cut is None or len(cut.binary) != len(entries):
        cut = cut_blocks(entries.binary)
    if cut.order is not None:
        binary, tags = take_ids(entries.binary, cut.order), entries.tags[cut.order]
    else:  # already by prefix: the stable sort would change nothing
        binary, tags = entries.binary, entries.tags
    if not cut.prefixes:
        return segment
    # Each block's ids and tags are slices of one contiguous copy, taken by the driver as they are.
    ids = memoryview(np.ascontiguousarray(binary)).cast("B")
    tag_bytes = memoryview(np.ascontiguousarray(tags, dtype="<u4")).cast("B")
    rows = block_rows(cut.bits, cut.prefixes, cut.starts, cut.stops, segment, ids, tag_bytes)
    insert_blocks(conn, holder_blocks, ("bits", "prefix", "segment", "ids", "tags"), rows)
    return segment


def compact(conn: Connection, *, budget: int | None = None) -> int:
    """Merge segments while ``FANOUT`` or more of them share a size class, the smallest class first;
    returns how many merges ran. With ``budget``, only while the entries merged in this call stay within
    it: a merge that would go past it is left for a later call (every merge is due again then)."""
    merges = 0
    spent = 0
    while True:
        classes: dict[int, list[int]] = defaultdict(list)
        sizes: dict[int, int] = {}
        for seg, n in conn.execute(select(holder_segments.c.id, holder_segments.c.entries)):
            classes[_size_class(int(n))].append(int(seg))
            sizes[int(seg)] = int(n)
        full = sorted(c for c, segs in classes.items() if len(segs) >= FANOUT)
        if not full:
            return merges
        merging = sorted(classes[full[0]])
        cost = sum(sizes[seg] for seg in merging)
        if budget is not None and spent + cost > budget:
            return merges
        spent += cost
        parts = [_segment_entries(conn, seg) for seg in merging]
        conn.execute(delete(holder_blocks).where(holder_blocks.c.segment.in_(merging)))
        conn.execute(delete(holder_segments).where(holder_segments.c.id.in_(merging)))
        _write_segment(conn, Entries.join(parts))
        merges += 1


def merges_due(conn: Connection) -> int:
    """How many size classes hold ``FANOUT`` or more segments: merges that writes left past their
    budget (``reindex`` runs them)."""
    classes: dict[int, int] = defaultdict(int)
    for (n,) in conn.execute(select(holder_segments.c.entries)):
        classes[_size_class(int(n))] += 1
    return sum(1 for count in classes.values() if count >= FANOUT)


def _segment_entries(conn: Connection, segment: int) -> Entries:
    blocks = conn.execute(
        select(holder_blocks.c.ids, holder_blocks.c.tags)
        .where(holder_blocks.c.segment == segment)
        .order_by(holder_blocks.c.prefix)
    ).all()
    return _decode([(bytes(ids), bytes(tags)) for ids, tags in blocks])


def _pairs_up(ids: bytes, tags: bytes) -> bool:
    return len(ids) % ID_BYTES == 0 and len(tags) % 4 == 0 and len(ids) // ID_BYTES == len(tags) // 4


def _decode(blocks: list[tuple[bytes, bytes]]) -> Entries:
    # A block whose ids and tags do not pair up (damaged or edited) is left out; ``verify`` reports it.
    whole = [b for b in blocks if _pairs_up(*b)]
    if not whole:
        return Entries.empty()
    binary = np.frombuffer(b"".join(b[0] for b in whole), np.uint8).reshape(-1, ID_BYTES)
    tags = np.frombuffer(b"".join(b[1] for b in whole), "<u4").astype(np.uint32)
    return Entries(binary, tags)


_LOOKUP = select(holder_blocks.c.ids, holder_blocks.c.tags).where(
    or_(
        *(
            and_(holder_blocks.c.bits == bits, holder_blocks.c.prefix == bindparam(f"p{bits}"))
            for bits in range(MAX_BITS + 1)
        )
    )
)
"""Every block that could hold an id: at each prefix width, the one prefix of that id (one statement,
so that a merge of segments committed meanwhile is seen whole or not at all)."""


def lookup(conn: Connection, digest: bytes) -> list[int]:
    """The tags of every entry for the record whose 32-byte id is ``digest``: one statement reading one
    block per segment, each candidate compared on the whole id."""
    if len(digest) != ID_BYTES:
        return []
    query = np.frombuffer(digest, np.uint8).reshape(1, ID_BYTES)
    params = {f"p{bits}": int(prefixes(query, bits)[0]) for bits in range(MAX_BITS + 1)}
    blocks = conn.execute(_LOOKUP, params).all()
    found = _decode([(bytes(ids), bytes(tags)) for ids, tags in blocks])
    same = (found.binary == query).all(axis=1)
    return sorted(set(found.tags[same].tolist()))


_WIDTHS = text(
    " UNION ALL ".join(
        f"SELECT {bits} AS bits WHERE EXISTS (SELECT 1 FROM {holder_blocks.name} WHERE bits = {bits})"
        for bits in range(MAX_BITS + 1)
    )
)
"""The prefix widths the blocks use (``lookup_many`` asks only those): one index probe per width, in a
statement written out once (composing it for SQLAlchemy cost a one-shot process 20 ms)."""

_MANY_BATCH = 4096
"""Ids asked per statement by ``lookup_many`` (at most this many prefixes per width, written into the
statement as integers): the blocks of a small segment, which many ids share, are read once per statement."""


def lookup_many(conn: Connection, binary: np.ndarray) -> list[list[int]]:
    """``lookup`` of many records at once: for each 32-byte id of ``binary`` (``(n, 32)`` uint8), the
    tags of every entry for it. One statement per ``_MANY_BATCH`` ids reads, at each prefix width
    the segments use, the blocks of those ids' prefixes (a block shared by several ids is read once);
    each candidate is compared on the whole id."""
    binary = np.ascontiguousarray(binary, dtype=np.uint8).reshape(-1, ID_BYTES)
    out: list[list[int]] = [[] for _ in range(len(binary))]
    if not len(binary):
        return out
    # The prefix widths any block uses (one index probe per width), so that only those are asked.
    widths = sorted(int(bits) for (bits,) in conn.execute(_WIDTHS))
    if not widths:
        return out
    for start in range(0, len(binary), _MANY_BATCH):
        part = binary[start : start + _MANY_BATCH]
        # Written out as integers (computed here, never taken from input): composing thousands of bound
        # parameters costs more than the read.
        where = " OR ".join(
            f"(bits = {bits} AND prefix IN ({', '.join(str(p) for p in sorted(set(prefixes(part, bits).tolist())))}))"
            for bits in widths
        )
        rows = conn.execute(text(f"SELECT ids, tags FROM {holder_blocks.name} WHERE {where}"))
        found = _decode([(bytes(ids), bytes(tags)) for ids, tags in rows])
        if not len(found):
            continue
        # Candidates by the ids' first 8 bytes (each entry searched among the queries' distinct keys),
        # each confirmed on the whole id against every query of that key.
        distinct, inverse = np.unique(_first8(part), return_inverse=True)
        keys = _first8(found.binary)
        at = np.minimum(np.searchsorted(distinct, keys), len(distinct) - 1)
        candidates = np.flatnonzero(distinct[at] == keys)
        if not len(candidates):
            continue
        asking: dict[int, list[int]] = {}
        for j, u in enumerate(inverse.ravel().tolist()):
            asking.setdefault(u, []).append(j)
        for e, u in zip(candidates.tolist(), at[candidates].tolist(), strict=True):
            for j in asking[u]:
                if found.binary[e].tobytes() == part[j].tobytes():
                    out[start + j].append(int(found.tags[e]))
    return [sorted(set(tags)) for tags in out]


def _first8(binary: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each 32-byte id as a big-endian integer (sorts as the ids do)."""
    return np.ascontiguousarray(binary[:, :8]).view(">u8").ravel().astype(np.uint64)


def iter_blocks(conn: Connection) -> list[tuple[int, int, int, Entries | None]]:
    """Every block as ``(bits, prefix, segment, entries)`` (``entries`` None when its ids and tags do
    not pair up), for verification."""
    c = holder_blocks.c
    out: list[tuple[int, int, int, Entries | None]] = []
    for bits, prefix, segment, ids, tags in conn.execute(
        select(c.bits, c.prefix, c.segment, c.ids, c.tags).order_by(c.segment, c.prefix)
    ):
        ids, tags = bytes(ids), bytes(tags)
        out.append((int(bits), int(prefix), int(segment), _decode([(ids, tags)]) if _pairs_up(ids, tags) else None))
    return out


def clear(conn: Connection) -> None:
    """Drop every entry and list name (before rebuilding the index from the lists)."""
    conn.execute(delete(holder_blocks))
    conn.execute(delete(holder_segments))
    conn.execute(delete(holder_lists))


def stats(conn: Connection) -> dict[str, int]:
    """How many lists, segments, blocks and entries the index holds."""
    return {
        "lists": int(conn.execute(select(func.count()).select_from(holder_lists)).scalar() or 0),
        "segments": int(conn.execute(select(func.count()).select_from(holder_segments)).scalar() or 0),
        "blocks": int(conn.execute(select(func.count()).select_from(holder_blocks)).scalar() or 0),
        "entries": int(conn.execute(select(func.sum(holder_segments.c.entries))).scalar() or 0),
    }


__all__ = [
    "BLOCK_TARGET",
    "FANOUT",
    "IDS",
    "LINEAGE",
    "MERGE_BUDGET",
    "REMOVED",
    "Cut",
    "Entries",
    "add_list",
    "clear",
    "compact",
    "cut_blocks",
    "entries_of",
    "is_listed",
    "iter_blocks",
    "listed",
    "lookup",
    "lookup_many",
    "merges_due",
    "stats",
]
