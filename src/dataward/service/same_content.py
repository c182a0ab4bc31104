"""Earlier contributions with the same content as a new one: a re-submission is said, not silently made anew.

A contribution's content hash covers its dataset, the ids it adds and the ids it removes (records are
content hashes), so two contributions share it exactly when they change the same dataset the same way.
Submitting it again is allowed (a contribution is also who sent it, from where, and when), but whoever
sends it, and whoever reviews it, should know that the same change is already on file and where it stands.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import contributions


def same_content_as(
    conn: Connection, dataset_id: str, dataset_name: str, content_hash: str, *, exclude: str
) -> list[dict[str, Any]]:
    """The dataset's other contributions whose content hash is ``content_hash`` (all but ``exclude``),
    oldest first: ``[{contribution: "DATASET#N", status, gate_verdict}]``."""
    found = conn.execute(
        select(contributions.c.number, contributions.c.status, contributions.c.gate_verdict)
        .where(
            contributions.c.dataset_id == dataset_id,
            contributions.c.content_hash == content_hash,
            contributions.c.id != exclude,
        )
        .order_by(contributions.c.number)
    )
    return [
        {"contribution": f"{dataset_name}#{row.number}", "status": row.status, "gate_verdict": row.gate_verdict}
        for row in found
    ]
