"""What the events that take access away remove, folded into who must stay refused.

A revoked key, a disabled principal, a revoked grant or a quarantined contribution must stay so even when
the catalog and its ledger are rolled back to a state before the event (a restored backup, a cut tail).
The ward keeps every such event on a signed list beside its kept checkpoints
(``dataward.service.removal_list``); this module says what one event removes and folds the list, in the
order the ward signed it, into what is taken away whatever the catalog says. Pure: no database, no files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

REMOVAL_TYPES = frozenset(
    {
        "key.revoked",
        "key.rotated",
        "principal.disabled",
        "principal.suspended",
        "principal.transferred",
        # Enabling lets a principal act again (and revokes its stale keys): without it on the list, a
        # principal disabled once would stay refused after an admin enabled it.
        "principal.enabled",
        # A role taken away: restored with an older catalog, the grant's row would give it back. A grant
        # is never given back under the same id (granting again makes a new one), so no event undoes it.
        "grant.revoked",
        # A contribution quarantined takes its records away from training: restored with an older
        # catalog, its row would say merged and its records would be served again. Nothing lifts a
        # quarantine, so no event undoes it either.
        "contribution.quarantined",
        # A model withdrawn is never served again: restored with an older catalog, its row would say
        # released and its files would be served. A withdrawal is final, so no event undoes it either.
        "model.withdrawn",
    }
)
"""Event types the ward puts on its list of access removals."""

LISTED = "listed"
"""The payload field (``true``) by which a ``grant.revoked``, ``contribution.quarantined`` or
``model.withdrawn`` event says the ward puts it on its list: those types were listed from a later line
format on, so on a list begun before it, only the event itself can say that its line must be there."""


@dataclass(frozen=True)
class Removed:
    """What one event takes away (and, for an enabling, gives back)."""

    keys: tuple[str, ...] = ()
    """Keys refused from ``keys_from`` on."""
    keys_from: str = ""
    """When those keys stop working (the event's time; a rotated key's overlap end)."""
    principals: tuple[str, ...] = ()
    """Principals stopped (disabled, or suspended, with their owner or alone)."""
    enabled: tuple[str, ...] = ()
    """Principals enabled again."""
    grants: tuple[str, ...] = ()
    """Grant ids revoked (a role taken away from a principal on a scope)."""
    contributions: tuple[str, ...] = ()
    """Contribution ids quarantined (their records held out of training in every dataset)."""
    held: tuple[str, ...] = ()
    """The id lists (object digests) of the records those contributions added, in their order: found in
    the store even when a catalog restored from before a contribution no longer names it."""
    held_in: tuple[str, ...] = ()
    """The datasets of those contributions, in their order (with ``held``)."""
    held_chunks: tuple[str, ...] = ()
    """The chunks (object digests) that held those contributions' records when they were quarantined: a
    catalog restored from before a contribution does not index its records, and their content is what
    their near copies are found by (``service.near_copies``). None on a line older than format 4."""
    models: tuple[str, ...] = ()
    """Model version ids withdrawn (their files and attestation never served again)."""
    model_files: tuple[str, ...] = ()
    """The SHA-256 digests of the withdrawn versions' artifacts and of each of their model files: a
    withdrawal is final on the bytes, so another version holding one of them (registered again under a
    new number or name, or in a catalog restored from before the withdrawn version) is never approved,
    released or served. None on a line older than format 6."""


def _ids(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list | tuple):
        return ()
    return tuple(str(v) for v in values if isinstance(v, str) and v)


def _one(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) and value else ()


def removed_by(type: str, time: str, subject: Mapping[str, Any], payload: Mapping[str, Any]) -> Removed | None:
    """What an event of ``type`` with ``subject`` and ``payload`` takes away (None: not a removal).

    The shapes are those ``service/identity.py`` signs; a field missing or malformed removes nothing
    more than what is there."""
    if type not in REMOVAL_TYPES:
        return None
    if type == "key.revoked":
        return Removed(keys=_one(subject.get("key")) + _ids(payload.get("with_it")), keys_from=time)
    if type == "key.rotated":
        # The old key (and the keys minted through it) keep working until the overlap ends.
        until = payload.get("overlap_until")
        ends = until if isinstance(until, str) and until else time
        return Removed(keys=_one(subject.get("key")) + _ids(payload.get("ended_with_it")), keys_from=ends)
    if type == "grant.revoked":
        return Removed(keys_from=time, grants=_one(subject.get("grant")))
    if type == "contribution.quarantined":
        held = _one(payload.get("added_object"))
        return Removed(
            keys_from=time,
            contributions=_one(subject.get("contribution")),
            held=held,
            held_in=_one(subject.get("dataset")) if held else (),
            held_chunks=_ids(payload.get("record_chunks")) if held else (),
        )
    if type == "model.withdrawn":
        models = _one(subject.get("model_version"))
        files = tuple(dict.fromkeys(_one(payload.get("digest")) + _ids(payload.get("files")))) if models else ()
        return Removed(keys_from=time, models=models, model_files=files)
    if type == "principal.enabled":
        return Removed(keys=_ids(payload.get("revoked_keys")), keys_from=time, enabled=_one(subject.get("principal")))
    stopped = () if type == "principal.transferred" else _one(subject.get("principal")) + _ids(payload.get("suspended"))
    return Removed(keys=_ids(payload.get("revoked_keys")), keys_from=time, principals=stopped)


@dataclass(frozen=True)
class RemovalFact:
    """One access-removing event as the list holds it."""

    seq: int
    hash: str
    type: str
    time: str
    removed: Removed


@dataclass
class Removals:
    """The keys and principals the list keeps refused, the grants it keeps revoked and the contributions it
    keeps quarantined, each with the event that did it."""

    revoked: dict[str, tuple[RemovalFact, str]] = field(default_factory=dict)
    """Key id -> (the event, when the key stops working)."""
    stopped: dict[str, RemovalFact] = field(default_factory=dict)
    """Principal id -> the event that stopped it (removed again by a later enabling)."""
    revoked_grants: dict[str, RemovalFact] = field(default_factory=dict)
    """Grant id -> the event that revoked it."""
    quarantined: dict[str, RemovalFact] = field(default_factory=dict)
    """Contribution id -> the event that quarantined it."""
    key_revocations: dict[str, RemovalFact] = field(default_factory=dict)
    """Key id -> the first ``key.revoked`` event that named it, even when a rotation ended it earlier:
    approvals given with a key revoked (not only replaced) stop counting (``access.standing``)."""
    withdrawn: dict[str, RemovalFact] = field(default_factory=dict)
    """Model version id -> the event that withdrew it."""
    withdrawn_files: dict[str, RemovalFact] = field(default_factory=dict)
    """SHA-256 digest of a withdrawn version's artifact or model file -> the event that withdrew it (the
    first, when the same bytes were withdrawn twice)."""

    def key_refusal(self, key_id: str, now: str) -> RemovalFact | None:
        """The event that revoked ``key_id`` by ``now`` (ISO text, as the ledger writes times), or None."""
        found = self.revoked.get(key_id)
        if found is None or found[1] > now:
            return None
        return found[0]

    def principal_refusal(self, principal_id: str) -> RemovalFact | None:
        """The event that stopped ``principal_id`` and that no later enabling undid, or None."""
        return self.stopped.get(principal_id)

    def grant_refusal(self, grant_id: str) -> RemovalFact | None:
        """The event that revoked the grant ``grant_id``, or None."""
        return self.revoked_grants.get(grant_id) if grant_id else None

    def withdrawal(self, model_version_id: str) -> RemovalFact | None:
        """The event that withdrew the model version ``model_version_id``, or None."""
        return self.withdrawn.get(model_version_id) if model_version_id else None

    def quarantine(self, contribution_id: str) -> RemovalFact | None:
        """The event that quarantined the contribution ``contribution_id``, or None."""
        return self.quarantined.get(contribution_id) if contribution_id else None

    @property
    def quarantined_lists(self) -> dict[str, str]:
        """Contribution id -> the id list of the records it added, as the event that quarantined it names
        (those that added records, on lines that name their id lists)."""
        return {c: found for c, fact in self.quarantined.items() if (found := _named(fact.removed.held, fact, c))}

    @property
    def quarantined_in(self) -> dict[str, str]:
        """Contribution id -> its dataset, as the event that quarantined it names (those of
        ``quarantined_lists``)."""
        return {c: found for c, fact in self.quarantined.items() if (found := _named(fact.removed.held_in, fact, c))}

    def chunks_of(self, added_object: str) -> tuple[str, ...] | None:
        """The chunks the list names as holding the records of the quarantined id list ``added_object``
        (sorted, every event that names that id list together); ``None`` when no such event names any
        (its line predates format 4, or it names no id list)."""
        found = {
            chunk
            for fact in self.quarantined.values()
            if added_object in fact.removed.held
            for chunk in fact.removed.held_chunks
        }
        return tuple(sorted(found)) if found else None


def _named(values: tuple[str, ...], fact: RemovalFact, contribution: str) -> str | None:
    """The value of ``values`` (one per contribution of ``fact``, in their order) for ``contribution``."""
    names = fact.removed.contributions
    return values[names.index(contribution)] if len(values) == len(names) else None


def fold(facts: Iterable[RemovalFact]) -> Removals:
    """The removals in force after ``facts``, in the order the ward signed them (not by ``seq``: after a
    restore, new events reuse the numbers of lost ones)."""
    state = Removals()
    for fact in facts:
        removed = fact.removed
        for key in removed.keys:
            if fact.type == "key.revoked":
                state.key_revocations.setdefault(key, fact)
            # A key never comes back: the first event that ended it is the one named.
            previous = state.revoked.get(key)
            if previous is None or removed.keys_from < previous[1]:
                state.revoked[key] = (fact, removed.keys_from)
        for principal in removed.principals:
            state.stopped[principal] = fact
        for principal in removed.enabled:
            state.stopped.pop(principal, None)
        for grant in removed.grants:
            state.revoked_grants.setdefault(grant, fact)
        for contribution in removed.contributions:
            state.quarantined.setdefault(contribution, fact)
        for model_version in removed.models:
            state.withdrawn.setdefault(model_version, fact)
        for digest in removed.model_files:
            state.withdrawn_files.setdefault(digest, fact)
    return state


__all__ = ["LISTED", "REMOVAL_TYPES", "RemovalFact", "Removals", "Removed", "fold", "removed_by"]
