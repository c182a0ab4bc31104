"""A list of removals holding more quarantines than SQLite binds in one statement is read all the same.

The ward's list of removals only grows: every quarantine it ever recorded stays on it. Reads that ask the
catalog for the contributions the list holds quarantined must not put all of them into one ``IN (...)``:
SQLite refuses a statement with more than 32,766 variables ("too many SQL variables"), which would stop
the access review and every merge of a ward with that many quarantines.

Played on a restored catalog (the list alone holds wine#1 quarantined), the list read with 40,000 more
quarantines of contributions this catalog never held (what decades of quarantines leave, without
recording them one by one here).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from dataward.access.removals import RemovalFact, Removed
from dataward.service.removal_list import RemovalList
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.security.attacks import json_cli
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

SQLITE_VARIABLES = 32_766
"""SQLite's limit on the variables of one statement as SQLite builds it (some distributions raise it:
the catalog's connections are held to it here, as on such a build)."""
BEYOND_SQLITE = 40_000


def _held_to_the_limit(dbapi_connection: object, _record: object) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_VARIABLES)


@pytest.fixture
def padded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The list, as every reader reads it, holds BEYOND_SQLITE more quarantines than its file names."""
    real = RemovalList.current
    ids = [f"c_{n:032x}" for n in range(BEYOND_SQLITE)]
    when = "2020-01-01T00:00:00Z"
    padding = {c: RemovalFact(1, "0" * 64, "contribution.quarantined", when, Removed(contributions=(c,))) for c in ids}

    def current(self: RemovalList) -> tuple[object, str | None]:
        state, problem = real(self)
        return dataclasses.replace(state, quarantined={**padding, **state.quarantined}), problem

    monkeypatch.setattr(RemovalList, "current", current)
    event.listen(Engine, "connect", _held_to_the_limit)
    yield
    event.remove(Engine, "connect", _held_to_the_limit)


def _quarantined_on_the_list_only(ward: Ward, tmp_path: Path) -> Path:
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    return folder


def test_the_access_review_reads_any_number_of_listed_quarantines(
    wine_ward: Ward, tmp_path: Path, padded: None
) -> None:
    folder = _quarantined_on_the_list_only(wine_ward, tmp_path)
    ward = Ward.open(folder)
    assert len(ward.contribution("wine#1")["quarantine_listed"]) > 0
    rows = [r for r in ward.access_review() if r["kind"] == "quarantined_but_active"]
    assert [r["principal"] for r in rows] == ["scraper"] and "wine#1" in rows[0]["detail"], rows
    code, answer = json_cli(folder, "access", "review")
    assert code == 0, answer
    assert [r["principal"] for r in answer if r["kind"] == "quarantined_but_active"] == ["scraper"]


def test_a_merge_reads_any_number_of_listed_quarantines(wine_ward: Ward, tmp_path: Path, padded: None) -> None:
    folder = _quarantined_on_the_list_only(wine_ward, tmp_path)
    ward = Ward.open(folder)
    # The vendor sends a copy of ten of the scraper's records and ten more: the copies stay held
    # back, as the list's quarantine of wine#1 holds them out of every version.
    sent = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(0, 10) + wine_rows(100, 110)), source="v")
    merged = merge_reviewed(ward, sent["id"])
    assert sent["held_back_by"] == [
        {"why": "quarantined", "contribution": "wine#1", "same_dataset": True, "records": 10}
    ]
    # As without the padding: what the list's quarantine of wine#1 holds back, the copies among it.
    assert (merged["records"], merged["held_back"], merged["held_back_of_contribution"]) == (90, 60, 10), merged
