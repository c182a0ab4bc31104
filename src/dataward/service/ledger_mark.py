"""The newest ledger head a process knows of, so that it never accepts a ledger that went backwards.

Deleting the newest events together with the rows they made (a revocation and its ``revoked_at``)
leaves a chain that verifies on its own: every link and signature of what is left holds. What betrays
it is a statement, made before the cut, that the ledger was longer. A process keeps the newest one it
knows of in a ``LedgerMark`` (one per ``Ward`` and the wards ``as_key`` makes from it, so one per
server process):

* every ledger head a use case read (committed, in its own transaction's snapshot), and every event
  it committed itself;
* the newest kept checkpoint in the ward's ``checkpoints/`` folder that is signed by the ward's key,
  read once, at the first use case: the ward takes one after every promotion and after every event
  that takes access away (``service/checkpoints.py``, ``CHECKPOINT_AFTER``), so a new process (a CLI
  command) starts from there.

Every use case then reads, in the statement it starts with, the ledger's head and the hash of the
event the mark names; if that event is gone (the ledger ends before it) or hashes differently (history
was rewritten at or before it), the use case is refused with ``IntegrityViolation`` naming both,
before anything is authenticated, read or signed, and ``verify`` reports it as a ledger problem.

The mark a use case is checked against is taken *before* its transaction starts: whatever the mark
names was committed by then, so the transaction's snapshot must hold it. A concurrent request that
started before a newer event was committed (an older snapshot, legitimately) is checked against the
older mark it took, and is not refused for it.

What this does not catch: a cut made before the process saw the events and after the newest kept
checkpoint (the next CLI command has nothing newer to compare with), and a cut whose kept checkpoints
were deleted too by someone who can write the ward folder; a checkpoint kept outside the ward (the
witness, ``verify --checkpoint``) catches those (docs/threat-model.md, "Anchored verification").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog import ledger_store
from dataward.domain.errors import DatawardError, IntegrityViolation
from dataward.ledger.checkpoint import Checkpoint
from dataward.ledger.events import format_time, utc_now
from dataward.ledger.signing import SignatureVerifier
from dataward.service.config import CHECKPOINTS_DIR

HEAD_PROBE = select(
    ledger_store.HEAD_SEQ_QUERY.scalar_subquery().label("head_seq"),
    ledger_store.HEAD_HASH_QUERY.scalar_subquery().label("head"),
    ledger_store.HASH_AT_QUERY.scalar_subquery().label("at_mark"),
    ledger_store.HEAD_TIME_QUERY.scalar_subquery().label("head_time"),
)
"""The ledger's head (``head_seq``, ``head``, its time ``head_time``) and the hash of event ``:mark_seq``
(``at_mark``), in one statement. Run with ``{"mark_seq": mark.seq}`` (0 when there is no mark)."""

KEPT_FILES_READ = 16
"""How many of the newest kept checkpoint files a process reads to find one signed by the ward's key
(a file that does not verify is reported by ``verify``, and skipped here)."""

_HINT = (
    "run `dataward verify` to see what is missing or rewritten; restore the catalog from a backup that "
    "holds every event, or, after restoring an older catalog on purpose, move the newer checkpoints out of "
    "the ward's checkpoints/ folder and restart the server"
)


@dataclass(frozen=True)
class Seen:
    """A ledger head the process knows existed: event ``seq`` hashed to ``hash``."""

    seq: int
    hash: str
    source: str
    """Where the process learnt it: a head it read, or the kept checkpoint it started from."""
    time: str


class LedgerMark:
    """The newest ledger head this process knows of, for one ward (see the module docstring)."""

    def __init__(self, folder: Path | None, public_key: str, ward_id: str) -> None:
        self._folder = folder
        self._public_key = public_key
        self._ward_id = ward_id
        self._seen: Seen | None = None
        self._seeded = folder is None
        self._lock = threading.Lock()

    def floor(self) -> Seen | None:
        """The newest head known now: what a transaction that starts after this call must hold."""
        if not self._seeded:
            kept = newest_kept_checkpoint(self._folder, self._public_key, self._ward_id)  # type: ignore[arg-type]
            with self._lock:
                if not self._seeded:
                    self._seeded = True
                    if kept is not None:
                        self._advance(Seen(kept.seq, kept.head, f"the kept checkpoint {kept.source}", kept.time))
        return self._seen

    def observe(self, seq: int | None, digest: str | None) -> None:
        """Note a committed head: event ``seq`` hashes to ``digest``."""
        if seq is None or digest is None or seq <= 0:
            return
        current = self._seen
        if current is not None and current.seq >= seq:
            return
        with self._lock:
            self._advance(Seen(int(seq), str(digest), "the ledger head this process read", format_time(utc_now())))

    def _advance(self, seen: Seen) -> None:
        if self._seen is None or seen.seq > self._seen.seq:
            self._seen = seen

    @staticmethod
    def params(floor: Seen | None) -> dict[str, Any]:
        """The parameters of ``HEAD_PROBE`` (and of the served probe) for ``floor``."""
        return {"mark_seq": floor.seq if floor is not None else 0}

    def check(self, floor: Seen | None, head_seq: int | None, head: str | None, at_mark: str | None) -> str | None:
        """What is wrong with a ledger whose head is ``head_seq``/``head`` and whose event ``floor.seq``
        hashes to ``at_mark`` (read in one statement after ``floor`` was taken); None when it extends
        ``floor``, and then the head is noted."""
        problem = describe(floor, head_seq, at_mark)
        if problem is None:
            self.observe(head_seq, head)
        return problem

    def enforce(self, floor: Seen | None, head_seq: int | None, head: str | None, at_mark: str | None) -> None:
        """``check``, raising ``IntegrityViolation`` when the ledger does not extend ``floor``."""
        problem = self.check(floor, head_seq, head, at_mark)
        if problem is not None:
            assert floor is not None
            raise IntegrityViolation(
                f"refusing a ledger that went backwards: {problem}",
                hint=_HINT,
                event=min(floor.seq, (head_seq or 0) + 1),
                seen_seq=floor.seq,
                seen_hash=floor.hash,
                head_seq=head_seq or 0,
            )

    def probe(self, conn: Connection, floor: Seen | None) -> Any:
        """Run ``HEAD_PROBE`` for ``floor`` on ``conn`` (its one row)."""
        return conn.execute(HEAD_PROBE, self.params(floor)).one()


def describe(floor: Seen | None, head_seq: int | None, at_mark: str | None) -> str | None:
    """Why a ledger whose head is ``head_seq`` and whose event ``floor.seq`` hashes to ``at_mark`` does
    not extend ``floor`` (None when it does)."""
    if floor is None or floor.seq <= 0:
        return None
    ends = int(head_seq or 0)
    if ends < floor.seq:
        return (
            f"the ledger ends at event #{ends}, but {floor.source} at {floor.time} is event #{floor.seq} "
            f"(hash {floor.hash}): "
            + (
                f"event #{floor.seq} at least was deleted"
                if ends + 1 == floor.seq
                else f"events #{ends + 1} to #{floor.seq} at least were deleted"
            )
        )
    if at_mark != floor.hash:
        return (
            f"event #{floor.seq} hashes to {at_mark}, but in {floor.source} at {floor.time} it hashed to "
            f"{floor.hash}: history was rewritten at or before event #{floor.seq}"
        )
    return None


def newest_kept_checkpoint(folder: Path, public_key: str, ward_id: str) -> Checkpoint | None:
    """The newest checkpoint in ``folder``'s ``checkpoints/`` signed by ``public_key`` for ``ward_id``
    (None when there is none among the ``KEPT_FILES_READ`` newest files)."""
    kept = folder / CHECKPOINTS_DIR
    try:
        names = sorted((p for p in kept.glob("*.json") if not p.name.startswith(".")), reverse=True)
    except OSError:
        return None
    verifier: SignatureVerifier | None = None
    for path in names[:KEPT_FILES_READ]:
        try:
            checkpoint = Checkpoint.from_json(path.read_bytes(), source=f"checkpoints/{path.name}")
        except (OSError, DatawardError):
            continue
        if checkpoint.ward != ward_id:
            continue
        verifier = verifier or SignatureVerifier(public_key)
        if checkpoint.verify_signature(verifier):
            return checkpoint
    return None
