"""Whether an approval still stands: what happened, since it was given, to its approver and its key.

An approval is a person vouching, through a key, for what a contribution, a version or a model version
holds. Once that key has been taken away (``key revoke``), or that person disabled (or, for a bot,
suspended), the ward can no longer tell an honest approval from one made by whoever held the key or by
someone removed for cause, so the approval stops counting at merge, promotion and a model's release.
The approver (or anyone else who may) approves again with a key that still stands. Rotation and expiry
are not revocations: a rotated key was replaced, not taken away, and approvals given with it keep
counting.

Every fact here comes from signed ledger events (see ``dataward.service.approval_standing``), never
from catalog rows alone: a revocation or a disabling is what its event says, and an approval's key is
the key its event was signed under. This module only folds those facts; it touches no storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dataward.access.policy import Approval
from dataward.access.removals import Removals
from dataward.ledger.events import format_time

APPROVAL_TYPES = ("contribution.approved", "version.approved")
MODEL_APPROVAL_TYPE = "model.approved"
"""A model version's release approval: its event names the model version and the digest approved."""
REVIEW_TYPES = ("review.accepted", "review.rejected")
"""A review decision on a flagged record: its event names the review item; it stands as an approval does."""
STOP_TYPES = ("key.revoked", "principal.disabled", "principal.suspended", "principal.transferred")
"""Ledger event types :func:`standing_from` reads: approvals (of data, and ``MODEL_APPROVAL_TYPE``), and
what takes keys or principals away."""


class LedgerFact(Protocol):
    """The fields of a ledger event this module reads (``dataward.ledger.events.Event`` has them)."""

    seq: int
    time: str
    type: str
    actor: dict[str, Any]
    subject: dict[str, Any]
    payload: dict[str, Any]


@dataclass(frozen=True)
class ApprovalAct:
    """One approval as its signed event recorded it, with the key it was given with."""

    seq: int
    on: str  # "contribution", "version" or "model"
    target: str  # the contribution id, the version id or the model version id
    dataset: str  # the dataset id (the model's name for a model approval)
    approver_id: str
    key_id: str | None
    content_hash: str
    time: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "target": self.target,
            "approver_id": self.approver_id,
            "key": None if self.key_id is None else f"dw_{self.key_id}",
            "content_hash": self.content_hash,
            "time": self.time,
        }


@dataclass(frozen=True)
class Stop:
    """A key taken away or a principal stopped, by the event ``seq``, with that event's reason."""

    seq: int
    time: str
    what: str  # "revoked", "disabled", "suspended", ...
    reason: str
    listed: bool = False
    """Known only from the ward's list of removals (the catalog predates it): its ``seq`` may have been
    reused by a later event, so it is placed by its time."""

    def after(self, seq: int, time: str) -> bool:
        """Whether this stop came after the event ``seq`` at ``time``."""
        return time < self.time if self.listed else seq < self.seq


@dataclass(frozen=True)
class Standing:
    """What the ledger says about approvals, keys and approvers (built by :func:`standing_from`)."""

    acts: Mapping[tuple[str, str, str, str, str], ApprovalAct] = field(default_factory=dict)
    """(on, target, approver, content hash, time) -> the approval's event."""
    revoked: Mapping[str, Stop] = field(default_factory=dict)
    """Key id -> its revocation (every key a ``key.revoked`` event names, its ``with_it`` too)."""
    stopped: Mapping[str, Stop] = field(default_factory=dict)
    """Principal id -> the latest event that disabled or suspended it."""
    decisions: Mapping[str, ApprovalAct] = field(default_factory=dict)
    """Review item id -> its latest review decision (``on`` is the decision: accepted or rejected)."""

    def act_of(self, approval: Approval, target: str) -> ApprovalAct | None:
        """The signed event of ``approval`` (of the contribution or version ``target``), if any."""
        key = (approval.on, target, approval.approver_id, approval.content_hash, format_time(approval.decided_at))
        return self.acts.get(key)

    def void_reason(self, approval: Approval, target: str) -> str | None:
        """Why ``approval`` of ``target`` no longer counts, or None while its approver and key stand."""
        return self.void_given(
            approval.on, target, approval.approver_id, approval.content_hash, format_time(approval.decided_at)
        )

    def void_given(self, on: str, target: str, approver_id: str, content_hash: str, time: str) -> str | None:
        """Why the approval of ``target`` (a contribution, version or model version: ``on``) that
        ``approver_id`` gave for ``content_hash`` at ``time`` (as the ledger formats it) no longer
        counts, or None while its approver and key stand. A model approval's row carries no
        :class:`Approval` (its role may be empty), so it is looked up by these fields."""
        act = self.acts.get((on, target, approver_id, content_hash, time))
        # An approval given before its approver was stopped is void; one given after an enabling counts.
        # An approval not yet in the ledger (queued in this very use case) is placed by its time.
        stop = self.stopped.get(approver_id)
        if stop is not None:
            before = stop.after(act.seq, act.time) if act is not None else time <= stop.time
            if before:
                return f"approver {stop.what} since ({stop.reason or 'no reason given'})"
        return None if act is None else self._key_void(act)

    def void_of(self, act: ApprovalAct, who: str = "approver") -> str | None:
        """Why the approval (or review decision: ``who`` is ``reviewer``) ``act`` records no longer counts,
        or None while its approver and key stand."""
        stop = self.stopped.get(act.approver_id)
        if stop is not None and stop.after(act.seq, act.time):
            return f"{who} {stop.what} since ({stop.reason or 'no reason given'})"
        return self._key_void(act, who)

    def review_void(self, item_id: str, decided_at: str | None) -> tuple[ApprovalAct, str] | None:
        """The decision on review item ``item_id`` (made at ``decided_at``, as its row says) and why it no
        longer counts, or None while its reviewer and key stand: a decision is a person vouching for (or
        against) a flagged record through a key, as an approval is, and the same events take it away. A
        void decision leaves the record undecided (back in the queue)."""
        act = self.decisions.get(item_id)
        if act is None or act.time != decided_at:  # closed otherwise (a rejected or quarantined contribution)
            return None
        why = self.void_of(act, "reviewer")
        return None if why is None else (act, why)

    def _key_void(self, act: ApprovalAct, who: str = "approver") -> str | None:
        stop = self.revoked.get(act.key_id) if act.key_id is not None else None
        if stop is None:
            return None
        return f"{who}'s key dw_{act.key_id} {stop.what} since ({stop.reason or 'no reason given'})"

    def with_listed(self, removals: Removals) -> Standing:
        """This standing with the keys revoked and the principals stopped that only the ward's list of
        removals still holds (a catalog restored from before them, a cut ledger): an approval given with
        such a key, or by such a principal before it was stopped, no longer counts either."""
        revoked, stopped = dict(self.revoked), dict(self.stopped)
        # A key the list holds revoked, even one a rotation had ended first (the rotation replaced it, the
        # revocation says it leaked), and keys taken away with their principal.
        taken = {key: fact for key, (fact, _) in removals.revoked.items() if fact.type in _LISTED_KEY_STOPS}
        for key, fact in {**taken, **removals.key_revocations}.items():
            if key not in revoked:
                revoked[key] = Stop(fact.seq, fact.time, _LISTED_KEY_STOPS[fact.type], _LISTED_REASON, listed=True)
        changed = len(revoked) != len(self.revoked)
        for principal, fact in removals.stopped.items():
            # The list's stop counts when the ledger holds none as late: stopped again after the backup.
            known = stopped.get(principal)
            if fact.type in _LISTED_STOPS and (known is None or known.time < fact.time):
                stopped[principal] = Stop(fact.seq, fact.time, _LISTED_STOPS[fact.type], _LISTED_REASON, listed=True)
                changed = True
        return Standing(self.acts, revoked, stopped, self.decisions) if changed else self

    def approvals_with(self, keys: Iterable[str], *, models: bool = False) -> list[ApprovalAct]:
        """Every approval of data (a contribution or a version) given with one of ``keys`` (key ids),
        oldest first: what a quarantine by key contains; with ``models``, model releases' approvals too."""
        wanted = set(keys)
        chosen = (a for a in self.acts.values() if a.key_id in wanted and (models or a.on != "model"))
        return sorted(chosen, key=lambda a: a.seq)


_LISTED_KEY_STOPS = {
    "key.revoked": "revoked",
    "principal.transferred": "revoked when its bot was transferred",
    "principal.disabled": "revoked when its owner was disabled",
    "principal.suspended": "revoked when its owner was suspended",
}
"""List entries that take a key away as the ledger's ``STOP_TYPES`` do (a rotation replaces a key: its
approvals keep counting), with how each is worded."""
_LISTED_STOPS = {"principal.disabled": "disabled", "principal.suspended": "suspended"}
_LISTED_REASON = "by an event the ward's list of removals holds and the catalog predates"


_FOLDED = frozenset((*APPROVAL_TYPES, MODEL_APPROVAL_TYPE, *REVIEW_TYPES, *STOP_TYPES))


def standing_from(events: Iterable[LedgerFact]) -> Standing:
    """Fold approval events and the events that take keys or principals away (``APPROVAL_TYPES``,
    ``MODEL_APPROVAL_TYPE``, ``STOP_TYPES``; others are ignored), in ledger order."""
    return folded_standing(Standing(), sorted(events, key=lambda e: e.seq))


def folded_standing(standing: Standing, events: Iterable[LedgerFact]) -> Standing:
    """``standing`` with ``events`` (in ledger order, each after every event ``standing`` holds) folded in, as
    :func:`standing_from` folds them; ``standing`` itself is unchanged (a reader holding it, a server's
    other request, is unaffected), and returned as is when no event is of a type folded here."""
    relevant = [e for e in events if e.type in _FOLDED]
    if not relevant:
        return standing
    acts = dict(standing.acts)
    decisions = dict(standing.decisions)
    revoked = dict(standing.revoked)
    stopped = dict(standing.stopped)
    for e in relevant:
        reason = str(e.payload.get("reason") or "")
        if e.type in APPROVAL_TYPES:
            on = "version" if e.type == "version.approved" else "contribution"
            target = str(e.subject.get(on, ""))
            act = ApprovalAct(
                e.seq,
                on,
                target,
                str(e.subject.get("dataset", "")),
                str(e.actor.get("principal")),
                e.actor.get("key"),
                str(e.payload.get("content_hash", "")),
                e.time,
            )
            acts[(on, target, act.approver_id, act.content_hash, act.time)] = act
        elif e.type == MODEL_APPROVAL_TYPE:
            # Bound to the files' digest, as the model_approvals row is.
            act = ApprovalAct(
                e.seq,
                "model",
                str(e.subject.get("model_version", "")),
                str(e.subject.get("model", "")),
                str(e.actor.get("principal")),
                e.actor.get("key"),
                str(e.payload.get("digest", "")),
                e.time,
            )
            acts[("model", act.target, act.approver_id, act.content_hash, act.time)] = act
        elif e.type in REVIEW_TYPES:
            item = str(e.subject.get("review_item", ""))
            on = e.type.removeprefix("review.")
            contribution = str(e.subject.get("contribution", ""))
            decisions[item] = ApprovalAct(
                e.seq, on, item, contribution, str(e.actor.get("principal")), e.actor.get("key"), "", e.time
            )
        elif e.type == "key.revoked":
            for key in [e.subject.get("key"), *e.payload.get("with_it", [])]:
                if key is not None:
                    revoked.setdefault(str(key), Stop(e.seq, e.time, "revoked", reason))
        elif e.type == "principal.transferred":
            # Keys the previous owner issued for the bot: they may hold copies, so those keys were
            # taken away, not replaced, and what was approved with them is unknown hands' work.
            for key in e.payload.get("revoked_keys", []):
                revoked.setdefault(str(key), Stop(e.seq, e.time, "revoked when its bot was transferred", ""))
        elif e.type in ("principal.disabled", "principal.suspended"):
            what = "disabled" if e.type == "principal.disabled" else "suspended"
            stopped[str(e.subject.get("principal"))] = Stop(e.seq, e.time, what, reason)
            # Offboarding a human suspends the bots they owned (unless handed to someone else).
            for bot in e.payload.get("suspended", []):
                stopped[str(bot)] = Stop(e.seq, e.time, "suspended with its owner", reason)
            # And revokes keys beyond their own: those they minted for a bot handed to someone else.
            for key in e.payload.get("revoked_keys", []):
                revoked.setdefault(str(key), Stop(e.seq, e.time, f"revoked when its owner was {what}", reason))
    return Standing(acts, revoked, stopped, decisions)


__all__ = [
    "APPROVAL_TYPES",
    "MODEL_APPROVAL_TYPE",
    "REVIEW_TYPES",
    "STOP_TYPES",
    "ApprovalAct",
    "LedgerFact",
    "Standing",
    "Stop",
    "folded_standing",
    "standing_from",
]
