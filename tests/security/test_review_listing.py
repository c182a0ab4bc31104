"""``review list`` checks every item it shows against the signed ledger, as ``review show`` does.

A catalog writer edits a pending item (a clean record's id, a low score, a benign reason) so that the
reviewer triages past the real trigger records, writes a ``detectors`` value that is not JSON (which
crashed the listing with a traceback), or edits an item out of the queue (its status moved, or the row
deleted). Each is refused with ``integrity_violation`` (exit 7) naming the row; the untampered listing
still answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.access.roles import Action, Scope
from dataward.catalog.projection import insert_row
from dataward.domain.errors import IntegrityViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.security.attacks import sql
from tests.security.test_guarded_reads import cli, make_ward


@pytest.fixture
def held(tmp_path: Path) -> tuple[Ward, str]:
    """The wine ward with one pending review item, ``q_held``, of a held contribution (as a gate run
    flags one)."""
    ward = make_ward(tmp_path)
    held = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 120, shuffled=True)), source="c")
    flagged = ward.read_version("wine", "v1")[1].column("record_id").to_pylist()[0]
    with ward.use_case(Action.GATE_RUN, Scope.dataset("wine")) as uc:
        row = insert_row(
            "quarantine",
            id="q_held",
            contribution_id=held["id"],
            record_id=flagged,
            row=1,
            score=0.97,
            detectors='["triggers"]',
            reason="trigger phrase",
            status="pending",
            decided_by=None,
            decided_at=None,
            decision_reason=None,
        )
        uc.emit("review.flagged", {"contribution": held["id"], "record": flagged}, {}, [row])
    return ward, held["ref"]


def test_the_untampered_queue_is_listed(held: tuple[Ward, str]) -> None:
    ward, ref = held
    for listing in (ward.review_list("wine"), ward.review_list(contribution=ref), ward.review_list(status="all")):
        item = next(i for i in listing if i["id"] == "q_held")
        assert item["score"] == 0.97 and item["detectors"] == ["triggers"] and item["reason"] == "trigger phrase"
    code, _ = cli(ward.folder, "review", "list", "wine")
    assert code == 0


@pytest.mark.parametrize(
    ("edit", "column"),
    [
        ("score = 0.01, reason = 'near duplicate', detectors = '[\"duplicates\"]'", "score is"),
        ("record_id = '" + "ab" * 32 + "'", "record_id is"),
        ("detectors = 'duplicates'", "detectors is"),
    ],
)
def test_an_item_edited_in_the_catalog_is_not_listed(held: tuple[Ward, str], edit: str, column: str) -> None:
    ward, ref = held
    sql(ward, f"UPDATE quarantine SET {edit} WHERE id = 'q_held'")
    for listing in (lambda: ward.review_list("wine"), lambda: ward.review_list(contribution=ref), ward.review_list):
        with pytest.raises(IntegrityViolation, match=f"quarantine q_held.*{column}"):
            listing()
    code, out = cli(ward.folder, "review", "list", "wine")
    assert code == 7 and out["error"] == "integrity_violation", out
    assert out["details"]["row"] == "quarantine q_held"


@pytest.mark.parametrize(
    "edit",
    ["UPDATE quarantine SET status = 'accepted' WHERE id = 'q_held'", "DELETE FROM quarantine WHERE id = 'q_held'"],
)
def test_an_item_edited_out_of_the_queue_is_refused(held: tuple[Ward, str], edit: str) -> None:
    ward, ref = held
    sql(ward, edit)
    for listing in (lambda: ward.review_list("wine"), lambda: ward.review_list(contribution=ref)):
        with pytest.raises(IntegrityViolation, match="q_held"):
            listing()
