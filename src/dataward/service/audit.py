"""Use cases for auditors: read the ledger, and verify that nothing stored was altered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, select

from dataward.access.roles import Action, Scope
from dataward.catalog import ledger_store
from dataward.catalog.projection import TABLES, replay
from dataward.catalog.tables import OPERATIONAL_COLUMNS, chunks, principals, records, versions, ward_meta
from dataward.domain.errors import DatawardError
from dataward.domain.schema import RECORD_ID
from dataward.ledger.events import Event, verify_chain
from dataward.ledger.signing import SignatureVerifier
from dataward.service.core import WardCore
from dataward.service.recordstore import parquet_to_table, version_identity

OBJECT_COLUMNS: dict[str, tuple[str, ...]] = {
    "contributions": ("added_object", "removed_object", "chunk_object"),
    "versions": ("manifest_object",),
    "gate_runs": ("report_object",),
}


@dataclass(frozen=True)
class Problem:
    """One discrepancy found by ``verify``: where it is and what is wrong."""

    area: str
    kind: str
    where: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"area": self.area, "kind": self.kind, "where": self.where, "detail": self.detail}


@dataclass
class VerifyReport:
    """What ``verify`` checked and every problem it found."""

    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "head": self.head,
            "checked": self.checked,
            "problems": [p.to_dict() for p in self.problems],
        }


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


class AuditCases(WardCore):
    """Use cases for auditors: the ledger and ``verify``."""

    def ledger(
        self, *, limit: int | None = None, types: list[str] | None = None, newest_first: bool = True
    ) -> list[dict[str, Any]]:
        """Ledger events (newest first by default), optionally filtered by type prefix."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            events = ledger_store.read_events(uc.conn, types=types, limit=limit, newest_first=newest_first)
            names = {r.id: r.name for r in uc.conn.execute(select(principals.c.id, principals.c.name))}
            return [
                {**e.to_dict(), "actor_name": names.get(e.actor["principal"], e.actor["principal"])} for e in events
            ]

    def ledger_head(self) -> dict[str, Any]:
        """The newest event's sequence number and hash: publish it elsewhere to anchor the chain."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            seq, digest = ledger_store.head(uc.conn)
            return {"seq": seq, "hash": digest, "ward": self.ward_id}

    def verify(self) -> VerifyReport:
        """Re-check the chain, every signature, every object's hash, and that the catalog is exactly
        what the ledger says it should be. Reports every discrepancy."""
        report = VerifyReport()
        with self.use_case(Action.VERIFY, Scope.ward()) as uc:
            events = list(ledger_store.read_events(uc.conn))
            report.head = {
                "seq": events[-1].seq if events else 0,
                "hash": events[-1].hash if events else None,
            }
            self._verify_key(uc.conn, events, report)
            verifier = SignatureVerifier(self.signer.public_key_b64)
            for p in verify_chain(events, verifier):
                report.problems.append(Problem("ledger", p.kind, f"event #{p.seq}", p.detail))
            report.checked["events"] = len(events)
            self._verify_projections(uc.conn, events, report)
            self._verify_records(uc.conn, events, report)
            self._verify_objects(uc.conn, report)
            self._verify_versions(uc.conn, report)
        return report

    def _verify_key(self, conn: Connection, events: list[Event], report: VerifyReport) -> None:
        stored = conn.execute(select(ward_meta.c.value).where(ward_meta.c.key == "public_key")).scalar()
        genesis = events[0].payload.get("public_key") if events else None
        mine = self.signer.public_key_b64
        for name, value in (("catalog", stored), ("first ledger event", genesis)):
            if value != mine:
                report.problems.append(
                    Problem("ledger", "key_mismatch", name, "the ward public key differs from the signing key")
                )

    def _verify_projections(self, conn: Connection, events: list[Event], report: VerifyReport) -> None:
        expected = replay(c for e in events for c in ledger_store.event_changes(e))
        total = 0
        for name, table in TABLES.items():
            skip = OPERATIONAL_COLUMNS.get(name, frozenset())
            key_cols = [c.name for c in table.primary_key.columns]
            actual = {tuple(r._mapping[k] for k in key_cols): dict(r._mapping) for r in conn.execute(select(table))}
            want = expected[name]
            total += len(actual)
            for key in sorted(set(want) - set(actual), key=str):
                report.problems.append(
                    Problem(
                        "catalog",
                        "missing_row",
                        f"{name} {key}",
                        "row in the ledger is missing from the catalog",
                    )
                )
            for key in sorted(set(actual) - set(want), key=str):
                report.problems.append(
                    Problem(
                        "catalog",
                        "extra_row",
                        f"{name} {key}",
                        "row in the catalog was never recorded in the ledger",
                    )
                )
            for key in sorted(set(actual) & set(want), key=str):
                for col, value in want[key].items():
                    if col in skip or actual[key].get(col) == value:
                        continue
                    report.problems.append(
                        Problem(
                            "catalog",
                            "altered_row",
                            f"{name} {key} .{col}",
                            f"catalog has {_short(actual[key].get(col))}, the ledger says {_short(value)}",
                        )
                    )
        report.checked["catalog_rows"] = total

    def _verify_records(self, conn: Connection, events: list[Event], report: VerifyReport) -> None:
        """The record index must be exactly what the submitted chunks say, first writer wins."""
        expected: dict[str, tuple[str, int]] = {}
        for event in events:
            chunk = event.payload.get("chunk") if event.type == "contribution.submitted" else None
            if not chunk:
                continue
            try:
                ids = parquet_to_table(self.store.get(chunk)).column(RECORD_ID).to_pylist()
            except DatawardError:
                continue  # reported by the object check
            for i, rid in enumerate(ids):
                expected.setdefault(rid, (chunk, i))
        located = select(records.c.id, chunks.c.digest, records.c.row).join(chunks, chunks.c.id == records.c.chunk)
        actual = {r.id: (r.digest, int(r.row)) for r in conn.execute(located)}
        report.checked["records"] = len(actual)
        for rid in sorted(set(expected) - set(actual)):
            report.problems.append(Problem("records", "missing_row", f"record {rid}", "record index entry removed"))
        for rid in sorted(set(actual) - set(expected)):
            report.problems.append(
                Problem("records", "extra_row", f"record {rid}", "record index entry not in any chunk")
            )
        for rid in sorted(set(actual) & set(expected)):
            if actual[rid] != expected[rid]:
                report.problems.append(
                    Problem(
                        "records",
                        "altered_row",
                        f"record {rid}",
                        f"points at {actual[rid]}, expected {expected[rid]}",
                    )
                )

    def _referenced_objects(self, conn: Connection) -> Iterator[tuple[str, str]]:
        for name, cols in OBJECT_COLUMNS.items():
            table = TABLES[name]
            for row in conn.execute(select(table)):
                for col in cols:
                    digest = row._mapping[col]
                    if digest:
                        yield digest, f"{name}.{col} of {row._mapping[table.primary_key.columns.keys()[0]]}"

    def _verify_objects(self, conn: Connection, report: VerifyReport) -> None:
        referenced = dict(self._referenced_objects(conn))
        for chunk in conn.execute(select(chunks.c.digest)).scalars():
            referenced.setdefault(chunk, "chunks.digest")
        problems = list(self.store.verify_all(referenced))
        for p in problems:
            where = referenced.get(p.digest, "unreferenced object")
            report.problems.append(Problem("objects", str(p.kind), f"{p.digest} ({where})", p.message))
        report.checked["objects"] = len(referenced)

    def _verify_versions(self, conn: Connection, report: VerifyReport) -> None:
        for row in conn.execute(select(versions)):
            try:
                ids = parquet_to_table(self.store.get(row.manifest_object)).column(RECORD_ID)
            except DatawardError:
                continue  # reported by the object check
            members = sorted(pa.compute.cast(ids, pa.string()).to_pylist())
            if version_identity(row.dataset_id, row.number, row.parent_id, members) != row.id:
                report.problems.append(
                    Problem(
                        "versions",
                        "manifest_mismatch",
                        f"version {row.id}",
                        "manifest does not hash to the version id",
                    )
                )
            if len(members) != row.record_count:
                report.problems.append(
                    Problem(
                        "versions",
                        "count_mismatch",
                        f"version {row.id}",
                        f"{len(members)} ids, catalog says {row.record_count}",
                    )
                )
