"""Whether a model version was withdrawn, as the signed ledger says, and the refusal to serve one.

A withdrawal is a ``model.withdrawn`` event whose change sets the model version's stage to
``withdrawn``. Whether a version is withdrawn is read from the signed ledger's own rows (the guard's
replay, its chain checked), never from the catalog's ``stage`` column alone: a catalog row set back
to ``released`` must not make the files servable again (``verify`` reports the edit). Who withdrew it,
when and why are read from the event itself, its hash and signature checked.

The ward also puts every withdrawal on its list of access removals (``service/removal_list.py``) and
checkpoints after it (``CHECKPOINT_AFTER``): a catalog restored from a backup taken before the
withdrawal (its ledger and rows consistent, so the replay says released) is refused by every process
while a kept checkpoint is newer than its ledger, and once those are moved aside the list (and the
witness's copies of it) still holds the withdrawal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import model_versions
from dataward.domain.errors import PolicyViolation
from dataward.service import rows
from dataward.service.approval_standing import checked_events
from dataward.service.guard import SignedCheck
from dataward.service.removal_list import listed_removals

WITHDRAWN = "model.withdrawn"
"""The ledger event that withdraws a released model version."""


def withdrawn_in_ledger(ward: Any, conn: Connection, mv: Any) -> bool:
    """Whether the signed ledger made model version row ``mv`` ``withdrawn``, or the ward's list of
    access removals holds its withdrawal (whatever its catalog row says now)."""
    signed = SignedCheck(ward, conn, doing="serve").state.tables["model_versions"].get((mv.id,))
    if signed is not None and signed.get("stage") == "withdrawn":
        return True
    return listed_removals(conn).withdrawal(mv.id) is not None


def withdrawal_of(ward: Any, conn: Connection, mv_id: str) -> dict[str, Any] | None:
    """Who withdrew model version ``mv_id``, with which key, when and why (``by``, ``key``, ``at``,
    ``reason``), from its checked ``model.withdrawn`` event; None when no event withdrew it."""
    events = checked_events(
        conn, ward.signer.public_key_b64, [WITHDRAWN], consequence="the withdrawal it records cannot be read"
    )
    for event in reversed(events):
        if event.subject.get("model_version") == mv_id:
            principal = event.actor.get("principal")
            key = event.actor.get("key")
            return {
                "by": rows.principal_name(conn, principal) if principal else None,
                "key": f"dw_{key}" if key else None,
                "at": event.time,
                "reason": str(event.payload.get("reason", "")),
            }
    fact = listed_removals(conn).withdrawal(mv_id)
    if fact is not None:
        # The catalog predates the withdrawal (a restored backup, a cut ledger): the list's signed line
        # says which event withdrew it and when; who and why were in the event the catalog lost.
        return {
            "by": None,
            "key": None,
            "at": fact.time,
            "reason": f"event #{fact.seq}, which the ward's list of access removals holds; the catalog predates it "
            "(a restored backup, or a cut ledger): run `dataward verify`",
        }
    return None


def described(withdrawal: dict[str, Any] | None) -> str:
    """``withdrawn by pat at 2026-...: the reason``, for messages."""
    if withdrawal is None:
        return "withdrawn"
    by = f" by {withdrawal['by']}" if withdrawal.get("by") else ""
    return f"withdrawn{by} at {withdrawal['at']}: {withdrawal['reason']}"


def withdrawn_digests(ward: Any, row: Any) -> set[str]:
    """The SHA-256 digests of model version ``row``'s artifact and of each of its model files
    (``releases.model_file_digests``: what a consumer could load as the model, by its name, its scan or
    its bytes), ``row`` a catalog row or the signed ledger's dict of one."""
    from dataward.service.releases import model_file_digests

    digest = row.get("digest") if isinstance(row, dict) else row.digest
    return set(model_file_digests(ward.store, row)) | ({digest} if digest else set())


def same_bytes_withdrawn(ward: Any, conn: Connection, mv: Any) -> list[tuple[str, list[str]]]:
    """The withdrawn model versions (by id) that held files model version ``mv`` holds, each with the
    names of those files of ``mv``: the same artifact, or any file of ``mv``, whatever its name, holding
    the bytes (SHA-256) of a model file of a withdrawn version, in any model (``releases.shared_files``:
    a model file by either version's name for it, the scan, or its bytes). A withdrawal is final on the
    bytes, as a block is (``releases._blocks_on``): the withdrawn file registered again as a new version,
    renamed ``v1`` or ``model.skops.bak``, must not be served again.

    Read from the signed ledger (the versions its changes made ``withdrawn``, their files from their
    signed manifests) and from the ward's list of access removals, whose lines (format 6) carry the
    digests: a catalog restored from before the withdrawn version was even registered still refuses
    its bytes. ``mv``'s own files are read from its signed row when the ledger holds it."""
    from dataward.service.releases import held_files, shared_files

    check = SignedCheck(ward, conn, doing="serve")
    signed = check.state.tables["model_versions"]
    mine = held_files(ward.store, signed.get((mv.id,)) or mv)
    if not mine.files:
        return []
    found: dict[str, list[str]] = {}

    def note(withdrawn_id: str, shared: list[str]) -> None:
        if shared and withdrawn_id != mv.id:
            found[withdrawn_id] = sorted(set(found.get(withdrawn_id, [])) | set(shared))

    def against(row: Any) -> list[str]:
        return shared_files(ward.store, mine, held_files(ward.store, row))

    for row in signed.values():
        if row.get("stage") == "withdrawn" and str(row["id"]) != mv.id:
            note(str(row["id"]), against(row))
    listed = listed_removals(conn)
    for digest, fact in listed.withdrawn_files.items():
        for withdrawn_id in fact.removed.models:
            note(withdrawn_id, mine.holding({digest}))
    for withdrawn_id in listed.withdrawn:
        # A line older than format 6 names no digests: the withdrawn version's signed row, when the ledger
        # holds it (a catalog restored from after its registration, before its withdrawal), names them.
        row = signed.get((withdrawn_id,))
        if row is not None and withdrawn_id not in found and withdrawn_id != mv.id:
            note(withdrawn_id, against(row))
    return sorted(found.items())


def _version_named(ward: Any, conn: Connection, mv_id: str) -> str:
    """``model@vN`` of model version ``mv_id`` as the signed ledger (or, failing it, the catalog) names it."""
    row = SignedCheck(ward, conn, doing="serve").state.tables["model_versions"].get((mv_id,))
    if row is not None:
        return f"{row.get('model')}@v{row.get('number')}"
    found = conn.execute(
        select(model_versions.c.model, model_versions.c.number).where(model_versions.c.id == mv_id)
    ).first()
    return f"{found.model}@v{found.number}" if found is not None else f"model version {mv_id}"


def refuse_withdrawn(ward: Any, conn: Connection, mv: Any, *, doing: str) -> None:
    """Refuse (``PolicyViolation``, exit 6, recorded as ``access.denied``) to ``doing`` a model version
    the signed ledger says was withdrawn, or one holding a file a withdrawn version held (the same
    SHA-256, under any name or version number: ``same_bytes_withdrawn``), naming who withdrew it, when
    and why."""
    ref = f"{mv.model}@v{mv.number}"
    if withdrawn_in_ledger(ward, conn, mv):
        raise PolicyViolation(
            f"refusing to {doing} {ref}: it was {described(withdrawal_of(ward, conn, mv.id))}; a withdrawn model "
            "is never served",
            hint=f"release another version of {mv.model} (dataward model list {mv.model})",
            model=ref,
        )
    shared = same_bytes_withdrawn(ward, conn, mv)
    if not shared:
        return
    withdrawn_id, files = shared[0]
    more = f" (and {len(shared) - 1} other withdrawn version(s))" if len(shared) > 1 else ""
    raise PolicyViolation(
        f"refusing to {doing} {ref}: it holds {', '.join(files)}, the very bytes (SHA-256) of "
        f"{_version_named(ward, conn, withdrawn_id)}{more}, {described(withdrawal_of(ward, conn, withdrawn_id))}; "
        "a withdrawal is final on the model's files, under any name or version number",
        hint=f"train and register a new model; the withdrawn files are never approved, released or served "
        f"(dataward model list {mv.model})",
        model=ref,
    )


__all__ = [
    "WITHDRAWN",
    "described",
    "refuse_withdrawn",
    "same_bytes_withdrawn",
    "withdrawal_of",
    "withdrawn_digests",
    "withdrawn_in_ledger",
]
