"""Reads that trust a tampered catalog: each attack is played behind the ward's back, straight on the
SQLite catalog and the object store, and every path that serves records (`export`, the Python loader)
refuses it with an integrity error (exit 7) naming what disagrees, instead of serving altered data."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dataward.access.roles import Action, Scope
from dataward.catalog.projection import insert_row
from dataward.cli.app import app
from dataward.domain.errors import AccessDenied, AuthenticationError, InputError, IntegrityViolation, PolicyViolation
from dataward.domain.idarrays import binary_to_ids
from dataward.domain.schema import Schema
from dataward.service import guard
from dataward.service import versions as versions_service
from dataward.service.recordstore import (
    ids_table,
    load_records,
    locate_records,
    manifest_ids,
    parquet_to_table,
    read_ids,
    table_to_parquet,
)
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.security.attacks import sql

runner = CliRunner()


def cli(ward: Path, *args: str, key: str = "") -> tuple[int, dict]:
    """Run the CLI in-process with ``--json``: the exit code and the JSON document printed."""
    result = runner.invoke(app, ["--ward", str(ward), *args, "--json"], env={"DATAWARD_KEY": key, "COLUMNS": "200"})
    assert not isinstance(result.exception, KeyError), result.exception
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"exit {result.exit_code}: {result.output}") from None


def make_ward(root: Path) -> Ward:
    """wine@v1 is training (records 0-40), wine@v2 a candidate adding records 40-80."""
    ward, _ = Ward.init(root / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    first = ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 40, shuffled=True)), source="a")
    merge_reviewed(ward, first["ref"])
    ward.promote("wine@v1")
    second = ward.contribute("wine", write_csv(root / "b.csv", wine_rows(40, 80, shuffled=True)), source="b")
    merge_reviewed(ward, second["ref"])
    return ward


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """The folder of a ward ``make_ward`` made, built once per module for each manifest writer (see
    ``manifests``) on first asking: the tests tamper with copies of it."""
    made: dict[object, Path] = {}

    def template() -> Path:
        writer = versions_service.write_manifest  # the manifests the ward writes, as patched now
        if writer not in made:
            root = tmp_path_factory.mktemp("guarded-template")
            make_ward(root).close()
            made[writer] = root / "ward"
        return made[writer]

    return template


@pytest.fixture
def new_ward(templates: Callable[[], Path]) -> Callable[[Path], Ward]:
    """``new_ward(root)``: a ward as ``make_ward(root)`` makes it, copied from the module's template
    (copying the folder takes milliseconds, making it a second)."""

    def new(root: Path) -> Ward:
        folder = shutil.copytree(templates(), root / "ward")
        return Ward.open(folder, key=(folder / "credentials").read_text("utf-8").strip())

    return new


@pytest.fixture
def ward(new_ward: Callable[[Path], Ward], tmp_path: Path) -> Ward:
    return new_ward(tmp_path)


def where(ward: Ward, record_id: str) -> tuple[str, int]:
    """(chunk digest, row) the record index gives for a record."""
    with ward.db.reading() as conn:
        return locate_records(conn, [record_id])[record_id]


def point_at_row(ward: Ward, record_id: str, row: int) -> None:
    """Edit the record index so that ``record_id`` points at ``row`` of its chunk."""
    blocks = sql(ward, "SELECT bits, prefix, chunk, ids, rows FROM record_blocks")
    for bits, prefix, chunk, ids, rows in blocks:
        listed = [ids[i : i + 32].hex() for i in range(0, len(ids), 32)]
        if record_id in listed:
            at = listed.index(record_id)
            edited = rows[: 4 * at] + row.to_bytes(4, "little") + rows[4 * at + 4 :]
            sql(
                ward,
                "UPDATE record_blocks SET rows = ? WHERE bits = ? AND prefix = ? AND chunk = ?",
                edited,
                bits,
                prefix,
                chunk,
            )
            return
    raise AssertionError(f"{record_id} is not in the record index")


def flip_label(ward: Ward, record_id: str, *, fix_id: bool = False) -> None:
    """Store an edited copy of the record's chunk with the record's label changed (and, ``fix_id``,
    its stored id recomputed), and point the catalog's chunk row at the copy."""
    digest, row = where(ward, record_id)
    table = parquet_to_table(ward.store.get(digest))
    labels = table.column("cultivar").to_pylist()
    labels[row] = "2" if labels[row] != "2" else "0"
    table = table.set_column(table.column_names.index("cultivar"), "cultivar", pa.array(labels, pa.string()))
    if fix_id:
        from dataward.domain.records import record_ids

        label, specs = wine_schema_specs()
        ids = record_ids(Schema.parse(label, specs), table)
        table = table.set_column(0, "record_id", pa.array(ids, pa.string()))
    forged = ward.store.put(table_to_parquet(table))
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, digest)


def damage_in_place(ward: Ward, record_id: str) -> str:
    """Overwrite the stored chunk object holding ``record_id`` with a copy whose label of that record
    is changed (its name, the digest, unchanged); returns the digest."""
    digest, row = where(ward, record_id)
    table = parquet_to_table(ward.store.get(digest))
    labels = table.column("cultivar").to_pylist()
    labels[row] = "2" if labels[row] != "2" else "0"
    table = table.set_column(table.column_names.index("cultivar"), "cultivar", pa.array(labels, pa.string()))
    path = ward.store.path_of(digest)
    path.chmod(0o644)
    path.write_bytes(table_to_parquet(table))
    return digest


def training_ids(ward: Ward) -> list[str]:
    return ward.dataset("wine").version("training").to_arrow().column("record_id").to_pylist()


def test_happy_paths_still_serve_and_export(ward: Ward, tmp_path: Path) -> None:
    df = ward.dataset("wine").version("training").to_pandas()
    assert len(df) == 40 and df.columns[0] == "record_id"
    assert len(ward.dataset("wine").version("v2").to_pandas()) == 80
    code, out = cli(ward.folder, "export", "wine@training", "-o", str(tmp_path / "train.parquet"))
    assert code == 0 and out["records"] == 40
    assert (tmp_path / "train.parquet").stat().st_size > 0


@pytest.fixture(params=["self-locating", "ids-only"])
def manifests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which version manifests the ward writes: self-locating ones (each record's chunk and row), or
    ids only, as wards did before (read through the record index)."""
    if request.param == "ids-only":
        monkeypatch.setattr(versions_service, "write_manifest", _ids_only_manifest)
    return request.param


def _ids_only_manifest(conn: object, store: Any, members: np.ndarray, *_: object) -> str:
    return store.put(table_to_parquet(ids_table(binary_to_ids(members))))


def catalog_edit_fails(ward: Ward, manifests: str, genuine: pa.Table, match: str, tmp_path: Path) -> None:
    """After an edit of the catalog's record index or chunk rows: a version whose manifest locates its
    records follows the signed manifest and serves the genuine records, and every read through the index
    (a contribution's records, an ids-only manifest) refuses; ``verify`` reports the edit either way."""

    def streamed() -> pa.Table:
        _, batches = ward.stream_version("wine", "training", batch_rows=7)
        return pa.Table.from_batches(list(batches)).sort_by("record_id")

    if manifests == "ids-only":
        with pytest.raises(IntegrityViolation, match=match):
            ward.dataset("wine").version("training").to_pandas()
        with pytest.raises(IntegrityViolation, match=match):
            streamed()
        code, out = cli(ward.folder, "export", "wine@training", "-o", str(tmp_path / "t.parquet"))
        assert code == 7 and out["error"] == "integrity_violation"
        assert not (tmp_path / "t.parquet").exists()
    else:
        assert ward.dataset("wine").version("training").to_arrow().equals(genuine)
        assert streamed().equals(genuine)
        code, _ = cli(ward.folder, "export", "wine@training", "-o", str(tmp_path / "t.parquet"))
        assert code == 0 and pq.read_table(tmp_path / "t.parquet").column("cultivar").equals(genuine.column("cultivar"))
    schema = Schema.parse(*wine_schema_specs())
    with ward.db.reading() as conn, pytest.raises(IntegrityViolation, match=match):
        load_records(conn, ward.store, genuine.column("record_id"), schema)
    report = ward.verify()
    assert not report.ok and {p.kind for p in report.problems} == {"altered_row"}


def test_label_edited_behind_the_wards_back_is_refused(
    new_ward: Callable[[Path], Ward], manifests: str, tmp_path: Path
) -> None:
    ward = new_ward(tmp_path)
    genuine = ward.dataset("wine").version("training").to_arrow()
    victim = genuine.column("record_id")[3].as_py()
    flip_label(ward, victim)
    catalog_edit_fails(ward, manifests, genuine, f"record {victim}.*does not match its content", tmp_path)


def test_a_stored_id_rewritten_in_upper_case_is_refused(
    new_ward: Callable[[Path], Ward], manifests: str, tmp_path: Path
) -> None:
    """The same digest spelled in upper case is not a record id: the chunk's first read compares ids as
    digests, and a row whose stored id does not decode is altered, whatever it would decode to."""
    ward = new_ward(tmp_path)
    genuine = ward.dataset("wine").version("training").to_arrow()
    victim = genuine.column("record_id")[-1].as_py()
    digest, row = where(ward, victim)
    table = parquet_to_table(ward.store.get(digest))
    ids = table.column("record_id").to_pylist()
    ids[row] = ids[row].upper()
    table = table.set_column(0, "record_id", pa.array(ids, pa.string()))
    forged = ward.store.put(table_to_parquet(table))
    sql(ward, "UPDATE chunks SET digest = ? WHERE digest = ?", forged, digest)
    match = f"record {victim.upper()} \\(row {row} of chunk .*does not match"
    catalog_edit_fails(ward, manifests, genuine, match, tmp_path)


def test_label_edited_with_a_recomputed_id_is_refused(
    new_ward: Callable[[Path], Ward], manifests: str, tmp_path: Path
) -> None:
    ward = new_ward(tmp_path)
    genuine = ward.dataset("wine").version("training").to_arrow()
    victim = genuine.column("record_id")[5].as_py()
    flip_label(ward, victim, fix_id=True)
    catalog_edit_fails(ward, manifests, genuine, f"record {victim} is located at row .* which holds record", tmp_path)


def test_stage_edited_in_the_catalog_is_refused(ward: Ward, tmp_path: Path) -> None:
    sql(ward, "UPDATE versions SET stage = 'training' WHERE number = 2")
    with pytest.raises(
        IntegrityViolation, match="stage is 'training' in the catalog, 'candidate' in the signed ledger"
    ):
        ward.dataset("wine").version("training").to_pandas()
    code, out = cli(ward.folder, "export", "wine@training", "-o", str(tmp_path / "train.parquet"))
    assert code == 7 and "wine@v2" in out["message"] and "stage" in out["message"]
    # The same version is refused under any name while its row disagrees with the ledger.
    with pytest.raises(IntegrityViolation):
        ward.dataset("wine").version("v2").to_pandas()


def test_version_row_pointed_at_another_manifest_is_refused(ward: Ward) -> None:
    v1 = sql(ward, "SELECT manifest_object FROM versions WHERE number = 1")[0][0]
    sql(ward, "UPDATE versions SET manifest_object = ? WHERE number = 2", v1)
    with pytest.raises(IntegrityViolation, match="manifest_object"):
        ward.dataset("wine").version("v2").to_pandas()


def test_renamed_dataset_is_refused(ward: Ward) -> None:
    label, specs = wine_schema_specs()
    ward.create_dataset("decoy", Schema.parse(label, specs))
    sql(ward, "UPDATE datasets SET name = 'wine-old' WHERE name = 'wine'")
    sql(ward, "UPDATE datasets SET name = 'wine' WHERE name = 'decoy'")
    sql(ward, "UPDATE datasets SET name = 'decoy' WHERE name = 'wine-old'")
    with pytest.raises(IntegrityViolation, match="name is 'decoy' in the catalog, 'wine' in the signed ledger"):
        ward.dataset("decoy").version("training").to_pandas()


def test_record_pointed_at_another_records_row_is_an_integrity_error(
    new_ward: Callable[[Path], Ward], manifests: str, tmp_path: Path
) -> None:
    ward = new_ward(tmp_path)
    genuine = ward.dataset("wine").version("training").to_arrow()
    ids = genuine.column("record_id").to_pylist()
    victim, other = ids[0], ids[1]
    digest, row = where(ward, other)
    assert where(ward, victim)[0] == digest  # both came in with the first contribution's chunk
    point_at_row(ward, victim, row)
    catalog_edit_fails(
        ward, manifests, genuine, f"record {victim} is located at row {row}.*holds record {other}", tmp_path
    )
    point_at_row(ward, victim, 100000)
    catalog_edit_fails(ward, manifests, genuine, "row 100000", tmp_path)


def test_record_index_pointing_at_a_chunk_the_catalog_lost_is_an_integrity_error(
    new_ward: Callable[[Path], Ward], manifests: str, tmp_path: Path
) -> None:
    ward = new_ward(tmp_path)
    genuine = ward.dataset("wine").version("training").to_arrow()
    digest, _ = where(ward, genuine.column("record_id")[0].as_py())
    sql(ward, "DELETE FROM chunks WHERE digest = ?", digest)  # foreign keys are off for this connection
    catalog_edit_fails(ward, manifests, genuine, "does not list", tmp_path)


def test_a_manifest_edited_behind_the_wards_back_is_refused(new_ward: Callable[[Path], Ward], tmp_path: Path) -> None:
    """The manifest says where each record is, and the signed ledger names the manifest by its hash: a
    manifest rewritten in place (its records pointed at other rows) fails the store's re-hash, and one
    stored anew is not the one the version row names (the version row edited to it disagrees with the
    ledger)."""
    ward = new_ward(tmp_path)
    (digest,) = sql(ward, "SELECT manifest_object FROM versions WHERE number = 1")[0]
    table = pq.read_table(pa.BufferReader(ward.store.get(digest)))
    rows = table.column("row").to_pylist()
    table = table.set_column(table.column_names.index("row"), "row", pa.array(rows[1:] + rows[:1], pa.int64()))
    forged = ward.store.put(table_to_parquet(table))
    sql(ward, "UPDATE versions SET manifest_object = ? WHERE number = 1", forged)
    with pytest.raises(IntegrityViolation, match="manifest_object"):
        ward.dataset("wine").version("training").to_pandas()
    sql(ward, "UPDATE versions SET manifest_object = ? WHERE number = 1", digest)
    path = ward.store.path_of(digest)
    path.chmod(0o644)
    path.write_bytes(ward.store.get(forged))
    with pytest.raises(IntegrityViolation, match=digest):
        ward.dataset("wine").version("training").to_pandas()


def test_a_version_holding_quarantined_records_never_reaches_training(ward: Ward) -> None:
    result = ward.quarantine_contribution("wine#2", reason="vendor key leaked")
    rollback = result["rollback_version"]
    assert rollback["ref"] == "wine@v3" and rollback["records"] == 40
    with pytest.raises(PolicyViolation, match="40 added by quarantined contribution wine#2"):
        ward.promote("wine@v2")
    denial = ward.ledger(types=["access.denied"], limit=1)[0]
    assert denial["payload"]["action"] == "version.promote"
    code, out = cli(ward.folder, "promote", "wine@v2")
    assert code == 6 and out["error"] == "policy_violation"
    assert ward.dataset("wine").version("training").info["number"] == 1
    ward.promote("wine@v3")
    assert ward.dataset("wine").version("training").info["number"] == 3
    assert ward.verify().ok


def test_a_training_version_quarantined_after_promotion_is_not_served(ward: Ward, tmp_path: Path) -> None:
    ward.promote("wine@v2")
    ward.quarantine_contribution("wine#2", reason="vendor key leaked")
    with pytest.raises(PolicyViolation, match="training version but holds records"):
        ward.dataset("wine").version("training").to_pandas()
    code, out = cli(ward.folder, "export", "wine@training", "-o", str(tmp_path / "t.parquet"))
    assert code == 6 and "wine@v3" not in out["message"]
    ward.promote("wine@v3")
    assert len(ward.dataset("wine").version("training").to_pandas()) == 40


def _reject_again(ward: Ward) -> tuple[str, str]:
    """A record already in wine@v2 is flagged again in contribution wine#2 (same content, same id) and a
    reviewer rejects it as poison: (the record, the contribution)."""
    victim = ward.dataset("wine").version("v2").to_arrow().column("record_id").to_pylist()[0]
    second = ward.contribution("wine#2")["id"]
    with ward.use_case(Action.GATE_RUN, Scope.dataset("wine")) as uc:
        item = insert_row("quarantine", id="q_again", contribution_id=second, record_id=victim, row=1, status="pending")
        uc.emit("review.flagged", {"contribution": second, "record": victim}, {}, [item])
    ward.create_principal("rita")
    ward.grant("rita", "reviewer", "dataset:wine")
    ward.as_key(ward.issue_key("rita")["key"]).review_decide(["q_again"], "reject", reason="poison")
    return victim, second


def test_a_record_rejected_in_review_keeps_a_version_out_of_training(ward: Ward) -> None:
    """A record already in a version is flagged again in a later contribution (same content, same id)
    and a reviewer rejects it as poison: no version holding it may be promoted."""
    _, second = _reject_again(ward)
    with pytest.raises(PolicyViolation, match="1 rejected in review"):
        ward.promote("wine@v2")
    # The signed review items are kept per process and shared between readers: a later decision is
    # folded into a copy, and what an earlier reader holds does not change under it.
    signed = (ward.signer.public_key_b64, ward.ward_id)
    other = ward.dataset("wine").version("v2").to_arrow().column("record_id").to_pylist()[1]
    with ward.use_case(Action.GATE_RUN, Scope.dataset("wine")) as uc:
        item = insert_row("quarantine", id="q_more", contribution_id=second, record_id=other, row=2, status="pending")
        uc.emit("review.flagged", {"contribution": second, "record": other}, {}, [item])
    with ward.db.reading() as conn:
        before = guard._ledger_review_items(conn, *signed)
    ward.as_key(ward.issue_key("rita")["key"]).review_decide(["q_more"], "reject", reason="poison too")
    with ward.db.reading() as conn:
        after = guard._ledger_review_items(conn, *signed)
    assert before["q_more"].status == "pending" and not before["q_more"].rejected_in_review
    assert after["q_more"].status == "rejected" and after["q_more"].rejected_in_review
    assert after["q_again"] is before["q_again"] and after is not before
    # Nor is the rejection hidden by moving its contribution to another dataset in the catalog alone.
    sql(ward, "UPDATE contributions SET dataset_id = 'ds_elsewhere' WHERE id = ?", second)
    with pytest.raises(IntegrityViolation, match="dataset_id is 'ds_elsewhere' in the catalog"):
        ward.promote("wine@v2")


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE ledger_events SET type = 'review.noted' WHERE type = 'review.rejected'",
        "UPDATE ledger_events SET subject = replace(subject, ?, 'elsewhere') WHERE type = 'review.rejected'",
    ],
    ids=["event-type", "event-subject"],
)
def test_a_rejection_hidden_behind_the_wards_back_still_bars_its_record(ward: Ward, edit: str) -> None:
    """The rejection is read from the signed event's own changes, not from the ledger's type or subject
    columns: editing either refuses the read instead of letting the record through."""
    victim, _ = _reject_again(ward)
    sql(ward, edit, *([victim] if "?" in edit else []))
    refused = r"ledger that does not verify: event #\d+|\(review\.\w+\) that changes quarantine cannot be trusted"
    with pytest.raises(IntegrityViolation, match=refused):
        ward.promote("wine@v2")
    assert sql(ward, "SELECT number FROM versions WHERE stage = 'training'") == [(1,)]


def test_a_rejection_whose_payload_escapes_the_search_is_refused_in_a_fresh_process(ward: Ward) -> None:
    """Reads find the events that decide what they serve by searching payload texts. A payload edited
    so that the search misses it (a table name spelled with a space) fails its hash: a fresh process,
    whose first read checks the whole chain, refuses instead of promoting the rejected record."""
    _reject_again(ward)
    hide = "UPDATE ledger_events SET payload = replace(payload, '\"quarantine\"', '\"quarantine \"') WHERE type = ?"
    sql(ward, hide, "review.rejected")
    assert sql(ward, "SELECT count(*) FROM ledger_events WHERE payload LIKE '%\"quarantine\"%'")[0][0] < 2
    promote = [sys.executable, "-m", "dataward", "--ward", str(ward.folder), "promote", "wine@v2", "--json"]
    done = subprocess.run(promote, capture_output=True, text=True, env={**os.environ, "DATAWARD_KEY": ""})
    assert done.returncode == 7, done.stdout + done.stderr
    assert "does not verify" in json.loads(done.stdout)["message"]
    assert sql(ward, "SELECT number FROM versions WHERE stage = 'training'") == [(1,)]


def test_a_quarantined_contributions_records_are_not_let_through_by_the_catalog(ward: Ward) -> None:
    """wine@v2 is training when wine#2 is quarantined: neither a clean contribution's id list swapped for
    wine#2's (vouching for its records) nor wine#2's row deleted lets its records be served."""
    ward.promote("wine@v2")
    ward.quarantine_contribution("wine#2", reason="vendor key leaked")
    first, second = ward.contribution("wine#1")["id"], ward.contribution("wine#2")["id"]
    (own,) = sql(ward, "SELECT added_object FROM contributions WHERE id = ?", first)[0]
    theirs = "(SELECT added_object FROM contributions WHERE id = ?)"
    sql(ward, f"UPDATE contributions SET added_object = {theirs} WHERE id = ?", second, first)
    with pytest.raises(IntegrityViolation, match="added_object is"):
        ward.dataset("wine").version("training").to_pandas()
    sql(ward, "UPDATE contributions SET added_object = ? WHERE id = ?", own, first)
    sql(ward, "DELETE FROM contributions WHERE id = ?", second)
    with pytest.raises(IntegrityViolation, match="quarantined by a signed ledger event, is not in the catalog"):
        ward.dataset("wine").version("training").to_pandas()


def test_contributor_key_cannot_read_the_training_set(ward: Ward, tmp_path: Path) -> None:
    ward.create_principal("bob")
    ward.create_principal("scraper", kind="service", owner="bob")
    ward.grant("scraper", "contributor", "dataset:wine")
    key = ward.issue_key("scraper")["key"]
    bot = ward.as_key(key)
    with pytest.raises(AccessDenied, match=r"dataset\.export"):
        bot.dataset("wine").version("training").to_pandas()
    denial = ward.ledger(types=["access.denied"], limit=1)[0]
    assert denial["payload"]["action"] == "dataset.export" and denial["actor"]["key"] == key.split("_")[1]
    code, out = cli(ward.folder, "export", "wine@training", "-o", str(tmp_path / "t.parquet"), key=key)
    assert code == 6 and out["error"] == "access_denied" and not (tmp_path / "t.parquet").exists()
    # Its own contributions are still its to see; with `reader` it reads the data too.
    assert bot.versions("wine")
    ward.grant("scraper", "reader", "dataset:wine")
    assert len(bot.dataset("wine").version("training").to_pandas()) == 40


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_never_writes_into_the_ward(ward: Ward, tmp_path: Path) -> None:
    catalog = ward.folder / "catalog.sqlite"
    before = _digest(catalog)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "to-catalog").symlink_to(catalog)
    (outside / "ward-dir").symlink_to(ward.folder)
    attempts = [
        catalog,
        ward.folder / "ward.json",
        ward.folder / "new-file.parquet",
        ward.folder / "objects" / "x.parquet",
        outside / "to-catalog",
        outside / "ward-dir" / "catalog.sqlite",
    ]
    for target in attempts:
        with pytest.raises(InputError, match="inside the ward's own files"):
            ward.export("wine@training", target)
        code, out = cli(ward.folder, "export", "wine@training", "-o", str(target))
        assert code == 2 and out["error"] == "bad_input", target
    assert _digest(catalog) == before
    assert (outside / "to-catalog").is_symlink()
    assert not (ward.folder / "new-file.parquet").exists()
    assert ward.verify().ok


def test_export_replaces_a_symlink_instead_of_writing_through_it(ward: Ward, tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    link = tmp_path / "out.parquet"
    link.symlink_to(victim)
    ward.export("wine@training", link)
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.stat().st_size > 0


def _undo_quarantine_in_the_catalog(ward: Ward, respell: bool) -> None:
    """Promote wine@v2, quarantine wine#2, then set its catalog status back to 'merged' behind the ward's
    back; with ``respell``, also spell its id in the quarantine event with a JSON escape (same value,
    so the chain still verifies) so that a substring search for the id misses that event."""
    ward.promote("wine@v2")
    ward.quarantine_contribution("wine#2", reason="vendor key leaked")
    cid, status = sql(ward, "SELECT id, status FROM contributions WHERE number = 2")[0]
    assert status == "quarantined"
    if respell:
        seq, payload = sql(
            ward, "SELECT seq, payload FROM ledger_events WHERE type = 'contribution.quarantined' ORDER BY seq DESC"
        )[0]
        hidden = payload.replace(f'"{cid}"', '"\\u0063' + cid[1:] + '"')
        assert hidden != payload and cid not in hidden
        sql(ward, "UPDATE ledger_events SET payload = ? WHERE seq = ?", hidden, seq)
    sql(ward, "UPDATE contributions SET status = 'merged' WHERE id = ?", cid)


@pytest.mark.parametrize("respell", [False, True], ids=["catalog-only", "event-respelled"])
def test_a_quarantine_undone_behind_the_wards_back_is_refused(ward: Ward, tmp_path: Path, respell: bool) -> None:
    _undo_quarantine_in_the_catalog(ward, respell)
    with pytest.raises(IntegrityViolation, match="status is 'merged' in the catalog, 'quarantined' in the signed"):
        ward.dataset("wine").version("training").to_pandas()
    code, out = cli(ward.folder, "export", "wine@training", "-o", str(tmp_path / "t.parquet"))
    assert code == 7 and "wine#2" in out["message"]
    assert not (tmp_path / "t.parquet").exists()
    # verify names the same row, whichever way the event is spelled.
    problems = ward.verify().problems
    assert any(p.kind == "altered_row" and "status" in p.where for p in problems)


def _duplicating(root: Path, flipped: int) -> Path:
    """Records 80-120 and ``flipped`` records of wine@v1 again under another label: the duplicate check
    holds them (5: a ``review`` verdict, 10: a ``block``)."""
    again = [dict(r, cultivar=(r["cultivar"] + 1) % 3) for r in wine_rows(0, flipped, shuffled=True)]
    return write_csv(root / f"dup{flipped}.csv", wine_rows(80, 120, shuffled=True) + again)


@pytest.mark.parametrize("edit", ["status", "added_object", "gate_verdict"])
def test_a_merge_never_signs_what_a_tampered_contribution_row_says(ward: Ward, tmp_path: Path, edit: str) -> None:
    """A rejected contribution revived in the catalog alone, its id list put in the row of a clean
    contribution, or a blocked one's verdict set to pass: the merge, which signs a new version from
    those rows, refuses instead of laundering the records into a signed version that the loader would
    then serve for training (it did: `verify` alone noticed)."""
    if edit == "gate_verdict":
        blocked = ward.contribute("wine", _duplicating(tmp_path, 10), source="c")
        assert blocked["gate"]["verdict"] == "block"
        sql(ward, "UPDATE contributions SET gate_verdict = 'pass' WHERE id = ?", blocked["id"])
        target = blocked["ref"]
    else:
        rows = wine_rows(80, 120, shuffled=True)
        rejected = ward.contribute("wine", write_csv(tmp_path / "c.csv", rows), source="c")
        ward.reject(rejected["ref"], reason="poison")
        target = rejected["ref"]
        if edit == "status":
            sql(ward, "UPDATE contributions SET status = 'gated' WHERE id = ?", rejected["id"])
        else:
            rows = wine_rows(120, 160, shuffled=True)
            clean = ward.contribute("wine", write_csv(tmp_path / "d.csv", rows), source="d")
            theirs = "(SELECT added_object FROM contributions WHERE id = ?)"
            sql(ward, f"UPDATE contributions SET added_object = {theirs} WHERE id = ?", rejected["id"], clean["id"])
            target = clean["ref"]
    # The blocked batch's exact conflicts are queued (duplicates 5), so listing them (``review list``
    # checks the contribution each item names) or deciding them is refused first, on the same tampered
    # row; either way nothing is signed.
    refusing = r"refusing to (merge wine#[0-9]+|(decide|list) contributions c_[0-9a-f]+)"
    with pytest.raises(IntegrityViolation, match=f"{refusing}: .*{edit} is"):
        merge_reviewed(ward, target)
    assert [v["number"] for v in ward.versions("wine")] == [1, 2]


def test_a_promotion_checks_the_verdicts_it_counts_against_the_ledger(ward: Ward, tmp_path: Path) -> None:
    """A version holding a contribution the gate sent to review is not promoted under a policy asking
    for pass, not even once the verdict reads pass in the catalog alone."""
    reviewed = ward.contribute("wine", _duplicating(tmp_path, 5), source="c")
    assert reviewed["gate"]["verdict"] == "review"
    merge_reviewed(ward, reviewed["ref"])
    ward.set_policy("wine", NO_APPROVALS_POLICY + "promotion:\n  require_gate: pass\n")
    with pytest.raises(PolicyViolation, match="gate verdict 'review'"):
        ward.promote("wine@v3")
    sql(ward, "UPDATE contributions SET gate_verdict = 'pass' WHERE id = ?", reviewed["id"])
    with pytest.raises(IntegrityViolation, match=r"refusing to promote wine#3: .*gate_verdict is"):
        ward.promote("wine@v3")
    assert ward.dataset("wine").version("training").info["number"] == 1


def test_a_gate_rerun_never_signs_what_a_tampered_contribution_row_says(ward: Ward, tmp_path: Path) -> None:
    """A blocked contribution's verdict cleared and a clean id list put in its row, in the catalog alone,
    then its gate run again: the run would judge the clean records and sign `pass` for the blocked
    content (after which the row, set back, agrees with the ledger and merges). It is refused."""
    blocked = ward.contribute("wine", _duplicating(tmp_path, 10), source="c")
    clean = ward.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(120, 160, shuffled=True)), source="d")
    theirs = "(SELECT added_object FROM contributions WHERE id = ?)"
    sql(
        ward,
        f"UPDATE contributions SET gate_verdict = NULL, added_object = {theirs} WHERE id = ?",
        clean["id"],
        blocked["id"],
    )
    with pytest.raises(IntegrityViolation, match=r"refusing to gate wine#3: .*added_object is"):
        ward.run_gate(blocked["ref"])
    assert [e["subject"]["contribution"] for e in ward.ledger(types=["gate.completed"])].count(blocked["id"]) == 1


def test_a_rollback_is_never_built_from_a_tampered_manifest(ward: Ward, tmp_path: Path) -> None:
    """wine@v2's row pointed, behind the ward's back, at a manifest that also lists the records of the
    rejected wine#3 (a new object in the store and one catalog edit): quarantining wine#2 would sign a
    rollback version built from it, which holds wine#3's records and is promoted and served as the clean
    version. The quarantine refuses instead."""
    rejected = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 120, shuffled=True)), source="c")
    ward.reject(rejected["ref"], reason="poison")
    (added,) = sql(ward, "SELECT added_object FROM contributions WHERE id = ?", rejected["id"])[0]
    v2, manifest = sql(ward, "SELECT id, manifest_object FROM versions WHERE number = 2")[0]
    members = sorted(set(manifest_ids(ward.store, manifest)) | set(read_ids(ward.store, added)))
    crafted = ward.store.put(table_to_parquet(ids_table(members)))
    sql(ward, "UPDATE versions SET manifest_object = ?, record_count = ? WHERE id = ?", crafted, len(members), v2)
    with pytest.raises(IntegrityViolation, match="refusing to serve wine@v2"):
        ward.quarantine_contribution("wine#2", reason="vendor key leaked")
    assert ward.contribution("wine#2")["status"] == "merged"


def test_a_gate_report_swapped_in_the_catalog_is_refused(ward: Ward, tmp_path: Path) -> None:
    """The blocked wine#3's gate run pointed, in the catalog alone, at the passing report of the clean
    wine#4: reviewers and the owners asked to override the block would read that its gate passed."""
    blocked = ward.contribute("wine", _duplicating(tmp_path, 10), source="c")
    clean = ward.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(120, 160, shuffled=True)), source="d")
    assert ward.gate_report(clean["ref"])["verdict"] == "pass"
    passing = "(SELECT report_object FROM gate_runs WHERE contribution_id = ?)"
    sql(ward, f"UPDATE gate_runs SET report_object = {passing} WHERE contribution_id = ?", clean["id"], blocked["id"])
    with pytest.raises(IntegrityViolation, match="report_object is"):
        ward.gate_report(blocked["ref"])


def test_a_review_item_pointed_at_another_record_is_refused(ward: Ward, tmp_path: Path) -> None:
    """A flagged record's review item pointed, in the catalog alone, at a clean record: the reviewer would
    be shown the clean record and accept it, and the signed acceptance would let the flagged one in."""
    held = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 120, shuffled=True)), source="c")
    flagged = ward.read_version("wine", "v1")[1].column("record_id").to_pylist()[0]  # any stored record
    with ward.use_case(Action.GATE_RUN, Scope.dataset("wine")) as uc:
        row = insert_row(
            "quarantine", id="q_held", contribution_id=held["id"], record_id=flagged, row=1, status="pending"
        )
        uc.emit("review.flagged", {"contribution": held["id"], "record": flagged}, {}, [row])
    item = {"id": "q_held"}
    clean = ward.read_version("wine", "v1")[1].column("record_id").to_pylist()[1]
    sql(ward, "UPDATE quarantine SET record_id = ? WHERE id = ?", clean, item["id"])
    ward.create_principal("rita")
    ward.grant("rita", "reviewer", "dataset:wine")
    rita = ward.as_key(ward.issue_key("rita")["key"])
    with pytest.raises(IntegrityViolation, match="record_id is"):
        rita.review_show(item["id"])
    with pytest.raises(IntegrityViolation, match="record_id is"):
        rita.review_decide([item["id"]], "accept", reason="looks clean")
    assert not ward.ledger(types=["review.accepted"])


def test_a_reviewer_never_decides_their_own_records_through_an_edited_submitter(ward: Ward, tmp_path: Path) -> None:
    """The admin submitted wine#3 and may not decide its held record; naming another submitter in the
    catalog's row alone would let the signed acceptance through. It is refused."""
    held = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 120, shuffled=True)), source="c")
    flagged = ward.read_version("wine", "v1")[1].column("record_id").to_pylist()[0]
    with ward.use_case(Action.GATE_RUN, Scope.dataset("wine")) as uc:
        row = insert_row(
            "quarantine", id="q_own", contribution_id=held["id"], record_id=flagged, row=1, status="pending"
        )
        uc.emit("review.flagged", {"contribution": held["id"], "record": flagged}, {}, [row])
    with pytest.raises(PolicyViolation, match="separation of duties"):
        ward.review_decide(["q_own"], "accept", reason="mine is fine")
    ward.create_principal("rita")
    rita = next(p["id"] for p in ward.principals() if p["name"] == "rita")
    sql(ward, "UPDATE contributions SET submitted_by = ? WHERE id = ?", rita, held["id"])
    with pytest.raises(IntegrityViolation, match="submitted_by is"):
        ward.review_decide(["q_own"], "accept", reason="mine is fine")
    assert not ward.ledger(types=["review.accepted"])


def test_nobody_approves_their_own_contribution_through_an_edited_submitter(ward: Ward, tmp_path: Path) -> None:
    """The admin submitted wine#3; naming another submitter in the catalog's row alone would let its own
    approval be signed (of the contribution, or of a version holding it). Both are refused."""
    own = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 120, shuffled=True)), source="c")
    with pytest.raises(PolicyViolation, match="separation of duties"):
        ward.approve(own["ref"], reason="mine")
    merge_reviewed(ward, own["ref"])
    ward.create_principal("rita")
    rita = next(p["id"] for p in ward.principals() if p["name"] == "rita")
    for contribution in ward.versions("wine")[-1]["contributions"]:
        sql(ward, "UPDATE contributions SET submitted_by = ? WHERE id = ?", rita, contribution)
    with pytest.raises(IntegrityViolation, match="submitted_by is"):
        ward.approve(own["ref"], reason="mine")
    with pytest.raises(IntegrityViolation, match="submitted_by is"):
        ward.approve("wine@v3", reason="mine")
    assert not ward.ledger(types=["contribution.approved", "version.approved"])


def test_a_stream_stops_at_the_next_batch_once_its_key_is_revoked(ward: Ward) -> None:
    """A reader's key leaks and is revoked while it streams the training set: the records not yet sent
    are refused from the next batch on, as every other request of that key is."""
    ward.create_principal("bob")
    ward.grant("bob", "reader", "dataset:wine")
    key = ward.issue_key("bob")["key"]
    _, batches = ward.as_key(key).stream_version("wine", "training", batch_rows=10)
    assert next(batches).num_rows == 10
    ward.revoke_key(key, reason="leaked")
    with pytest.raises(AuthenticationError):
        next(batches)


def test_a_diff_of_a_version_pointed_at_another_manifest_is_refused(ward: Ward) -> None:
    """An approver about to approve wine@v2 as a whole reads what it adds to wine@v1: with v2's row
    pointed at v1's manifest in the catalog alone, the diff would say it adds nothing."""
    assert len(ward.diff("wine@v1", "wine@v2")["added"]) == 40
    sql(ward, "UPDATE versions SET manifest_object = (SELECT manifest_object FROM versions WHERE number = 1)")
    with pytest.raises(IntegrityViolation, match="manifest_object is"):
        ward.diff("wine@v1", "wine@v2")


def test_an_ids_only_version_streams_in_one_order_whatever_the_catalog_numbers_its_chunks(
    new_ward: Callable[[Path], Ward], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version whose manifest holds ids only is streamed through the record index, chunk by chunk. The
    chunks come in the order of their digests, not of the catalog's numbers for them: torch workers that
    split one stream's batches between them must all see the same order, even if the catalog's chunk
    rows are renumbered (a restore, or an edit) between their streams."""
    monkeypatch.setattr(versions_service, "write_manifest", _ids_only_manifest)
    ward = new_ward(tmp_path)

    def streamed() -> list[str]:
        _, batches = ward.stream_version("wine", "v2", stage=None, batch_rows=9)
        return [i for batch in batches for i in batch.column("record_id").to_pylist()]

    before = streamed()
    assert len(before) == len(set(before)) == 80
    (a, digest_a), (b, digest_b) = sql(ward, "SELECT id, digest FROM chunks ORDER BY id")
    sql(ward, "UPDATE chunks SET digest = 'b3:moving' WHERE id = ?", a)
    sql(ward, "UPDATE chunks SET digest = ? WHERE id = ?", digest_a, b)
    sql(ward, "UPDATE chunks SET digest = ? WHERE id = ?", digest_b, a)
    sql(ward, "UPDATE record_blocks SET chunk = -1 WHERE chunk = ?", a)
    sql(ward, "UPDATE record_blocks SET chunk = ? WHERE chunk = ?", a, b)
    sql(ward, "UPDATE record_blocks SET chunk = ? WHERE chunk = -1", b)
    assert streamed() == before


def test_a_training_version_hidden_from_the_gate_is_refused(ward: Ward, tmp_path: Path) -> None:
    """A catalog writer sets wine@v1's stage to candidate while a contribution is gated: without a
    training version the gate fell back to the first-import baseline (here the batch judged against
    itself) and signed a pass for records it blocks against wine@v1; the row, set back, agreed with the
    ledger again and the contribution was approved and merged. The training version is the ledger's."""
    sql(ward, "UPDATE versions SET stage = 'candidate' WHERE number = 1")
    with pytest.raises(IntegrityViolation, match=r"refusing to gate the training version of 'wine': .*stage is "):
        ward.contribute("wine", _duplicating(tmp_path, 10), source="c")
    (cid,) = sql(ward, "SELECT id FROM contributions WHERE number = 3")[0]
    assert cid not in {e["subject"]["contribution"] for e in ward.ledger(types=["gate.completed"])}
    # Put back, the same run blocks it.
    sql(ward, "UPDATE versions SET stage = 'training' WHERE number = 1")
    assert ward.run_gate("wine#3")["verdict"] == "block"


def test_a_promotion_never_takes_the_training_version_from_an_edited_catalog(ward: Ward) -> None:
    """wine@v1's stage set to candidate in the catalog while wine@v2 is promoted: the promotion, which
    picked the version to retire from the catalog's column, retired none and signed a second training
    version; the row set back agreed with the ledger (`verify` ok) and every later gate was refused with
    no command to mend it. The version it retires is the signed ledger's; the edited row is refused
    before anything is signed."""
    sql(ward, "UPDATE versions SET stage = 'candidate' WHERE number = 1")
    events = len(ward.ledger())
    with pytest.raises(IntegrityViolation, match=r"the training version of 'wine'.*stage is 'candidate' in the cat"):
        ward.promote("wine@v2")
    assert len(ward.ledger()) == events
    sql(ward, "UPDATE versions SET stage = 'training' WHERE number = 1")
    assert ward.promote("wine@v2")["retired"] == "wine@v1"
    assert ward.verify().ok


@pytest.mark.parametrize("way_out", ["retire-older", "promote-again"])
def test_two_training_versions_in_the_ledger_are_reported_and_mended(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way_out: str
) -> None:
    """A ledger holding wine@v1 and wine@v2 both at training (signed by a promotion before the fix
    above): `verify` said ok while every gate was refused, `promote` said already training and retiring
    either was refused as retiring the training version on its own. `verify` names it (two_training),
    the gate's refusal names the command, and either command mends it, signed."""
    with monkeypatch.context() as m:  # the old promotion: it found no training version to retire
        m.setattr(versions_service, "signed_training", lambda *args, **kwargs: [])
        ward.promote("wine@v2")
    report = ward.verify()
    assert [(p.kind, p.where) for p in report.problems] == [("two_training", "dataset wine")]
    assert "dataward promote wine@v1 --stage retired" in report.problems[0].detail
    rows = write_csv(tmp_path / "c.csv", wine_rows(80, 120, shuffled=True))
    clean = ward.contribute("wine", rows, source="c", gate=False)
    with pytest.raises(IntegrityViolation, match="2 versions of 'wine' are at stage training") as refused:
        ward.run_gate(clean["ref"])
    assert "dataward promote wine@v1 --stage retired" in (refused.value.hint or "")
    if way_out == "retire-older":
        # Which of the two the gates trust from now on is chosen with a reason, signed, never silently.
        with pytest.raises(InputError, match="one of 2 training versions, needs a reason"):
            ward.promote("wine@v1", stage="retired")
        assert ward.promote("wine@v1", stage="retired", reason="v2 is the reviewed one")["stage"] == "retired"
        (retired,) = [e for e in ward.ledger() if e["payload"].get("stage") == "retired"][-1:]
        assert retired["payload"]["reason"] == "v2 is the reviewed one"
    else:
        assert ward.promote("wine@v2")["retired"] == "wine@v1"
    assert ward.verify().ok
    stages = dict(sql(ward, "SELECT number, stage FROM versions ORDER BY number"))
    assert stages == {1: "retired", 2: "training"}
    assert ward.run_gate(clean["ref"])["verdict"] in ("pass", "review")
    with pytest.raises(PolicyViolation, match="cannot be retired on its own"):
        ward.promote("wine@v2", stage="retired")
    with pytest.raises(Exception, match="already training"):
        ward.promote("wine@v2")


@pytest.mark.parametrize("edit", ["version-deleted", "dataset-deleted", "dataset-renamed"])
def test_a_validation_set_hidden_from_the_gate_is_refused(ward: Ward, tmp_path: Path, edit: str) -> None:
    """The clean validation set of wine (or its newest version) deleted from the catalog, or pointed at
    another dataset, while a contribution is gated: the gate would skip clean validation (the accuracy
    check a label-flipping batch fails) and sign its verdict. Refused, naming the row."""
    label, specs = wine_schema_specs()
    ward.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    ward.merge(ward.contribute("wine-val", write_csv(tmp_path / "v.csv", wine_rows(140, 178)), source="cur")["id"])
    clean = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 120, shuffled=True)), source="c")
    (val_id,) = sql(ward, "SELECT id FROM datasets WHERE name = 'wine-val'")[0]
    if edit == "version-deleted":
        sql(ward, "DELETE FROM versions WHERE dataset_id = ?", val_id)
        match = r"refusing to gate the newest version of the clean validation set of 'wine': versions .* not in the"
    elif edit == "dataset-deleted":
        sql(ward, "DELETE FROM datasets WHERE id = ?", val_id)
        match = r"refusing to gate the clean validation set of 'wine': datasets .* is not in the catalog"
    else:
        sql(ward, "UPDATE datasets SET validation_for = 'other' WHERE id = ?", val_id)
        match = r"refusing to gate the clean validation set of 'wine': .*validation_for is 'other' in the catalog"
    runs = len(ward.ledger(types=["gate.completed"]))
    with pytest.raises(IntegrityViolation, match=match):
        ward.run_gate(clean["ref"])
    assert len(ward.ledger(types=["gate.completed"])) == runs
