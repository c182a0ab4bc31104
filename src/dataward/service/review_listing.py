"""The review queue's listing, checked against the signed ledger.

``review show`` and ``review accept``/``reject`` check the item they act on; the listing a reviewer
triages from is checked the same way: every item it shows (its record id, score, detectors, reason,
status) and the contribution it names must be what the signed ledger's changes made them, and an item
the ledger holds in the listing's scope that the catalog's answer lacks (deleted, or its status moved
so that the filter drops it) is refused as well. A refusal is ``IntegrityViolation`` (exit 7) naming
the row: a forged low score or a benign reason never steers a reviewer, and a malformed row never
reaches the JSON decoder as a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dataward.domain.errors import IntegrityViolation
from dataward.service.guard import SignedCheck

_HINT = "run `dataward verify` to see everything that was altered; restore the catalog from a backup"


def checked_review_rows(
    ward: Any,
    conn: Any,
    found: Sequence[Any],
    *,
    dataset_ids: Iterable[str] | None,
    contribution_id: str | None,
    status: str,
) -> list[Any]:
    """``found`` (rows of ``quarantine`` joined with their contribution's number and dataset name), once
    each row and its contribution agree with the signed ledger and every item the ledger holds in the
    same scope (``contribution_id``, else the datasets ``dataset_ids``, else the whole ward; ``status``
    or ``all``) is among them."""
    check = SignedCheck(ward, conn, doing="list")
    check.rows("quarantine", found)
    check.by_id("contributions", {r.contribution_id for r in found})
    if contribution_id is not None:
        scope: set[str] | None = {contribution_id}
    elif dataset_ids is not None:
        scope = set(check.ids_where("contributions", "dataset_id", set(dataset_ids)))
    else:
        scope = None
    signed = {
        item_id
        for item_id, item in check.state.review.items()
        if (scope is None or item.contribution in scope) and (status == "all" or item.status == status)
    }
    lost = sorted(signed - {r.id for r in found})
    if lost:
        # Deleted, or edited out of the filter: ``by_id`` names the column that differs.
        check.by_id("quarantine", lost)
        raise IntegrityViolation(  # the row agrees but the catalog's join no longer finds it here: moved
            f"refusing to list the review queue: item {lost[0]}, recorded in the signed ledger for this "
            "listing, is not in the catalog's answer",
            hint=_HINT,
            row=f"quarantine {lost[0]}",
        )
    return list(found)
