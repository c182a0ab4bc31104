"""`verify` finds every kind of tampering: objects, catalog rows, record index, ledger events."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import Schema
from dataward.service.recordstore import load_records
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


def _ward_with_history(tmp_path: Path, catalog_url: str | None = None) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40)), source="a")["id"])
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(40, 80)), source="b")["id"])
    assert ward.verify().ok
    return ward


def _kinds(ward: Ward) -> set[tuple[str, str]]:
    return {(p.area, p.kind) for p in ward.verify().problems}


def _object_path(ward: Ward, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    matches = [p for p in (ward.folder / "objects").rglob("*") if p.is_file() and p.name.endswith(hexpart[2:])]
    assert matches, digest
    return matches[0]


def test_tampered_object_is_reported(tmp_path: Path) -> None:
    ward = _ward_with_history(tmp_path)
    manifest = ward.versions("wine")[0]
    with ward.db.reading() as conn:
        digest = conn.execute(
            text("SELECT manifest_object FROM versions WHERE id = :i"), {"i": manifest["id"]}
        ).scalar_one()
    path = _object_path(ward, digest)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    problems = ward.verify().problems
    assert any(p.area == "objects" and digest in p.where for p in problems)


def test_edited_catalog_row_is_reported(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _ward_with_history(tmp_path, catalog_url)
    first = next(v["id"] for v in ward.versions("wine") if v["number"] == 1)
    with ward.db.transaction() as conn:
        conn.execute(text("UPDATE versions SET stage = 'training' WHERE number = 1"))
    problems = ward.verify().problems
    assert [(p.area, p.kind) for p in problems] == [("catalog", "altered_row")]
    # The row is named as a person reads it (and as guarded reads name it), not as a Python tuple.
    assert problems[0].where == f"versions {first} .stage"
    assert ".stage" in problems[0].where and "training" in problems[0].detail


def test_row_inserted_behind_the_ledgers_back_is_reported(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _ward_with_history(tmp_path, catalog_url)
    with ward.db.transaction() as conn:
        conn.execute(
            text(
                "INSERT INTO grants (id, principal_id, role, scope_kind, scope_name, granted_by, granted_at) "
                "SELECT 'g_rogue', id, 'admin', 'ward', NULL, id, '2026-01-01T00:00:00.000000Z' FROM principals"
            )
        )
    assert ("catalog", "extra_row") in _kinds(ward)


def test_record_index_tampering_is_reported(tmp_path: Path) -> None:
    ward = _ward_with_history(tmp_path)
    with ward.db.transaction() as conn:
        conn.execute(text("DELETE FROM record_blocks WHERE chunk = (SELECT MAX(chunk) FROM record_blocks)"))
    assert ("records", "missing_row") in _kinds(ward)


def test_record_index_pointed_at_other_rows_is_reported(tmp_path: Path) -> None:
    """An index block pointed at another row of its chunk, or whose rows no longer pair with its ids."""
    ward = _ward_with_history(tmp_path)
    genuine = ward.dataset("wine").version("v2").to_arrow()
    update = text("UPDATE record_blocks SET rows = :r WHERE chunk = :c")
    with ward.db.transaction() as conn:
        # A chunk of 40 records is one block.
        blocks = conn.execute(text("SELECT chunk, rows FROM record_blocks ORDER BY chunk")).all()
        (c1, rows1), (c2, rows2) = blocks
        moved = bytes([rows1[0] ^ 1]) + bytes(rows1[1:])  # row r becomes r ^ 1, another row of the chunk
        conn.execute(update, {"r": moved, "c": c1})
        conn.execute(update, {"r": bytes(rows2) + bytes(4), "c": c2})
    problems = [p for p in ward.verify().problems if p.area == "records"]
    assert any(p.kind == "altered_row" and "points at" in p.detail for p in problems)
    assert any(p.kind == "altered_row" and "do not pair up" in p.detail for p in problems)
    # A read through the damaged index is refused, never served from the wrong row; a version is read
    # from the chunks and rows its signed manifest names, which the edit cannot move.
    with ward.db.reading() as conn, pytest.raises(IntegrityViolation):
        load_records(conn, ward.store, genuine.column("record_id"), Schema.parse(*wine_schema_specs()))
    assert Ward.open(ward.folder).dataset("wine").version("v2").to_arrow().equals(genuine)


def test_edited_event_and_broken_chain_are_reported(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _ward_with_history(tmp_path, catalog_url)
    with ward.db.transaction() as conn:
        conn.execute(
            text(
                "UPDATE ledger_events SET payload = replace(payload, '\"a\"', '\"evil\"') "
                "WHERE type = 'contribution.submitted'"
            )
        )
    assert ("ledger", "altered") in _kinds(ward)


def test_deleted_event_breaks_the_chain(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _ward_with_history(tmp_path, catalog_url)
    with ward.db.transaction() as conn:
        conn.execute(text("DELETE FROM ledger_events WHERE seq = 3"))
    kinds = _kinds(ward)
    assert ("ledger", "gap") in kinds and ("ledger", "broken_link") in kinds


def test_resigned_event_with_another_key_is_reported(tmp_path: Path) -> None:
    from dataward.ledger.signing import WardSigner

    ward = _ward_with_history(tmp_path)
    forger = WardSigner.generate()
    with ward.db.transaction() as conn:
        digest = conn.execute(text("SELECT hash FROM ledger_events WHERE seq = 5")).scalar_one()
        conn.execute(text("UPDATE ledger_events SET sig = :s WHERE seq = 5"), {"s": forger.sign(digest.encode())})
    # Event 5's content is intact and covered by the last event's signature, so only a check of every
    # event's own signature sees it (tests/security/test_spaced_signatures.py plays the other cases).
    problems = ward.verify(all_signatures=True).problems
    assert [(p.area, p.kind, p.event) for p in problems] == [("ledger", "bad_signature", 5)]


def test_cli_verify_exits_non_zero_on_tampering(tmp_path: Path) -> None:
    ward = _ward_with_history(tmp_path)
    env = {**os.environ, "DATAWARD_WARD": str(ward.folder)}
    ok = subprocess.run([sys.executable, "-m", "dataward", "verify", "--json"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    with ward.db.transaction() as conn:
        conn.execute(text("UPDATE contributions SET added_count = 1"))
    bad = subprocess.run([sys.executable, "-m", "dataward", "verify"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "added_count" in bad.stdout


def test_malformed_catalog_time_is_an_integrity_error_not_a_crash(tmp_path: Path) -> None:
    ward = _ward_with_history(tmp_path)
    with ward.db.transaction() as conn:
        conn.execute(text("UPDATE api_keys SET expires_at = '2099-01-01'"))
    with pytest.raises(IntegrityViolation, match="malformed time"):
        ward.verify()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ward with history, built once; each test below works on its own copy."""
    folder = tmp_path_factory.mktemp("history")
    return _ward_with_history(folder).folder


def _copy(history: Path, tmp_path: Path) -> Ward:
    shutil.copytree(history, tmp_path / "ward")
    return Ward.open(tmp_path / "ward")


@pytest.mark.parametrize("respell", ["escaped keys", "blob"])
def test_payload_spelled_otherwise_with_the_same_value_is_still_replayed(
    history: Path, tmp_path: Path, respell: str
) -> None:
    """``verify`` leaves unparsed a payload text that holds no ``"changes"``, ``"chunk"`` or backslash.
    A payload re-spelled with the same value (its keys escaped, or stored as a BLOB) still hashes to its
    event, so its changes and chunk must still be read: nothing is reported as extra, and a catalog row
    edited behind the ledger's back is still reported."""
    ward = _copy(history, tmp_path)
    with ward.db.transaction() as conn:
        if respell == "blob":
            conn.execute(text("UPDATE ledger_events SET payload = CAST(payload AS BLOB)"))
            assert (
                conn.execute(text("SELECT COUNT(*) FROM ledger_events WHERE typeof(payload) != 'blob'")).scalar() == 0
            )
        else:
            conn.execute(
                text(
                    "UPDATE ledger_events SET payload = replace(replace(payload, "
                    "'\"changes\":', '\"\\u0063hanges\":'), '\"chunk\":', '\"\\u0063hunk\":')"
                )
            )
            assert conn.execute(text("SELECT COUNT(*) FROM ledger_events WHERE payload LIKE '%u0063hanges%'")).scalar()
            assert (
                conn.execute(text("SELECT COUNT(*) FROM ledger_events WHERE payload LIKE '%\"changes\"%'")).scalar()
                == 0
            )
    report = ward.verify()
    assert report.ok, report.problems
    assert report.checked["records"] == 80
    with ward.db.transaction() as conn:
        conn.execute(text("UPDATE versions SET stage = 'training' WHERE number = 1"))
    assert [(p.area, p.kind) for p in ward.verify().problems] == [("catalog", "altered_row")]


_FIRST_SUBMITTED = "(SELECT MIN(seq) FROM ledger_events WHERE type = 'contribution.submitted')"


@pytest.mark.parametrize(
    "edits",
    [
        [f"UPDATE ledger_events SET subject = replace(subject, 'c_', 'x_') WHERE seq = {_FIRST_SUBMITTED}"],
        [f"UPDATE ledger_events SET type = 'contribution.merged' WHERE seq = {_FIRST_SUBMITTED}"],
        [f"UPDATE ledger_events SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = {_FIRST_SUBMITTED}"],
        [
            "UPDATE ledger_events SET seq = -4 WHERE seq = 4",
            "UPDATE ledger_events SET seq = 4 WHERE seq = 5",
            "UPDATE ledger_events SET seq = 5 WHERE seq = -4",
        ],
    ],
    ids=["subject", "type", "time", "reordered"],
)
def test_columns_the_catalog_check_does_not_read_are_checked_by_the_chain(
    history: Path, tmp_path: Path, edits: list[str]
) -> None:
    """The catalog and record checks read only the payload and type of each stored row; an edit of any
    other column, or two rows swapped, is reported by the chain check at the event."""
    ward = _copy(history, tmp_path)
    columns = "SELECT seq, subject, type, time, hash FROM ledger_events ORDER BY seq"
    with ward.db.transaction() as conn:
        first = conn.execute(text(f"SELECT {_FIRST_SUBMITTED}")).scalar_one()
        before = conn.execute(text(columns)).all()
        for edit in edits:
            conn.execute(text(edit))
        assert conn.execute(text(columns)).all() != before
    named = {p.event for p in ward.verify().problems if p.area == "ledger"}
    assert named & ({4, 5} if len(edits) > 1 else {first}), named


def test_verify_gives_the_garbage_collector_back_as_it_found_it(history: Path, tmp_path: Path) -> None:
    """``verify`` pauses the cyclic collector while it holds the ledger's rows, and leaves it on or off
    as it was, also when it fails."""
    ward = _copy(history, tmp_path)
    assert gc.isenabled()
    assert ward.verify().ok and gc.isenabled()
    gc.disable()
    try:
        assert ward.verify().ok and not gc.isenabled()
    finally:
        gc.enable()
    with ward.db.transaction() as conn:
        conn.execute(text("DROP TABLE record_blocks"))
    with pytest.raises(Exception, match="record_blocks"):
        ward.verify()
    assert gc.isenabled()


def test_verify_with_a_second_process_finds_what_one_finds(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``jobs=2`` (part of the chain checked in a forked child while this process reads the payloads of
    the other part): a sound ward passes with the same counts; a catalog edit, and an event edited in
    the child's part, are reported as in one process."""
    from dataward.ledger import events

    monkeypatch.setattr(events, "SPLIT_MIN", 5)
    ward = _copy(history, tmp_path)
    audit = ward.services.audit
    one, two = audit.verify(), audit.verify(jobs=2)
    assert one.ok and two.ok and one.checked == two.checked
    with ward.db.transaction() as conn:
        conn.execute(text("UPDATE versions SET stage = 'training' WHERE number = 1"))
        last = conn.execute(text("SELECT MAX(seq) FROM ledger_events")).scalar_one()
        conn.execute(text(f"UPDATE ledger_events SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = {last - 1}"))
    problems = [(p.area, p.kind, p.event) for p in audit.verify(jobs=2).problems]
    assert problems == [(p.area, p.kind, p.event) for p in audit.verify().problems]
    assert ("ledger", "altered", last - 1) in problems and ("catalog", "altered_row", None) in problems


def test_an_altered_chunk_is_named_before_what_follows_from_it(tmp_path: Path) -> None:
    """One altered chunk makes one object problem and a record-index problem for each of its records;
    the cause comes first in the summary and the printed report, with a few of each kind shown."""
    ward = _ward_with_history(tmp_path)
    with ward.db.reading() as conn:
        chunk = conn.execute(text("SELECT digest FROM chunks ORDER BY id LIMIT 1")).scalar_one()
    path = _object_path(ward, chunk)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = ward.verify()
    summary = report.to_dict()["summary"]
    assert summary[0]["area"] == "objects" and sum(s["count"] for s in summary) == len(report.problems)
    # The chunk's 40 index entries are one problem naming the chunk, not 40 "not in any chunk".
    assert [p.detail for p in report.problems if p.kind == "unreadable_chunk"] == [
        "40 record index entries point into it, and it cannot be read (see the objects problem)"
    ]
    assert not [p for p in report.problems if p.kind == "extra_row"]
    env = {**os.environ, "DATAWARD_WARD": str(ward.folder)}
    printed = subprocess.run([sys.executable, "-m", "dataward", "verify"], env=env, capture_output=True, text=True)
    assert printed.returncode == 7
    problems = printed.stdout[printed.stdout.index("problems") :]
    assert problems.index("objects") < min(
        (problems.find(a) for a in ("records", "holders") if a in problems), default=1 << 30
    )
    if len(report.problems) - summary[0]["count"] > 5:
        assert "more (--json lists them all)" in printed.stdout
