"""Quarantine by cause works out its containment without the write lock.

The attack on availability: a quarantine of a key that touched many contributions reads every id list
and builds rollback manifests; holding the catalog's write lock meanwhile stalls every other command.
It must do that work in a read transaction, then record its events only if nothing it read changed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import dataward.catalog.database as database
import dataward.service.incident as incident
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


@pytest.fixture(autouse=True)
def short_lock_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_LOCK_TIMEOUT", "1.0")
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_S", 1.0)


def _ward(root: Path) -> tuple[Ward, str]:
    """wine@v2 holds a bot's 40 records (wine#1) and a vendor's 20 (wine#2); wine#3 (vendor) waits."""
    ward, _ = Ward.init(root / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    ward.create_principal("alice")
    ward.create_principal("bot", kind="service", owner="alice")
    ward.grant("bot", "contributor", "dataset:wine")
    key = ward.issue_key("bot")["key"]
    ward.as_key(key).contribute("wine", write_csv(root / "a.csv", wine_rows(0, 40)), source="https://bot.example")
    merge_reviewed(ward, "wine#1")
    ward.contribute("wine", write_csv(root / "b.csv", wine_rows(40, 60)), source="s3://vendor/b.csv")
    merge_reviewed(ward, "wine#2")
    ward.contribute("wine", write_csv(root / "c.csv", wine_rows(60, 80)), source="s3://vendor/c.csv")
    return ward, f"dw_{key.split('_')[1]}"


def test_other_writers_go_on_while_a_quarantine_works_it_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ward, key = _ward(tmp_path)
    started, release = threading.Event(), threading.Event()
    original = incident.taint_of

    def slow_taint(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(incident, "taint_of", slow_taint)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = ward.quarantine_by(key, reason="leaked")
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert started.wait(30), outcome.get("error")
        # With the write lock held by the quarantine this would fail with a busy error after 1 s.
        other = Ward.open(ward.folder)
        other.create_dataset("other", Schema.parse(*wine_schema_specs()))
        assert other.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(80, 90)), source="d", gate=False)
    finally:
        release.set()
        worker.join(60)
    assert "error" not in outcome, outcome.get("error")
    (wine,) = outcome["result"]["datasets"]
    assert wine["quarantined"] == ["wine#1"] and wine["rollback_version"]["ref"] == "wine@v3"
    assert ward.verify().ok


def test_a_version_landing_meanwhile_makes_the_quarantine_work_it_out_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge that lands while the rollback is being built would leave the rollback on a stale parent,
    without the merged records: the quarantine notices and builds it again on the new latest version."""
    ward, key = _ward(tmp_path)
    original = incident.taint_of
    calls: list[int] = []

    def taint_then_merge(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            merge_reviewed(Ward.open(ward.folder), "wine#3")
        return original(*args, **kwargs)

    monkeypatch.setattr(incident, "taint_of", taint_then_merge)
    result = ward.quarantine_by(key, reason="leaked")
    assert len(calls) == 2
    rollback = result["datasets"][0]["rollback_version"]
    assert rollback["ref"] == "wine@v4" and rollback["records"] == 40
    v3 = next(v for v in ward.versions("wine") if v["number"] == 3)
    assert rollback["parent"] == v3["id"]
    assert [e["type"] for e in ward.ledger()].count("contribution.quarantined") == 1
    assert ward.verify().ok
