"""Near copies of quarantined records (the same text once its spacing and Unicode form are normalized)
are held back at contribute and at merge, and nothing else is: a record that differs in its words, a
dataset without text, a ward without quarantine pay and change nothing."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataward.domain.schema import Schema
from dataward.service import near_copies
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs

WORDS = [
    "river",
    "stone",
    "lantern",
    "meadow",
    "copper",
    "violin",
    "harbour",
    "orchid",
    "glacier",
    "thimble",
    "falcon",
    "velvet",
]


def _text(i: int) -> str:
    # Distinct sentences, each naming three words of the list and a number.
    return f"The {WORDS[i % 12]} met the {WORDS[(i * 5 + 1) % 12]} near {WORDS[(i * 7 + 3) % 12]} number {i}."


def _rows(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"text": _text(i), "topic": "news" if i % 2 else "sport"} for i in range(start, stop)]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _respaced(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records as an honest re-scrape might give them: CRLF line ends, a no-break space, a
    trailing space."""
    return [{**r, "text": r["text"].replace(" ", "\r\n", 1).replace(" ", "\u00a0", 1) + " "} for r in rows]


def _text_ward(tmp_path: Path) -> tuple[Ward, dict[str, Any]]:
    """A ward with a ``notes`` text dataset: 60 clean records merged, then 20 bad ones merged and
    quarantined."""
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    ward.merge(ward.contribute("notes", _jsonl(tmp_path / "base.jsonl", _rows(0, 60)), source="s")["ref"])
    bad = ward.contribute("notes", _jsonl(tmp_path / "bad.jsonl", _rows(100, 120)), source="vendor")
    ward.merge(bad["ref"])
    ward.quarantine_contribution(bad["ref"], reason="poison found after training")
    return ward, bad


def test_a_record_that_differs_in_words_is_not_held_back(tmp_path: Path) -> None:
    ward, _ = _text_ward(tmp_path)
    # Each text of the quarantined contribution with one word changed: alike to the eye, not a copy.
    rows = [{**r, "text": r["text"].replace(" met ", " saw ")} for r in _rows(100, 120)]
    sent = ward.contribute("notes", _jsonl(tmp_path / "other.jsonl", rows), source="vendor")
    assert sent["held_back"] == 0 and sent["held_back_by"] == []
    merged = ward.merge(sent["ref"])
    assert merged["held_back_of_contribution"] == 0
    assert merged["records"] == 80  # 60 clean + 20 new (the 20 quarantined are out of v3 already)


def test_near_copies_are_held_back_at_contribute_and_at_merge_and_said_so(tmp_path: Path) -> None:
    ward, bad = _text_ward(tmp_path)
    rows = _respaced(_rows(100, 120)) + _rows(200, 205)  # 20 near copies and 5 new records
    sent = ward.contribute("notes", _jsonl(tmp_path / "again.jsonl", rows), source="vendor")
    assert sent["held_back"] == 20
    assert sent["held_back_by"] == [
        {"why": "quarantined", "contribution": bad["ref"], "same_dataset": True, "records": 20, "match": "normalized"}
    ]
    merged = ward.merge(sent["ref"])
    assert merged["held_back_of_contribution"] == 20
    assert [r["match"] for r in merged["held_back_by"]] == ["normalized"]
    _, table = ward.read_version("notes", f"v{merged['number']}")
    texts = set(table.column("text").to_pylist())
    assert len(texts) == 65 and not any(t.endswith(" ") for t in texts)


def test_a_quarantine_recorded_after_the_near_copy_was_sent_holds_it_back_at_merge(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    ward.merge(ward.contribute("notes", _jsonl(tmp_path / "base.jsonl", _rows(0, 60)), source="s")["ref"])
    bad = ward.contribute("notes", _jsonl(tmp_path / "bad.jsonl", _rows(100, 120)), source="vendor")
    ward.merge(bad["ref"])
    copy = ward.contribute("notes", _jsonl(tmp_path / "copy.jsonl", _respaced(_rows(100, 120))), source="v2")
    assert copy["held_back"] == 0  # nothing is quarantined yet
    ward.quarantine_contribution(bad["ref"], reason="poison found after training")
    merged = ward.merge(copy["ref"])
    assert merged["held_back_of_contribution"] == 20
    assert merged["records"] == 60


def test_the_hold_back_survives_a_restart_and_a_forged_cache(tmp_path: Path) -> None:
    near_copies._memo.clear()  # another test's ward may have worked out the same records' digests
    ward, _ = _text_ward(tmp_path)
    first = ward.contribute("notes", _jsonl(tmp_path / "a.jsonl", _respaced(_rows(100, 110))), source="v")
    assert first["held_back"] == 10
    cached = list((ward.folder / near_copies.FOLDER).glob("*.npy"))
    assert len(cached) == 1
    # A new process: nothing remembered; the kept file is replaced by one saying "no records", written
    # without the ward's key. It is not believed: the quarantined records are read again.
    near_copies._memo.clear()
    ward.close()
    nothing = io.BytesIO()
    np.save(nothing, np.zeros((0, 32), dtype=np.uint8), allow_pickle=False)
    cached[0].write_bytes(nothing.getvalue() + bytes(32))
    again = Ward.open(tmp_path / "ward")
    sent = again.contribute("notes", _jsonl(tmp_path / "b.jsonl", _respaced(_rows(110, 120))), source="v")
    assert sent["held_back"] == 10
    # And with no file at all.
    near_copies._memo.clear()
    shutil.rmtree(again.folder / near_copies.FOLDER)
    assert again.merge(sent["ref"])["held_back_of_contribution"] == 10


def test_a_dataset_without_text_is_unaffected_and_pays_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_normalizing(*_args: object) -> None:
        raise AssertionError("normalized a dataset without text")

    monkeypatch.setattr("dataward.domain.normalized.normalized_table", no_normalizing)  # every path goes through it
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    rows = wine_rows(shuffled=True)
    ward.merge(ward.contribute("wine", _jsonl(tmp_path / "base.jsonl", rows[:100]), source="s")["ref"])
    bad = ward.contribute("wine", _jsonl(tmp_path / "bad.jsonl", rows[100:130]), source="v")
    ward.merge(bad["ref"])
    ward.quarantine_contribution(bad["ref"], reason="poison")
    # The very same records: exact copies, held back as before.
    again = ward.contribute("wine", _jsonl(tmp_path / "again.jsonl", rows[100:130]), source="v")
    assert again["held_back"] == 30
    assert [r["records"] for r in again["held_back_by"]] == [30] and "match" not in again["held_back_by"][0]
    # One measurement changed a little in each: other records, not held back, and nothing normalized.
    moved = [{**r, "alcohol": r["alcohol"] + 0.001} for r in rows[100:130]]
    sent = ward.contribute("wine", _jsonl(tmp_path / "moved.jsonl", moved), source="v")
    assert sent["held_back"] == 0
    assert ward.merge(sent["ref"])["held_back_of_contribution"] == 0
    assert not (ward.folder / near_copies.FOLDER).exists()


def test_a_ward_without_quarantine_normalizes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_normalizing(*_args: object) -> None:
        raise AssertionError("normalized records with nothing quarantined")

    monkeypatch.setattr("dataward.domain.normalized.normalized_table", no_normalizing)  # every path goes through it
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    ward.merge(ward.contribute("notes", _jsonl(tmp_path / "base.jsonl", _rows(0, 60)), source="s")["ref"])
    sent = ward.contribute("notes", _jsonl(tmp_path / "more.jsonl", _respaced(_rows(0, 20))), source="s")
    assert sent["held_back"] == 0
    assert ward.merge(sent["ref"])["records"] == 80
