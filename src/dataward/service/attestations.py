"""``attest``: an in-toto attestation of a version's whole provenance, signed with the ward key."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from dataward.access.roles import Action
from dataward.catalog.tables import ledger_events
from dataward.provenance.attestation import (
    BUILD_TYPE,
    PREDICATE_TYPE,
    SLSA_PROVENANCE,
    STATEMENT_TYPE,
    sign_statement,
)
from dataward.service import rows
from dataward.service.core import Service, WardContext
from dataward.service.guard import SignedCheck, barred_counts, barred_records, checked_manifest, manifest_members
from dataward.service.tracing import _version_facts

if TYPE_CHECKING:
    from dataward.service.datasets import DatasetService
    from dataward.service.tracing import TraceService


def _digest(b3: str | None) -> dict[str, str]:
    """An in-toto digest set from a ``b3:`` hash (BLAKE3-256, lowercase hex)."""
    return {"blake3": b3.removeprefix("b3:")} if b3 else {}


def _events(conn: Connection, types: tuple[str, ...], key: str, value: str) -> list[Any]:
    """Ledger events of ``types`` whose subject names ``key: value``, in order."""
    found = []
    for e in conn.execute(select(ledger_events).where(ledger_events.c.type.in_(types)).order_by(ledger_events.c.seq)):
        if json.loads(e.subject).get(key) == value:
            found.append(e)
    return found


def _event_ref(conn: Connection, e: Any) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "hash": e.hash,
        "type": e.type,
        "time": e.time,
        "by": rows.principal_name(conn, e.actor_principal),
        "key": f"dw_{e.actor_key}" if e.actor_key else None,
        "payload": {k: v for k, v in json.loads(e.payload).items() if k != "changes"},
    }


class AttestationService(Service):
    """Use case ``attest``, built on the facts the trace service gathers."""

    def __init__(self, context: WardContext, datasets: DatasetService, tracing: TraceService) -> None:
        super().__init__(context)
        self.datasets = datasets
        self.tracing = tracing

    def attest(self, ref: str) -> list[dict[str, Any]]:
        """DSSE envelopes (signed by the ward key) of two in-toto statements about ``DATASET@VERSION``'s
        manifest: SLSA provenance v1 and the dataward predicate (see docs/provenance.md). Needs
        ``trace`` on the dataset; the issue is recorded as an ``attestation.issued`` event."""
        name, version = rows.split_ref(ref)
        scope = self.datasets.read_scope(name)
        with self.use_case(Action.TRACE, scope, detail={"ref": ref}) as uc:
            conn = uc.conn
            ds = rows.dataset_row(conn, name)
            ver = rows.version_row(conn, ds.id, name, version)
            statements = self.statements(conn, ds, ver, uc.caller.principal_name, doing="attest")
            envelopes = [sign_statement(s, self.signer.crypto_key()) for s in statements]
            uc.emit(
                "attestation.issued",
                {"dataset": ds.id, "version": ver.id},
                {"manifest": ver.manifest_object, "predicate_types": [s["predicateType"] for s in statements]},
            )
            return envelopes

    def statements(
        self, conn: Connection, ds: Any, ver: Any, by: str | None, *, doing: str = "attest"
    ) -> list[dict[str, Any]]:
        """The unsigned in-toto statements of version ``ver`` of ``ds``, as made by principal ``by``.

        What they state is read from catalog rows checked against the signed ledger first (the dataset,
        the version and its parent, their manifests, every contribution with its source, gates,
        approvals, overrides and transformation, the principals named): a row edited behind the
        ledger's back is refused (``IntegrityViolation``), never signed with the ward key. ``doing``
        names the use case in the refusal."""
        check = SignedCheck(self, conn, doing=doing)
        what = f"{ds.name}@v{ver.number}"
        check.row("datasets", ds, f"dataset {ds.name!r}")
        check.row("versions", ver, what)
        manifest = checked_manifest(self, conn, ds, ver)  # it hashes to the version id it is attested under
        check.people([ver.created_by])
        manifest_bytes = self.store.get(ver.manifest_object)
        subject = [
            {
                "name": f"{ds.name}@v{ver.number}",
                "digest": {**_digest(ver.manifest_object), "sha256": hashlib.sha256(manifest_bytes).hexdigest()},
                "annotations": {"version_id": ver.id, "records": ver.record_count, "dataset_id": ds.id},
            }
        ]
        listed = json.loads(ver.contributions)
        found = check.by_id("contributions", listed, f"{what} (its contributions)")
        members = [found[cid] for cid in listed]
        facts = [self.tracing.contribution_facts(conn, c, doing=doing) for c in members]
        for c, f in zip(members, facts, strict=True):
            f["added_object"], f["removed_object"] = c.added_object, c.removed_object
            f["added"], f["removed"] = c.added_count, c.removed_count
            f["merged"] = [_event_ref(conn, e) for e in _events(conn, ("contribution.merged",), "contribution", c.id)]
        steps = []
        deps: list[dict[str, Any]] = []
        seen_deps: set[str] = set()

        def dep(d: dict[str, Any]) -> None:
            k = json.dumps(d, sort_keys=True)
            if k not in seen_deps:
                seen_deps.add(k)
                deps.append(d)

        for f in facts:
            src = f["source"]
            # Whether the contribution is a step's output is the (checked) step row's to say, never its
            # source URI's: a contribution without one is ordinary, and its raw file is a dependency.
            step_id = f["transformation"]["transformation"] if f["transformation"] else None
            if src and step_id is None:
                dep(
                    {
                        "uri": src["uri"],
                        "digest": _digest(src["raw_hash"]),
                        "annotations": {
                            "kind": "source",
                            "fetched_at": src["fetched_at"],
                            "licence": src["licence"],
                        },
                    }
                )
            if step_id is not None:
                step = check.by_id("transformations", [step_id], f"{what} (its transformations)")[step_id]
                inputs = json.loads(step.inputs)
                steps.append(
                    {
                        **self.tracing.step_facts(conn, step),
                        "inputs": inputs,
                        "lineage_object": step.lineage_object,
                        "lineage_pairs": step.lineage_count,
                    }
                )
                for i in inputs:
                    dep(
                        {
                            "name": i["ref"],
                            "digest": _digest(i["manifest"]),
                            "annotations": {"kind": "input_version", "version_id": i["version"]},
                        }
                    )
        parent = None
        if ver.parent_id:
            parent = check.by_id("versions", [ver.parent_id], f"{what} (its parent)")[ver.parent_id]
            dep(
                {
                    "name": f"{ds.name}@v{parent.number}",
                    "digest": _digest(parent.manifest_object),
                    "annotations": {"kind": "parent_version", "version_id": parent.id},
                }
            )
        stage_events = [
            _event_ref(conn, e) for e in _events(conn, ("version.promoted", "version.retired"), "version", ver.id)
        ]
        version_facts = {
            "ref": f"{ds.name}@v{ver.number}",
            "id": ver.id,
            "number": ver.number,
            "parent": ver.parent_id,
            "manifest": ver.manifest_object,
            "records": ver.record_count,
            "stage": ver.stage,
            "created_at": ver.created_at,
            "created_by": rows.principal_name(conn, ver.created_by),
        }
        ward = {"id": self.ward_id, "public_key": self.signer.public_key_b64}
        head = _head(conn)
        slsa = {
            "_type": STATEMENT_TYPE,
            "subject": subject,
            "predicateType": SLSA_PROVENANCE,
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE,
                    "externalParameters": {
                        "dataset": ds.name,
                        "version": ver.number,
                        "contributions": [f["ref"] for f in facts],
                    },
                    # The head ties this statement to the dataward one of the same issue (verify_bundle).
                    "internalParameters": {"policy_hash": ds.policy_hash, "ward": self.ward_id, "ledger_head": head},
                    "resolvedDependencies": deps,
                },
                "runDetails": {
                    "builder": {"id": f"dataward:ward:{self.ward_id}"},
                    "metadata": {"invocationId": ver.id, "finishedOn": ver.created_at},
                },
            },
        }
        governance = {
            "_type": STATEMENT_TYPE,
            "subject": subject,
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "ward": ward,
                "dataset": {"name": ds.name, "id": ds.id, "policy_hash": ds.policy_hash},
                "version": version_facts,
                "sources": [d for d in deps if d["annotations"]["kind"] == "source"],
                "contributions": facts,
                "transformations": steps,
                "version_approvals": _version_facts(conn, ver, check)["approvals"],
                "promotions": stage_events,
                "barred_records": self._barred(conn, ds, ver, manifest),
                "attested_by": by,
                "ledger_head": head,
            },
        }
        return [slsa, governance]

    def _barred(self, conn: Connection, ds: Any, ver: Any, manifest: Any) -> list[dict[str, Any]]:
        """The records of the version that must never reach training, counted by reason, as the loader
        works them out when it refuses the version (``guard.barred_records``, against the signed ledger):
        a version every contribution of which was merged may still hold records made from a quarantined
        contribution's, and what is signed about it must say so. Empty when the loader serves it."""
        members = manifest_members(manifest)
        return barred_counts(
            barred_records(conn, self.store, ds, ver, members, (self.signer.public_key_b64, self.ward_id))
        )


def _head(conn: Connection) -> dict[str, Any]:
    """The ledger head the attestation was made at: anchor it with a checkpoint to prove later events."""
    e = conn.execute(select(ledger_events.c.seq, ledger_events.c.hash).order_by(ledger_events.c.seq.desc())).first()
    return {"seq": e.seq, "hash": e.hash} if e else {"seq": 0, "hash": None}


__all__ = ["AttestationService"]
