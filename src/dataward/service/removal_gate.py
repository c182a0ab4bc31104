"""The gate for the records a contribution removes: inputs read from the ward, the verdict from
:func:`dataward.gates.removals.assess_removal`, and how it joins the additions' gate report.

A removal is judged against the version it was submitted against (``base_version``): that is the
population it takes records out of. Each of its records is grouped by the source of the contribution
that first added it, so that "removes all of one vendor's data" is visible.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, select

from dataward.catalog.tables import contributions, datasets, sources, versions
from dataward.domain.schema import RECORD_ID, Schema
from dataward.service.guard import checked_manifest
from dataward.service.manifests import load_version
from dataward.service.recordstore import read_ids

if TYPE_CHECKING:
    # Imported where used: the gates package pulls in the detectors (scikit-learn, cleanlab), which a
    # one-shot command that runs no gate (``dataward trace``, ``verify``) should not pay for.
    from dataward.gates import GatePolicy
    from dataward.gates.removals import RemovalReport


def removal_inputs(ward: Any, conn: Connection, c: Any, schema: Schema) -> dict[str, Any] | None:
    """The baseline a removal applies to, which of its records go, and each record's source; None when
    ``c`` removes nothing. ``ward`` gives the store and the signed ledger's key: the base version is
    read as every read is, its rows and manifest checked first."""
    store = ward.store
    removed = set(read_ids(store, c.removed_object))
    if not removed or c.base_version is None:
        return None
    base = conn.execute(select(versions).where(versions.c.id == c.base_version)).one()
    ds = conn.execute(select(datasets).where(datasets.c.id == base.dataset_id)).one()
    table = load_version(conn, store, checked_manifest(ward, conn, ds, base), schema)
    ids = table.column(RECORD_ID).to_pylist()
    origin: dict[str, str] = {}
    for cid in json.loads(base.contributions):
        row = conn.execute(
            select(contributions.c.added_object, sources.c.uri)
            .join(sources, sources.c.id == contributions.c.source_id, isouter=True)
            .where(contributions.c.id == cid)
        ).first()
        if row is None:
            continue
        for rid in read_ids(store, row.added_object):
            origin.setdefault(rid, row.uri or "-")  # the first contribution that added it
    return {
        "baseline": table,
        "removed": np.fromiter((rid in removed for rid in ids), dtype=bool, count=len(ids)),
        "sources": [origin.get(rid, "-") for rid in ids],
        "base_version": base.id,
    }


def judge_removal(
    inputs: dict[str, Any],
    schema: Schema,
    validation: pa.Table | None,
    gate_policy: GatePolicy,
    added: pa.Table | None = None,
) -> RemovalReport:
    """Assess the removal; with a clean validation set, also its effect on held-out accuracy. ``added``:
    the records the same contribution adds, which make the removal a replacement (a transformation
    rewriting records): they are counted back in (``dataward.gates.removals``)."""
    from dataward.gates.removals import RemovalOptions, assess_removal, removal_features

    options = RemovalOptions(max_validation_drop=float(gate_policy.max_validation_drop), seed=int(gate_policy.seed))
    baseline: pa.Table = inputs["baseline"]
    added = added if added is not None and added.num_rows else None
    features = val_x = val_y = added_x = None
    if validation is not None and validation.num_rows > 0 and baseline.num_rows > 0:
        features, val_x, added_x = removal_features(
            baseline, validation, schema, gate_policy.featurizers, seed=int(gate_policy.seed), added=added
        )
        val_y = validation.column(schema.label).to_pylist()
    return assess_removal(
        baseline.column(schema.label).to_pylist(),
        inputs["removed"],
        sources=inputs["sources"],
        features=features,
        validation_features=val_x,
        validation_labels=val_y,
        options=options,
        added_labels=added.column(schema.label).to_pylist() if added is not None else None,
        added_features=added_x,
    )


def removal_only_report(removal: RemovalReport, gate_policy: GatePolicy) -> dict[str, Any]:
    """A gate report (docs/gates.md) for a contribution that only removes records: no record to score."""
    return {
        "verdict": removal.verdict,
        "reasons": list(removal.reasons),
        "mode": "removal",
        "config_hash": gate_policy.config_hash(),
        "policy": gate_policy.to_dict(),
        "counts": {"records": 0, "flagged": 0, "removed": removal.removed},
        "detectors": {},
        "records": [],
        "groups": {},
        "findings": [],
        "removals": removal.to_dict(),
    }


def with_removal(data: dict[str, Any], removal: RemovalReport) -> dict[str, Any]:
    """The additions' report joined with the removal's: the worse verdict wins, reasons from both."""
    from dataward.gates.removals import worse

    data["verdict"] = worse(data["verdict"], removal.verdict)
    data["reasons"] = [*data["reasons"], *removal.reasons]
    data["counts"] = {**data["counts"], "removed": removal.removed}
    data["removals"] = removal.to_dict()
    return data
