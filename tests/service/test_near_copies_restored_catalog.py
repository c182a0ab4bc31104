"""Near copies of a quarantined contribution the restored catalog does not know (its backup predates
the contribution; the ward's list of removals still holds the quarantine) are held back too: the list
names the chunks that held its records, read verified by their digest. A chunk deleted or edited behind
the ward's back refuses the contribution rather than letting near copies through; a line written before
the list named chunks holds back exact copies only, and verify says so."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataward.access import removals
from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import Schema
from dataward.service import near_copies, removal_list
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY
from tests.security.test_restore_removals import LIST, back_up, move_checkpoints_aside, restore
from tests.service.test_near_copies_held_back import _jsonl, _respaced, _rows


def _quarantine_contribution(ward: Ward, bad: dict[str, Any]) -> None:
    ward.quarantine_contribution(bad["ref"], reason="poison")


def _restored_from_before(
    tmp_path: Path,
    quarantine: Callable[[Ward, dict[str, Any]], None] = _quarantine_contribution,
    *,
    submitter: Callable[[Ward], str] | None = None,
) -> Path:
    """A ward whose catalog is put back from a backup taken before ``notes#2`` (ten bad records, sent by
    ``submitter``) was sent, merged and quarantined (by ``quarantine``): only the list of removals knows it."""
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    ward.merge(ward.contribute("notes", _jsonl(tmp_path / "base.jsonl", _rows(0, 10)), source="s")["ref"])
    key = submitter(ward) if submitter is not None else None
    folder = ward.folder
    del ward
    back_up(folder, tmp_path / "backup")
    ward = Ward.open(folder)
    bad = (ward.as_key(key) if key else ward).contribute(
        "notes", _jsonl(tmp_path / "bad.jsonl", _rows(100, 110)), source="vendor"
    )
    ward.merge(bad["ref"])
    quarantine(ward, bad)
    del ward
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    near_copies._memo.clear()
    return folder


def _near(ward: Ward, tmp_path: Path, name: str = "near.jsonl", *, gate: bool = False) -> dict[str, Any]:
    return ward.contribute("notes", _jsonl(tmp_path / name, _respaced(_rows(100, 110))), source="v", gate=gate)


def _listed_chunks(folder: Path) -> list[str]:
    lines = [json.loads(line) for line in (folder / LIST).read_text().splitlines()]
    return [
        chunk for line in lines if line["type"] == "contribution.quarantined" for chunk in line.get("held_chunks", [])
    ]


def test_near_copies_are_held_back_after_the_catalog_is_restored_from_before(tmp_path: Path) -> None:
    folder = _restored_from_before(tmp_path)
    ward = Ward.open(folder)
    assert "notes#2" not in {c["ref"] for c in ward.contributions("notes")}  # the catalog predates it
    sent = _near(ward, tmp_path, gate=True)
    assert sent["held_back"] == 10
    assert [r.get("match") for r in sent["held_back_by"]] == ["normalized"]
    merged = ward.merge(sent["ref"])
    assert merged["held_back_of_contribution"] == 10 and merged["records"] == 10  # the clean base only
    # Another process, with the kept answer deleted too: read again from the chunk.
    shutil.rmtree(folder / near_copies.FOLDER)
    near_copies._memo.clear()
    assert _near(Ward.open(folder), tmp_path, "again.jsonl")["held_back"] == 10


def test_records_that_are_not_near_copies_pass_after_the_restore(tmp_path: Path) -> None:
    ward = Ward.open(_restored_from_before(tmp_path))
    # Each quarantined text with one word changed, and wholly new texts: alike to the eye, not copies.
    rows = [{**r, "text": r["text"].replace(" met ", " saw ")} for r in _rows(100, 110)] + _rows(200, 210)
    sent = ward.contribute("notes", _jsonl(tmp_path / "other.jsonl", rows), source="v")
    assert sent["held_back"] == 0 and sent["held_back_by"] == []
    merged = ward.merge(sent["ref"])
    assert merged["held_back_of_contribution"] == 0 and merged["records"] == 30


def test_a_quarantine_by_cause_holds_back_near_copies_after_the_restore(tmp_path: Path) -> None:
    """Quarantined through the key that sent it (``quarantine dw_KEY``), not by contribution."""
    keys: list[str] = []

    def bot(ward: Ward) -> str:
        ward.create_principal("scraper")
        ward.grant("scraper", "contributor", "dataset:notes")
        keys.append(str(ward.issue_key("scraper", ttl_days=5)["key"]))
        return keys[0]

    def by_key(ward: Ward, _: dict[str, Any]) -> None:
        ward.quarantine_by("_".join(keys[0].split("_")[:2]), reason="key leaked")

    ward = Ward.open(_restored_from_before(tmp_path, by_key, submitter=bot))
    assert _near(ward, tmp_path)["held_back"] == 10


@pytest.mark.parametrize("attack", ["deleted", "edited"])
def test_the_quarantined_chunk_deleted_or_edited_refuses_rather_than_lets_near_copies_in(
    tmp_path: Path, attack: str
) -> None:
    """Whoever rolled the catalog back also deletes (or edits) the chunk that held the quarantined records,
    and the kept near-copy answers: the ward must not take that for "no near copies"."""
    folder = _restored_from_before(tmp_path)
    ward = Ward.open(folder)
    assert _near(ward, tmp_path)["held_back"] == 10  # the answer kept, then deleted with the chunk
    (chunk,) = _listed_chunks(folder)
    path = ward.store.path_of(chunk)  # type: ignore[attr-defined]
    if attack == "deleted":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1  # one bit: the object no longer hashes to its digest
        path.chmod(0o644)
        path.write_bytes(bytes(data))
    shutil.rmtree(folder / near_copies.FOLDER)
    near_copies._memo.clear()
    fresh = Ward.open(folder)
    with pytest.raises(IntegrityViolation, match=chunk):
        _near(fresh, tmp_path, "again.jsonl")
    problems = [p for p in fresh.verify().problems if p.area == "removals"]
    assert [p.kind for p in problems] == ["unreadable_quarantine"], problems
    assert chunk in problems[0].detail


@pytest.mark.parametrize("chunk", ["kept", "deleted"])
def test_a_dataset_the_restored_catalog_does_not_know_is_compared_in_its_encoding(tmp_path: Path, chunk: str) -> None:
    """The quarantined contribution's dataset was made after the backup too: its near copies are held
    back in a dataset of the same encoding, and a dataset of another encoding neither holds back nor fails.
    Its chunk deleted: refused, not taken for a chunk of another encoding."""

    ward, _ = Ward.init(tmp_path / "ward")
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    ward = Ward.open(folder)
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    bad = ward.contribute("notes", _jsonl(tmp_path / "bad.jsonl", _rows(100, 110)), source="vendor")
    ward.merge(bad["ref"])
    ward.quarantine_contribution(bad["ref"], reason="poison")
    ward.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    near_copies._memo.clear()
    ward = Ward.open(folder)
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    if chunk == "deleted":
        for digest in _listed_chunks(folder):
            ward.store.path_of(digest).unlink()  # type: ignore[attr-defined]
        with pytest.raises(IntegrityViolation, match="missing from the object store"):
            _near(ward, tmp_path)
        return
    assert _near(ward, tmp_path)["held_back"] == 10
    ward.create_dataset("tagged", Schema.parse("label", ["text:text"]))
    ward.set_policy("tagged", NO_APPROVALS_POLICY)
    rows = [{"text": r["text"], "label": r["topic"]} for r in _respaced(_rows(100, 110))]
    sent = ward.contribute("tagged", _jsonl(tmp_path / "tagged.jsonl", rows), source="v", gate=False)
    assert sent["held_back"] == 0


def _as_format_3(type, time, subject, payload):  # type: ignore[no-untyped-def]
    """``removed_by`` as a ward before format 4 listed a quarantine: no chunks named."""
    found = removals.removed_by(type, time, subject, payload)
    return dataclasses.replace(found, held_chunks=()) if found is not None else None


def test_a_line_older_than_the_chunks_holds_back_exact_copies_and_verify_says_near_ones_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def quarantine(ward: Ward, bad: dict[str, Any]) -> None:
        with monkeypatch.context() as patched:
            patched.setattr(removal_list, "removed_by", _as_format_3)
            ward.quarantine_contribution(bad["ref"], reason="poison")

    folder = _restored_from_before(tmp_path, quarantine)
    assert _listed_chunks(folder) == []
    ward = Ward.open(folder)
    assert _near(ward, tmp_path)["held_back"] == 0  # nothing to find them by
    exact = ward.contribute("notes", _jsonl(tmp_path / "exact.jsonl", _rows(100, 110)), source="v", gate=False)
    assert exact["held_back"] == 10
    report = Ward.open(folder).verify()
    assert not [p for p in report.problems if p.area == "removals" and p.kind != "lost_removal"], report.problems
    assert any("near copies" in w and "format 4" in w for w in report.warnings), report.warnings


def test_chunks_on_the_list_that_do_not_hold_the_records_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quarantine named the wrong chunk (a record index pointed elsewhere when it was recorded): the
    records it cannot find are not taken for records without near copies."""
    from sqlalchemy import select

    from dataward.catalog.tables import chunks
    from dataward.service import incident

    def quarantine(ward: Ward, bad: dict[str, Any]) -> None:
        with ward.db.reading() as conn:  # type: ignore[attr-defined]
            first = conn.execute(select(chunks.c.digest).order_by(chunks.c.id)).scalars().first()
        with monkeypatch.context() as patched:
            patched.setattr(incident, "chunks_holding", lambda conn, binary: [first])  # the base's chunk
            ward.quarantine_contribution(bad["ref"], reason="poison")

    ward = Ward.open(_restored_from_before(tmp_path, quarantine))
    with pytest.raises(IntegrityViolation, match="neither indexed by the catalog nor held by the chunks"):
        _near(ward, tmp_path)


def test_a_format_3_line_reads_without_chunks_and_cannot_be_given_some() -> None:
    """Lines written before format 4 still read (their quarantine holds, naming no chunk); a format-3 line
    naming chunks is malformed (no ward wrote one)."""
    from dataward.domain.errors import InputError
    from dataward.ledger.removal_line import RemovalLine
    from dataward.ledger.signing import WardSigner

    signer = WardSigner.generate()
    held = removals.Removed(keys_from="t", contributions=("c1",), held=("b3:" + "a" * 64,), held_in=("d1",))
    line = RemovalLine.sign(
        signer, ward="w", n=0, prev="p", seq=1, hash="h", type="contribution.quarantined", time="t", removed=held
    )
    old = RemovalLine(**{**line.__dict__, "format": 3, "sig": ""})
    old = RemovalLine(**{**old.__dict__, "sig": signer.sign(old.signed_message())})
    read = RemovalLine.from_json(old.to_json())
    assert "held_chunks" not in json.loads(old.to_json())
    state = removals.fold([read.fact()])
    assert state.quarantined_lists == {"c1": "b3:" + "a" * 64} and state.chunks_of("b3:" + "a" * 64) is None
    forged = {**json.loads(old.to_json()), "held_chunks": ["b3:" + "b" * 64]}
    with pytest.raises(InputError, match="held_chunks"):
        RemovalLine.from_json(json.dumps(forged))
    chunked = dataclasses.replace(held, held_chunks=("b3:" + "b" * 64,))
    new = RemovalLine.sign(
        signer, ward="w", n=0, prev="p", seq=1, hash="h", type="contribution.quarantined", time="t", removed=chunked
    )
    assert new.format >= 4 and RemovalLine.from_json(new.to_json()).fact().removed.held_chunks == chunked.held_chunks
    assert removals.fold([new.fact()]).chunks_of("b3:" + "a" * 64) == ("b3:" + "b" * 64,)
