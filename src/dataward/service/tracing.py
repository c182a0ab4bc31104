"""``trace``: from any record, contribution, key or version back to its sources, principals, keys and
gates, and forward to every version that holds it (the blast radius)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, select

from dataward.access import KEY_PREFIX, authorize, descendants, without_secret
from dataward.access.removals import Removals
from dataward.access.roles import Action, Scope
from dataward.catalog.tables import (
    api_keys,
    approvals,
    contributions,
    datasets,
    gate_overrides,
    gate_runs,
    ledger_events,
    principals,
    quarantine,
    sources,
    transformations,
    version_approvals,
    versions,
)
from dataward.domain.errors import AccessDenied, InputError, IntegrityViolation, NotFound
from dataward.ledger.events import format_time
from dataward.service import auth, rows
from dataward.service.approval_standing import read_standing, voided_decision
from dataward.service.concealment import missing_contribution, missing_dataset, sees_dataset
from dataward.service.core import ConcealedDenial, Service, UseCase
from dataward.service.datasets import dataset_read_scope
from dataward.service.derived import lineage_index, step_rows, steps_reading, taint_of
from dataward.service.guard import ListedOnly, SignedCheck, listed_only_quarantines
from dataward.service.holders import Lookups
from dataward.service.idsets import holders, id_set, ids_starting
from dataward.service.key_grants import grants_made_with
from dataward.service.removal_list import listed_removals, quarantine_listed
from dataward.service.visibility import find_contribution

_RECORD = re.compile(r"^[0-9a-f]{64}$")
RECORD_PREFIX_MIN = 12
"""The shortest start of a record id ``trace`` takes: 48 bits, unique among millions of records (tables
print 15 characters). A shorter one names a record by chance as often as by choice."""
_RECORD_PREFIX = re.compile(r"^[0-9a-f]+$")


class TraceService(Service):
    """Use cases of lineage: ``trace``."""

    def trace(self, ref: str) -> dict[str, Any]:
        """Trace a record id, a contribution (``c_…`` or ``DATASET#N``), a key (``dw_…``), a version
        (``DATASET@vN``), a principal (``principal:NAME``) or a source (``source:URI``): where it came
        from, who brought it in with which key, which gates and approvals it passed, and every version
        that contains it. A record is followed backward through the transformations that made it to
        the records and contributions it came from (``derived_from``, ``origins``) and forward to the
        records made from it (``derived``)."""
        # A whole key names its key: its secret goes no further (not into a refusal's ledger event,
        # not into a message).
        ref = without_secret(ref)
        # Authorization is per dataset: a trace shows only what the caller may trace, and refuses when
        # that is nothing (recorded as access.denied like any refusal).
        with self.use_case(Action.TRACE, Scope.ward(), check=False, detail={"ref": ref}) as uc:
            conn = uc.conn
            allowed = {
                r.id
                for r in conn.execute(
                    select(datasets.c.id, datasets.c.name, datasets.c.role, datasets.c.validation_for)
                )
                if authorize(
                    uc.caller.principal,
                    uc.caller.key,
                    uc.caller.grants,
                    Action.TRACE,
                    Scope.dataset(r.validation_for if r.role == "validation" else r.name),
                    uc.now,
                ).allowed
            }
            if ref.startswith("dw_"):
                # A key is authorized on its own terms, before anything about it is looked at.
                return self._trace_key(uc, ref, allowed)
            if not allowed:
                raise AccessDenied(
                    f"{uc.caller.principal_name!r} may not trace any dataset",
                    hint="ask for a reader role on the dataset",
                )
            if _RECORD.match(ref):
                return self._trace_record(conn, ref, allowed)
            if _RECORD_PREFIX.match(prefix := ref.strip().rstrip("…")) and len(prefix) >= RECORD_PREFIX_MIN:
                # The start of a record id as a table prints it (``62debd47db8dcc8…``).
                return self._trace_record(conn, self._record_starting(conn, ref, prefix, allowed), allowed)
            if ref.startswith(("principal:", "source:")):
                return self._trace_submitted(conn, ref, allowed)
            if ref.startswith("model:"):
                return self._trace_model(conn, ref.removeprefix("model:"), allowed)
            # What names a dataset the caller may not see is not found, as what does not exist.
            visible = {
                r.id for r in conn.execute(select(datasets)) if sees_dataset(uc.caller, dataset_read_scope(r), uc.now)
            }
            if "@" in ref:
                return self._trace_version(conn, ref, allowed, visible)
            if ref.startswith("c_") or "#" in ref:
                c = find_contribution(conn, ref)
                missing = missing_contribution(ref)
                if c is None:
                    note = self._never_held(conn, allowed, lambda q: q.id == ref)
                    raise NotFound(missing.message + note, hint=missing.hint) if note else missing
                _require(allowed, c.dataset_id, ref, visible, missing)
                # Then checked, so that a refusal names columns only of a row the caller may trace.
                SignedCheck(self, conn, doing="trace").row("contributions", c, f"contribution {ref}")
                holding = self._versions_holding(conn, {c.id}, allowed)
                return {
                    "subject": {"kind": "contribution", "ref": _cref(conn, c)},
                    "contributions": [self.contribution_facts(conn, c)],
                    "versions": holding,
                    "derived_versions": self._derived_versions(conn, [c], allowed),
                    "models": self._models_trained_on(conn, {v["id"] for v in holding}),
                }
        raise InputError(
            f"cannot tell what {ref!r} is",
            hint=f"trace a record id (64 hex, or its first {RECORD_PREFIX_MIN} or more), a contribution (c_… or "
            "DATASET#N), a key (dw_…), DATASET@vN, principal:NAME, source:URI or model:NAME@vN",
        )

    def _record_starting(self, conn: Connection, ref: str, prefix: str, allowed: set[str]) -> str:
        """The one record id starting with ``prefix`` that a contribution of a dataset the caller may
        trace (``allowed``) added, read from the contributions' id lists as the signed ledger made them
        (never the catalog's derived index). None: not found, worded as for a whole id, so that a record
        of a dataset the caller may not see reads as one that does not exist. Several: refused naming
        them, all of them ids the caller may trace."""
        check = SignedCheck(self, conn, doing="trace")
        lists = [r["added_object"] for r in check.signed("contributions") if r.get("dataset_id") in allowed]
        found = ids_starting(self.store, lists, prefix)
        if not found:
            raise NotFound(
                f"no contribution ever added a record whose id starts with {prefix}",
                hint="check the id; `--json` output gives every id whole",
            )
        if len(found) > 1:
            raise rows.ambiguous_prefix("record", ref, found)
        return found[0]

    def _never_held(
        self, conn: Connection, allowed: set[str], matches: Callable[[ListedOnly], bool], *, added: bool = False
    ) -> str:
        """What a trace that found nothing in the catalog adds when the ward's list of removals holds
        quarantined a contribution the catalog never held (restored from a backup older than it), of a
        dataset the caller may trace, that ``matches`` (is the one named, or added the record traced):
        the event, and that its records are held out of training all the same (``added``: say that it
        added what was traced). "" otherwise."""
        removals = listed_removals(conn)
        for q in listed_only_quarantines(conn, self.store, removals):
            if removals.quarantined_in.get(q.id) in allowed and matches(q):
                fact = removals.quarantined[q.id]
                return (
                    f" in the catalog; the ward's list of removals holds contribution {q.id}"
                    + (", which added it," if added else "")
                    + f" quarantined (by event #{fact.seq} at {fact.time}): the catalog predates that contribution "
                    "(a restored backup), and its records are held out of training all the same"
                )
        return ""

    def _trace_record(self, conn: Connection, record_id: str, allowed: set[str]) -> dict[str, Any]:
        lookups = Lookups(conn, self.store)
        found = self._adding(conn, record_id, allowed, lookups)
        holders_ = self._facts_of(conn, found)
        reviews = {
            q.contribution_id: q
            for q in _in(
                conn,
                select(quarantine).where(quarantine.c.record_id == record_id),
                quarantine.c.contribution_id,
                [c.id for c in found],
            )
        }
        # A decision whose reviewer or key was taken away since no longer counts: the record is pending again.
        standing = read_standing(conn, self.signer.public_key_b64) if reviews else None
        for c, facts in zip(found, holders_, strict=True):
            facts["row"] = id_set(self.store, c.added_object).row(record_id)
            q = reviews.get(c.id)
            void = None if q is None or standing is None else voided_decision(conn, standing, q, c.status)
            facts["review"] = (
                None
                if q is None
                else {
                    "status": "pending" if void else q.status,
                    "score": q.score,
                    "detectors": json.loads(q.detectors or "[]"),
                    "reason": q.reason,
                    "decided_by": rows.principal_name(conn, q.decided_by),
                    "decision_reason": q.decision_reason,
                    **({"voided": void} if void else {}),
                }
            )
        if not holders_:
            self._confirm_never_added(conn, record_id, allowed)
            raise NotFound(
                f"no contribution ever added record {record_id}"
                + self._never_held(
                    conn, allowed, lambda q: bool(holders(self.store, [q.added_object], record_id)), added=True
                )
            )
        manifests = conn.execute(_visible(versions, allowed).order_by(versions.c.created_at)).all()
        facts_cache: dict[str, dict[str, Any]] = {}
        check = SignedCheck(self, conn, doing="trace")

        def holding(rid: str) -> list[dict[str, Any]]:
            held = [manifests[i] for i in lookups.of(rid).versions(manifests)]
            todo = [v for v in held if v.id not in facts_cache]
            facts_cache.update({v.id: f for v, f in zip(todo, _versions_facts(conn, todo, check), strict=True)})
            return [facts_cache[v.id] for v in held]

        # The steps walked are checked against the signed ledger, one the catalog lost included: a step
        # deleted or edited behind the ward's back would otherwise cut the lineage silently.
        walked = step_rows(conn, check, f"record {record_id}")
        steps = _Steps(self.store, [t for t in walked if t.dataset_id in allowed], lookups)
        derived_from, ancestors = _walk(record_id, steps, backward=True)
        derived, descendants_ = _walk(record_id, steps, backward=False)
        in_versions = holding(record_id)
        made = [{**self.step_facts(conn, t, link), "versions": holding(link["record_id"])} for t, link in derived]
        return {
            "subject": {"kind": "record", "id": record_id},
            "contributions": holders_,
            "versions": in_versions,
            # Backward through transformations: each step that made this record (or one of its
            # ancestors), then the contributions that first brought each ancestor in, with their
            # sources, principals and keys.
            "derived_from": [self.step_facts(conn, t, link) for t, link in derived_from],
            "origins": [
                {"record": rid, "contributions": self._adders(conn, rid, allowed, lookups)} for rid in sorted(ancestors)
            ],
            # Forward: records made from this one by later steps, and the versions that hold them.
            "derived": made,
            "derived_records": sorted(descendants_),
            # Models trained on a version holding the record or a record made from it.
            "models": self._models_trained_on(
                conn, {v["id"] for v in in_versions} | {v["id"] for d in made for v in d["versions"]}
            ),
        }

    def _adding(self, conn: Connection, record_id: str, allowed: set[str], lookups: Lookups | None = None) -> list[Any]:
        """The contribution rows (visible to the caller) whose additions hold ``record_id``, oldest
        first: from the catalog's holder index (``service.holders``), reading only the lists it does
        not name.

        The same lookup is made among the contributions as the signed ledger made them (their dataset
        and added-id list), and every row either finds is checked against the ledger: a contribution
        whose row was edited into or out of the answer is refused, not shown or silently left out."""
        lookups = lookups or Lookups(conn, self.store)
        hits = lookups.contributions_adding(record_id, allowed)
        check = SignedCheck(self, conn, doing="trace")
        candidates = [
            (r["id"], r["added_object"])
            for r in check.signed("contributions")
            if r.get("dataset_id") in allowed and r.get("added_object")
        ]
        at = lookups.of(record_id).contributions([o for _, o in candidates])
        found = check.matching("contributions", hits, [candidates[i][0] for i in at], f"the adders of {record_id}")
        return sorted(found, key=lambda c: (c.created_at, c.id))

    def _confirm_never_added(self, conn: Connection, record_id: str, allowed: set[str]) -> None:
        """Before answering that no contribution (visible to the caller) added ``record_id``, read the
        signed contributions' own id lists, not the catalog's holder index: an index emptied or edited
        behind the ward's back would otherwise deny the origin of a record the loader still serves.
        Only this answer reads every list; a record the index finds costs what it did."""
        check = SignedCheck(self, conn, doing="trace")
        signed = [r for r in check.signed("contributions") if r.get("dataset_id") in allowed and r.get("added_object")]
        at = holders(self.store, [r["added_object"] for r in signed], record_id)
        if at:
            first = signed[at[0]]["id"]
            raise IntegrityViolation(
                f"refusing to trace record {record_id}: the catalog's holder index names no contribution adding "
                f"it, but the signed id list of contribution {first} holds it",
                hint="run `dataward verify` to see what was altered; `dataward reindex --rebuild` rebuilds the index",
                row=f"contributions {first}",
            )

    def _trace_submitted(self, conn: Connection, ref: str, allowed: set[str]) -> dict[str, Any]:
        """Everything (visible to the caller) a principal submitted, or that came from one source URI,
        and every version holding any of it."""
        kind, _, value = ref.partition(":")
        # The answer is what the catalog's columns and the signed ledger's rows both find, every row of
        # it checked: a contribution or source edited into (or out of) the lookup behind the ledger's
        # back is refused, not listed (or silently left out).
        check = SignedCheck(self, conn, doing="trace")
        if kind == "principal":
            who = rows.principal_row(conn, value)
            check.people([who.id])
            query = _visible(contributions, allowed).where(contributions.c.submitted_by == who.id)
            signed = check.ids_where("contributions", "submitted_by", {who.id})
            subject = {"kind": "principal", "name": who.name, "id": who.id, "principal_kind": who.kind}
        else:
            listed = [r.id for r in conn.execute(select(sources.c.id).where(sources.c.uri == value))]
            recorded = [r["id"] for r in check.signed("sources") if r.get("uri") == value]
            ids = {r.id for r in check.matching("sources", listed, recorded, f"source {value!r}")}
            if not ids:
                raise NotFound(f"no contribution came from source {value!r}")
            query = _visible(contributions, allowed).where(contributions.c.source_id.in_(ids))
            signed = check.ids_where("contributions", "source_id", ids)
            subject = {"kind": "source", "uri": value}
        found = _checked_lookup(check, conn, query, signed, allowed, ref)
        if kind == "source" and not found:
            # A source used only in datasets the caller may not trace is one it is not told of.
            raise ConcealedDenial(f"you may not trace {ref!r}", NotFound(f"no contribution came from source {value!r}"))
        holding = self._versions_holding(conn, {c.id for c in found}, allowed)
        derived = self._derived_versions(conn, found, allowed)
        return {
            "subject": subject,
            "contributions": self._facts_of(conn, found),
            "versions": holding,
            "derived_versions": derived,
            "models": self._models_trained_on(conn, {v["id"] for v in holding + derived}),
        }

    def _adders(
        self, conn: Connection, record_id: str, allowed: set[str], lookups: Lookups | None = None
    ) -> list[dict[str, Any]]:
        """The contributions (visible to the caller) that added ``record_id``."""
        return self._facts_of(conn, self._adding(conn, record_id, allowed, lookups))

    def step_facts(self, conn: Connection, t: Any, link: dict[str, Any] | None = None) -> dict[str, Any]:
        """What a trace says of transformation ``t`` (and of one record's ``link`` through it)."""
        check = SignedCheck(self, conn, doing="trace")
        check.row("transformations", t, f"transformation {t.id}")
        c = check.by_id("contributions", [t.contribution_id], f"transformation {t.id}")[t.contribution_id]
        check.people([t.created_by])
        facts = {
            "transformation": t.id,
            "name": t.name,
            "kind": t.kind,
            "contribution": _cref(conn, c),
            **_status(conn, c),
            "code": json.loads(t.code),
            "params": json.loads(t.params),
            "inputs": [i["ref"] for i in json.loads(t.inputs)],
            "by": rows.principal_name(conn, t.created_by),
            "key": f"dw_{t.key_id}" if t.key_id else None,
            "at": t.created_at,
        }
        if link is not None:
            facts.update(record=link["record_id"], parents=link["parents"], note=link["note"])
        return facts

    def _trace_key(self, uc: UseCase, ref: str, allowed: set[str]) -> dict[str, Any]:
        """A key's principal, dates, lineage (every key minted through it), the keys issued with it and
        what it submitted. Only its principal, the owner of its service principal, or someone who may
        read the whole ward's ledger may trace it; anyone else gets the same refusal whether or not
        the key exists."""
        conn = uc.conn
        key_id = rows.key_id_of(ref)
        key = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        holder = rows.principal_row(conn, key.principal_id) if key is not None else None
        caller = uc.caller.principal
        own = holder is not None and caller.id in (holder.id, holder.owner_id)
        ward_reader = authorize(caller, uc.caller.key, uc.caller.grants, Action.LEDGER_READ, Scope.ward(), uc.now)
        if not own and not ward_reader.allowed:
            raise AccessDenied(
                f"{caller.name!r} may not trace this key: only the key's principal, the owner of its service "
                "principal, or a reader of the whole ward may",
                hint="ask a ward admin",
            )
        if key is None:
            raise NotFound(f"no API key {ref!r}")
        record = auth.key_from_row(key)
        check = SignedCheck(self, conn, doing="trace")
        submitted = _checked_lookup(
            check,
            conn,
            _visible(contributions, allowed).where(contributions.c.key_id == key_id),
            check.ids_where("contributions", "key_id", {key_id}),
            allowed,
            ref,
        )
        holding = self._versions_holding(conn, {c.id for c in submitted}, allowed)
        derived = self._derived_versions(conn, submitted, allowed)
        everyone = [auth.key_from_row(r) for r in conn.execute(select(api_keys))]
        names = {r.id: r.name for r in conn.execute(select(principals.c.id, principals.c.name))}
        refusal = record.refusal(uc.now)
        return {
            "subject": {
                "kind": "key",
                "id": key.prefix,
                "principal": rows.principal_name(conn, key.principal_id),
                "created_at": key.created_at,
                "expires_at": key.expires_at,
                "revoked_at": key.revoked_at,
                "state": refusal[0] if refusal else "active",
                "parent": _prefix(record.parent_id),
                "minted_with": _prefix(record.minted_with),
                "successor": _prefix(record.successor_id),
                "issued_by": names.get(key.issued_by, key.issued_by),
            },
            "minted": [_key_facts(k, names, uc.now) for k in descendants(record.id, everyone)],
            "issued": self._issued_with(conn, record.id, names, everyone, uc.now),
            # Grants it (or a key minted through it) made: they stand after the key is revoked.
            "granted": grants_made_with(
                conn, self.context.ledger, [record.id, *(k.id for k in descendants(record.id, everyone))]
            ),
            "contributions": self._facts_of(conn, submitted),
            "versions": holding,
            "derived_versions": derived,
            "models": self._models_trained_on(conn, {v["id"] for v in holding + derived}),
        }

    def _issued_with(
        self, conn: Connection, key_id: str, names: dict[str, str], keys: list[Any], now: Any
    ) -> list[dict[str, Any]]:
        """Keys made in a request authenticated with ``key_id`` on an admin's grant (not minted from it,
        so not revoked with it), from the ledger's ``key.issued`` and ``key.rotated`` events."""
        made: list[str] = []
        for e in conn.execute(
            select(ledger_events.c.type, ledger_events.c.subject)
            .where(ledger_events.c.actor_key == key_id, ledger_events.c.type.in_(("key.issued", "key.rotated")))
            .order_by(ledger_events.c.seq)
        ):
            subject = json.loads(e.subject)
            made.append(subject.get("successor") if e.type == "key.rotated" else subject.get("key"))
        by_id = {k.id: k for k in keys}
        return [
            _key_facts(by_id[k], names, now)
            for k in made
            if k in by_id and by_id[k].parent_id != key_id and by_id[k].minted_with != key_id
        ]

    def _trace_version(
        self, conn: Connection, ref: str, allowed: set[str], visible: set[str] | None = None
    ) -> dict[str, Any]:
        name, version = rows.split_ref(ref)
        ds = rows.dataset_row(conn, name)
        _require(allowed, ds.id, ref, visible, missing_dataset(name))
        v = rows.version_row(conn, ds.id, name, version)
        check = SignedCheck(self, conn, doing="trace")
        check.row("datasets", ds, f"dataset {name!r}")
        check.row("versions", v, f"{name}@v{v.number}")
        listed = json.loads(v.contributions)
        found = check.by_id("contributions", listed, f"{name}@v{v.number} (its contributions)")
        members = [found[cid] for cid in listed]
        return {
            "subject": {"kind": "version", **_version_facts(conn, v, check)},
            "contributions": self._facts_of(conn, members),
            "versions": self._versions_holding(conn, {c.id for c in members}, allowed),
            "models": self._models_trained_on(conn, {v.id}),
        }

    def _models_trained_on(self, conn: Connection, version_ids: set[str]) -> list[dict[str, Any]]:
        return models_trained_on(conn, self.store, version_ids, SignedCheck(self, conn, doing="trace"))

    def _trace_model(self, conn: Connection, ref: str, allowed: set[str]) -> dict[str, Any]:
        """``model:NAME@vN``: the model version, the run that made it, the dataset versions it was trained
        on (each traced as a version is) and whether its training data was held out since."""
        from dataward.service.models import model_info, model_version_row, trained_on

        mv = model_version_row(conn, ref)
        pairs = trained_on(conn, mv)
        for ds, _ in pairs:
            _require(allowed, ds.id, ref)
        info = model_info(conn, mv, self.store, SignedCheck(self, conn, doing="trace"))
        return {
            "subject": {"kind": "model", **info, "affected": bool(info["affected"]) and mv.stage == "released"},
            "why_affected": info["affected"],
            "datasets": [self._trace_version(conn, f"{ds.name}@v{v.number}", allowed) for ds, v in pairs],
        }

    def _versions_holding(
        self, conn: Connection, contribution_ids: set[str], allowed: set[str]
    ) -> list[dict[str, Any]]:
        check = SignedCheck(self, conn, doing="trace")
        found = [
            v
            for v in conn.execute(_visible(versions, allowed).order_by(versions.c.created_at))
            if contribution_ids & set(json.loads(v.contributions))
        ]
        # A version the signed ledger says holds one of them, but whose catalog row no longer lists it
        # (or is gone), is refused rather than left out of the blast radius.
        signed = [
            r["id"]
            for r in check.signed("versions")
            if r.get("dataset_id") in allowed and contribution_ids & set(json.loads(r.get("contributions") or "[]"))
        ]
        missing = set(signed) - {v.id for v in found}
        if missing:
            check.by_id("versions", missing)
        return _versions_facts(conn, found, check)

    def _derived_versions(self, conn: Connection, found: list[Any], allowed: set[str]) -> list[dict[str, Any]]:
        """Forward through transformations: versions (in any dataset the caller may trace) that do not
        hold ``found`` themselves but hold records a step made from, or copied out of, what they added,
        each with the steps that carried them."""
        if not found:
            return []
        # Every step, and every version a step read, is checked against the signed ledger (a row the
        # catalog lost included): a step's inputs or lineage edited, or its row deleted, would otherwise
        # answer that nothing was made from what ``found`` added.
        check = SignedCheck(self, conn, doing="trace")
        rows_ = step_rows(conn, check)
        if not rows_:
            return []
        own = {c.id for c in found}
        reading = steps_reading(conn, own, rows=rows_, check=check)
        if not reading:
            return []
        # Only a version listing the output of a step that read ``found`` (and not ``found`` itself) can
        # carry what a step made from it: without one, no step's lineage need be read.
        candidates = []
        for v in conn.execute(_visible(versions, allowed).order_by(versions.c.created_at)):
            listed = set(json.loads(v.contributions))
            if listed & reading and not listed & own:
                candidates.append((v, listed))
        if not candidates:
            return []
        taint = taint_of(self.store, conn, found, complete=False, reading=reading, check=check, rows=rows_)
        carriers = taint.carriers()
        if not carriers:
            return []
        steps = {t.contribution_id: t for t in rows_ if t.contribution_id in carriers and t.dataset_id in allowed}
        hit = []
        for v, listed in candidates:
            via = sorted(listed & set(steps))
            if via:
                hit.append((v, via))
        facts = _versions_facts(conn, [v for v, _ in hit], check)
        return [
            {**f, "via": [self.step_facts(conn, steps[c]) for c in via]} for f, (_, via) in zip(facts, hit, strict=True)
        ]

    def contribution_facts(self, conn: Connection, c: Any, *, doing: str = "trace") -> dict[str, Any]:
        """What a trace says of contribution ``c``: who, which key, which source, its gate."""
        return self._facts_of(conn, [c], doing=doing)[0]

    def _facts_of(self, conn: Connection, found: list[Any], *, doing: str = "trace") -> list[dict[str, Any]]:
        """The trace facts of contribution rows ``found``, in order, read in a fixed number of
        queries whatever their number (a key may have submitted thousands).

        Every row the facts are read from (the contribution, its source, gate runs, approvals, block
        overrides and transformation, and the principals named) is checked against the signed ledger
        first (``guard.SignedCheck``): provenance shown or signed must be what the ledger recorded."""
        if not found:
            return []
        ids = [c.id for c in found]
        check = SignedCheck(self, conn, doing=doing)
        for c in found:
            check.row("contributions", c, f"contribution {c.id}")
        people = {
            r.id: r
            for r in conn.execute(select(principals.c.id, principals.c.name, principals.c.kind, principals.c.owner_id))
        }

        def name(pid: str | None) -> str | None:
            return None if pid is None else (people[pid].name if pid in people else pid)

        dataset_names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
        source_ids = sorted({c.source_id for c in found if c.source_id})
        srcs = check.by_id("sources", source_ids)
        wanted = set(ids)
        for table, column in (
            (gate_runs, gate_runs.c.contribution_id),
            (approvals, approvals.c.contribution_id),
            (gate_overrides, gate_overrides.c.contribution_id),
            (transformations, transformations.c.contribution_id),
        ):
            # Each row the facts list is checked; one the ledger recorded but the catalog lost is refused.
            listed = [r.id for r in _in(conn, select(table.c.id), column, ids)]
            signed = check.ids_where(table.name, "contribution_id", wanted)
            check.matching(table.name, listed, signed, f"the {table.name} of contribution(s) {', '.join(ids[:3])}")
        gates: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for g in _in(conn, select(gate_runs).order_by(gate_runs.c.created_at), gate_runs.c.contribution_id, ids):
            gates[g.contribution_id].append(
                {
                    "run": g.id,
                    "verdict": g.verdict,
                    "flagged": g.flagged,
                    "config_hash": g.config_hash,
                    "baseline_version": g.baseline_version,
                    "at": g.created_at,
                }
            )
        named: list[str] = []
        decisions: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for a in _in(conn, select(approvals).order_by(approvals.c.created_at), approvals.c.contribution_id, ids):
            named.append(a.principal_id)
            decisions[a.contribution_id].append(
                {
                    "by": name(a.principal_id),
                    "decision": a.decision,
                    "reason": json.loads(a.reason)["text"],
                    "content_hash": a.content_hash,
                    "at": a.created_at,
                }
            )
        steps = {
            t.contribution_id: t for t in _in(conn, select(transformations), transformations.c.contribution_id, ids)
        }
        overrides: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        # Each contribution's overrides come in one batch, ordered as ``overrides`` orders them.
        by_time = select(gate_overrides).order_by(gate_overrides.c.created_at, gate_overrides.c.step.desc())
        for r in _in(conn, by_time, gate_overrides.c.contribution_id, ids):
            named.append(r.principal_id)
            overrides[r.contribution_id].append(
                {
                    "step": r.step,
                    "by": name(r.principal_id),
                    "role": r.role,
                    "reason": r.reason,
                    "gate_run": r.gate_run,
                    "content_hash": r.content_hash,
                    "at": r.created_at,
                }
            )
        check.people(
            [c.submitted_by for c in found]
            + [people[c.submitted_by].owner_id for c in found if c.submitted_by in people]
            + named
        )
        listed = listed_removals(conn)
        out = []
        for c in found:
            src = srcs.get(c.source_id)
            submitter = people[c.submitted_by]
            step = steps.get(c.id)
            out.append(
                {
                    "ref": f"{dataset_names[c.dataset_id]}#{c.number}",
                    "id": c.id,
                    **_status(conn, c, listed),
                    # The step whose output this contribution is (None for data brought in from a source).
                    "transformation": None if step is None else self.step_facts(conn, step),
                    "content_hash": c.content_hash,
                    "source": None
                    if src is None
                    else {
                        "uri": src.uri,
                        "fetched_at": src.fetched_at,
                        "licence": src.licence,
                        "raw_hash": src.raw_hash,
                    },
                    "submitted_by": submitter.name,
                    "kind": submitter.kind,
                    "owner": name(submitter.owner_id),
                    "key": f"dw_{c.key_id}" if c.key_id else None,
                    "submitted_at": c.created_at,
                    "gates": gates[c.id],
                    "overrides": overrides[c.id],
                    "approvals": decisions[c.id],
                }
            )
        return out


def models_trained_on(
    conn: Connection, store: Any, version_ids: set[str], check: SignedCheck, *, refuse: bool = True
) -> list[dict[str, Any]]:
    """Model versions trained on any of ``version_ids``, each with its stage and, when its training
    data now holds quarantined or rejected records, why it is ``affected``.

    The same lookup is made among the model versions as the signed ledger made them. With ``refuse``
    (a trace), every row either finds is checked: a model version edited into or out of the answer
    (its dataset list emptied, the row deleted) is refused, not shown or silently left out. Without
    it (a quarantine, already recorded in this transaction: an edited row must not undo an incident's
    response), the answer is the ledger's rows themselves."""
    from dataward.catalog.tables import model_versions
    from dataward.service.models import affected_by

    out: list[dict[str, Any]] = []
    if not version_ids:
        return out

    def trained_on_any(datasets_json: str | None) -> bool:
        return bool({d.get("version_id") for d in json.loads(datasets_json or "[]")} & version_ids)

    signed = [r for r in check.signed("model_versions") if trained_on_any(r.get("datasets"))]
    if refuse:
        listed = [mv.id for mv in conn.execute(select(model_versions)) if trained_on_any(mv.datasets)]
        found = check.matching("model_versions", listed, [r["id"] for r in signed])
    else:
        found = [SimpleNamespace(**r) for r in signed]
    for mv in sorted(found, key=lambda m: (m.created_at, m.id)):
        affected = affected_by(conn, store, mv, check.ledger)
        out.append(
            {
                "model": f"{mv.model}@v{mv.number}",
                "stage": mv.stage,
                "digest": mv.digest,
                "affected": bool(affected) and mv.stage == "released",
                "why": affected,
            }
        )
    return out


def _status(conn: Connection, c: Any, listed: Removals | None = None) -> dict[str, Any]:
    """Contribution row ``c``'s ``status`` as a trace shows it: ``quarantined`` when the ward's list of
    removals (``listed``, read from ``conn`` when not given) holds it so whatever the row says, with
    ``quarantine_listed`` naming the event (see ``removal_list.quarantine_listed``)."""
    shown = quarantine_listed(listed_removals(conn) if listed is None else listed, c.id, c.status)
    return {"status": c.status} if shown is None else {"status": "quarantined", "quarantine_listed": shown}


def _in(conn: Connection, query: Any, column: Any, values: list[str]) -> list[Any]:
    """Rows of ``query`` whose ``column`` is one of ``values``, in batches the drivers accept."""
    out: list[Any] = []
    for start in range(0, len(values), 900):
        out.extend(conn.execute(query.where(column.in_(values[start : start + 900]))))
    return out


class _Steps:
    """The transformations (into datasets the caller may trace) whose record lineage may name a record,
    each with its lineage indexed both ways (by output record and by parent): only the lineage objects
    the holder index names for that record are read (and any it does not index)."""

    def __init__(self, store: Any, steps: list[Any], lookups: Lookups) -> None:
        self.store, self.steps, self.lookups = store, steps, lookups

    def of(self, record_id: str) -> list[tuple[Any, Any]]:
        at = self.lookups.of(record_id).lineages([t.lineage_object for t in self.steps])
        return [(self.steps[i], lineage_index(self.store, self.steps[i].lineage_object)) for i in at]


def _walk(record_id: str, steps: _Steps, *, backward: bool) -> tuple[list[tuple[Any, dict[str, Any]]], set[str]]:
    """Follow record lineage from ``record_id``: backward to the parents each step made it from, or
    forward to the records each step made from it, transitively. Returns the (step, link) pairs met,
    each ``link`` being ``{record_id, parents, note}``, and the records reached (not ``record_id``)."""
    found: list[tuple[Any, dict[str, Any]]] = []
    reached: set[str] = set()
    frontier, seen = [record_id], {record_id}
    while frontier:
        rid = frontier.pop(0)
        for t, index in steps.of(rid):
            rows_ = index.by_child.get(rid, ()) if backward else index.by_parent.get(rid, ())
            links: dict[str, dict[str, Any]] = {}
            for row in rows_:
                link = links.setdefault(
                    row["record_id"], {"record_id": row["record_id"], "parents": [], "note": row["note"]}
                )
                link["parents"].append(row["parent_id"])
            for link in links.values():
                if not backward and link["record_id"] == rid:
                    continue  # a step that kept the record (a dedup's survivor) made nothing new from it
                found.append((t, link))
                for nxt in link["parents"] if backward else [link["record_id"]]:
                    if nxt not in seen:
                        seen.add(nxt)
                        reached.add(nxt)
                        frontier.append(nxt)
    return found, reached


def _prefix(key_id: str | None) -> str | None:
    return None if key_id is None else f"{KEY_PREFIX}{key_id}"


def _key_facts(k: Any, names: dict[str, str], now: Any) -> dict[str, Any]:
    refusal = k.refusal(now)
    return {
        "key": k.prefix,
        "principal": names.get(k.principal_id, k.principal_id),
        "parent": _prefix(k.parent_id),
        "minted_with": _prefix(k.minted_with),
        "created_at": format_time(k.created_at),
        "expires_at": format_time(k.expires_at),
        "state": refusal[0] if refusal else "active",
    }


def _require(
    allowed: set[str], dataset_id: str, ref: str, visible: set[str] | None = None, missing: NotFound | None = None
) -> None:
    """Refuse a trace of ``ref`` (of dataset ``dataset_id``) unless the caller may trace that dataset;
    with ``visible`` (the ids of the datasets the caller may see) and ``missing``, a refusal on a dataset
    the caller may not see is answered with ``missing``, as when ``ref`` names nothing."""
    if dataset_id in allowed:
        return
    reason = f"you may not trace {ref!r}"
    if visible is not None and missing is not None and dataset_id not in visible:
        raise ConcealedDenial(reason, missing)
    raise AccessDenied(reason, hint="ask for a reader role on its dataset")


def _checked_lookup(
    check: SignedCheck, conn: Connection, query: Any, signed: list[str], allowed: set[str], ref: str
) -> list[Any]:
    """The contribution rows (visible to the caller) ``query`` finds in the catalog, oldest first,
    once every one of them, and every one the same lookup finds among the signed ledger's rows
    (``signed``), agrees with the signed ledger (see ``SignedCheck.matching``)."""
    listed = [r.id for r in conn.execute(query)]
    recorded = check.state.tables["contributions"]
    wanted = [i for i in signed if recorded[(i,)].get("dataset_id") in allowed]
    found = check.matching("contributions", listed, wanted, f"the contributions of {ref}")
    return sorted(found, key=lambda c: (c.created_at, c.id))


def _visible(table: Any, allowed: set[str]) -> Any:
    """Rows of ``table`` in the datasets the caller may trace."""
    return select(table).where(table.c.dataset_id.in_(allowed))


def _cref(conn: Connection, c: Any) -> str:
    name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar_one()
    return f"{name}#{c.number}"


def _version_facts(conn: Connection, v: Any, check: SignedCheck) -> dict[str, Any]:
    return _versions_facts(conn, [v], check)[0]


def _versions_facts(conn: Connection, vs: list[Any], check: SignedCheck) -> list[dict[str, Any]]:
    """The trace facts of version rows ``vs``, in order, in a fixed number of queries; each version row,
    its approvals and the principals named checked against the signed ledger (``check``)."""
    if not vs:
        return []
    for v in vs:
        check.row("versions", v, f"version {v.id}")
    names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
    people = {r.id: r.name for r in conn.execute(select(principals.c.id, principals.c.name))}
    given: dict[str, list[Any]] = {v.id: [] for v in vs}
    query = select(version_approvals).order_by(version_approvals.c.created_at)
    for a in _in(conn, query, version_approvals.c.version_id, list(given)):
        given[a.version_id].append(a)
    signed = check.ids_where("version_approvals", "version_id", set(given))
    check.matching("version_approvals", [a.id for g in given.values() for a in g], signed)
    check.people([a.principal_id for g in given.values() for a in g])
    return [
        {
            "ref": f"{names[v.dataset_id]}@v{v.number}",
            "id": v.id,
            "stage": v.stage,
            "records": v.record_count,
            "created_at": v.created_at,
            # Approvals of the version as a whole; `current` is false for one given for another manifest.
            "approvals": [
                {
                    "by": people.get(a.principal_id, a.principal_id),
                    "decision": "approve",
                    "reason": a.reason,
                    "content_hash": a.content_hash,
                    "current": a.content_hash == v.manifest_object,
                    "at": a.created_at,
                }
                for a in sorted(given[v.id], key=lambda a: a.created_at)
            ],
        }
        for v in vs
    ]
