"""Why records left a dataset between two versions: the quarantines whose rollback versions lie between them.

A rollback version is made by the last ``contribution.quarantined`` event of a containment (or by a
``records.contained`` event, for a dataset that only holds records derived from the suspect ones); its
payload names the version (``rollback_version``), the contributions rolled out (``rolled_back``), the
containment's subject (``incident``) and the reason. A diff reads them from the ledger so that records
that left a version are never unexplained.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.batched import rows_in
from dataward.catalog.tables import contributions, datasets, ledger_events, principals, versions

ROLLBACK_EVENTS = ("contribution.quarantined", "records.contained")
"""The ledger events that can make a rollback version."""


def rollbacks_between(conn: Connection, dataset_id: str, after: int, upto: int) -> list[dict[str, Any]]:
    """The rollback versions of dataset ``dataset_id`` numbered in ``(after, upto]``, oldest first, each
    ``{version, quarantined, incident, reason, by, at}``: ``quarantined`` the refs of the contributions it
    rolled out (empty when it only contained derived records), ``incident`` what was contained (a
    contribution, ``dw_KEY``, ``principal:NAME`` or ``source:URI``; null for derived records only)."""
    numbers = {
        r.id: r.number
        for r in conn.execute(
            select(versions.c.id, versions.c.number).where(
                versions.c.dataset_id == dataset_id, versions.c.number > after, versions.c.number <= upto
            )
        )
    }
    if not numbers:
        return []
    name = conn.execute(select(datasets.c.name).where(datasets.c.id == dataset_id)).scalar_one()
    found = []
    query = select(ledger_events).where(ledger_events.c.type.in_(ROLLBACK_EVENTS)).order_by(ledger_events.c.seq)
    for event in conn.execute(query):
        payload = json.loads(event.payload)
        made = payload.get("rollback_version")
        if made not in numbers:
            continue
        rolled = payload.get("rolled_back") or []
        refs = {
            r.id: f"{name}#{r.number}"
            for r in rows_in(conn, select(contributions.c.id, contributions.c.number), contributions.c.id, rolled)
        }
        by = conn.execute(select(principals.c.name).where(principals.c.id == event.actor_principal)).scalar()
        found.append(
            {
                "version": f"{name}@v{numbers[made]}",
                "quarantined": [refs.get(c, c) for c in rolled],
                # A containment of derived records names its cause in another dataset: not said here,
                # where the reader may not read that dataset.
                "incident": payload.get("incident") if event.type == "contribution.quarantined" else None,
                "reason": payload.get("reason", ""),
                "by": by or event.actor_principal,
                "at": event.time,
            }
        )
    return found  # in ledger order, which is the versions' order
