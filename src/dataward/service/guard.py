"""Guarded reads: what a read serves is re-checked against the signed ledger and the content-addressed
objects before it leaves the ward.

The catalog is a projection of the ledger and ``verify`` checks all of it; a read checks what it
serves:

* the dataset and version rows it resolved (name, schema; stage, manifest, parent, contributions,
  record count), and the contributions and review items that decide which records may reach
  training, must be exactly what the signed ledger's changes make them: the ledger's rows are
  checked as a chain (hashes over the stored columns, links, sparse signatures and the newest one)
  and their changes replayed, once per process and then only for newer events (:func:`_signed`);
* the manifest object must hash to its name (the store re-hashes on read), to the version id, and hold
  as many ids as the version says;
* every record served must hash to the id it is served under (``recordstore.load_records``).

A disagreement is refused with ``IntegrityViolation`` (exit 7) naming what disagrees. Manifest
identities are cached per process, keyed by content hashes, so a cached answer can only be reused for
the very bytes it was computed on.

``barred_records`` is the other half of a safe read: the records of a version that must never reach
``training`` (brought in by a quarantined contribution or flagged in one rejected as a unit, unless a
contribution of another side vouches for them, copied or made from a quarantined contribution's records
by a transformation, or rejected by a reviewer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from dataward.access import authorize
from dataward.access.roles import Action, Scope
from dataward.access.sides import Origin, OwnerHistory, side_of, vouches
from dataward.access.standing import REVIEW_TYPES, ApprovalAct, Standing, folded_standing
from dataward.catalog import ledger_store
from dataward.catalog.batched import rows_in
from dataward.catalog.projection import TABLES, fold_change
from dataward.catalog.tables import (
    OPERATIONAL_COLUMNS,
    contributions,
    datasets,
    ledger_events,
    quarantine,
    sources,
    version_approvals,
    versions,
)
from dataward.domain.errors import InputError, IntegrityViolation, PolicyViolation
from dataward.ledger.events import (
    Event,
    decode_stored,
    stored_int,
)
from dataward.ledger.signing import SignatureVerifier
from dataward.service import rows
from dataward.service.signed_identity import IDENTITY_TABLES, checked_rows, signed_identity

if TYPE_CHECKING:
    import pyarrow as pa

    from dataward.access.removals import Removals
    from dataward.domain.idset import DigestSet
    from dataward.service.manifests import VersionManifest

# The record checks (manifests, id lists, digests: numpy and pyarrow) are imported by the functions that
# use them: authentication checks identity rows here on every command, and most commands serve no record.

DATASET_COLUMNS = ("id", "name", "schema", "role", "validation_for")
"""What a read of a dataset depends on: which dataset a name means and how its records are read."""

_HINT = "run `dataward verify` to see everything that was altered; restore the catalog from a backup"

_KEPT_TABLES = (
    "datasets",
    "versions",
    "contributions",
    "quarantine",
    "approvals",
    "version_approvals",
    "gate_overrides",
    "gate_runs",
    "sources",
    "transformations",
    "model_versions",
    "model_gates",
    "model_approvals",
    "training_runs",
)
"""The catalog tables whose rows reads and signing use cases check against the signed ledger (replayed,
see :func:`_signed`). Keys, principals and grants are kept apart (``signed_identity``): every request
checks them, so a process starts from a signed snapshot of them rather than from the whole ledger."""

IDENTITY_COLUMNS = {
    table: tuple(c.name for c in TABLES[table].columns if c.name not in OPERATIONAL_COLUMNS.get(table, ()))
    for table in IDENTITY_TABLES
}
"""What authentication and authorization depend on in a key, principal or grant row: every column the
ledger records (a key's last-used time is written on use, outside the ledger, and decides nothing)."""

_manifests: set[tuple[str, str, str, int, str | None, int]] = set()


@dataclasses.dataclass(frozen=True)
class _ReviewItem:
    contribution: str
    record: str
    status: str
    rejected_in_review: bool = False
    rejected_with_contribution: bool = False
    """Closed by a ``contribution.rejected`` event: the whole batch was judged, and its flagged records
    with it (they bar same-side copies, see :func:`_unvouched_suspects`)."""
    decision: ReviewDecision | None = None
    """The latest review decision (``review.accepted`` or ``review.rejected`` event) that set its status."""


@dataclasses.dataclass(frozen=True)
class ReviewDecision:
    """A review decision as its signed event made it: the event, its time, who decided, with which key."""

    seq: int
    time: str
    status: str
    contribution: str
    by: str
    key: str | None


@dataclasses.dataclass(frozen=True)
class _Signed:
    """What the signed ledger says, up to the event ``seq`` of hash ``hash``: the rows of
    ``_KEPT_TABLES`` as its changes make them, the contributions any event ever set to
    ``quarantined``, and every review item (a row of ``quarantine``) with whether a reviewer rejected
    it (a ``review.rejected`` event, not a hold closed with its contribution). Never changed once
    made: a later state is a new one, so a reader holding this one (a server thread) is unaffected."""

    seq: int
    hash: str
    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]]
    quarantined: frozenset[str]
    review: dict[str, _ReviewItem]
    owners: OwnerHistory = dataclasses.field(default_factory=OwnerHistory)
    """The hand-overs of bots and the origins of keys (``principal.transferred``, ``principal.disabled``,
    ``key.issued``, ``key.rotated`` events): who owned a bot while the key it acted with was live."""
    created_owners: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Each principal's owner as its ``principal.created`` event made it (None for a human)."""
    standing: Standing = dataclasses.field(default_factory=Standing)
    """Approvals, review decisions, revocations and disablings as their events made them
    (``dataward.access.standing``), folded with the rest: a process reads them once the chain is checked,
    so an event retyped or edited after it was folded changes nothing here."""


_ACT_TABLES = frozenset({"contributions", "versions", "training_runs", "model_versions"})
"""The rows whose making a bot's side is judged on (``OwnerHistory.acts``): the seq of the event that
inserted each is kept."""

_EMPTY = _Signed(0, "", {t: {} for t in _KEPT_TABLES}, frozenset(), {})
_signed_states: dict[tuple[str, str], _Signed] = {}


def _signed(conn: Connection, public_key: str, ward_id: str) -> _Signed:
    """The signed ledger's state (:class:`_Signed`), after checking that the chain is intact since the
    newest event this process folded (every event, the first time, or when that event no longer holds
    the hash it had): each row's hash over its stored columns, its link to the row before, the
    signatures of every ``SIGNATURE_SPACING``-th row and of the last (each covers every row before it
    through the chain). Refused with ``IntegrityViolation`` otherwise.

    Every event is folded, not only those a search finds: an event edited so that a search would miss
    it fails its hash instead. The state is kept per ward, so later reads check and fold only newer
    events, and an event edited after it was folded changes nothing here (``verify`` reports it); a
    chain restored from a backup is checked and folded again."""
    key = (public_key, ward_id)
    kept = _signed_states.get(key)
    verifier = SignatureVerifier(public_key)
    rows = ledger_store.read_stored(conn, since=kept.seq) if kept is not None and kept.seq else []
    if kept is not None and rows and stored_int(rows[0][0]) == kept.seq and rows[0][2] == kept.hash:
        new, state = checked_rows(rows, verifier, ward_id, after=True, doing="serve from"), kept
    else:
        new, state = (
            checked_rows(ledger_store.read_stored(conn), verifier, ward_id, after=False, doing="serve from"),
            _EMPTY,
        )
    if new:
        state = _fold(state, [decode_stored(row) for row in new])
        _signed_states[key] = state
    return state


def _fold(state: _Signed, events: list[Event]) -> _Signed:
    """``state`` with ``events`` (checked, in order, the next after ``state.seq``) folded in."""
    # A table is copied (shallow: fold_change replaces the rows it changes) only when an event changes
    # it, so a fold costs what the new events touch, not the size of every table kept.
    tables, copied = dict(state.tables), set()
    quarantined, review = set(state.quarantined), dict(state.review)
    created_owners = state.created_owners
    acts: dict[tuple[str, str], int] | None = None
    for event in events:
        if event.type == "principal.created":
            if created_owners is state.created_owners:
                created_owners = dict(created_owners)
            created_owners[str(event.subject.get("principal"))] = event.payload.get("owner")
        for c in ledger_store.event_changes(event):
            if c.table not in tables:
                continue
            if c.op == "insert" and c.table in _ACT_TABLES and "id" in c.key:
                # Where in the ledger the act was done: a bot's side is taken in ledger order.
                if acts is None:
                    acts = dict(state.owners.acts)
                acts.setdefault((c.table, str(c.key["id"])), event.seq)
            if c.table not in copied:
                tables[c.table] = dict(tables[c.table])
                copied.add(c.table)
            fold_change(tables[c.table], c.table, c.op, c.key, c.values)
            values = c.values or {}
            if c.table == "contributions" and values.get("status") == "quarantined" and "id" in c.key:
                quarantined.add(str(c.key["id"]))
            elif c.table == "quarantine" and "id" in c.key:
                item_id = str(c.key["id"])
                if c.op == "insert":
                    review[item_id] = _ReviewItem(
                        str(values.get("contribution_id")), str(values.get("record_id")), str(values.get("status"))
                    )
                elif item_id in review and "status" in values:
                    rejected = values["status"] == "rejected" and event.type == "review.rejected"
                    unit = values["status"] == "rejected" and event.type == "contribution.rejected"
                    decision = review[item_id].decision
                    if event.type in ("review.accepted", "review.rejected"):
                        actor = event.actor
                        by, key = str(actor.get("principal")), actor.get("key")
                        status, contribution = str(values["status"]), review[item_id].contribution
                        decision = ReviewDecision(event.seq, event.time, status, contribution, by, key)
                    review[item_id] = dataclasses.replace(
                        review[item_id],
                        status=str(values["status"]),
                        rejected_in_review=review[item_id].rejected_in_review or rejected,
                        rejected_with_contribution=review[item_id].rejected_with_contribution or unit,
                        decision=decision,
                    )
    last = events[-1]
    owners = state.owners.folded(events)
    if acts is not None:
        owners = dataclasses.replace(owners, acts=acts)
    # Review decisions are each item's own (``_ReviewItem.decision``, the latest that set its status), read
    # into the standing by ``signed_standing``: ``Standing``'s own reading of review events is not needed.
    standing = folded_standing(state.standing, [e for e in events if e.type not in REVIEW_TYPES])
    return _Signed(last.seq, last.hash, tables, frozenset(quarantined), review, owners, created_owners, standing)


def _disagreements(catalog: Any, ledger: dict[str, Any] | None, columns: Iterable[str]) -> list[str]:
    if ledger is None:
        return ["the row was never recorded in the ledger"]
    mapping = catalog._mapping
    return [
        f"{col} is {mapping[col]!r} in the catalog, {ledger.get(col)!r} in the signed ledger"
        for col in columns
        if mapping[col] != ledger.get(col)
    ]


def _check_row(
    conn: Connection,
    table: str,
    row: Any,
    columns: Iterable[str],
    what: str,
    public_key: str,
    ward_id: str,
    *,
    doing: str = "serve",
) -> None:
    """Refuse (``IntegrityViolation``, naming the row) when ``columns`` of ``row``, a row of ``table``,
    are not what the signed ledger made them, or the row was never recorded there."""
    _check_signed(_signed(conn, public_key, ward_id), table, row, columns, what, doing=doing)


def _check_signed(state: Any, table: str, row: Any, columns: Iterable[str], what: str, *, doing: str) -> None:
    """:func:`_check_row` against a state of the signed ledger already read (``_signed``, or
    ``signed_identity`` for keys, principals and grants)."""
    found = _disagreements(row, state.tables[table].get((row.id,)), list(columns))
    if found:
        raise IntegrityViolation(
            f"refusing to {doing} {what}: the catalog disagrees with the signed ledger: " + "; ".join(found),
            hint=_HINT,
            row=f"{table} {row.id}",
        )


@contextlib.contextmanager
def serving(what: str) -> Iterator[None]:
    """Name ``what`` (the version being read, ``wine@v1``) in the error of an object lost or altered
    while it is read: the store names the object by its digest alone, and the caller needs to know which
    version cannot be served (and an operator which one to restore)."""
    try:
        yield
    except IntegrityViolation as exc:
        if "digest" in exc.details and "version" not in exc.details:
            exc.message = f"refusing to serve {what}: {exc.message}"
            exc.args = (exc.message,)
            exc.details["version"] = what
        raise


def checked_version_ids(ward: Any, conn: Connection, ds: Any, ver: Any) -> list[str]:
    """The record ids of version row ``ver`` of dataset row ``ds`` (see ``checked_manifest``)."""
    return checked_manifest(ward, conn, ds, ver).hex_ids().to_pylist()


def checked_manifest(ward: Any, conn: Connection, ds: Any, ver: Any) -> VersionManifest:
    """The manifest of version row ``ver`` of dataset row ``ds``, once both rows agree with the signed
    ledger and the manifest with the version id. ``ward`` gives the store, key and ward id."""
    from dataward.service.manifests import read_manifest
    from dataward.service.recordstore import identity_of_records, summarize_digests

    public_key, ward_id = ward.signer.public_key_b64, ward.ward_id
    what = f"{ds.name}@v{ver.number}"
    if ver.dataset_id != ds.id:
        raise IntegrityViolation(f"refusing to serve {what}: the version belongs to another dataset", hint=_HINT)
    _check_row(conn, "datasets", ds, DATASET_COLUMNS, f"dataset {ds.name!r}", public_key, ward_id)
    columns = [c.name for c in TABLES["versions"].columns]
    _check_row(conn, "versions", ver, columns, what, public_key, ward_id)
    with serving(what):
        manifest = read_manifest(ward.store, ver.manifest_object)  # the store re-hashes the object on read
    key = (ver.id, ver.manifest_object, ver.dataset_id, ver.number, ver.parent_id, ver.record_count)
    if key not in _manifests:
        # Column-wise, as digests: a million-id manifest is checked without sorting a million strings.
        summary = summarize_digests(manifest.ids, manifest.valid)
        if summary.invalid:
            raise IntegrityViolation(
                f"refusing to serve {what}: its manifest lists {summary.invalid} value(s) that are not record ids",
                hint=_HINT,
            )
        if summary.listed != ver.record_count or summary.distinct != summary.listed:
            raise IntegrityViolation(
                f"refusing to serve {what}: its manifest lists {summary.listed} ids "
                f"({summary.distinct} distinct), the version holds {ver.record_count} records",
                hint=_HINT,
            )
        if identity_of_records(ver.dataset_id, ver.number, ver.parent_id, summary.records) != ver.id:
            raise IntegrityViolation(
                f"refusing to serve {what}: its manifest (records hash {summary.records}) "
                f"does not hash to the version id {ver.id}",
                hint=_HINT,
            )
        _manifests.add(key)
    return manifest


def checked_dataset(ward: Any, conn: Connection, ds: Any) -> None:
    """Refuse when dataset row ``ds`` (name, schema, role) is not what the ledger recorded."""
    _check_row(conn, "datasets", ds, DATASET_COLUMNS, f"dataset {ds.name!r}", ward.signer.public_key_b64, ward.ward_id)


def checked_for_signing(ward: Any, conn: Connection, ds: Any, *contribs: Any, doing: str, version: Any = None) -> None:
    """Refuse (``IntegrityViolation``) when dataset row ``ds`` (its policy included), any contribution
    row of ``contribs`` or a row of their approvals and block overrides (and of ``version``'s approvals)
    is not what the signed ledger made it. A use case that signs something decided from these rows (a
    gate run, a merge, a promotion) checks them first: otherwise a row edited or added behind the
    ledger's back (a rejected contribution set back to ``gated``, another contribution's id list, a
    verdict or a policy relaxed, an approval or an override nobody gave) would be laundered into signed
    events that every read then trusts."""
    keys = ward.signer.public_key_b64, ward.ward_id

    def check(table: str, row: Any, what: str) -> None:
        _check_row(conn, table, row, [col.name for col in TABLES[table].columns], what, *keys, doing=doing)

    check("datasets", ds, f"dataset {ds.name!r}")
    for c in contribs:
        check("contributions", c, f"{ds.name}#{c.number}")
        for table in ("approvals", "gate_overrides"):
            for row in conn.execute(select(TABLES[table]).where(TABLES[table].c.contribution_id == c.id)):
                check(table, row, f"{ds.name}#{c.number} ({table} {row.id})")
    if version is not None:
        query = select(version_approvals).where(version_approvals.c.version_id == version.id)
        for row in conn.execute(query):
            check("version_approvals", row, f"{ds.name}@v{version.number} (version_approvals {row.id})")


def signed_rows(ward: Any, conn: Connection, table: str) -> list[dict[str, Any]]:
    """Every row of ``table`` (one the guard replays) as the signed ledger makes it, after checking the
    chain (see :func:`_signed`). For a use case that must find rows by what the ledger says, not by what
    the catalog says (a containment finding everything a key touched)."""
    return list(_signed(conn, ward.signer.public_key_b64, ward.ward_id).tables[table].values())


def signed_chunks(ward: Any, conn: Connection) -> frozenset[str]:
    """The chunk objects the signed ledger recorded (the ``chunk_object`` of every contribution as its
    events made it): the only chunks a manifest may locate records in. The catalog's ``chunks`` rows are
    not signed, so a digest found there alone is not one the ward stored."""
    return frozenset(r["chunk_object"] for r in signed_rows(ward, conn, "contributions") if r.get("chunk_object"))


def checked_signed_rows(ward: Any, conn: Connection, table: str, found: Iterable[Any], *, doing: str) -> None:
    """Refuse (``IntegrityViolation``) when any row of ``found`` (rows of ``table``, one of the tables the
    guard replays) is not what the signed ledger made it, or was never recorded there: see
    :func:`checked_for_signing`."""
    keys = ward.signer.public_key_b64, ward.ward_id
    columns = [col.name for col in TABLES[table].columns]
    for row in found:
        _check_row(conn, table, row, columns, f"{table} {row.id}", *keys, doing=doing)


def checked_review_rows_of(
    ward: Any, conn: Connection, found: Iterable[Any], contribution_ids: Iterable[str], *, doing: str
) -> None:
    """Refuse (``IntegrityViolation``) when a row of ``found`` (the catalog's ``quarantine`` rows of the
    contributions ``contribution_ids``) is not what the signed ledger made it, or when the signed ledger
    holds a review item of those contributions that ``found`` lacks (deleted from the catalog, or moved
    out of the lookup). A merge or a promotion looks for voided decisions among these rows: one deleted
    would have its voided accept go unseen while the signed ledger, which merges by its status, lets its
    record in."""
    found = list(found)
    checked_signed_rows(ward, conn, "quarantine", found, doing=doing)
    wanted, have = set(contribution_ids), {r.id for r in found}
    state = _signed(conn, *_ledger(ward))
    lost = sorted(i for i, item in state.review.items() if item.contribution in wanted and i not in have)
    if lost:
        raise IntegrityViolation(
            f"refusing to {doing}: review item {lost[0]}, recorded in the signed ledger for contribution "
            f"{state.review[lost[0]].contribution}, is not among the catalog's review rows of it",
            hint=_HINT,
            row=f"quarantine {lost[0]}",
        )


class SignedCheck:
    """Checks of what a read shows or signs (a trace, a listing, an attestation, a card) against one
    state of the signed ledger (:func:`_signed`, read once: the chain checked and folded only for events
    newer than the last read of this process). Each row shown is compared, every column, with what the
    ledger's changes made it, and refused (``IntegrityViolation``, exit 7, naming the row and what
    differs) when it disagrees or was never recorded there. Principals (kept apart, see
    ``signed_identity``) are checked against the identity state. Only the rows a read uses are checked,
    each a dictionary lookup: not the whole catalog."""

    def __init__(
        self, ward: Any, conn: Connection, *, doing: str = "serve", ledger: tuple[str, str] | None = None
    ) -> None:
        """A check for ``ward`` (its public key and id), or given the ``ledger`` ``(public key, ward id)``
        alone (``ward`` None: a read that decides on records and holds no ward)."""
        self.ward, self.conn, self.doing = ward, conn, doing
        self.ledger = ledger if ledger is not None else _ledger(ward)
        self.state = _signed(conn, *self.ledger)

    def signed(self, table: str) -> Iterable[dict[str, Any]]:
        """Every row of ``table`` (one the guard replays) as the signed ledger makes it."""
        return self.state.tables[table].values()

    def ids_where(self, table: str, column: str, values: AbstractSet[Any]) -> list[str]:
        """Ids of the rows of ``table`` whose ``column`` is one of ``values`` as the signed ledger made
        them: from an index of the column built once per state of the ledger (a trace asks this for
        every contribution it shows), not a scan of the table each time."""
        key = (table, column)
        kept = _indexes.get(key)
        if kept is None or kept[0] is not self.state:
            index: dict[Any, list[str]] = {}
            for r in self.state.tables[table].values():
                index.setdefault(r.get(column), []).append(r["id"])
            kept = (self.state, index)
            _indexes[key] = kept
        return [i for v in values for i in kept[1].get(v, ())]

    def row(self, table: str, row: Any, what: str | None = None) -> Any:
        """``row`` (of ``table``), once every column of it agrees with the signed ledger."""
        columns = [c.name for c in TABLES[table].columns if c.name not in OPERATIONAL_COLUMNS.get(table, ())]
        _check_signed(self.state, table, row, columns, what or f"{table} {row.id}", doing=self.doing)
        return row

    def rows(self, table: str, found: Iterable[Any], what: str | None = None) -> list[Any]:
        """The rows of ``found`` (of ``table``), once each agrees with the signed ledger."""
        return [self.row(table, r, what) for r in found]

    def whole(self, table: str, found: Iterable[Any], what: str) -> list[Any]:
        """``found`` (every row of ``table`` the catalog holds), once each agrees with the signed ledger;
        refused as well when the ledger recorded a row of ``table`` that ``found`` lacks. For a decision
        that rests on a whole table (which transformation steps carry a quarantined record): a row
        checked as it is read cannot tell that another was deleted, a count against the ledger's rows
        can. A lookup per row, as reading them is; the ledger is not read again (:func:`_signed`).
        ``what`` names what is refused (``wine@v2``), each row's id added."""
        found = [self.row(table, r, f"{what} ({table} {r.id})") for r in found]  # each recorded, or refused
        signed = self.state.tables[table]
        if len(signed) != len(found):
            have = {r.id for r in found}
            self.by_id(table, sorted(k[0] for k in signed if k[0] not in have), what)  # refuses the lost one
        return found

    def by_id(self, table: str, ids: Iterable[str], what: str | None = None) -> dict[str, Any]:
        """The catalog rows of ``table`` with ``ids``, by id, each checked; refused when one is missing
        from the catalog although the signed ledger recorded it (or recorded nothing under that id)."""
        wanted = sorted(set(ids))
        t = TABLES[table]
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), 900):
            found.update((r.id, r) for r in self.conn.execute(select(t).where(t.c.id.in_(wanted[start : start + 900]))))
        for i in wanted:
            if i not in found:
                recorded = "recorded in the signed ledger" if (i,) in self.state.tables[table] else "never recorded"
                shown = what or f"{table} {i}"
                raise IntegrityViolation(
                    f"refusing to {self.doing} {shown}: {table} {i}, {recorded}, is not in the catalog",
                    hint=_HINT,
                    row=f"{table} {i}",
                )
            self.row(table, found[i], what)
        return found

    def matching(
        self, table: str, catalog_ids: Iterable[str], signed_ids: Iterable[str], what: str | None = None
    ) -> list[Any]:
        """The rows a lookup found, checked: ``catalog_ids`` (what a query on the catalog's columns
        found) and ``signed_ids`` (what the same lookup finds among the rows the signed ledger made).
        A row edited into the lookup disagrees with its event; a row edited out of it (or deleted) is
        found by the ledger and refused as well, so an answer never rests on an altered row."""
        found = self.by_id(table, set(catalog_ids) | set(signed_ids), what)
        return list(found.values())

    def people(self, ids: Iterable[str | None]) -> None:
        """Refuse when the principal row of one of ``ids`` (named in what is shown) is not what the
        signed ledger made it."""
        from dataward.catalog.tables import principals

        wanted = sorted({i for i in ids if i})
        if not wanted:
            return
        found = []
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            found += self.conn.execute(select(principals).where(principals.c.id.in_(chunk))).all()
        _check_people(signed_identity(self.conn, *self.ledger), found, [], doing=self.doing, within="")


def signed_training(ward: Any, conn: Connection, ds: Any, *, doing: str) -> list[Any]:
    """The version rows of dataset row ``ds`` at stage ``training`` as the signed ledger says, oldest
    first (more than one only in a ward whose ledger was led into it: see ``verify``'s
    ``two_training``), not as the catalog's ``stage`` column alone says: a version edited into or out of
    stage ``training`` in the catalog, or deleted, is refused (``IntegrityViolation``, naming the row)
    before anything is judged or signed by it. A promotion that read the catalog alone, the training
    version hidden as ``candidate``, signed a second training version and left the first unretired."""
    check = SignedCheck(ward, conn, doing=doing)
    signed_versions = check.state.tables["versions"]
    signed = [
        i
        for i in check.ids_where("versions", "dataset_id", {ds.id})
        if signed_versions[(i,)].get("stage") == "training"
    ]
    catalog = conn.execute(
        select(versions.c.id).where(versions.c.dataset_id == ds.id, versions.c.stage == "training")
    ).scalars()
    found = check.matching("versions", catalog, signed, f"the training version of {ds.name!r}")
    return sorted(found, key=lambda r: r.number)


def checked_version_listing(
    ward: Any, conn: Connection, name: str, found: Iterable[Any], *, dataset: Any = None, doing: str = "list"
) -> None:
    """Refuse (``IntegrityViolation``) a listing of dataset ``name``'s versions (``versions``, and the
    latest and training version ``datasets`` shows) when a version row of ``found`` (every version row
    of the dataset in the catalog) is not what the signed ledger made it, when the ledger recorded a
    version of the dataset that ``found`` lacks, or (given the ``dataset`` row) when that row disagrees:
    a stage moved in the catalog alone (``training`` set on another version) is refused as ``export``
    refuses it, not listed."""
    check = SignedCheck(ward, conn, doing=doing)
    if dataset is not None:
        check.row("datasets", dataset, f"dataset {name!r}")
    found = list(found)
    dataset_ids = {v.dataset_id for v in found} | ({dataset.id} if dataset is not None else set())
    for v in found:
        check.row("versions", v, f"{name}@v{v.number}")
    have = {v.id for v in found}
    lost = [r["id"] for r in check.signed("versions") if r.get("dataset_id") in dataset_ids and r["id"] not in have]
    if lost:
        check.by_id("versions", lost, f"the versions of {name!r}")
        raise IntegrityViolation(  # the row is in the catalog but not under its dataset: moved
            f"refusing to {doing} the versions of {name!r}: version {lost[0]}, recorded in the signed ledger "
            "for this dataset, is not listed under it in the catalog",
            hint=_HINT,
            row=f"versions {lost[0]}",
        )


_indexes: dict[tuple[str, str], tuple[_Signed, dict[Any, list[str]]]] = {}
"""``SignedCheck.ids_where``'s indexes, each with the state of the signed ledger it was built from."""


def _ledger(ward: Any) -> tuple[str, str]:
    return ward.signer.public_key_b64, ward.ward_id


def checked_identity_rows(
    conn: Connection,
    ledger: tuple[str, str],
    key: Any,
    people: Iterable[Any],
    grant_rows: Iterable[Any],
    *,
    diagnosing: bool = False,
) -> tuple[bool, list[Any]]:
    """Refuse (``IntegrityViolation``, naming the row) when the key row ``key``, a principal row of
    ``people`` (the key's principal, its owner) or a grant row of ``grant_rows`` (the principal's
    unrevoked grants) is not what the signed ledger made it, or was never recorded there. ``ledger`` is
    the ward's public key and id.

    Authentication and authorization decide on these rows alone, on every request: without this check
    someone who can write the catalog but does not hold the signing key could write herself a key or a
    grant, widen a role or a scope, extend an expiry, undo a revocation or a suspension, or move a key
    or a grant to another principal, and then act through the service, signed under that name. The
    rows are compared with the state ``signed_identity`` keeps per process (checked and folded only for
    events newer than the last request's, and started from a signed snapshot), so a request costs a
    look at the ledger's head and a dictionary lookup per row, not a replay of the ledger.

    Returns whether every row was checked and found as the ledger made it, and the grant rows the
    caller holds. When the ledger itself does not verify, nothing can be checked against it: refused as
    well, unless ``diagnosing`` (``verify`` must still be able to report what was altered), and the
    grants are then the catalog's. When it verifies, a ``diagnosing`` caller whose key and principal
    agree with it keeps only the grants the ledger made: a grant written behind its back is what
    ``verify`` is asked to find, so it must neither stop the check nor give power to run it."""
    what = f"key {key.id}"
    held = list(grant_rows)
    try:
        state = signed_identity(conn, *ledger)  # once per request: the chain checked since the last one
    except IntegrityViolation:
        if diagnosing:
            return False, held
        raise
    _check_signed(state, "api_keys", key, IDENTITY_COLUMNS["api_keys"], what, doing="authenticate")
    if diagnosing:
        _check_people(state, people, [], doing="authenticate", within=what)
        signed = [
            r for r in held if not _disagreements(r, state.tables["grants"].get((r.id,)), IDENTITY_COLUMNS["grants"])
        ]
        return len(signed) == len(held), signed
    _check_people(state, people, held, doing="authenticate", within=what)
    return True, held


def checked_identity_people(
    conn: Connection,
    ledger: tuple[str, str],
    people: Iterable[Any],
    grant_rows: Iterable[Any],
    *,
    doing: str,
    within: str = "",
) -> None:
    """Refuse (``IntegrityViolation``) when a principal row of ``people`` or a grant row of
    ``grant_rows`` is not what the signed ledger made it: see :func:`checked_identity_rows`. For a
    use case that decides on what another principal may do (whether an override request still
    stands). ``within`` prefixes what the error names (the key being authenticated)."""
    _check_people(signed_identity(conn, *ledger), people, grant_rows, doing=doing, within=within)


def _check_people(state: Any, people: Iterable[Any], grant_rows: Iterable[Any], *, doing: str, within: str) -> None:
    def named(part: str) -> str:
        return f"{within} ({part})" if within else part

    for row in people:
        what = named(f"principal {row.name!r}")
        _check_signed(state, "principals", row, IDENTITY_COLUMNS["principals"], what, doing=doing)
    for row in grant_rows:
        scope = row.scope_kind if row.scope_name is None else f"{row.scope_kind}:{row.scope_name}"
        what = named(f"grant {row.id}: {row.role} on {scope}")
        _check_signed(state, "grants", row, IDENTITY_COLUMNS["grants"], what, doing=doing)


def _quarantined_ids(conn: Connection, ledger: tuple[str, str] | None) -> frozenset[str]:
    """The contributions quarantined besides those whose catalog row says so: those the ward's list of
    removals holds quarantined (a catalog restored from before a quarantine, or a ledger cut back to
    before it, has both its row and its event say otherwise), and with ``ledger`` (the ward's public key
    and id) those a signed ledger event set to ``quarantined``, whatever happened after. Without it (a
    read for information, such as which models a quarantine taints), the list's alone."""
    from dataward.service.removal_list import listed_quarantines

    listed = frozenset(listed_quarantines(conn))
    return listed if ledger is None else _signed(conn, *ledger).quarantined | listed


def _quarantined_by(conn: Connection, q: Any, ledger: tuple[str, str] | None) -> str:
    """How a suspect contribution ``q`` was quarantined, when only the ward's list of removals still says
    so (added to the reason a record is barred); "" otherwise."""
    if q.status == "quarantined" or (ledger is not None and q.id in _signed(conn, *ledger).quarantined):
        return ""
    from dataward.service.removal_list import listed_quarantines

    fact = listed_quarantines(conn).get(q.id)
    if fact is None:
        return ""
    return (
        f" (by event #{fact.seq} at {fact.time}, which the ward's list of removals holds; the catalog predates "
        "it: run `dataward verify`)"
    )


def _ledger_review_items(conn: Connection, public_key: str, ward_id: str) -> dict[str, _ReviewItem]:
    """Every review item (a row of ``quarantine``: a record held from its contribution) as the signed
    ledger has it, by item id: which contribution and record it holds, its status, and whether a
    reviewer rejected it. Reads that decide what may reach training use this, not the catalog's
    ``quarantine`` table or the ledger's type column: an item set to ``accepted`` in the catalog alone
    would let a held record be vouched for, and a rejection whose type was edited would stop barring
    its record."""
    return _signed(conn, public_key, ward_id).review


def signed_standing(conn: Connection, public_key: str, ward_id: str) -> Standing:
    """The approvals, review decisions, revocations and disablings of the signed ledger
    (``dataward.access.standing``), from its state folded once per process (:func:`_signed`): every
    approval, merge and promotion reads them, and reading them again by their type let an event retyped
    after the process checked the chain drop out (a leaked key's approval counting again). A review
    item's decision is its latest that set its status (``_ReviewItem.decision``): what tells a decision
    given with a key revoked since, without re-reading and re-checking every review event of the ward (a
    busy ward holds one per flagged record)."""
    state = _signed(conn, public_key, ward_id)
    decisions = {
        item: ApprovalAct(d.seq, d.status, item, d.contribution, d.by, d.key, "", d.time)
        for item, r in state.review.items()
        if (d := r.decision) is not None
    }
    return dataclasses.replace(state.standing, decisions=decisions)


def signed_ownership(conn: Connection, public_key: str, ward_id: str) -> tuple[OwnerHistory, dict[str, Any]]:
    """Who owned each bot when and where each key came from (``dataward.access.sides.OwnerHistory``), with
    each principal's owner at creation, from the signed ledger's state folded once per process
    (:func:`_signed`): what a bot's side is read from on every approval, merge and promotion, without
    re-reading and re-checking the key events of every bot handed on (a ward issuing short-lived bot keys
    holds tens of thousands). An event deleted, retyped or edited after it was folded does not change it;
    before, the chain check refuses the ledger."""
    state = _signed(conn, public_key, ward_id)
    return state.owners, state.created_owners


def signed_review_items(ward: Any, conn: Connection) -> list[_ReviewItem]:
    """Every review item as the signed ledger has it (see :func:`_ledger_review_items`): for a use case
    that decides what a merge holds back, which must not trust the catalog's review table alone."""
    return list(_ledger_review_items(conn, *_ledger(ward)).values())


def origins(ward: Any, conn: Connection, found: list[Any]) -> dict[str, Origin]:
    """The :class:`~dataward.access.sides.Origin` of each contribution row of ``found`` (rows the caller
    checked against the signed ledger), with owners and source URIs as the signed ledger made them."""
    return _origins(conn, found, _ledger(ward))


def owners_now(ward: Any, conn: Connection, ids: Iterable[str]) -> dict[str, str | None]:
    """Each principal of ``ids``'s owner now (None for a human), as the signed ledger made it."""
    return _owners_now(conn, _ledger(ward), ids)


def _check_signed_contribution(
    conn: Connection, cid: str, columns: tuple[str, ...], ds: Any, ver: Any, public_key: str, ward_id: str
) -> None:
    """Refuse (``IntegrityViolation``) when contribution ``cid``'s catalog row is missing or its
    ``columns`` are not what the signed ledger recorded."""
    row = conn.execute(select(contributions).where(contributions.c.id == cid)).first()
    what = f"{ds.name}@v{ver.number}"
    if row is None:
        raise IntegrityViolation(
            f"refusing to serve {what}: contribution {cid}, recorded in the signed ledger, is not in the catalog",
            hint=_HINT,
            row=f"contributions {cid}",
        )
    _check_row(conn, "contributions", row, columns, f"{what} (contribution {cid})", public_key, ward_id)


def barred_records(
    conn: Connection,
    store: Any,
    ds: Any,
    ver: Any,
    ids: Iterable[str],
    ledger: tuple[str, str] | None = None,
) -> dict[str, str]:
    """Records of version ``ver`` that must never reach ``training``, each with the reason.

    * added by a quarantined contribution, of this dataset or any other, held by the version or not
      (ids are content hashes: the same records contributed again elsewhere are the same records), or
      flagged in a contribution rejected as a unit (a ``contribution.rejected`` event), unless a
      contribution of the version vouches for them by itself: added before the suspect one in the same
      dataset, or by another side from another source (see :func:`_unvouched_suspects`);
    * copied or made by a transformation from the records of a quarantined contribution of any
      dataset, transitively, unless a contribution of the version vouches for it by itself (see
      :func:`_made_from_quarantined`): one the ward's list of removals holds quarantined too, even when
      the catalog (restored from a backup) never held it, by the id list the list kept;
    * copied or made by a transformation from records rejected in review (in any dataset) or flagged in
      a contribution rejected as a unit, unless an ordinary contribution of the version added it itself
      (see :func:`~dataward.service.rejected_copies.made_from_rejected`): a step's output is no
      independent voucher of what it copied;
    * rejected by a reviewer's decision (a ``review.rejected`` event) in any contribution of the
      dataset: record ids are content hashes, so the same content is the same rejected record.

    With ``ledger`` (the ward's public key and id), what decides this is read from the signed ledger,
    not the catalog: the quarantined contributions' status and added records (a quarantine undone in
    the catalog alone is refused with ``IntegrityViolation``), which records each contribution still
    holds for review, and which a reviewer rejected (see :func:`_ledger_review_items`). Without it
    (listing what a model's data holds, for information) the catalog is read as it stands.
    """
    from dataward.domain.idset import DigestSet
    from dataward.service.rejected_copies import made_from_rejected

    members: AbstractSet[str] = ids if isinstance(ids, DigestSet) else set(ids)
    listed = json.loads(ver.contributions)
    rows = rows_in(conn, select(contributions), contributions.c.id, listed)
    mine = set(conn.execute(select(contributions.c.id).where(contributions.c.dataset_id == ds.id)).scalars())
    if ledger is not None:
        public_key, ward_id = ledger
        signed_quarantined = _quarantined_ids(conn, ledger) if rows else frozenset()
        for c in rows:
            if c.status == "quarantined" or c.id in signed_quarantined:
                _check_row(
                    conn,
                    "contributions",
                    c,
                    ("status", "added_object"),
                    f"{ds.name}@v{ver.number} (contribution {ds.name}#{c.number})",
                    public_key,
                    ward_id,
                )
        gone = sorted((set(listed) & signed_quarantined) - {c.id for c in rows})
        if gone:
            raise IntegrityViolation(
                f"refusing to serve {ds.name}@v{ver.number}: contribution {gone[0]}, quarantined by a signed "
                "ledger event, is not in the catalog",
                hint=_HINT,
                row=f"contributions {gone[0]}",
            )
        items = list(_ledger_review_items(conn, public_key, ward_id).values())
        held = {(i.contribution, i.record) for i in items if i.status != "accepted"}
        # A rejection bars its record in every contribution of the dataset: which dataset a contribution
        # belongs to is checked against the ledger for each rejection that would bar a record of this
        # version but for its contribution's catalog row (moved to another dataset behind the ward's back).
        elsewhere = {i.contribution for i in items if i.rejected_in_review and i.record in members} - mine
        for cid in sorted(elsewhere):
            _check_signed_contribution(conn, cid, ("dataset_id",), ds, ver, public_key, ward_id)
        rejected_anywhere = [i.record for i in items if i.rejected_in_review]
        rejected = [i.record for i in items if i.rejected_in_review and i.contribution in mine]
        units = _rejected_units((i.contribution, i.record) for i in items if i.rejected_with_contribution)
    else:
        held = {
            (r.contribution_id, r.record_id)
            for r in conn.execute(
                select(quarantine.c.contribution_id, quarantine.c.record_id).where(quarantine.c.status != "accepted")
            )
        }
        decisions = select(ledger_events.c.subject).where(ledger_events.c.type == "review.rejected")
        subjects = [json.loads(text) for text in conn.execute(decisions).scalars()]
        rejected_anywhere = [s.get("record") for s in subjects]
        rejected = [s.get("record") for s in subjects if s.get("contribution") in mine]
        closed = (
            select(quarantine.c.contribution_id, quarantine.c.record_id)
            .join(contributions, contributions.c.id == quarantine.c.contribution_id)
            .where(quarantine.c.status == "rejected", contributions.c.status == "rejected")
        )
        units = _rejected_units((r.contribution_id, r.record_id) for r in conn.execute(closed))
    every_unit = units  # a step may have copied or made records of this version from any of them
    units = {cid: [r for r in found if r in members] for cid, found in units.items()}
    units = {cid: found for cid, found in units.items() if found}
    _refuse_unheld_in(conn, store, ds, ver)
    barred: dict[str, str] = {}
    for rid, why in _unvouched_suspects(conn, store, ds, members, rows, held, ledger, units).items():
        barred.setdefault(rid, why)
    # A listed-only quarantine's own records are named by it before a step's copies of them are.
    for rid, why in _listed_only_suspects(conn, store, members, rows, held).items():
        barred.setdefault(rid, why)
    made = _made_from_quarantined(conn, store, members, rows, held, ledger, f"{ds.name}@v{ver.number}")
    for rid, why in made.items():
        barred.setdefault(rid, why)
    # A step's output vouches for nothing it copied or made from rejected records (``_unvouched_suspects``
    # counted it as an independent contribution, under its own name and the reserved source).
    what = f"{ds.name}@v{ver.number}"
    for rid, why in made_from_rejected(
        conn, store, members, rows, held, ledger, every_unit, rejected_anywhere, what
    ).items():
        barred.setdefault(rid, why)
    for rid in _among(members, rejected):
        barred.setdefault(rid, "rejected in review")
    return barred


def _refuse_unheld_in(conn: Connection, store: Any, ds: Any, ver: Any) -> None:
    """Refuse to judge version ``ver`` of ``ds`` while a quarantine on the ward's list of removals that
    could hold back its records has lost its id list (:func:`refuse_unheld_quarantines`)."""
    from dataward.service.removal_list import listed_removals

    doing = f"tell which records of {ds.name}@v{ver.number} must never reach training"
    refuse_unheld_quarantines(conn, store, listed_removals(conn), ds.id, doing)


def manifest_members(manifest: VersionManifest) -> DigestSet:
    """A version's record ids as a set searched in the manifest's own digests (no string per record)."""
    from dataward.domain.idset import DigestSet

    return DigestSet(manifest.ids[manifest.valid])


def _among(members: AbstractSet[str], values: Iterable[str]) -> list[str]:
    """The ``values`` that are ``members``, in their order: one vectorized search for a ``DigestSet``."""
    from dataward.domain.idset import DigestSet

    if isinstance(members, DigestSet):
        return members.among(values)
    return [v for v in values if v in members]


def _rejected_units(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The flagged records of each contribution rejected as a unit, by contribution id, from the
    (contribution, record) pairs of its review items closed by the rejection."""
    units: dict[str, list[str]] = {}
    for cid, rid in pairs:
        units.setdefault(cid, []).append(rid)
    return units


_ORIGIN_COLUMNS = ("status", "added_object", "dataset_id", "number", "submitted_by", "submitter_owner", "source_id")
"""What decides whether one contribution vouches for another's records: what it added, where, when
(its number), by whom (and the bot's owner then) and from which source."""


def _owners_now(conn: Connection, ledger: tuple[str, str] | None, ids: Iterable[str]) -> dict[str, str | None]:
    """Each principal of ``ids``'s owner now (None for a human), as the signed ledger made it (the
    catalog's when reading it as it stands): a bot handed to another human has both on its side."""
    from dataward.catalog.tables import principals

    wanted = sorted(set(ids))
    if ledger is not None:
        signed = signed_identity(conn, *ledger).tables["principals"]
        return {i: (signed.get((i,)) or {}).get("owner_id") for i in wanted}
    query = select(principals.c.id, principals.c.owner_id)
    return {r.id: r.owner_id for r in rows_in(conn, query, principals.c.id, wanted)}


def _origins(conn: Connection, found: list[Any], ledger: tuple[str, str] | None) -> dict[str, Origin]:
    """The :class:`~dataward.access.sides.Origin` of each contribution row of ``found`` (rows already
    checked against the signed ledger on ``_ORIGIN_COLUMNS``), with their sources' URIs checked too."""
    source_ids = sorted({c.source_id for c in found if c.source_id})
    source_rows = rows_in(conn, select(sources), sources.c.id, source_ids)
    if ledger is not None:
        for r in source_rows:
            _check_row(conn, "sources", r, ("uri",), f"source {r.id}", *ledger)
    uri = {r.id: r.uri for r in source_rows}
    owners = _owners_now(conn, ledger, (c.submitted_by for c in found))
    return {
        c.id: Origin(
            c.id,
            c.dataset_id,
            c.number,
            side_of(c.submitted_by, c.submitter_owner, owners.get(c.submitted_by)),
            uri.get(c.source_id),
        )
        for c in found
    }


def _unvouched_suspects(
    conn: Connection,
    store: Any,
    ds: Any,
    members: AbstractSet[str],
    listed: list[Any],
    held: set[tuple[str, str]],
    ledger: tuple[str, str] | None,
    units: dict[str, list[str]],
) -> dict[str, str]:
    """Records of a version (``members``, made of the contribution rows ``listed``) that a suspect
    contribution of any dataset of the ward brought, and that no contribution of the version vouches
    for. Suspect: a quarantined contribution (every record it added, whether the version holds it or
    not: a quarantine holds its records out of every version, so copying them into another dataset or
    contribution does not launder them), and a contribution rejected as a unit (``units``: its flagged
    records, as a review rejection would have barred them).

    A contribution of the version vouches for such a record when it added it (and did not leave it
    held for review) and :func:`~dataward.access.sides.vouches` for the suspect one: submitted to the
    same dataset before the suspect one existed (the rollback version keeps what was there first), or
    independent of it, another side (not the submitter, its owner then or now, nor another bot of that
    owner) and another declared source URI. Merges leave these records out from the quarantine or the
    rejection on (``held_back.held_basis``); this catches the versions merged before it."""
    from dataward.service.recordstore import read_ids

    signed = _quarantined_ids(conn, ledger)
    quarantined = contributions.c.status == "quarantined"
    suspects = rows_in(conn, select(contributions), contributions.c.id, set(signed) | set(units), otherwise=quarantined)
    if ledger is not None:
        lost = sorted(set(units) - {q.id for q in suspects})
        if lost:  # a rejection recorded in the ledger whose contribution the catalog no longer has
            raise IntegrityViolation(
                f"refusing to serve a version of {ds.name}: contribution {lost[0]}, rejected by a signed ledger event, "
                "is not in the catalog",
                hint=_HINT,
                row=f"contributions {lost[0]}",
            )
    if not suspects:
        return {}

    def quarantined(q: Any) -> bool:
        return q.status == "quarantined" or q.id in signed

    hits: dict[str, list[Any]] = {}
    for q in suspects:
        if ledger is not None:
            # What it added, where and by whom decide what is barred: as signed, not as the catalog says.
            _check_row(conn, "contributions", q, _ORIGIN_COLUMNS, f"contribution {q.id}", *ledger)
        found = _members_of_list(members, store, q.added_object) if quarantined(q) else units.get(q.id, [])
        for rid in found:
            hits.setdefault(rid, []).append(q)
    if not hits:
        return {}
    vouchers: list[tuple[Any, set[str]]] = []
    for c in listed:
        if quarantined(c):
            continue
        if ledger is not None:
            # What vouches must be what was signed: an id list swapped in the catalog alone would vouch
            # for every record it names, another submitter would make it look independent.
            _check_row(conn, "contributions", c, _ORIGIN_COLUMNS[1:], f"{ds.name} (contribution {c.id})", *ledger)
        vouchers.append((c, {r for r in read_ids(store, c.added_object) if (c.id, r) not in held}))
    origin = _origins(conn, [*suspects, *(c for c, _ in vouchers)], ledger)
    names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
    barred: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for rid, qs in hits.items():
        for q in qs:
            if not any(rid in added and vouches(origin[c.id], origin[q.id]) for c, added in vouchers):
                if q.id not in reasons:  # once per contribution, not per record
                    what = "added by quarantined" if quarantined(q) else "flagged in rejected"
                    note = _quarantined_by(conn, q, ledger) if quarantined(q) else ""
                    reasons[q.id] = f"{what} contribution {names.get(q.dataset_id, q.dataset_id)}#{q.number}{note}"
                barred[rid] = reasons[q.id]
                break
    return dict(sorted(barred.items()))


def _members_of_list(members: AbstractSet[str], store: Any, id_list: str) -> list[str]:
    """The records of the stored id list ``id_list`` that are ``members``, in the list's order. As
    digests for a ``DigestSet``: a large list costs no string per record it does not share."""
    from dataward.domain.idarrays import binary_to_ids
    from dataward.domain.idset import DigestSet
    from dataward.service.recordstore import read_id_digests, read_ids

    if isinstance(members, DigestSet):
        digests = read_id_digests(store, id_list)
        return binary_to_ids(digests[members.mask(digests)]).to_pylist()
    return _among(members, read_ids(store, id_list))


@dataclasses.dataclass(frozen=True)
class ListedOnly:
    """A contribution the ward's list of removals holds quarantined that the catalog does not hold at all
    (restored from a backup older than it): its id and the id list of the records it added, as the list
    names them (what a taint is seeded with, like a contribution row)."""

    id: str
    added_object: str


def listed_only_quarantines(conn: Connection, store: Any, removals: Removals) -> list[ListedOnly]:
    """The contributions ``removals`` (the ward's list of removals) holds quarantined with an id list
    that the catalog has no row of, in id order, whose id list the store has. What judges records by
    them refuses one the store lacks first (:func:`refuse_unheld_quarantines`), wherever it could hold
    back a record: one left out here holds nothing back in the dataset judged."""
    return [q for q in _listed_only(conn, removals) if store.exists(q.added_object)]


def _listed_only(conn: Connection, removals: Removals, known: AbstractSet[str] | None = None) -> list[ListedOnly]:
    """The contributions ``removals`` holds quarantined with an id list, in id order, but those ``known``
    (the catalog's contribution rows, when not given): the restored catalog predates them."""
    lists = removals.quarantined_lists
    if not lists:
        return []
    if known is None:
        known = {r.id for r in rows_in(conn, select(contributions.c.id), contributions.c.id, lists)}
    return [ListedOnly(cid, added) for cid, added in sorted(lists.items()) if cid not in known]


def refuse_unheld_quarantines(
    conn: Connection,
    store: Any,
    removals: Removals,
    dataset_id: str | None,
    doing: str,
    known: AbstractSet[str] | None = None,
) -> None:
    """Refuse (``IntegrityViolation``) to do ``doing`` in the dataset ``dataset_id`` when the ward's list
    of removals (``removals``) holds quarantined a contribution that the catalog does not hold (``known``:
    the contribution ids the caller reads, the catalog's when not given) and whose id list the store
    lacks, and that contribution's records could be records of that dataset (:func:`_could_hold`; of any
    dataset, ``dataset_id`` ``None``).

    Without the id list nothing names the records to hold back: a deleted object, or an older store's
    backup put back, must never read as "nothing to hold back" (the same records sent again would be
    merged, promoted and served). Refused until the object is back, as a chunk the list names is
    (``near_copies.UNREADABLE``); ``verify`` names it (``unreadable_quarantine``)."""
    in_dataset = removals.quarantined_in
    for q in _listed_only(conn, removals, known):
        if store.exists(q.added_object) or not _could_hold(conn, in_dataset.get(q.id), dataset_id):
            continue
        fact = removals.quarantined[q.id]
        raise IntegrityViolation(
            f"refusing to {doing}: the ward's list of removals holds contribution {q.id} quarantined (by "
            f"event #{fact.seq} at {fact.time}), {_of_dataset(in_dataset.get(q.id), dataset_id)}, which the "
            f"catalog does not hold (restored from a backup older than it), and the object store lacks its id "
            f"list {q.added_object}: the records it added cannot be held back",
            hint=f"put object {q.added_object} back into the object store from a backup of it (`dataward "
            "verify` names it, as unreadable_quarantine); until then this dataset takes no new records, merges "
            "nothing, and serves or promotes none of its versions",
            digest=q.added_object,
            contribution=q.id,
            dataset=in_dataset.get(q.id),
            problem="missing",
        )


def _could_hold(conn: Connection, quarantined_in: str | None, dataset_id: str | None) -> bool:
    """Whether records of a contribution of the dataset ``quarantined_in`` can be records of the dataset
    ``dataset_id``: the same dataset, or one of the same encoding (record ids are content hashes of that
    encoding). Any dataset (``dataset_id`` ``None``) when the list does not name its dataset, or the catalog
    does not hold it."""
    from dataward.domain.normalized import encoding_key

    if quarantined_in is None or dataset_id is None or quarantined_in == dataset_id:
        return True
    theirs, mine = (
        conn.execute(select(datasets).where(datasets.c.id == d)).first() for d in (quarantined_in, dataset_id)
    )
    if theirs is None or mine is None:
        return True
    return encoding_key(rows.dataset_schema(theirs)) == encoding_key(rows.dataset_schema(mine))


def _of_dataset(quarantined_in: str | None, dataset_id: str | None) -> str:
    """Which dataset a refused quarantine was of: by its id, as the list names it (the caller may not read
    another dataset, and the restored catalog may not hold it: ``verify`` names it)."""
    if quarantined_in is None:
        return "of a dataset the list does not name"
    return "of this dataset" if quarantined_in == dataset_id else f"of dataset {quarantined_in}"


def _listed_only_suspects(
    conn: Connection, store: Any, members: AbstractSet[str], listed: list[Any], held: set[tuple[str, str]]
) -> dict[str, str]:
    """Records of a version (``members``, made of the contribution rows ``listed``) that a contribution
    the ward's list of removals holds quarantined added, when the catalog does not hold that contribution
    at all (restored from a backup older than it), found by the id list the list kept.

    Who vouches: the catalog predates the quarantined contribution, so a contribution of the version of
    the same dataset added its records before it existed, as the rollback version keeps what was there
    first. Another dataset's copy cannot be told independent (the list does not name the quarantined
    contribution's submitter or source): it is barred, as a copy by the same side would be."""
    from dataward.service.recordstore import read_ids
    from dataward.service.removal_list import listed_removals

    removals = listed_removals(conn)
    datasets_of = removals.quarantined_in
    barred: dict[str, str] = {}
    added_by: dict[str, set[str]] = {}
    for q in listed_only_quarantines(conn, store, removals):
        cid, added = q.id, q.added_object
        found = _members_of_list(members, store, added)
        if not found:
            continue
        dataset = datasets_of.get(cid)
        vouched: set[str] = set()
        for c in listed:
            if (
                c.dataset_id == dataset
                and c.added_object
                and not (c.status == "quarantined" or c.id in removals.quarantined)
            ):
                if c.id not in added_by:  # read once, whichever quarantined list it vouches against
                    added_by[c.id] = {r for r in read_ids(store, c.added_object) if (c.id, r) not in held}
                vouched |= added_by[c.id]
        fact = removals.quarantined[cid]
        for rid in found:
            if rid not in vouched:
                barred.setdefault(
                    rid,
                    f"added by quarantined contribution {cid} (by event #{fact.seq} at {fact.time}, which the "
                    "ward's list of removals holds; the catalog predates the contribution: run `dataward verify`)",
                )
    return barred


def _made_from_quarantined(
    conn: Connection,
    store: Any,
    members: AbstractSet[str],
    listed: list[Any],
    held: set[tuple[str, str]],
    ledger: tuple[str, str] | None,
    what: str,
) -> dict[str, str]:
    """Records of a version (``members``, made of the contribution rows ``listed``) that transformations
    copied or made from the records of a quarantined contribution of any dataset, and that no
    contribution of the version vouches for by itself: what the quarantine's rollback versions left out
    (see ``incident.plan``). The step that carried them is not quarantined, so without this a version
    the quarantine left behind would still serve them. ``what`` names the version in a refusal."""
    from dataward.catalog.tables import transformations
    from dataward.service.derived import step_rows, taint_of
    from dataward.service.recordstore import read_ids

    # A ward that never recorded a step costs nothing here. "Never" is the signed ledger's word as well
    # as the catalog's: a catalog whose steps were all deleted must not answer that none carried anything.
    recorded = ledger is not None and bool(_signed(conn, *ledger).tables["transformations"])
    if not recorded and conn.execute(select(transformations.c.id).limit(1)).first() is None:
        return {}
    from dataward.service.removal_list import listed_removals

    # A step may make records of any dataset from a quarantined one's: an id list the store lacks could
    # seed a taint of any of them.
    doing = f"tell which records of {what} transformations made from quarantined ones"
    refuse_unheld_quarantines(conn, store, listed_removals(conn), None, doing)

    signed = _quarantined_ids(conn, ledger)
    quarantined = contributions.c.status == "quarantined"
    suspects: list[Any] = rows_in(conn, select(contributions), contributions.c.id, signed, otherwise=quarantined)
    if ledger is not None:
        for c in suspects:
            # Their added records seed the taint: an id list swapped in the catalog alone would clear it.
            _check_row(conn, "contributions", c, ("status", "added_object"), f"contribution {c.id}", *ledger)
    # A contribution the list holds quarantined that the catalog, restored from before it, never held:
    # its records (the id list the list kept) seed the taint all the same. The steps the restored catalog
    # holds made records from them when those records were already in a version (a copy in another
    # dataset, sent first), or when a step is made again after the restore.
    suspects += listed_only_quarantines(conn, store, listed_removals(conn))
    if not suspects:
        return {}
    # The steps are checked against the signed ledger, the ones the catalog lost included: a step's
    # lineage cleared or its row deleted would otherwise serve what it made from the suspects' records.
    # Checked only here, once a quarantine makes them decide anything: a lookup per step.
    check = None if ledger is None else SignedCheck(None, conn, doing="serve", ledger=ledger)
    rows = step_rows(conn, check, what)
    # Which steps carry them is not asked here (the seeds are the suspects' own records either way).
    taint = taint_of(store, conn, suspects, copies=False, check=check, rows=rows)
    suspect = set(_among(members, taint.records))
    if not suspect:
        return {}
    vouched: set[str] = set()
    for c in listed:
        if c.status == "quarantined" or c.id in signed:
            continue
        added = {r for r in read_ids(store, c.added_object) if (c.id, r) not in held}
        vouched |= added - taint.records if c.id in taint.step_contributions else added
    return dict.fromkeys(
        sorted(suspect - vouched), "made by a transformation from a quarantined contribution's records"
    )


def guarded_read(ward: Any, conn: Connection, name: str, version: str | None) -> tuple[Any, pa.Table]:
    """The version row and records of ``name@version``, checked against the signed ledger, the
    manifests and the records' content; a ``training`` version holding records that must never reach
    training (quarantined, rejected) is refused (``PolicyViolation``) rather than served."""
    from dataward.service.manifests import load_version

    ds, ver, manifest = _guarded_manifest(ward, conn, name, version)
    with serving(f"{name}@v{ver.number}"):
        return ver, load_version(conn, ward.store, manifest, rows.dataset_schema(ds))


def guarded_sample(
    ward: Any, conn: Connection, name: str, version: str | None, size: int, seed: int
) -> tuple[Any, pa.Table]:
    """``guarded_read``, of at most ``size`` records: a random sample (numpy's generator seeded with
    ``seed``, in the version's order) of a larger version, drawn from its manifest before any record is
    loaded, so that a version of millions of records is never held whole for a sample of it."""
    import numpy as np

    from dataward.service.manifests import load_version

    ds, ver, manifest = _guarded_manifest(ward, conn, name, version)
    if len(manifest.ids) > size:
        picks = np.random.default_rng(seed).choice(len(manifest.ids), size, replace=False)
        manifest = manifest.take(np.sort(picks))
    with serving(f"{name}@v{ver.number}"):
        return ver, load_version(conn, ward.store, manifest, rows.dataset_schema(ds))


def _guarded_manifest(ward: Any, conn: Connection, name: str, version: str | None) -> tuple[Any, Any, Any]:
    """The dataset row, version row and checked manifest of ``name@version`` (see ``guarded_read``)."""
    ds = rows.dataset_row(conn, name)
    ver = rows.version_row(conn, ds.id, name, version)
    manifest = checked_manifest(ward, conn, ds, ver)
    if ver.stage == "training":
        ids = manifest_members(manifest)
        barred = barred_records(conn, ward.store, ds, ver, ids, (ward.signer.public_key_b64, ward.ward_id))
        if barred:
            raise PolicyViolation(
                f"{name}@v{ver.number} is the training version but holds records that must never reach "
                f"training: {barred_summary(barred)}",
                hint="promote a version without them (the rollback version `dataward quarantine` made) to "
                f"training; `dataward versions {name}` lists them",
            )
    return ds, ver, manifest


LOADABLE_STAGES = ("training", "candidate", "retired")
"""Stages a loader may require (``None``: any stage)."""


def loadable_version(
    ward: Any, conn: Connection, name: str, version: str | None, stage: str | None
) -> tuple[Any, Any, VersionManifest]:
    """The dataset row, version row and manifest of ``name@version`` for a training loader: refused
    (``PolicyViolation``) when the version is not in ``stage`` (``None``: any), or holds records that
    must never reach training (quarantined, rejected) whatever its stage; checked against the signed
    ledger and its manifest as every read is (``IntegrityViolation``). The records themselves are
    checked when they are loaded (``manifests.load_version``)."""
    if stage is not None and stage not in LOADABLE_STAGES:
        raise InputError(f"unknown stage {stage!r}", hint=f"use one of: {', '.join(LOADABLE_STAGES)} (or any)")
    ds = rows.dataset_row(conn, name)
    ver = rows.version_row(conn, ds.id, name, version)
    manifest = checked_manifest(ward, conn, ds, ver)
    if stage is not None and ver.stage != stage:
        raise PolicyViolation(
            f"{name}@v{ver.number} is {ver.stage}, and the loader requires a {stage} version",
            hint=f"load {name}@{stage}, promote the version first, or accept any stage "
            "(`--stage any` on the command line, stage=None in Python)",
        )
    ids = manifest_members(manifest)
    barred = barred_records(conn, ward.store, ds, ver, ids, (ward.signer.public_key_b64, ward.ward_id))
    if barred:
        raise PolicyViolation(
            f"{name}@v{ver.number} holds records that must never reach training: {barred_summary(barred)}",
            hint=f"load the version without them (the rollback version `dataward quarantine` made); "
            f"`dataward versions {name}` lists them",
        )
    return ds, ver, manifest


def barred_counts(barred: dict[str, str]) -> list[dict[str, Any]]:
    """``barred_records`` counted by reason, ``[{reason, records}]`` in reason order: what an attestation
    and a card state of a version the loader refuses (the ids themselves may be millions)."""
    reasons: dict[str, int] = {}
    for why in barred.values():
        reasons[why] = reasons.get(why, 0) + 1
    return [{"reason": why, "records": n} for why, n in sorted(reasons.items())]


def barred_summary(barred: dict[str, str]) -> str:
    """``barred_records`` in words: how many, and why."""
    return "; ".join(f"{c['records']} {c['reason']}" for c in barred_counts(barred))


def may(uc: Any, action: Action, scope: Scope) -> bool:
    """Whether the caller of use case ``uc`` may also do ``action`` on ``scope`` (nothing recorded)."""
    caller = uc.caller
    return authorize(caller.principal, caller.key, caller.grants, action, scope, uc.now).allowed


def dataset_scope(conn: Connection, dataset_id: str) -> Scope:
    """The scope reads of a dataset are authorized on (a validation set: the dataset it guards)."""
    row = conn.execute(select(datasets).where(datasets.c.id == dataset_id)).one()
    return Scope.dataset(row.validation_for if row.role == "validation" else row.name)


def own_paths(folder: str | os.PathLike[str], store: Any, db: Any) -> list[Path]:
    """A ward's own files, which no output of it may overwrite: its folder, and its object store and
    SQLite catalog (with its journal files) when they are outside it."""
    paths = [Path(folder)]
    root = getattr(store, "root", None)
    if root is not None:
        paths.append(Path(root))
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database:
        catalog = Path(url.database)
        paths += [catalog, catalog.with_name(catalog.name + "-wal"), catalog.with_name(catalog.name + "-shm")]
    return paths


def export_target(path: str | os.PathLike[str], protected: Iterable[Path]) -> Path:
    """Where an export of ``path`` is written: the file ``path`` names, in its folder with every symlink
    resolved. Refused (``InputError``) when that folder, or the file or what a symlink there points
    at, is inside one of the ``protected`` paths (the ward's own files). The file is then written
    under a temporary name and renamed over ``path``, which replaces a symlink, never writes through it."""
    given = Path(path)
    if given.name in ("", ".", ".."):
        raise InputError(f"export path {str(path)!r} names no file", hint="give a file name, e.g. -o train.parquet")
    folder = Path(os.path.realpath(given.parent))
    target = folder / given.name
    candidates = [target]
    if target.is_symlink():
        candidates.append(Path(os.path.realpath(target)))
    roots = [Path(os.path.realpath(p)) for p in protected]
    for candidate in candidates:
        for root in roots:
            if candidate == root or root in candidate.parents:
                shown = "" if candidate == target else f" (a symlink to {candidate})"
                raise InputError(
                    f"refusing to export to {str(path)!r}{shown}: it is inside the ward's own files at {root}",
                    hint="export to a file outside the ward folder, its object store and its catalog",
                )
    return target
