"""Use case of the two-person block override, and the queries trace and the access review share.

A block is the gate's strongest verdict, but legitimate data can be blocked too (a new kind of data
the detectors mistake for an attack). Two distinct owners or admins of the dataset, neither the
submitter nor its bot's owner, may lift it: the first asks (``gate.override.requested``), the
second confirms (``gate.overridden``). The contribution is then treated like a ``review`` verdict:
its flagged records still wait for a reviewer and the policy's approvals still apply before a merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from dataward.access import BlockOverride, Principal, Role, check_override, roles_on
from dataward.access.overrides import OVERRIDE_ROLES
from dataward.access.policy import separation_problem
from dataward.access.roles import Action, Scope
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import contributions, datasets, gate_overrides
from dataward.domain.errors import Conflict, InputError, PolicyViolation
from dataward.ledger.events import format_time, parse_time
from dataward.service import auth, rows
from dataward.service.bot_owners import (
    acting_earlier_owners,
    read_owner_history,
    requester_earlier_owners,
    submitter_earlier_owners,
)
from dataward.service.core import Service, new_id
from dataward.service.guard import checked_for_signing, checked_identity_people
from dataward.service.rows import current_owner
from dataward.service.visibility import named_contribution

REQUESTED, CONFIRMED = "requested", "confirmed"
OVERRIDABLE = ("submitted", "gated")


def _rows_of(conn: Connection, contribution_id: str) -> list[Any]:
    query = select(gate_overrides).where(gate_overrides.c.contribution_id == contribution_id)
    return list(conn.execute(query.order_by(gate_overrides.c.created_at, gate_overrides.c.step.desc())))


def is_overridden(conn: Connection, c: Any) -> bool:
    """Whether two principals have lifted a block of ``c``'s current content."""
    return any(r.step == CONFIRMED and r.content_hash == c.content_hash for r in _rows_of(conn, c.id))


def lifted_at(conn: Connection, contribution_id: str) -> datetime | None:
    """When a block of the contribution was last lifted (the override's confirmation), or None."""
    confirmed = [parse_time(r.created_at) for r in _rows_of(conn, contribution_id) if r.step == CONFIRMED]
    return max(confirmed, default=None)


def lifted_blocks(conn: Connection, found: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """For each of the contributions ``found`` (rows with ``id`` and ``content_hash``) whose block of its
    current content two principals lifted: ``{"by": [requester, confirmer], "at": when confirmed}``. Its
    ``gate_verdict`` then reads ``review``; that it was blocked is said with it (``contributions``,
    ``contribution show``), not only in ``trace``."""
    content = {c.id: c.content_hash for c in found}
    if not content:
        return {}
    query = select(gate_overrides).where(gate_overrides.c.contribution_id.in_(sorted(content)))
    steps = list(conn.execute(query.order_by(gate_overrides.c.created_at, gate_overrides.c.step.desc())))
    out: dict[str, dict[str, Any]] = {}
    for conf in steps:
        if conf.step != CONFIRMED or conf.content_hash != content[conf.contribution_id]:
            continue
        asked = [
            r
            for r in steps
            if r.step == REQUESTED
            and r.contribution_id == conf.contribution_id
            and r.gate_run == conf.gate_run
            and r.created_at <= conf.created_at
        ]
        by = [rows.principal_name(conn, r.principal_id) or r.principal_id for r in (*asked[-1:], conf)]
        out[conf.contribution_id] = {"by": by, "at": conf.created_at}
    return out


def override_facts(conn: Connection, contribution_id: str) -> list[dict[str, Any]]:
    """Every override step of a contribution, oldest first, for ``trace``."""
    return [
        {
            "step": r.step,
            "by": rows.principal_name(conn, r.principal_id),
            "role": r.role,
            "reason": r.reason,
            "gate_run": r.gate_run,
            "content_hash": r.content_hash,
            "at": r.created_at,
        }
        for r in _rows_of(conn, contribution_id)
    ]


def block_overrides(conn: Connection) -> list[BlockOverride]:
    """Every override ever requested in the ward, one per blocking gate run, for the access review."""
    query = (
        select(
            gate_overrides,
            contributions.c.number,
            contributions.c.status,
            contributions.c.gate_verdict,
            datasets.c.name.label("dataset"),
        )
        .join(contributions, contributions.c.id == gate_overrides.c.contribution_id)
        .join(datasets, datasets.c.id == contributions.c.dataset_id)
        .order_by(gate_overrides.c.created_at)
    )
    by_run: dict[tuple[str, str], dict[str, Any]] = {}
    for r in conn.execute(query):
        entry = by_run.setdefault(
            (r.contribution_id, r.gate_run),
            {
                "dataset": r.dataset,
                "number": r.number,
                "waiting": r.status in OVERRIDABLE and r.gate_verdict == "block",
            },
        )
        entry[r.step] = r
    out = []
    for entry in by_run.values():
        req, conf = entry.get(REQUESTED), entry.get(CONFIRMED)
        if req is None:  # a catalog edited behind the ledger's back; verify reports it
            continue
        if conf is None and not entry["waiting"]:
            continue  # a request that can no longer complete (the contribution was rejected or withdrawn)
        out.append(
            BlockOverride(
                dataset=entry["dataset"],
                contribution=f"{entry['dataset']}#{entry['number']}",
                requested_by=rows.principal_name(conn, req.principal_id) or req.principal_id,
                requested_reason=req.reason,
                requested_at=parse_time(req.created_at),
                confirmed_by=None if conf is None else rows.principal_name(conn, conf.principal_id),
                confirmed_reason=None if conf is None else conf.reason,
                confirmed_at=None if conf is None else parse_time(conf.created_at),
            )
        )
    return out


def _standing_requester(conn: Connection, request: Any, scope: Scope, ledger: tuple[str, str]) -> Principal | None:
    """The principal who made ``request``, when still active and holding owner or admin on ``scope``:
    its principal row and grants as the signed ledger made them (``IntegrityViolation`` otherwise), so
    that a grant or a reactivation written into the catalog alone does not make a request stand."""
    from dataward.service.removal_list import listed_removals

    row = rows.principal_row(conn, request.principal_id)
    held_rows = auth.grant_rows(conn, row.id)
    checked_identity_people(conn, ledger, [row], held_rows, doing="count the override request of")
    principal = auth.principal_from_row(row)
    # A grant revoked, or the principal stopped, by an event that only the ward's list of removals still
    # holds (a catalog restored from before it) does not make the request stand either.
    listed = listed_removals(conn)
    kept = [auth.grant_from_row(g) for g in held_rows if listed.grant_refusal(g.id) is None]
    held = roles_on(principal.id, kept, scope)
    active = principal.is_active and listed.principal_refusal(principal.id) is None
    return principal if active and held & OVERRIDE_ROLES else None


class OverrideService(Service):
    """Use case: override a gate's block (two steps, two principals)."""

    def override_block(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Request, or confirm, lifting the gate's block of ``contribution``.

        The first owner or admin who calls this records a request; a second, distinct one (answering
        to another human, neither the submitter nor its bot's owner) completes it, and the contribution
        is then treated as ``review``. A request whose maker is no longer active or no longer an owner or
        admin of the dataset does not count: the call then records a fresh request. Refusals raise
        ``PolicyViolation`` (recorded as ``access.denied``); a contribution that is not blocked raises
        ``Conflict``.
        """
        if not reason.strip():
            raise InputError(
                "an override needs a reason", hint="say why the blocked data is legitimate: --reason '...'"
            )
        # Before the contribution is looked up: whether it exists is not for a key that does not authenticate.
        self.admit(Action.GATE_OVERRIDE, detail={"contribution": contribution})
        with self.db.reading() as conn:
            c = named_contribution(conn, contribution)
            ds_name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar_one()
        scope = Scope.dataset(ds_name)
        with self.use_case(Action.GATE_OVERRIDE, scope, detail={"contribution": c.id}) as uc:
            c = rows.contribution_row(uc.conn, c.id)
            ds = rows.dataset_row(uc.conn, ds_name)
            # A request found in the catalog alone would let one person lift a block: rows as signed only.
            checked_for_signing(self, uc.conn, ds, c, doing="override")
            ref = f"{ds_name}#{c.number}"
            if c.status not in OVERRIDABLE:
                raise Conflict(
                    f"contribution {ref} is {c.status}; only a blocked contribution awaiting merge is overridden"
                )
            if c.gate_verdict != "block":
                done = " (its block was already overridden)" if is_overridden(uc.conn, c) else ""
                raise Conflict(
                    f"contribution {ref} has gate verdict {c.gate_verdict or 'none'}{done}; only a block is overridden",
                    hint=f"see dataward trace {ref}",
                )
            pending = [
                r
                for r in _rows_of(uc.conn, c.id)
                if r.gate_run == c.gate_run and r.content_hash == c.content_hash and r.step == REQUESTED
            ]
            # A request stands only while its maker still could make it: someone taken off the dataset or
            # disabled since would otherwise lift the block with one standing owner's word.
            ledger = self.context.ledger
            standing = [(r, p) for r in pending if (p := _standing_requester(uc.conn, r, scope, ledger)) is not None]
            # Nor does a request by someone now on the bot's side (handed its submitter since the request).
            owner_now = current_owner(uc.conn, c)
            history = read_owner_history(uc.conn, uc.signer.public_key_b64)
            earlier = submitter_earlier_owners(history, c)
            standing = [
                (r, p)
                for r, p in standing
                if separation_problem(
                    p, c.submitted_by, c.submitter_owner, current_owner_id=owner_now, earlier_owners=earlier
                )
                is None
            ]
            first, requested_by = standing[0] if standing else (None, None)
            held = roles_on(uc.caller.principal_id, uc.caller.grants, scope)
            check_override(
                uc.caller.principal,
                held,
                c.submitted_by,
                c.submitter_owner,
                requested_by,
                owner_now,
                earlier,
                acting_owners=acting_earlier_owners(history, uc.caller),
                requested_by_owners=(
                    frozenset()
                    if first is None
                    else requester_earlier_owners(uc.conn, uc.signer.public_key_b64, history, first)
                ),
            ).raise_if_denied(PolicyViolation)
            role = "admin" if Role.ADMIN in held else "owner"
            now = format_time(uc.now)
            step = REQUESTED if first is None else CONFIRMED
            changes = [
                insert_row(
                    "gate_overrides",
                    id=new_id("ov"),
                    contribution_id=c.id,
                    gate_run=c.gate_run,
                    principal_id=uc.caller.principal_id,
                    step=step,
                    role=role,
                    reason=reason,
                    content_hash=c.content_hash,
                    created_at=now,
                )
            ]
            subject = {"dataset": ds.id, "contribution": c.id, "gate_run": c.gate_run}
            payload: dict[str, Any] = {"reason": reason, "role": role, "content_hash": c.content_hash}
            if first is None:
                uc.emit("gate.override.requested", subject, payload, changes)
            else:
                # Treated as review from now on: flagged records stay in the queue, approvals still apply.
                changes.append(update_row("contributions", {"id": c.id}, gate_verdict="review"))
                payload.update(
                    requested_by=first.principal_id,
                    requested_reason=first.reason,
                    previous_verdict="block",
                    verdict="review",
                )
                uc.emit("gate.overridden", subject, payload, changes)
            return {
                "contribution": ref,
                "status": "overridden" if first is not None else "requested",
                "by": uc.caller.principal_name,
                "role": role,
                "reason": reason,
                "requested_by": None if requested_by is None else requested_by.name,
                "gate_verdict": "review" if first is not None else "block",
            }
