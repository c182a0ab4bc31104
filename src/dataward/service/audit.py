"""Use cases for auditors: read the ledger, and verify that nothing stored was altered."""

from __future__ import annotations

import functools
import gc
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from dataward.access.removals import Removals
from dataward.access.roles import Action, Scope
from dataward.catalog import ledger_store
from dataward.catalog.projection import TABLES, replay_stored
from dataward.catalog.tables import (
    OPERATIONAL_COLUMNS,
    api_keys,
    chunks,
    contributions,
    datasets,
    grants,
    model_versions,
    principals,
    versions,
    ward_meta,
)
from dataward.domain.errors import DatawardError
from dataward.domain.limits import within_range
from dataward.domain.schema import RECORD_ID
from dataward.ledger.checkpoint import Checkpoint, extension
from dataward.ledger.events import (
    SIGNATURE_SPACING,
    Event,
    StoredEvent,
    decode_stored,
    signatures_checked,
    stored_int,
    verify_stored,
)
from dataward.ledger.removal_line import RemovalLine
from dataward.ledger.signing import SignatureVerifier, key_fingerprint, parse_public_key
from dataward.service.checkpoints import read_folder, read_witness
from dataward.service.clock_check import clock_behind, times_set_back
from dataward.service.config import CHECKPOINTS_DIR, REMOVALS_FILE, WardConfig
from dataward.service.core import Service
from dataward.service.ledger_mark import Seen
from dataward.service.removal_list import ListRead, read_list
from dataward.service.signed_witness import SignedWitness, disagreement, signed_witness, uncovered, unreachable

if TYPE_CHECKING:
    import numpy as np

    from dataward.catalog import record_index

# The record, holder and version checks of `verify` import their table code (numpy, pyarrow) when they
# run: reading the ledger's head or its newest events, the commands run most, needs none of it.

OBJECT_COLUMNS: dict[str, tuple[str, ...]] = {
    "contributions": ("added_object", "removed_object", "chunk_object"),
    "versions": ("manifest_object",),
    "gate_runs": ("report_object",),
    "transformations": ("lineage_object",),
    "model_versions": ("manifest_object", "files_object", "signature_object", "attestation_object"),
    "model_gates": ("report_object",),
}


@dataclass(frozen=True)
class Problem:
    """One discrepancy found by ``verify``: where it is and what is wrong (``event``: the ledger event
    it names, when it names one)."""

    area: str
    kind: str
    where: str
    detail: str
    event: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "kind": self.kind, "where": self.where, "detail": self.detail, "event": self.event}


@dataclass
class VerifyReport:
    """What ``verify`` checked, what it was anchored to, and every problem it found."""

    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)
    anchor: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_event(self) -> int | None:
        """The lowest-numbered ledger event that is missing, rewritten, altered or mis-signed."""
        named = [p.event for p in self.problems if p.event is not None]
        return min(named) if named else None

    def grouped(self) -> list[tuple[str, str, list[Problem]]]:
        """The problems as ``(area, kind, problems)``, causes first: the ledger and its checkpoints, then
        stored objects, then what the catalog derives from them. One altered chunk makes one ``objects``
        problem and a record-index problem for each of its records; the cause must not come last."""
        groups: dict[tuple[str, str], list[Problem]] = {}
        for problem in self.problems:
            groups.setdefault((problem.area, problem.kind), []).append(problem)
        rank = {area: i for i, area in enumerate(CAUSE_ORDER)}
        ordered = sorted(groups.items(), key=lambda item: (rank.get(item[0][0], len(rank)), -len(item[1])))
        return [(area, kind, found) for (area, kind), found in ordered]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "head": self.head,
            "anchor": self.anchor,
            "checked": self.checked,
            "first_bad_event": self.first_bad_event,
            "summary": [{"area": a, "kind": k, "count": len(found)} for a, k, found in self.grouped()],
            "problems": [p.to_dict() for p in self.problems],
            "warnings": self.warnings,
        }


CAUSE_ORDER = ("ledger", "checkpoint", "removals", "objects", "versions", "catalog", "holders", "records")
"""Areas of ``verify``'s problems from cause to consequence (``VerifyReport.grouped``)."""


def _stretch(first: int | None, last: int) -> str:
    return f"event #{last} was" if first == last else f"events #{first} to #{last} were"


def _named(cp: Checkpoint) -> str:
    """How a problem names what it was anchored by: a checkpoint, or (unsigned) what this process saw."""
    return f"the checkpoint {cp.source}" if cp.sig else f"{cp.source} (remembered by this process)"


def _unheld_why(added: str | None) -> tuple[str, str]:
    """The kind of problem, and why, of a quarantine on the list of removals that the restored catalog
    lost, whose records' id list the list does not name (``added`` is ``None``) or the store lacks."""
    if added is None:
        return "unheld_quarantine", (
            "the list names no id list of its records: the same records contributed again would not be held "
            "back. Review new contributions from its source"
        )
    return "unreadable_quarantine", (
        f"the object store lacks its id list {added}: contributions adding records, merges, and serving or "
        "promoting a version are refused in every dataset its records could be of (its own and those of the "
        "same encoding; any, when the restored catalog does not hold its dataset) until the object is back. "
        "Put it back from a backup of the object store"
    )


def _of_dataset(state: Removals, contribution: str, names: dict[str, str]) -> str:
    """Which dataset the list of removals (``state``) says the quarantined ``contribution`` was of, by the
    restored catalog's name for it (``names``) when it holds that dataset."""
    dataset = state.quarantined_in.get(contribution)
    if dataset is None:
        return ", of a dataset the list does not name"
    if dataset in names:
        return f", of dataset {names[dataset]}"
    return f", of dataset {dataset} (which the restored catalog does not hold either)"


def _row_key(key: tuple[Any, ...]) -> str:
    """A catalog row's primary key as a person reads it (``c_…``, not ``('c_…',)``), as guarded reads
    name rows (``contributions c_…``)."""
    return " ".join(str(part) for part in key)


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _two_training(expected: dict[str, dict[tuple[Any, ...], dict[str, Any]]], report: VerifyReport) -> None:
    """A dataset the signed ledger holds two or more versions of at stage ``training`` (a promotion that
    read a catalog edited to hide the current one): every row can agree with its event while every gate
    of the dataset is refused, so the ledger's state itself is checked, not only the catalog against it."""
    by_dataset: dict[Any, list[dict[str, Any]]] = {}
    for row in expected["versions"].values():
        if row.get("stage") == "training":
            by_dataset.setdefault(row.get("dataset_id"), []).append(row)
    for dataset_id, found in sorted(by_dataset.items(), key=lambda item: str(item[0])):
        if len(found) < 2:
            continue
        name = (expected["datasets"].get((dataset_id,)) or {}).get("name", dataset_id)
        found.sort(key=lambda r: int(r.get("number") or 0))
        shown = ", ".join(f"{name}@v{r.get('number')}" for r in found)
        report.problems.append(
            Problem(
                "versions",
                "two_training",
                f"dataset {name}",
                f"the signed ledger holds {len(found)} versions at stage training ({shown}): every gate of "
                f"{name!r} is refused. An owner retires the older one, signed: dataward promote "
                f"{name}@v{found[0].get('number')} --stage retired --reason '...' (or promotes the one to keep again)",
            )
        )


class AuditService(Service):
    """Use cases for auditors: the ledger and ``verify``."""

    def ledger(
        self, *, limit: int | None = None, types: list[str] | None = None, newest_first: bool = True
    ) -> list[dict[str, Any]]:
        """Ledger events (newest first by default), optionally filtered by type prefix."""
        if limit is not None:
            within_range(limit, "limit", 0, 2**62)  # SQL integers are 64-bit
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            events = ledger_store.read_events(uc.conn, types=types, limit=limit, newest_first=newest_first)
            names = {r.id: r.name for r in uc.conn.execute(select(principals.c.id, principals.c.name))}
            return [
                {**e.to_dict(), "actor_name": names.get(e.actor["principal"], e.actor["principal"])} for e in events
            ]

    def ledger_head(self) -> dict[str, Any]:
        """The newest event's sequence number and hash (``checkpoint`` signs one that ``verify`` checks)."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            seq, digest = ledger_store.head(uc.conn)
            return {"seq": seq, "hash": digest, "ward": self.ward_id}

    def ledger_export(self) -> dict[str, Any]:
        """The whole chain in sequence order, with the ward id and public key: what a verifier in any
        language re-checks (docs/ledger-format.md)."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            events = [e.to_dict() for e in ledger_store.read_events(uc.conn)]
        return {
            "type": "dataward.ledger",
            "format": 1,
            "ward": self.ward_id,
            "public_key": self.signer.public_key_b64,
            "events": events,
        }

    def verify(
        self,
        *,
        checkpoints: Sequence[Checkpoint] = (),
        public_key: str | None = None,
        all_signatures: bool = False,
        jobs: int = 1,
    ) -> VerifyReport:
        """Re-check the chain (every event's link and hash), its signatures, every object's hash, and
        that the catalog is exactly what the ledger says it should be; and that the ledger extends
        every checkpoint: those given, those kept in the ward, and the witness copies. Reports every
        discrepancy.

        Signatures: by default those of every ``SIGNATURE_SPACING``-th event and of the last one, each
        of which covers every event before it through the hash chain (every signature is checked as
        soon as anything is wrong); ``all_signatures`` checks each event's own signature as well.

        ``public_key`` (base64 raw Ed25519) pins the ward key: signatures of events and checkpoints
        are then checked against it and never against a key read from the ward.

        ``jobs=2`` checks part of a long chain in a forked child process while this one reads the
        payloads of the other part (``verify_stored``): the same checks and report, in less time where
        a second core is free. Opt-in: a process that runs other threads (a server) should not fork.
        """
        if public_key is not None:
            # A pinned key is the caller's input (a served ward's request body): anything but an
            # Ed25519 key is refused here, before the chain is read.
            public_key = parse_public_key(public_key, source="the pinned public key")
        report = VerifyReport()
        # The newest head this process knows of, taken before the read begins (``ledger_mark``).
        remembered = self.context.mark.floor()
        # The list of access removals as it stood before the read began: each of its lines names an event
        # the read's snapshot must hold (``service/removal_check.py``).
        listed_before = read_list(self.folder / REMOVALS_FILE, self.signer.public_key_b64, self.ward_id)
        known_before = self.context.removals.known_lines()
        with self.use_case(Action.VERIFY, Scope.ward()) as uc, _collector_paused():
            rows = ledger_store.read_stored(uc.conn)
            # Only the first event is made whole (the key check reads it); the checks after the chain
            # check read the rows' payloads (stored_facts), the checkpoint check their seq and hash.
            first = decode_stored(rows[0], damaged={}) if rows else None
            report.head = {
                "seq": stored_int(rows[-1][0]) if rows else 0,
                "hash": rows[-1][2] if rows else None,
            }
            trusted = public_key or self.signer.public_key_b64
            report.anchor = {
                "key": "pinned" if public_key else "ward",
                "fingerprint": key_fingerprint(trusted),
            }
            self._verify_key(uc.conn, first, report, pinned=public_key)
            report.warnings += times_set_back((stored_int(row[0]), row[3]) for row in rows)
            verifier = SignatureVerifier(trusted)
            every = 1 if all_signatures else SIGNATURE_SPACING
            exact = bytearray(len(rows))
            early: list[tuple[int, ledger_store.StoredFacts]] = []
            # The first k rows' payloads, read while a child process checks the rest (jobs=2).
            meanwhile = functools.partial(_early_facts, rows, exact, early)
            chain = verify_stored(
                rows, verifier, self.ward_id, signature_every=every, exact=exact, jobs=jobs, meanwhile=meanwhile
            )
            for p in chain:
                report.problems.append(Problem("ledger", p.kind, f"event #{p.seq}", p.detail, p.seq))
            # Not refused here (verify is how a ward with a wrong clock is looked at), but said; a newest
            # event the chain check found altered is that problem, not a clock to set right.
            newest = stored_int(rows[-1][0]) if rows else 0
            behind = clock_behind(rows[-1][3], uc.now) if rows else None
            if behind is not None and not any(p.seq == newest for p in chain):
                report.warnings.append(f"{behind}; every other command is refused until it is set right")
            report.checked["events"] = len(rows)
            report.checked["signatures"] = len(rows) if chain else signatures_checked(len(rows), every)
            report.anchor["signatures"] = (
                "every event" if every == 1 else f"every {every}th event and the last, covering the chain"
            )
            # The witness as the ledger names it, read in this transaction: never ward.json's, a file
            # the ward folder's writers can edit to switch the witness off.
            witness = signed_witness(uc.conn)
            self._verify_checkpoints(rows, checkpoints, verifier, report, remembered=remembered, witness=witness)
            self._verify_removals(uc.conn, rows, trusted, report, witness, listed_before, known_before)
            if early and not chain:
                k, head = early[0]
                rest = ledger_store.stored_facts(rows[k:], exact[k:])
                facts = ledger_store.StoredFacts(head.changes + rest.changes, head.chunks + rest.chunks)
            else:
                facts = ledger_store.stored_facts(rows, exact)
            del rows
            self._verify_projections(uc.conn, facts, report)
            self._verify_records(uc.conn, facts, report)
            self._verify_holders(uc.conn, report)
            self._verify_objects(uc.conn, report)
            self._verify_versions(uc.conn, report)
        return report

    def _verify_key(self, conn: Connection, first: Event | None, report: VerifyReport, *, pinned: str | None) -> None:
        """The ward's key (its file, the catalog, the first event) must be the trusted key, and the
        ward id the same everywhere the ward states it."""
        stored = conn.execute(select(ward_meta.c.value).where(ward_meta.c.key == "public_key")).scalar()
        genesis = _get(first.payload, "public_key") if first is not None and first.seq == 1 else None
        sources = [("catalog", stored), ("first ledger event", genesis)]
        if pinned is not None:
            sources.insert(0, ("ward signing key", self.signer.public_key_b64))
        trusted = pinned or self.signer.public_key_b64
        for name, value in sources:
            if value != trusted:
                report.problems.append(
                    Problem(
                        "ledger",
                        "key_mismatch",
                        name,
                        f"the ward public key differs from the {'pinned' if pinned else 'signing'} key "
                        f"{key_fingerprint(trusted)}",
                    )
                )
        stored_id = conn.execute(select(ward_meta.c.value).where(ward_meta.c.key == "ward_id")).scalar()
        genesis_id = _get(first.subject, "ward") if first is not None and first.seq == 1 else None
        for name, value in (("catalog", stored_id), ("first ledger event", genesis_id)):
            if value != self.ward_id:
                report.problems.append(
                    Problem("ledger", "ward_mismatch", name, f"ward id {value!r} differs from {self.ward_id!r}")
                )

    def _verify_checkpoints(
        self,
        rows: Sequence[StoredEvent],
        given: Sequence[Checkpoint],
        verifier: SignatureVerifier,
        report: VerifyReport,
        *,
        remembered: Seen | None = None,
        witness: SignedWitness | None = None,
    ) -> None:
        """The ledger must extend every checkpoint that verifies under the trusted key, and the newest
        head this process saw (``remembered``: the process's ledger mark, a head it read or the kept
        checkpoint it started from), which counts as a checkpoint without a signature.

        ``witness`` is the location the ledger's newest signed ``ward.witness_set`` names; its copies
        are read from there, never from where ``ward.json`` points (a file the ward folder's writers
        edit), and a witness that cannot be read or holds nothing since it was set fails the check."""
        kept = read_folder(self.folder / CHECKPOINTS_DIR, label="kept checkpoint")
        found = [*given, *kept.checkpoints]
        unreadable = list(kept.unreadable)
        witness = witness or SignedWitness(None, 0)
        witnessed: set[tuple[str, int, str, str]] | None = None
        mismatch = disagreement(witness, WardConfig.load(self.folder).witness)
        if mismatch:
            report.problems.append(Problem("checkpoint", "witness_mismatch", "ward.json", mismatch))
        if witness.location:
            report.anchor["witness"] = {"location": witness.location, "set_by_event": witness.seq}
            try:
                copies = read_witness(witness.location, self.ward_id)
            except (OSError, ValueError) as exc:
                report.problems.append(
                    Problem(
                        "checkpoint",
                        "witness_unreachable",
                        f"witness {witness.location}",
                        unreachable(witness, str(exc)),
                    )
                )
            else:
                found += copies.checkpoints
                unreadable += copies.unreadable
                witnessed = {(c.ward, c.seq, c.head, c.sig) for c in copies.checkpoints}
        for where, why in unreadable:
            report.problems.append(Problem("checkpoint", "unreadable", where, why))
        seen: set[tuple[str, int, str, str]] = set()
        valid: list[Checkpoint] = []
        for cp in found:
            identity = (cp.ward, cp.seq, cp.head, cp.sig)
            if identity in seen:
                continue
            seen.add(identity)
            if cp.ward != self.ward_id:
                report.problems.append(
                    Problem(
                        "checkpoint",
                        "wrong_ward",
                        cp.source,
                        f"the checkpoint is of ward {cp.ward}, this ward is {self.ward_id}",
                    )
                )
            elif not cp.verify_signature(verifier):
                report.problems.append(
                    Problem(
                        "checkpoint",
                        "bad_signature",
                        cp.source,
                        f"the checkpoint of event #{cp.seq} is not signed by the key "
                        f"{key_fingerprint(verifier.public_key_b64)} (forged or altered); it proves nothing",
                    )
                )
            else:
                valid.append(cp)
        report.checked["checkpoints"] = len(valid)
        if witness.location and witnessed is not None:
            held = [c for c in valid if (c.ward, c.seq, c.head, c.sig) in witnessed]
            if (empty := uncovered(witness, held)) is not None:
                report.problems.append(Problem("checkpoint", "witness_behind", f"witness {witness.location}", empty))
        mark = remembered
        if mark is not None and (mark.seq <= 0 or any(c.seq == mark.seq and c.head == mark.hash for c in valid)):
            mark = None
        hashes = {stored_int(row[0]): row[2] for row in rows} if valid or mark else {}
        outcomes = [(cp, extension(cp, hashes)) for cp in sorted(valid, key=lambda c: c.seq)]
        if mark is not None:
            # Not signed: this process read it from this catalog (or from a kept checkpoint it checked).
            # Listed only when the ledger no longer extends it, so that a sound ward's report is the same
            # from any process.
            unsigned = Checkpoint(self.ward_id, mark.seq, mark.hash, mark.time, "", source=mark.source)
            if (ext := extension(unsigned, hashes)).status != "extends":
                outcomes = sorted([*outcomes, (unsigned, ext)], key=lambda item: item[0].seq)
        report.anchor["checkpoints"] = [
            {"source": cp.source, "seq": cp.seq, "head": cp.head, "time": cp.time, "status": ext.status}
            for cp, ext in outcomes
        ]
        head_seq = stored_int(rows[-1][0]) if rows else 0
        missing = [(cp, ext) for cp, ext in outcomes if ext.status == "missing"]
        if missing:
            # One problem for the whole deleted stretch, anchored by the newest checkpoint covering it.
            cp, ext = missing[-1]
            report.problems.append(
                Problem(
                    "ledger",
                    "missing",
                    f"event #{ext.first_bad}",
                    f"{_stretch(ext.first_bad, cp.seq)} deleted: {_named(cp)} of {cp.time} "
                    f"covers {cp.seq} events, the ledger ends at #{head_seq}",
                    ext.first_bad,
                )
            )
        extended = [cp.seq for cp, ext in outcomes if ext.status == "extends"]
        for cp, ext in outcomes:
            if ext.status != "rewritten":
                continue
            after = max((n for n in extended if n < cp.seq), default=0)
            report.problems.append(
                Problem(
                    "ledger",
                    "rewritten",
                    f"event #{cp.seq}",
                    f"{_named(cp)} of {cp.time} says event #{cp.seq} hashes to {cp.head}, the ledger "
                    f"has {ext.found_hash}: history was rewritten after event #{after} and at or before #{cp.seq}",
                    cp.seq,
                )
            )

    def _verify_removals(
        self,
        conn: Connection,
        rows: Sequence[StoredEvent],
        trusted: str,
        report: VerifyReport,
        witness: SignedWitness,
        before: ListRead,
        known: list[RemovalLine],
    ) -> None:
        """The list of access removals (``service/removal_check.py``): signed and whole, holding every
        removal the ledger does since it began and every copy the witness holds; an access removal it
        holds that the ledger lost (the catalog was restored from before it) is reported with the
        command that records it again. Also warns when nothing anchors the ledger against a rollback:
        no kept checkpoint in this (state) folder."""
        from dataward.access.removals import REMOVAL_TYPES
        from dataward.service.checkpoints import checkpointed, read_witness_removals, state_warnings
        from dataward.service.removal_check import check_removals

        copies = None
        if witness.location:
            try:
                copies = read_witness_removals(witness.location, self.ward_id)
            except (OSError, ValueError):
                copies = None  # reported once already, as the checkpoints' witness_unreachable
        read = ledger_store.read_events(
            conn, types=["key.", "principal.", "grant.", "contribution.quarantined", "model.withdrawn"]
        )
        events = [e for e in read if e.type in REMOVAL_TYPES]
        names = {r.id: r.name for r in conn.execute(select(principals.c.id, principals.c.name))}
        # A quarantine the catalog lost is named by its contribution, as `quarantine` takes it.
        dataset_names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
        for r in conn.execute(select(contributions.c.id, contributions.c.dataset_id, contributions.c.number)):
            names[r.id] = f"{dataset_names.get(r.dataset_id, r.dataset_id)}#{r.number}"
        # A withdrawal the catalog lost is named by its model version, as `model withdraw` takes it.
        for r in conn.execute(select(model_versions.c.id, model_versions.c.model, model_versions.c.number)):
            names[r.id] = f"{r.model}@v{r.number}"
        # What the catalog holds: a removal of something it never held cannot be recorded again.
        held = set(names)
        held.update(conn.execute(select(api_keys.c.id)).scalars())
        held.update(conn.execute(select(grants.c.id)).scalars())
        found = check_removals(
            before,
            read_list(self.folder / REMOVALS_FILE, trusted, self.ward_id),
            trusted,
            self.ward_id,
            {stored_int(row[0]): row[2] for row in rows},
            events,
            remembered=known,
            witness_lines=copies,
            names=names,
            held=held,
        )
        report.checked["removals"] = found.lines
        for kind, where, detail in found.problems:
            report.problems.append(Problem("removals", kind, where, detail))
        for kind, where, detail in self._unheld_quarantines(found.listed, held, dataset_names):
            report.problems.append(Problem("removals", kind, where, detail))
        self._unheld_near_copies(found.listed, held, report)
        report.warnings.extend(found.warnings)
        report.warnings.extend(state_warnings(self.folder, checkpointed(conn)))

    def _unheld_quarantines(
        self, state: Removals, held: set[str], dataset_names: dict[str, str]
    ) -> list[tuple[str, str, str]]:
        """``(kind, where, detail)`` for each quarantine the list holds (``state``) whose contribution the
        catalog does not hold (restored from before it) and whose records the ward cannot tell: the list
        names no id list of them (a line written before it did: ``unheld_quarantine``, they are not held
        back), or the store lacks it (deleted, or put back from an older backup: ``unreadable_quarantine``;
        what could take or serve its records is refused until it is back, ``guard.refuse_unheld_quarantines``)."""
        out = []
        for contribution, fact in state.quarantined.items():
            added = state.quarantined_lists.get(contribution)
            if contribution in held or (added is not None and self.store.exists(added)):
                continue
            what = f"contribution {contribution}, quarantined by event #{fact.seq} ({fact.time}),"
            what += f" is not in the restored catalog{_of_dataset(state, contribution, dataset_names)}"
            kind, why = _unheld_why(added)
            out.append((kind, f"event #{fact.seq}", f"{what}, and {why}"))
        return out

    def _unheld_near_copies(self, state: Removals, held: set[str], report: VerifyReport) -> None:
        """For each quarantine the list holds (``state``) whose contribution the catalog does not hold and
        whose id list the store has: a problem (``unreadable_quarantine``) when a chunk the list names as
        holding its records is missing or altered (contributions to a dataset with text columns are
        refused until it is put back: their near copies cannot be looked for), and a warning when its line
        names no chunk (written before format 4: exact copies are held back, near copies are not)."""
        for contribution, fact in state.quarantined.items():
            added = state.quarantined_lists.get(contribution)
            if contribution in held or added is None or not self.store.exists(added):
                continue  # known to the catalog, or reported by _unheld_quarantines
            what = f"contribution {contribution}, quarantined by event #{fact.seq} ({fact.time}),"
            chunks = state.chunks_of(added)
            if chunks is None:
                report.warnings.append(
                    f"{what} is not in the restored catalog and the list of removals names no chunk of its "
                    "records (its line predates format 4): the same records contributed again are held back, "
                    "but not their near copies (the same text re-spaced); review new contributions from its source"
                )
                continue
            bad = [chunk for chunk in chunks if not self.store.verify(chunk)]
            if bad:
                report.problems.append(
                    Problem(
                        "removals",
                        "unreadable_quarantine",
                        f"event #{fact.seq}",
                        f"{what} is not in the restored catalog, and the store lacks or holds an altered copy "
                        f"of {', '.join(bad)}, a chunk the list of removals names as holding its records: "
                        "contributions to a dataset with text columns are refused (their near copies of those "
                        "records cannot be looked for). Put the object back from a backup",
                    )
                )

    def _verify_projections(self, conn: Connection, facts: ledger_store.StoredFacts, report: VerifyReport) -> None:
        expected = replay_stored(facts.changes)
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
                        f"{name} {_row_key(key)}",
                        "row in the ledger is missing from the catalog",
                    )
                )
            for key in sorted(set(actual) - set(want), key=str):
                report.problems.append(
                    Problem(
                        "catalog",
                        "extra_row",
                        f"{name} {_row_key(key)}",
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
                            f"{name} {_row_key(key)} .{col}",
                            f"catalog has {_short(actual[key].get(col))}, the ledger says {_short(value)}",
                        )
                    )
        report.checked["catalog_rows"] = total
        _two_training(expected, report)

    def _verify_records(self, conn: Connection, facts: ledger_store.StoredFacts, report: VerifyReport) -> None:
        """The record index must be exactly what the submitted chunks say, first writer wins."""
        # Expected: every submitted chunk's ids in submission order, then only each id's first entry.
        # A chunk submitted again adds nothing (its ids all came first in its first submission), so
        # each chunk is read once.
        import numpy as np

        from dataward.catalog import record_index
        from dataward.store.tables import read_parquet_bytes

        chunk_names: list[str] = []
        parts: list[tuple[np.ndarray, int]] = []
        unreadable: set[str] = set()
        for chunk in dict.fromkeys(c for c in facts.chunks if isinstance(c, str)):
            try:
                # Only the id column is decoded: the object check re-hashes the whole chunk anyway.
                ids = read_parquet_bytes(self.store.get(chunk), [RECORD_ID]).column(RECORD_ID)
            except DatawardError:
                unreadable.add(chunk)  # reported by the object check; its index entries once, below
                continue
            binary, _ = record_index.ids_to_binary(ids)
            parts.append((binary, len(chunk_names)))
            chunk_names.append(chunk)
        want = _index_entries(parts)
        first = record_index.first_occurrences(want.binary)
        want = record_index.Entries(want.binary[first], want.chunks[first], want.rows[first])
        # Actual: every block of the index, each checked on its own so one damaged block names itself.
        digests = {int(r.id): r.digest for r in conn.execute(select(chunks.c.id, chunks.c.digest))}
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for bits, prefix, chunk_id, entries in record_index.iter_blocks(conn):
            if entries is None:
                where = f"index block {prefix}/{bits} of chunk {digests.get(chunk_id, chunk_id)}"
                report.problems.append(Problem("records", "altered_row", where, "its ids and rows do not pair up"))
                continue
            misplaced = record_index.prefixes(entries.binary, bits) != prefix
            if misplaced.any():
                rid = record_index.binary_to_ids(entries.binary[misplaced][:1])[0].as_py()
                report.problems.append(
                    Problem("records", "altered_row", f"record {rid}", f"filed under id prefix {prefix}, not its own")
                )
            blocks.append((entries.binary, np.full(len(entries), chunk_id, dtype=np.int64), entries.rows))
        have = record_index.Entries(
            np.concatenate([b[0] for b in blocks]) if blocks else np.zeros((0, record_index.ID_BYTES), np.uint8),
            np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, np.int64),
            np.concatenate([b[2] for b in blocks]) if blocks else np.zeros(0, np.int64),
        )
        report.checked["records"] = len(have)
        found = record_index.match(have.binary, want.binary)
        known = record_index.match(want.binary, have.binary)
        missing = np.flatnonzero(found < 0)
        extra = np.flatnonzero(known < 0)
        both = np.flatnonzero(known >= 0)
        expected_at = known[both]
        # Chunk ids of the index as numbers into ``chunk_names`` (-1: a chunk no submission wrote).
        position = {name: i for i, name in reversed(list(enumerate(chunk_names)))}
        named = np.full(max(digests, default=0) + 1, -1, dtype=np.int64)
        for chunk_id, digest in digests.items():
            named[chunk_id] = position.get(digest, -1)
        # A chunk id no chunk row has (negative ones too: they must not index ``named`` from its end).
        known_id = (have.chunks >= 0) & (have.chunks < len(named))
        have_named = np.where(known_id, named[np.clip(have.chunks, 0, len(named) - 1)], -1)
        where_ok = (have_named[both] == want.chunks[expected_at]) & (have.rows[both] == want.rows[expected_at])
        altered = both[~where_ok]

        def names(binary: np.ndarray) -> list[str]:
            return record_index.binary_to_ids(binary).to_pylist()

        for rid in sorted(names(want.binary[missing])):
            report.problems.append(Problem("records", "missing_row", f"record {rid}", "record index entry removed"))
        # Entries into a chunk that cannot be read are one problem per chunk (the object check names the
        # cause), not one "not in any chunk" per record of it.
        extra_chunks = np.array([digests.get(int(c), "") for c in have.chunks[extra].tolist()], dtype=object)
        in_unreadable = np.isin(extra_chunks, list(unreadable)) if unreadable else np.zeros(len(extra), bool)
        for chunk in sorted(set(extra_chunks[in_unreadable].tolist())):
            count = int((extra_chunks == chunk).sum())
            report.problems.append(
                Problem(
                    "records",
                    "unreadable_chunk",
                    f"chunk {chunk}",
                    f"{count} record index entries point into it, and it cannot be read (see the objects problem)",
                )
            )
        for rid in sorted(names(have.binary[extra[~in_unreadable]])):
            report.problems.append(
                Problem("records", "extra_row", f"record {rid}", "record index entry not in any chunk")
            )
        wrong = sorted(zip(names(have.binary[altered]), altered.tolist(), strict=True))
        for rid, i in wrong:
            e = int(known[i])
            actual = (digests.get(int(have.chunks[i]), f"chunk #{int(have.chunks[i])}"), int(have.rows[i]))
            expected = (chunk_names[int(want.chunks[e])], int(want.rows[e]))
            report.problems.append(
                Problem("records", "altered_row", f"record {rid}", f"points at {actual}, expected {expected}")
            )

    def _verify_holders(self, conn: Connection, report: VerifyReport) -> None:
        """The holder index (which id lists hold a record, for ``trace``) must be exactly what the id
        lists it names hold: an entry removed would hide a holder from a trace, one added would invent
        one. A list it does not name is not a problem: ``trace`` reads that list itself."""
        from dataward.catalog import holder_index
        from dataward.service import holders

        checked, problems = holders.verify_index(conn, self.store)
        report.checked["holder_entries"] = checked
        for kind, where, detail in problems:
            report.problems.append(Problem("holders", kind, where, detail))
        due = holder_index.merges_due(conn)
        if due:
            report.warnings.append(
                f"{due} merges of the holder index's segments are waiting (each past what one write merges): "
                "a trace reads one more block per segment until `dataward reindex` runs them"
            )
        unindexed = holders.unindexed(conn)
        if unindexed:
            report.warnings.append(
                f"{unindexed} id lists are not in the holder index (recorded before it): a trace reads them "
                "itself, which is slower; `dataward reindex` indexes them"
            )

    def reindex(self, *, rebuild: bool = False) -> dict[str, int]:
        """Index, for ``trace``, the id lists of every contribution and version recorded before the
        holder index existed (safe to run again: what is indexed already is left as it is); with
        ``rebuild``, rebuild the whole index from the lists (after ``verify`` found it altered). Needs
        the right to verify the ward; writes no ledger event (the index is derived data that ``verify``
        checks against the id lists)."""
        from dataward.service import holders

        with self.use_case(Action.VERIFY, Scope.ward(), write=True) as uc:
            return holders.reindex(uc.conn, self.store, rebuild=rebuild)

    def _referenced_objects(self, conn: Connection) -> Iterator[tuple[str, str]]:
        for name, cols in OBJECT_COLUMNS.items():
            table = TABLES[name]
            key = table.primary_key.columns.keys()[0]
            # Only the key and the object columns: not every row's other columns.
            for row in conn.execute(select(table.c[key], *(table.c[col] for col in cols))):
                for i, col in enumerate(cols, start=1):
                    digest = row[i]
                    if digest:
                        yield digest, f"{name}.{col} of {row[0]}"

    def _model_files(self, conn: Connection) -> Iterator[tuple[str, str]]:
        """Each model version's files (its weights), which its ``files_object`` maps name by name: a weight
        file deleted from the store is as lost as a record chunk, and a swapped one is the model's."""
        for mv_id, files_object in conn.execute(select(model_versions.c.id, model_versions.c.files_object)):
            try:
                files = json.loads(self.store.get(files_object))
            except (DatawardError, ValueError):
                continue  # the map itself is reported as its own object's problem
            for name, digest in files.items() if isinstance(files, dict) else ():
                yield str(digest), f"model file {name} of {mv_id}"

    def _verify_objects(self, conn: Connection, report: VerifyReport) -> None:
        referenced = dict(self._referenced_objects(conn))
        for chunk in conn.execute(select(chunks.c.digest)).scalars():
            referenced.setdefault(chunk, "chunks.digest")
        for digest, where in self._model_files(conn):
            referenced.setdefault(digest, where)
        problems = list(self.store.verify_all(referenced))
        for p in problems:
            where = referenced.get(p.digest, "unreferenced object")
            report.problems.append(Problem("objects", str(p.kind), f"{p.digest} ({where})", p.message))
        report.checked["objects"] = len(referenced)

    def _verify_versions(self, conn: Connection, report: VerifyReport) -> None:
        """Every version's manifest must hash to its id and hold its record count, and a self-locating
        manifest must locate each record in a chunk a contribution stored, at a row holding that id."""
        from dataward.service.manifests import location_problems, read_manifest
        from dataward.service.recordstore import identity_of_records, summarize_digests

        recorded = {d for d in conn.execute(select(contributions.c.chunk_object)).scalars() if d}
        known_ids: dict[str, np.ndarray] = {}  # each chunk's ids read once, whatever number of versions list it
        for row in conn.execute(select(versions)):
            try:
                manifest = read_manifest(self.store, row.manifest_object)
            except DatawardError:
                continue  # reported by the object check
            summary = summarize_digests(manifest.ids, manifest.valid)
            whole = summary.invalid == 0 and summary.distinct == summary.listed
            if not whole or identity_of_records(row.dataset_id, row.number, row.parent_id, summary.records) != row.id:
                report.problems.append(
                    Problem(
                        "versions",
                        "manifest_mismatch",
                        f"version {row.id}",
                        "manifest does not hash to the version id",
                    )
                )
            if summary.listed != row.record_count:
                report.problems.append(
                    Problem(
                        "versions",
                        "count_mismatch",
                        f"version {row.id}",
                        f"{summary.listed} ids, catalog says {row.record_count}",
                    )
                )
            for problem in location_problems(self.store, manifest, recorded, known_ids):
                report.problems.append(Problem("versions", "altered_location", f"version {row.id}", problem))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while ``verify`` holds a row per event and the catalog
    changes they carry: every collection would walk all of them (about a third of the parse and replay
    at 400,000 events, and more as the ledger grows). What it makes is freed by reference counting; a
    cycle made meanwhile is collected once the collector is back on, unless it was off already."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _early_facts(rows: list[Any], exact: bytearray, into: list[tuple[int, ledger_store.StoredFacts]], k: int) -> None:
    into.append((k, ledger_store.stored_facts(rows[:k], exact[:k])))


def _get(value: Any, key: str) -> Any:
    """``value[key]`` when ``value`` is an object (a damaged stored text may parse as anything)."""
    return value.get(key) if isinstance(value, dict) else None


def _index_entries(parts: list[tuple[np.ndarray, int]]) -> record_index.Entries:
    """Entries of whole chunks: ``parts`` holds each chunk's binary ids (in row order) and its number."""
    import numpy as np

    from dataward.catalog import record_index

    if not parts:
        empty = np.zeros(0, np.int64)
        return record_index.Entries(np.zeros((0, record_index.ID_BYTES), np.uint8), empty, empty)
    return record_index.Entries(
        np.concatenate([b for b, _ in parts]),
        np.concatenate([np.full(len(b), n, dtype=np.int64) for b, n in parts]),
        np.concatenate([np.arange(len(b), dtype=np.int64) for b, _ in parts]),
    )
