"""``trace`` and the dataset card say what the ward's list of removals holds, not what a restored catalog does.

After the catalog is put back from a backup older than a quarantine, its row says the contribution is
merged. Reads already hold its records out of training; what an investigator (``trace``) or a dataset's
consumer (the card) is shown must not say otherwise: the contribution reads ``quarantined``, naming the
event on the list, as ``contributions`` does (``quarantine_listed``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.errors import NotFound
from dataward.domain.schema import RECORD_ID
from dataward.service.recordstore import read_ids
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.provenance.restore_drill import quarantined_after_the_backup
from tests.security.attacks import json_cli
from tests.security.test_restore_removals import LIST, back_up, move_checkpoints_aside, restore


def _restored_before_quarantine(ward: Ward, tmp_path: Path) -> tuple[Path, int]:
    """Back up, quarantine ``wine#1``, restore the backup; the folder and the quarantine's event."""
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    return folder, json.loads((folder / LIST).read_text().splitlines()[-1])["seq"]


def _listed(facts: dict, seq: int) -> None:
    assert facts["status"] == "quarantined", facts["status"]
    assert facts["quarantine_listed"]["event"] == seq
    assert "catalog says merged" in facts["quarantine_listed"]["note"]


def test_trace_shows_the_listed_quarantine(wine_ward: Ward, tmp_path: Path) -> None:
    folder, seq = _restored_before_quarantine(wine_ward, tmp_path)
    ward = Ward.open(folder)
    (first,) = ward.trace("wine#1")["contributions"]
    _listed(first, seq)
    by_ref = {c["ref"]: c for c in ward.trace("wine@v2")["contributions"]}
    _listed(by_ref["wine#1"], seq)
    assert by_ref["wine#2"]["status"] == "merged" and "quarantine_listed" not in by_ref["wine#2"]
    record = ward.read_version("wine", "v1")[1].column(RECORD_ID)[0].as_py()
    (adder,) = ward.trace(record)["contributions"]
    _listed(adder, seq)
    _listed(ward.trace("principal:scraper")["contributions"][0], seq)
    # The command line, as JSON and as the tree it prints.
    code, answer = json_cli(folder, "trace", "wine#1")
    assert code == 0
    _listed(answer["contributions"][0], seq)
    shown = CliRunner().invoke(app, ["--ward", str(folder), "trace", "wine#1"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "wine#1 quarantined" in shown.output and f"event #{seq}" in shown.output, shown.output


def test_the_card_and_the_attestation_show_the_listed_quarantine(wine_ward: Ward, tmp_path: Path) -> None:
    folder, seq = _restored_before_quarantine(wine_ward, tmp_path)
    ward = Ward.open(folder)
    # The signed statement says what the list holds, not what the catalog says.
    statements = [json.loads(base64.b64decode(e["payload"])) for e in ward.attest("wine@v2")]
    (ours,) = [s["predicate"] for s in statements if "contributions" in s["predicate"]]
    _listed(next(c for c in ours["contributions"] if c["ref"] == "wine#1"), seq)
    card = ward.card("wine@v2")
    opened = card["markdown"].split("## Open quarantines", 1)[1]
    assert "wine#1" in opened and f"event #{seq}" in opened and "none" not in opened, opened
    limits = json.dumps(card["croissant"])
    assert "quarantined contribution: wine#1" in limits


def test_trace_and_card_name_a_quarantine_the_catalog_never_held(wine_ward: Ward, tmp_path: Path) -> None:
    """The backup predates the contribution: the list names it by id, with its dataset. The card lists it
    among the open quarantines; a trace of it, or of a record it added, finds nothing in the catalog and
    says that the list holds it quarantined."""
    folder = quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130))
    line = json.loads((folder / LIST).read_text().splitlines()[-1])
    (cid,) = line["contributions"]
    ward = Ward.open(folder)
    opened = ward.card("wine@v2")["markdown"].split("## Open quarantines", 1)[1]
    assert cid in opened and f"event #{line['seq']}" in opened, opened
    record = read_ids(ward.store, line["held"][0])[0]
    for ref in (cid, record):
        with pytest.raises(NotFound, match=rf"list of removals holds contribution {cid}.* \(by event #{line['seq']} "):
            ward.trace(ref)
    with pytest.raises(NotFound) as unknown:  # a record nobody added says nothing of the list
        ward.trace("0" * 64)
    assert "list of removals" not in unknown.value.message


def test_the_card_lists_no_review_work_of_a_contribution_the_list_holds_quarantined(
    wine_ward: Ward, tmp_path: Path
) -> None:
    """wine#3's gate flagged three records (their labels contradict wine#1's copies) and they await
    review; then wine#3 is quarantined, which closes them. The catalog put back from before the
    quarantine still has them pending: the card shows wine#3 quarantined and no review work of it, as
    it did before the restore."""
    flipped = [{**r, "cultivar": (int(r["cultivar"]) + 1) % 3} for r in wine_rows(0, 3)]
    sent = wine_ward.contribute("wine", write_csv(tmp_path / "c.csv", flipped + wine_rows(100, 110)), source="s3://c")
    assert len(wine_ward.review_list(contribution=sent["ref"])) == 3
    folder = wine_ward.folder
    wine_ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution(sent["ref"], reason="labels contradict the trusted copies")
    before = admin.card("wine@v2")["markdown"].split("## Open quarantines", 1)[1]
    admin.close()
    assert "wine#3" in before and "pending review" not in before, before
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    ward = Ward.open(folder)
    assert ward.contribution("wine#3")["status"] == "quarantined"  # as the list holds it
    card = ward.card("wine@v2")
    opened = card["markdown"].split("## Open quarantines", 1)[1]
    assert "wine#3 (by event #" in opened and "catalog says gated" in opened, opened
    assert "pending review" not in opened, opened
    assert "pending review" not in json.dumps(card["croissant"])
