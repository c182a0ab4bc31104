"""Sides: who answers for a contribution, and when another contribution is independent of it.

Separation of duties treats a service principal and its accountable human as one side (nobody
approves their own bot's work). The same holds for records: a suspect contribution (quarantined, or
rejected as a unit) cannot be vouched for by a copy of its records that its own side sent, under the
owner's name or another of the owner's bots, because that copy is the same decision-maker's word twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The ledger events standing reads; imported for the type only (standing imports the policy, which imports
    # this module).
    from dataward.access.standing import LedgerFact

OWNERSHIP_TYPES = ("principal.transferred", "principal.disabled", "key.issued", "key.rotated")
"""The signed events :func:`owner_history` reads: hand-overs of bots, and where each key came from."""


def side_of(
    submitter_id: str, owner_then: str | None, owner_now: str | None, earlier: Collection[str] = ()
) -> frozenset[str]:
    """The principals who answer for work submitted by ``submitter_id``: itself, and when it is a service
    principal its owner when the work was submitted, its owner now (a bot handed on keeps both) and every
    ``earlier`` owner it had while the key it submitted with was live (:meth:`OwnerHistory.owners_while`)."""
    return frozenset({submitter_id, *earlier} | {o for o in (owner_then, owner_now) if o is not None})


@dataclass(frozen=True)
class OwnerHistory:
    """Who owned each service principal when, and which keys each key's secret may have come from, as the
    signed ledger says (built by :func:`owner_history`).

    Keys an admin issued for a bot keep working when it is handed to another human (no pipeline stops), so
    its former owner, who deployed such a key, may still hold it and act as the bot. Whoever owned the bot
    while the key it acted with was live is therefore on the side of what it did with that key.

    Every span is taken in ledger order (event sequence numbers), never by the events' times: times may go
    back a little from one event to the next (a use case whose clock was read before another committed,
    hosts a little apart), and an act dated before a hand-over it follows would otherwise drop the owner
    the bot was handed to off its side."""

    moves: Mapping[str, tuple[tuple[int, str, str | None, str | None], ...]] = field(default_factory=dict)
    """Bot id -> its hand-overs, in ledger order: (seq, time, owner before, owner after)."""
    keys: Mapping[str, tuple[int, str, tuple[str, ...]]] = field(default_factory=dict)
    """Key id -> (seq of its issue, its principal, the keys whose holder could have made it)."""
    acts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(table, row id) -> seq of the signed event that inserted the row (a contribution, a version, a
    training run, a model version): where in the ledger each act was done, for :meth:`owners_while` and
    :meth:`owner_at` (filled by the guard's fold of the signed ledger)."""

    def act_seq(self, table: str, row_id: str) -> int | None:
        """The seq of the event that inserted row ``row_id`` of ``table`` (None when no event did)."""
        return self.acts.get((table, row_id))

    def owners_while(self, bot: str, key_id: str | None, until: int | None) -> frozenset[str]:
        """Every human who owned ``bot`` from the issue of ``key_id`` (or of the earliest key of the bot it
        was rotated or minted from: whoever held that one could make this one) to the act, the event of seq
        ``until`` (None: now, every hand-over so far). Empty when the bot never changed hands in that span,
        or the key is unknown."""
        moves = self.moves.get(bot, ())
        if not moves or key_id is None or key_id not in self.keys:
            return frozenset()
        start = self._first_issue(key_id)
        after = [m for m in moves if m[0] > start]
        if not after:
            return frozenset()
        # The owner when the key was issued, then every owner the bot was handed to before the act.
        owners = {after[0][2]} | {to for seq, _, _, to in after if until is None or seq < until}
        return frozenset(o for o in owners if o is not None)

    def owner_at(self, bot: str, seq: int) -> str | None:
        """The owner of ``bot`` at the event of seq ``seq`` when it was handed on since (the ``from`` of the
        first hand-over after it in the ledger), else None: its owner then is its owner now."""
        return next((before for moved, _, before, _ in self.moves.get(bot, ()) if moved > seq), None)

    def _first_issue(self, key_id: str) -> int:
        principal = self.keys[key_id][1]
        first, seen, todo = self.keys[key_id][0], {key_id}, deque([key_id])
        while todo:
            for source in self.keys[todo.popleft()][2]:
                known = self.keys.get(source)
                # Only the bot's own keys: an admin's key that issued it says nothing of who held the bot's.
                if known is None or source in seen or known[1] != principal:
                    continue
                seen.add(source)
                first = min(first, known[0])
                todo.append(source)
        return first

    def folded(self, events: Iterable[LedgerFact]) -> OwnerHistory:
        """This history with ``events`` folded in (in ledger order, each after every event already folded;
        types other than ``OWNERSHIP_TYPES`` are ignored). This one is unchanged: a mapping is copied only
        when an event changes it, so a reader holding this history (a server's other request) is
        unaffected, and folding the few events since the last fold costs what they touch."""
        moves: dict[str, tuple[tuple[int, str, str | None, str | None], ...]] | None = None
        keys: dict[str, tuple[int, str, tuple[str, ...]]] | None = None
        for e in events:
            if e.type not in OWNERSHIP_TYPES:
                continue
            if e.type.startswith("principal."):
                if e.type == "principal.transferred":
                    bot = str(e.subject.get("principal"))
                    found = [(bot, (e.seq, e.time, e.payload.get("from"), e.payload.get("to")))]
                else:  # principal.disabled: the owner offboarded, the bots it handed on
                    entry = (e.seq, e.time, e.subject.get("principal"), e.payload.get("transfer_to"))
                    found = [(str(bot), entry) for bot in e.payload.get("transferred") or []]
                if found:
                    moves = dict(self.moves) if moves is None else moves
                    for bot, entry in found:
                        moves[bot] = (*moves.get(bot, ()), entry)
                continue
            record = e.payload.get("key") or {}
            new = e.subject.get("successor") if e.type == "key.rotated" else e.subject.get("key")
            sources = [record.get("parent_id"), record.get("minted_with")]
            if e.type == "key.rotated":
                sources.append(e.subject.get("key"))  # the rotated key: its holder got the successor's secret
            keys = dict(self.keys) if keys is None else keys
            keys[str(new)] = (e.seq, str(e.subject.get("principal")), tuple(str(k) for k in sources if k))
        if moves is None and keys is None:
            return self
        return OwnerHistory(self.moves if moves is None else moves, self.keys if keys is None else keys, self.acts)


def owner_history(events: Iterable[LedgerFact]) -> OwnerHistory:
    """Fold ``principal.transferred``, ``principal.disabled`` (with ``transferred`` bots), ``key.issued`` and
    ``key.rotated`` events (others are ignored), in ledger order."""
    return OwnerHistory().folded(sorted(events, key=lambda e: e.seq))


_EXACT = 16
"""Up to this many approvals answering for more than one human are packed exactly; beyond, greedily."""


def distinct_people(answering: Sequence[Collection[str]]) -> frozenset[int]:
    """Which of ``answering`` (for each approval, in the order preferred among equals, the humans it answers
    for) count as approvals of distinct people: as many as can be chosen with no human answering for two.

    Approvals answering for one human are taken first, one per human: that never costs a count (any choice
    using that human elsewhere does as well with this one instead). A bot handed on answers for every owner
    it had while its key was live; taking its approval first in time would let it stand for two people who
    both approved as well (one approval where there are two people's), so the rest are packed exactly."""
    chosen: list[int] = []
    used: set[str] = set()
    several: list[int] = []
    for i, who in enumerate(answering):
        if len(who) > 1:
            several.append(i)
        elif not used & set(who):
            used.update(who)
            chosen.append(i)
    left = [i for i in several if not used & set(answering[i])]
    if len(left) > _EXACT:
        for i in sorted(left, key=lambda i: len(answering[i])):
            if not used & set(answering[i]):
                used.update(answering[i])
                chosen.append(i)
        return frozenset(chosen)
    best: list[int] = []

    def pack(start: int, taken: list[int], held: set[str]) -> None:
        nonlocal best
        if len(taken) > len(best):
            best = list(taken)
        for n in range(start, len(left)):
            if len(taken) + len(left) - n <= len(best):
                return  # what is left cannot beat the best found
            who = set(answering[left[n]])
            if not held & who:
                pack(n + 1, [*taken, left[n]], held | who)

    pack(0, [], used)
    return frozenset([*chosen, *best])


def same_side(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two sides (:func:`side_of`) share a principal: the same submitter, a bot and its owner
    (then or now), or two bots of one owner."""
    return bool(a & b)


@dataclass(frozen=True)
class Origin:
    """Where a contribution came from, as far as independence is concerned. ``number`` orders the
    contributions of one dataset (a later contribution has a higher one)."""

    contribution_id: str
    dataset_id: str
    number: int
    side: frozenset[str]
    source_uri: str | None


def vouches(copy: Origin, suspect: Origin) -> bool:
    """Whether ``copy`` (a contribution that added a record and is not itself suspect) vouches for that
    record although the contribution ``suspect`` (quarantined, or rejected) added it too.

    * A contribution of the same dataset submitted before the suspect one existed vouches whatever its
      side: the record was there first, the suspect contribution re-sent it (what the quarantine's
      rollback version keeps).
    * Otherwise only an independent one: another side (:func:`same_side`) and another declared source
      URI. A copy by the submitter, its owner or another bot of that owner, or from the same source, is
      the suspect contribution's records again, not a second opinion on them.
    """
    if copy.dataset_id == suspect.dataset_id and copy.number < suspect.number:
        return True
    if same_side(copy.side, suspect.side):
        return False
    return copy.source_uri != suspect.source_uri


__all__ = [
    "OWNERSHIP_TYPES",
    "Origin",
    "OwnerHistory",
    "distinct_people",
    "owner_history",
    "same_side",
    "side_of",
    "vouches",
]
