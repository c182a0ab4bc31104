"""``verify``'s check of the list of access removals (``service/removal_list.py``) against the ledger
and the witness: what was tampered with, what the ledger lost (a restored backup, a cut tail) and is
still in force only through the list, and what the list lost.

An access removal the list holds but the ledger does not is reported with the command that applies it
again; once an admin has (the ledger then takes the same access away again), it is no longer a problem
but a warning that says it was lost and re-applied.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field

from dataward.access.removals import LISTED, REMOVAL_TYPES, RemovalFact, Removals, fold, removed_by
from dataward.domain.errors import DatawardError
from dataward.ledger.events import Event
from dataward.ledger.removal_line import RemovalLine
from dataward.ledger.signing import SignatureVerifier
from dataward.service.config import REMOVALS_FILE
from dataward.service.removal_list import ListRead, in_order

_LISTED_FROM = {"grant.revoked": 2, "contribution.quarantined": 3, "model.withdrawn": 5}
"""The line format from which the list holds events of these types (every other type: from format 1)."""


@dataclass
class RemovalCheck:
    """What ``verify`` reports about the list: ``(kind, where, detail)`` problems, and warnings."""

    problems: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: int = 0
    listed: Removals = field(default_factory=Removals)
    """What the list takes away: its lines, those this process read and the witness copies, folded."""


def ledger_removals(events: Iterable[Event]) -> list[RemovalFact]:
    """The access removals of the ledger's own events, in sequence order."""
    facts = []
    for e in events:
        removed = removed_by(e.type, e.time, e.subject, e.payload)
        if removed is not None:
            facts.append(RemovalFact(e.seq, e.hash, e.type, e.time, removed))
    return facts


def _outstanding(
    fact: RemovalFact, listed: Removals, ledger: Removals, names: Mapping[str, str], held: Container[str] | None
) -> tuple[list[str], list[str]]:
    """The commands that would apply again what ``fact`` took away and the ledger does not, and what it
    took away that the catalog never held (``held``: the ids of its keys, principals, grants and
    contributions; None: not known), which no command can take away again and nothing gives back."""
    commands: list[str] = []
    absent: list[str] = []

    def needs(thing: str, what: str, command: str) -> None:
        if held is not None and thing not in held:
            absent.append(what)
        else:
            commands.append(command)

    for key in fact.removed.keys:
        found = listed.revoked.get(key)
        if found is not None and found[0] == fact and key not in ledger.revoked:
            needs(key, f"key dw_{key}", f"`dataward key revoke dw_{key}`")
    for principal in fact.removed.principals:
        if listed.stopped.get(principal) == fact and ledger.principal_refusal(principal) is None:
            name = names.get(principal, principal)
            needs(principal, f"principal {name}", f"`dataward principal disable {name}`")
    for grant in fact.removed.grants:
        if listed.grant_refusal(grant) == fact and ledger.grant_refusal(grant) is None:
            needs(grant, f"grant {grant}", f"`dataward grant revoke` (grant {grant}, shown by `dataward grant list`)")
    for contribution in fact.removed.contributions:
        if listed.quarantine(contribution) == fact and ledger.quarantine(contribution) is None:
            ref = names.get(contribution, contribution)
            needs(contribution, f"contribution {ref}", f"`dataward quarantine {ref} --reason ...`")
    for model_version in fact.removed.models:
        if listed.withdrawal(model_version) == fact and ledger.withdrawal(model_version) is None:
            ref = names.get(model_version, model_version)
            needs(model_version, f"model version {ref}", f"`dataward model withdraw {ref} --reason ...`")
    return commands, absent


def check_removals(
    before: ListRead,
    after: ListRead,
    public_key: str,
    ward_id: str,
    hashes: Mapping[int, str],
    ledger_events: Iterable[Event],
    *,
    remembered: Iterable[RemovalLine] = (),
    witness_lines: Iterable[tuple[str, bytes]] | None = None,
    names: Mapping[str, str] | None = None,
    held: Container[str] | None = None,
) -> RemovalCheck:
    """Check the list against the ledger (``hashes``: seq -> hash; ``ledger_events``: its events of
    ``REMOVAL_TYPES``), the lines this process read (``remembered``) and the witness copies
    (``witness_lines``, None when no witness is set). ``names`` names principals and contributions in
    the commands; ``held`` holds the ids of the catalog's keys, principals, grants and contributions: a
    removal of one the restored catalog never held is a warning, since no command can record it again.

    The list is read twice, because a removal committed while ``verify`` runs is appended to it after
    its commit: ``before`` is read before ``verify``'s transaction began, so each of its lines names an
    event the transaction's snapshot must hold (only these, and lines gone from the file, can be
    reported as lost by the ledger); ``after`` is read once the ledger was read (and after the witness),
    so it holds a line for every removal the snapshot holds."""
    names = names or {}
    ledger_events = list(ledger_events)
    check = RemovalCheck(lines=len(after.lines))
    for where, why in dict.fromkeys([*before.problems, *after.problems]):
        check.problems.append(("tampered", where, why))
    if after.torn is not None:  # a write cut short: the next removal cuts it off (``removal_list.torn_tail``)
        check.warnings.append(f"the list of access removals ends in a torn write: {after.torn}")
    on_file = {line.digest for line in after.lines}
    # The lines whose events must be in the ledger: those listed before the snapshot, and those gone
    # from the file (a process or the witness holds them; they were listed before it too).
    settled: dict[str, RemovalLine] = {line.digest: line for line in before.lines}
    for line in remembered:
        if line.digest not in on_file:
            check.problems.append(
                (
                    "lines_gone",
                    REMOVALS_FILE,
                    f"line {line.n} (event #{line.seq}, {line.type}) was read by this process and is gone "
                    "from the file",
                )
            )
            settled.setdefault(line.digest, line)
    if witness_lines is not None:
        verifier = SignatureVerifier(public_key)
        for where, text in witness_lines:
            try:
                line = RemovalLine.from_json(text, source=where)
            except DatawardError as exc:
                check.problems.append(("tampered", where, exc.message))
                continue
            if line.ward != ward_id or not line.verify_signature(verifier):
                check.problems.append(("tampered", where, "the witness copy is not signed by the ward's key"))
                continue
            if line.digest not in on_file:
                check.problems.append(
                    (
                        "lines_gone",
                        where,
                        f"the witness holds line {line.n} (event #{line.seq}, {line.type}) that {REMOVALS_FILE} "
                        "lacks: the list was cut, replaced or deleted",
                    )
                )
                settled.setdefault(line.digest, line)
    every = {**settled, **{line.digest: line for line in after.lines}}
    listed = check.listed = fold(line.fact() for line in in_order(every.values()))
    ledger_facts = ledger_removals(e for e in ledger_events if e.type in REMOVAL_TYPES)
    ledger = fold(ledger_facts)
    for line in settled.values():
        fact = line.fact()
        if hashes.get(fact.seq) == fact.hash:
            continue
        commands, absent = _outstanding(fact, listed, ledger, names, held)
        what = f"event #{fact.seq} ({fact.type} at {fact.time})"
        if absent:
            check.warnings.append(
                f"{what} is on the ward's list of access removals but not in the ledger, and the catalog never "
                f"held its {', '.join(absent)} (made after the backup): nothing to record again, and the list "
                "keeps it taken away"
            )
        if commands:
            check.problems.append(
                (
                    "lost_removal",
                    f"event #{fact.seq}",
                    f"{what} is on the ward's list of access removals but not in the ledger: the catalog "
                    "predates it (a restored backup, or a cut ledger). The ward still refuses what it took "
                    f"away; record it again with {', '.join(commands)}",
                )
            )
        elif not absent:
            check.warnings.append(
                f"{what} is on the ward's list of access removals but not in the ledger (the catalog predates "
                "it); what it took away is taken away again in the ledger"
            )
    # A ledger removal after the first one the list holds must be on the list: one that is not was
    # taken off its end (a line removed from the middle breaks the chain, above).
    facts = [line.fact() for line in every.values()]
    matched = [f.seq for f in facts if hashes.get(f.seq) == f.hash]

    # Grant revocations are listed from the first line of format 2 on, quarantines from format 3 on: a
    # list begun before then lacks the earlier ones without having lost them.
    def first_matched(since_format: int) -> int | None:
        lines = every.values()
        return min((x.seq for x in lines if x.format >= since_format and hashes.get(x.seq) == x.hash), default=None)

    listed_hashes = {f.hash for f in facts}
    # An event that says it is listed (``LISTED``, in its signed payload) must be on the list whatever
    # lines are left: the lines of a newer format can all be cut from the end of an older list.
    declared = {e.hash for e in ledger_events if isinstance(e.payload, dict) and e.payload.get(LISTED) is True}
    # A file that holds only a torn line was cut inside its first line (or its first write was cut
    # short), not deleted: the list had begun, and every removal of the ledger is missing from it.
    cut_first = not matched and not after.lines and after.torn is not None
    if matched or cut_first:
        for fact in ledger_facts:
            since = first_matched(_LISTED_FROM.get(fact.type, 1))
            expected = cut_first or fact.hash in declared or (since is not None and fact.seq > since)
            if expected and fact.hash not in listed_hashes:
                check.problems.append(
                    (
                        "unlisted",
                        f"event #{fact.seq}",
                        f"the ledger's event #{fact.seq} ({fact.type}) is not on the ward's list of access "
                        f"removals, which holds earlier ones: lines were removed from the end of {REMOVALS_FILE} "
                        "(or the ward stopped between recording the event and listing it)",
                    )
                )
    elif ledger_facts and not every:
        check.warnings.append(
            f"the ledger holds {len(ledger_facts)} event(s) that take access away but there is no {REMOVALS_FILE}: "
            "new in this state folder, or deleted; removals are listed from the next one on, and until then a "
            "rollback of the catalog gives back what they took away"
        )
    return check


__all__ = ["RemovalCheck", "check_removals", "ledger_removals"]
