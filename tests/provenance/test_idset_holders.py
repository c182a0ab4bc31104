"""``idsets.holders``: which of many id lists hold a record, from one index over all of them, must give
exactly what asking each list gives, including ids that share their first 8 bytes and lists added
after the index was built."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dataward.service import idsets
from dataward.service.recordstore import ids_table, table_to_parquet
from dataward.store.local import LocalObjectStore


@pytest.fixture(autouse=True)
def _fresh_index():
    idsets.clear()
    yield
    idsets.clear()


def _put(store: LocalObjectStore, ids: list[str]) -> str:
    return store.put(table_to_parquet(ids_table(ids, range(1, len(ids) + 1))))


def test_holders_agree_with_each_list_and_follow_new_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idsets, "_MAX_SEGMENTS", 2)  # so that lists added one by one are merged
    rng = random.Random(7)
    store = LocalObjectStore(tmp_path / "objects")
    pool = [f"{rng.getrandbits(256):064x}" for _ in range(400)]
    # Twins: the same first 16 hex characters (8 bytes), different ids: only one is in each list.
    twin_a = "ab" * 8 + "0" * 48
    twin_b = "ab" * 8 + "1" * 48
    lists = [rng.sample(pool, 60) for _ in range(12)]
    lists[3].append(twin_a)
    lists[5].append(twin_b)
    digests = [_put(store, ids) for ids in lists]

    def expected(rid: str, among: list[str | None]) -> list[int]:
        return [i for i, d in enumerate(among) if d is not None and rid in set(lists[digests.index(d)])]

    first = [None, *digests[:6]]
    for rid in [*rng.sample(pool, 40), twin_a, twin_b]:
        assert idsets.holders(store, first, rid) == expected(rid, first)
    # Lists added one at a time (more segments than are kept apart, so they are merged): still exact, and
    # a list indexed earlier but not asked about now is never answered.
    for n in range(1, 13):
        among = digests[12 - n :]
        for rid in [*rng.sample(pool, 10), twin_a, twin_b]:
            assert idsets.holders(store, among, rid) == expected(rid, among)
    assert len(idsets._segments) <= 2
    only_later = digests[6:]
    assert idsets.holders(store, only_later, twin_a) == []
    assert idsets.holders(store, only_later, twin_b) == expected(twin_b, only_later)


def test_holders_of_something_that_is_not_a_record_id(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    digest = _put(store, ["0" * 64])
    assert idsets.holders(store, [digest], "0" * 64) == [0]
    assert idsets.holders(store, [digest], "0" * 63 + "Z") == []
    assert idsets.holders(store, [digest], "0" * 63) == []
    assert idsets.holders(store, [None], "0" * 64) == []
