"""Whether a version about to be promoted holds exactly the records of the training version it retires.

Promoting such a version is allowed (its contributions, approvals or lineage may differ), but it changes
nothing a model trains on: the promotion says so, so that nobody takes it for the release of new data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import versions
from dataward.service.guard import checked_manifest
from dataward.service.recordstore import summarize_digests


def training_with_same_records(ward: Any, conn: Connection, ds: Any, ver: Any) -> Any | None:
    """The dataset's current ``training`` version row when it is another version holding the same records
    as version row ``ver`` (both manifests checked against the signed ledger), else None."""
    current = conn.execute(
        select(versions).where(versions.c.dataset_id == ds.id, versions.c.stage == "training")
    ).first()
    if current is None or current.id == ver.id or current.record_count != ver.record_count:
        return None
    mine, theirs = checked_manifest(ward, conn, ds, ver), checked_manifest(ward, conn, ds, current)
    same = summarize_digests(mine.ids, mine.valid).records == summarize_digests(theirs.ids, theirs.valid).records
    return current if same else None
