"""Provenance reads against a tampered catalog, played as the attacker: rows of ``contributions``,
``sources`` and ``versions`` are edited straight in the SQLite catalog, behind the ward's back, and
every read that shows or signs them (``trace``, ``contributions``, ``attest``, ``card``, ``versions``,
``datasets``) refuses with the integrity error (exit 7) naming the row and what differs, as export and
quarantine already do, instead of presenting forged provenance (or signing it with the ward key).
The same reads of the untampered ward work as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.errors import IntegrityViolation
from dataward.service.ward import Ward
from tests.security.attacks import sql

runner = CliRunner()

SCRAPED = "https://scrape.example/wine-a"
VENDOR = "s3://vendor/wine-b.csv"


def run(ward: Ward, *args: str) -> tuple[int, Any, str]:
    """The CLI in-process, on the ward folder with its admin: exit code, JSON printed (or None), output."""
    result = runner.invoke(
        app, ["--ward", str(ward.folder), *args], env={"DATAWARD_KEY": "", "DATAWARD_URL": "", "COLUMNS": "200"}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        doc = None
    return result.exit_code, doc, result.output


def scraped(ward: Ward) -> dict[str, Any]:
    """wine#1 (the scraper bot's contribution) and wine#2 (the admin's) as the catalog holds them."""
    [(c1, src1, by1, key1)] = sql(ward, "SELECT id, source_id, submitted_by, key_id FROM contributions WHERE number=1")
    [(c2, by2, key2)] = sql(ward, "SELECT id, submitted_by, key_id FROM contributions WHERE number=2")
    return {"id": c1, "source": src1, "by": by1, "key": key1, "admin": by2, "admin_key": key2, "other": c2}


def forge_submitter(ward: Ward) -> dict[str, Any]:
    """The attack of the trial: wine#1, the scraper bot's, made to read as the admin's, from a curated
    source."""
    c = scraped(ward)
    sql(
        ward,
        "UPDATE contributions SET submitted_by=?, submitter_owner=NULL, key_id=? WHERE id=?",
        c["admin"],
        c["admin_key"],
        c["id"],
    )
    return c


def refused(ward: Ward, *args: str, row: str | None = None, says: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run a command that must refuse with the integrity error (exit 7) naming ``row`` and ``says``."""
    code, doc, output = run(ward, *args)
    assert code == 7, (args, code, output)
    if doc is not None:
        assert doc["error"] == "integrity_violation", (args, doc)
        if row is not None:
            assert doc["details"].get("row") == row, (args, doc)
        for text in says:
            assert text in doc["message"], (args, doc["message"])
    return doc or {}


def record_of(ward: Ward, number: int) -> str:
    """One record id added by wine#``number``."""
    _, table = ward.read_version("wine", f"v{number}")
    ids = sorted(table.column("record_id").to_pylist())
    if number == 1:
        return ids[0]
    _, first = ward.read_version("wine", "v1")
    return sorted(set(ids) - set(first.column("record_id").to_pylist()))[0]


def test_the_reads_of_an_untampered_ward_work_as_before(wine_ward: Ward, tmp_path: Path) -> None:
    c = scraped(wine_ward)
    code, doc, out = run(wine_ward, "trace", "wine#1", "--json")
    assert code == 0, out
    [facts] = doc["contributions"]
    assert facts["submitted_by"] == "scraper" and facts["owner"] == "alice" and facts["key"] == f"dw_{c['key']}"
    assert facts["source"]["uri"] == SCRAPED
    assert [v["ref"] for v in doc["versions"]] == ["wine@v1", "wine@v2"]

    code, doc, out = run(wine_ward, "trace", "principal:scraper", "--json")
    assert code == 0 and [f["ref"] for f in doc["contributions"]] == ["wine#1"], out
    code, doc, out = run(wine_ward, "trace", f"source:{SCRAPED}", "--json")
    assert code == 0 and [f["ref"] for f in doc["contributions"]] == ["wine#1"], out
    code, doc, out = run(wine_ward, "trace", f"dw_{c['key']}", "--json")
    assert code == 0 and [f["ref"] for f in doc["contributions"]] == ["wine#1"], out
    code, doc, out = run(wine_ward, "trace", record_of(wine_ward, 1), "--json")
    assert code == 0 and [f["ref"] for f in doc["contributions"]] == ["wine#1"], out
    code, doc, out = run(wine_ward, "trace", "wine@v2", "--json")
    assert code == 0 and [f["ref"] for f in doc["contributions"]] == ["wine#1", "wine#2"], out

    code, doc, out = run(wine_ward, "contributions", "wine", "--json")
    assert code == 0, out
    assert [(r["ref"], r["submitted_by"], r["source_uri"]) for r in doc] == [
        ("wine#1", "scraper", SCRAPED),
        ("wine#2", "admin", VENDOR),
    ]
    code, doc, out = run(wine_ward, "contributions", "wine", "--status", "merged", "--json")
    assert code == 0 and [r["ref"] for r in doc] == ["wine#1", "wine#2"], out

    code, doc, out = run(wine_ward, "versions", "wine", "--json")
    assert code == 0 and [(v["number"], v["stage"]) for v in doc] == [(1, "candidate"), (2, "training")], out
    code, doc, out = run(wine_ward, "datasets", "--json")
    assert code == 0 and [(d["name"], d["latest"], d["training"]) for d in doc] == [("wine", 2, 2)], out

    bundle = tmp_path / "wine-v2.intoto.jsonl"
    code, _, out = run(wine_ward, "attest", "wine@v2", "-o", str(bundle))
    assert code == 0, out
    predicate = json.loads(_payload(bundle.read_text().splitlines()[1]))["predicate"]
    assert [(f["ref"], f["submitted_by"], f["source"]["uri"]) for f in predicate["contributions"]] == [
        ("wine#1", "scraper", SCRAPED),
        ("wine#2", "admin", VENDOR),
    ]
    code, _, out = run(wine_ward, "card", "wine@v2", "-o", str(tmp_path / "card"))
    assert code == 0, out
    card = (tmp_path / "card" / "card.md").read_text()
    assert "| wine#1 | scraper |" in card and SCRAPED in card


def _payload(line: str) -> str:
    import base64

    return base64.b64decode(json.loads(line)["payload"]).decode()


def test_a_forged_submitter_and_key_are_refused_by_every_read_that_shows_them(wine_ward: Ward, tmp_path: Path) -> None:
    record = record_of(wine_ward, 1)
    c = forge_submitter(wine_ward)
    row = f"contributions {c['id']}"
    says = ("submitted_by", "in the signed ledger")
    refused(wine_ward, "trace", "wine#1", "--json", row=row, says=says)
    refused(wine_ward, "trace", c["id"], "--json", row=row, says=says)
    # The forged row no longer matches the scraper: a trace of it must not silently leave wine#1 out.
    refused(wine_ward, "trace", "principal:scraper", "--json", row=row, says=says)
    # ... nor list it as the admin's.
    refused(wine_ward, "trace", "principal:admin", "--json", row=row, says=says)
    refused(wine_ward, "trace", f"dw_{c['key']}", "--json", row=row, says=says)
    refused(wine_ward, "trace", f"dw_{c['admin_key']}", "--json", row=row, says=says)
    refused(wine_ward, "trace", f"source:{SCRAPED}", "--json", row=row, says=says)
    refused(wine_ward, "trace", record, "--json", row=row, says=says)
    refused(wine_ward, "trace", "wine@v1", "--json", row=row, says=says)
    refused(wine_ward, "contributions", "wine", "--json", row=row, says=says)
    with pytest.raises(IntegrityViolation, match="submitted_by"):
        wine_ward.contribution("wine#1")
    bundle = tmp_path / "att.jsonl"
    refused(wine_ward, "attest", "wine@v2", "-o", str(bundle))
    assert not bundle.exists()  # nothing signed
    refused(wine_ward, "card", "wine@v2", "-o", str(tmp_path / "card"), "--json", row=row, says=says)
    assert not (tmp_path / "card" / "card.md").exists()
    # The reads that do not show the row still work, and the row is the one verify reports.
    assert run(wine_ward, "trace", "wine#2", "--json")[0] == 0


def test_a_forged_source_is_refused(wine_ward: Ward, tmp_path: Path) -> None:
    c = scraped(wine_ward)
    sql(wine_ward, "UPDATE sources SET uri='curated:trusted-vendor' WHERE id=?", c["source"])
    row = f"sources {c['source']}"
    says = ("uri is 'curated:trusted-vendor' in the catalog", SCRAPED)
    refused(wine_ward, "trace", "wine#1", "--json", row=row, says=says)
    # The source the data came from is still found (from the ledger), and refused, not "no contribution".
    refused(wine_ward, "trace", f"source:{SCRAPED}", "--json", row=row, says=says)
    refused(wine_ward, "trace", "source:curated:trusted-vendor", "--json", row=row, says=says)
    refused(wine_ward, "trace", "principal:scraper", "--json", row=row, says=says)
    refused(wine_ward, "contributions", "wine", "--json", row=row, says=says)
    refused(wine_ward, "attest", "wine@v2", "-o", str(tmp_path / "att.jsonl"))
    assert not (tmp_path / "att.jsonl").exists()
    refused(wine_ward, "card", "wine@v2", "-o", str(tmp_path / "card"), "--json", row=row, says=says)


def test_an_attestation_is_never_signed_over_a_forged_row(wine_ward: Ward) -> None:
    """The Python API too: attest refuses, and issues no ``attestation.issued`` event."""
    forge_submitter(wine_ward)
    before = sql(wine_ward, "SELECT count(*) FROM ledger_events WHERE type='attestation.issued'")
    with pytest.raises(IntegrityViolation, match="submitted_by"):
        wine_ward.attest("wine@v2")
    with pytest.raises(IntegrityViolation, match="submitted_by"):
        wine_ward.card("wine@v2")
    assert sql(wine_ward, "SELECT count(*) FROM ledger_events WHERE type='attestation.issued'") == before


def test_a_status_edited_into_or_out_of_a_listing_is_refused(wine_ward: Ward) -> None:
    c = scraped(wine_ward)
    sql(wine_ward, "UPDATE contributions SET status='quarantined' WHERE id=?", c["id"])
    row = f"contributions {c['id']}"
    refused(wine_ward, "contributions", "wine", "--status", "quarantined", "--json", row=row, says=("status",))
    # Left out of the merged ones by the edit: found by the ledger and refused, not silently missing.
    refused(wine_ward, "contributions", "wine", "--status", "merged", "--json", row=row, says=("status",))


def test_a_contribution_moved_out_of_its_dataset_is_not_silently_left_out(wine_ward: Ward) -> None:
    c = scraped(wine_ward)
    sql(wine_ward, "PRAGMA foreign_keys=OFF")
    sql(wine_ward, "UPDATE contributions SET dataset_id='ds_elsewhere' WHERE id=?", c["id"])
    refused(wine_ward, "contributions", "wine", "--json", row=f"contributions {c['id']}", says=("dataset_id",))
    refused(wine_ward, "trace", "principal:scraper", "--json", row=f"contributions {c['id']}")


def test_a_stage_moved_in_the_catalog_is_refused_by_the_listings(wine_ward: Ward) -> None:
    sql(wine_ward, "UPDATE versions SET stage='candidate' WHERE number=2")
    sql(wine_ward, "UPDATE versions SET stage='training' WHERE number=1")
    says = ("stage is 'training' in the catalog, 'candidate' in the signed ledger",)
    doc = refused(wine_ward, "versions", "wine", "--json", says=says)
    assert doc["details"]["row"].startswith("versions ")
    refused(wine_ward, "datasets", "--json", says=says)
    with pytest.raises(IntegrityViolation, match="stage"):
        wine_ward.dataset_info("wine")
    refused(wine_ward, "trace", "wine@training", "--json", says=says)
    refused(wine_ward, "trace", "wine#1", "--json", says=says)


def test_one_stage_edited_alone_is_refused(wine_ward: Ward) -> None:
    sql(wine_ward, "UPDATE versions SET stage='retired' WHERE number=2")
    refused(wine_ward, "datasets", "--json", says=("stage is 'retired' in the catalog, 'training'",))
    refused(wine_ward, "versions", "wine", "--json", says=("stage is 'retired' in the catalog, 'training'",))


def test_a_gate_run_deleted_or_edited_behind_the_ledger_is_refused(wine_ward: Ward, tmp_path: Path) -> None:
    c = scraped(wine_ward)
    [(run, verdict)] = sql(wine_ward, "SELECT id, verdict FROM gate_runs WHERE contribution_id=?", c["id"])
    sql(wine_ward, "UPDATE gate_runs SET verdict='pass', flagged=0 WHERE id=?", run)
    if verdict != "pass":
        refused(wine_ward, "trace", "wine#1", "--json", row=f"gate_runs {run}", says=("verdict",))
    sql(wine_ward, "PRAGMA foreign_keys=OFF")
    sql(wine_ward, "DELETE FROM gate_runs WHERE id=?", run)
    says = ("recorded in the signed ledger, is not in the catalog",)
    refused(wine_ward, "trace", "wine#1", "--json", row=f"gate_runs {run}", says=says)
    refused(wine_ward, "attest", "wine@v2", "-o", str(tmp_path / "att.jsonl"))
