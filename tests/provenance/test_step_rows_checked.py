"""Transformation rows against a tampered catalog, played as the attacker: someone who can write the
catalog but does not hold the ward key clears a step's lineage, points its inputs at another version or
deletes its row, so that what the step made from a scraper's records escapes that scraper's quarantine.

Every use that decides from the steps checks them against the signed ledger, a deleted row included,
and refuses with the integrity error: the quarantine (of one contribution and by cause), the loader and
promotion of the derived version after the quarantine, a trace forward or from a record, and the
``transformations`` listing. The untampered ward is served as before (the other provenance tests)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import RECORD_ID, Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_schema_specs
from tests.security.attacks import sql


def _augment(ward: Ward) -> tuple[str, set[str]]:
    """``wine_aug@v1``: 20 records an augmentation made from the scraper's (wine#1's) records. Returns
    the step's id and the parents it read."""
    label, specs = wine_schema_specs()
    ward.create_dataset("wine_aug", Schema.parse(label, specs))
    ward.set_policy("wine_aug", NO_APPROVALS_POLICY)
    _, first = ward.read_version("wine", "v1")
    scraped = set(first.column(RECORD_ID).to_pylist())
    with ward.transform("augment", inputs="wine@v2", output="wine_aug", params={"alcohol": 0.01}) as t:
        rows = [r for r in t.read().to_pylist() if r[RECORD_ID] in scraped][:20]
        t.write([{**r, "alcohol": r["alcohol"] + 0.01} for r in rows], parents=[r[RECORD_ID] for r in rows])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])
    return t.result["transformation"]["id"], {r[RECORD_ID] for r in rows}


def _clear_lineage(ward: Ward, step: str) -> None:
    sql(ward, "UPDATE transformations SET lineage_object=NULL WHERE id=?", step)


def _point_inputs_elsewhere(ward: Ward, step: str) -> None:
    [(inputs,)] = sql(ward, "SELECT inputs FROM transformations WHERE id=?", step)
    moved = [{**i, "version": "b3:" + "0" * 64} for i in json.loads(inputs)]
    sql(ward, "UPDATE transformations SET inputs=? WHERE id=?", json.dumps(moved, sort_keys=True), step)


def _delete(ward: Ward, step: str) -> None:
    sql(ward, "DELETE FROM transformations WHERE id=?", step)


TAMPERING: dict[str, Callable[[Ward, str], None]] = {
    "lineage cleared": _clear_lineage,
    "inputs moved": _point_inputs_elsewhere,
    "row deleted": _delete,
}


def _events(ward: Ward, kind: str) -> int:
    return sql(ward, "SELECT count(*) FROM ledger_events WHERE type=?", kind)[0][0]


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_a_quarantine_refuses_a_step_edited_or_deleted_in_the_catalog(wine_ward: Ward, tamper: str) -> None:
    """Without the check the quarantine rolled back wine and left wine_aug (the step's output) alone."""
    step, _ = _augment(wine_ward)
    TAMPERING[tamper](wine_ward, step)
    with pytest.raises(IntegrityViolation, match=f"transformations {step}"):
        wine_ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    with pytest.raises(IntegrityViolation, match=f"transformations {step}"):
        wine_ward.quarantine_by("principal:scraper", reason="the scraper's key leaked")
    assert _events(wine_ward, "contribution.quarantined") == 0


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_the_loader_and_promotion_refuse_a_step_edited_after_the_quarantine(wine_ward: Ward, tamper: str) -> None:
    """The quarantine was recorded; the attacker then cuts the step out of the catalog so that the
    version it left behind (20 records made from the quarantined ones) loads and promotes again."""
    step, _ = _augment(wine_ward)
    wine_ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    TAMPERING[tamper](wine_ward, step)
    with pytest.raises(IntegrityViolation, match=f"refusing to serve wine_aug@v1.*transformations {step}"):
        wine_ward.load_version("wine_aug", "v1", stage=None)
    with pytest.raises(IntegrityViolation, match=f"transformations {step}"):
        wine_ward.promote("wine_aug@v1", reason="looks clean")


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_a_trace_refuses_a_step_edited_or_deleted_in_the_catalog(wine_ward: Ward, tamper: str) -> None:
    """Forward from the scraper's key and principal, and from a record the step read: without the check
    ``derived_versions`` and ``derived`` answered that nothing was made of them."""
    step, parents = _augment(wine_ward)
    key = wine_ward.trace("principal:scraper")["contributions"][0]["key"]
    TAMPERING[tamper](wine_ward, step)
    for ref in (key, "principal:scraper", sorted(parents)[0]):
        with pytest.raises(IntegrityViolation, match=f"transformations {step}"):
            wine_ward.trace(ref)


def test_a_ward_whose_every_step_was_deleted_is_not_taken_for_one_without_steps(wine_ward: Ward) -> None:
    """A ward that never recorded a step skips the work; one whose catalog lost them all does not."""
    step, _ = _augment(wine_ward)
    wine_ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    sql(wine_ward, "DELETE FROM transformations")
    with pytest.raises(IntegrityViolation, match=f"transformations {step}, recorded in the signed ledger"):
        wine_ward.load_version("wine_aug", "v1", stage=None)


def test_the_listing_refuses_a_step_edited_or_deleted_in_the_catalog(wine_ward: Ward) -> None:
    step, _ = _augment(wine_ward)
    assert [t["id"] for t in wine_ward.transformations("wine_aug")] == [step]
    forged = {"kind": "git", "commit": "c0ffee" * 6 + "c0ff", "dirty": False, "path": "approved.py"}
    sql(wine_ward, "UPDATE transformations SET code=? WHERE id=?", json.dumps(forged, sort_keys=True), step)
    with pytest.raises(IntegrityViolation, match="code is"):
        wine_ward.transformations("wine_aug")
    _delete(wine_ward, step)
    with pytest.raises(IntegrityViolation, match=f"transformations {step}, recorded in the signed ledger"):
        wine_ward.transformations("wine_aug")
