"""The near-copy cache keeps every quarantined contribution a contribute reads: a ward with more
quarantines than the cache's limit does not read all their records again in each process."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.schema import Schema
from dataward.service import near_copies
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY
from tests.service.test_near_copies_held_back import _jsonl, _rows


def test_more_quarantines_than_the_limit_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(near_copies, "MAX_ENTRIES", 2)  # the limit, below the ward's 3 quarantines
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    ward.merge(ward.contribute("notes", _jsonl(tmp_path / "base.jsonl", _rows(0, 10)), source="s")["ref"])
    for k in range(3):
        bad = ward.contribute(
            "notes", _jsonl(tmp_path / f"bad{k}.jsonl", _rows(100 + 10 * k, 110 + 10 * k)), source="v"
        )
        ward.merge(bad["ref"])
        ward.quarantine_contribution(bad["ref"], reason="poison")
    reads: list[int] = []
    read = near_copies.records_normalized

    def counted(*args, **kwargs):  # the real reader, counted
        reads.append(1)
        return read(*args, **kwargs)

    monkeypatch.setattr(near_copies, "records_normalized", counted)
    bad_one = _rows(100, 101)[0]
    for run in range(3):  # three processes, each with its memo empty
        near_copies._memo.clear()
        rows = [*_rows(500 + 5 * run, 505 + 5 * run), {**bad_one, "text": bad_one["text"] + " "}]
        sent = ward.contribute("notes", _jsonl(tmp_path / f"new{run}.jsonl", rows), source="s", gate=False)
        assert sent["held_back"] == 1  # still held back (the near copy)
    assert len(list((ward.folder / near_copies.FOLDER).glob("*.npy"))) == 3
    assert len(reads) <= 3  # each quarantined list read at most once across the three processes
