"""Signed checkpoints of the ledger: made on request, after every promotion and after every event that
takes access away (``CHECKPOINT_AFTER``), kept in the ward's ``checkpoints/`` folder, and copied to a
witness location outside the ward when one is configured.

The copies inside the ward are a convenience (anyone who can write the folder can delete them);
what anchors the ledger is a copy the ward's writers cannot reach: the witness, a file in a git
repository, a ticket. ``dataward verify --checkpoint FILE --public-key FILE`` checks against those.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from dataward.access.roles import Action, Scope
from dataward.catalog import ledger_store
from dataward.catalog.tables import ledger_events
from dataward.domain.errors import AccessDenied, DatawardError, InputError, missing_file
from dataward.ledger.checkpoint import Checkpoint
from dataward.ledger.events import Event, format_time
from dataward.ledger.removal_line import RemovalLine
from dataward.ledger.signing import key_fingerprint
from dataward.service.config import CHECKPOINTS_DIR, WardConfig
from dataward.service.core import Service, UseCase
from dataward.service.identity import acts_as_admin
from dataward.service.signed_witness import WITNESS_EVENT, SignedWitness, signed_witness

log = logging.getLogger("dataward.checkpoints")

CHECKPOINT_AFTER = frozenset(
    {
        "version.promoted",
        # Events that take access away: deleting one (with the rows it changed) would give it back.
        "key.revoked",
        "key.rotated",
        "grant.revoked",
        "principal.disabled",
        "principal.suspended",
        "principal.transferred",
        # A quarantine takes records away from training: a ledger cut back to before it would serve them.
        "contribution.quarantined",
        # A rejection takes a contribution (or a reviewed record) away from training, a withdrawal a model
        # from use: a ledger cut back to before one would let the contribution be merged, the record
        # accepted or the model's files be served again.
        "contribution.rejected",
        "review.rejected",
        "model.withdrawn",
        # Setting, moving or stopping the witness: the new witness holds a checkpoint from the moment
        # it is set (so ``verify`` can tell an emptied or substituted one), and the previous one a
        # checkpoint of the move (``service/signed_witness.py``).
        WITNESS_EVENT,
    }
)
"""Event types after which the ward writes a checkpoint on its own: a promotion, every event that
takes access away, so that a ledger cut back to before one of them ends before a kept checkpoint
(which plain ``verify`` reports, and which every process refuses: ``service/ledger_mark.py``), and
every change of the witness."""


def takes_checkpoint(event: Event) -> bool:
    """Whether the ward checkpoints on its own after ``event``: a type of ``CHECKPOINT_AFTER``, or an
    enabling that revoked keys (those left unrevoked while the principal was stopped)."""
    if event.type in CHECKPOINT_AFTER:
        return True
    payload = event.payload if isinstance(event.payload, dict) else {}
    return event.type == "principal.enabled" and bool(payload.get("revoked_keys"))


@dataclass
class Loaded:
    """Checkpoints read from one place, and what could not be read there."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """``(path, why)`` of files that are not valid checkpoints."""


WITNESS_REMOVALS = "removals"
"""The folder of a ward's witness copies that holds its removal lines, one file each."""

WITNESS_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
"""The object stores a witness may be (besides a local folder, also written ``file://``): each needs
its fsspec backend installed (``s3fs``, ``gcsfs``, ``adlfs``). Anything else is refused: a witness
URL is something the server writes to and reads from, so HTTP(S) (requests to any host the server can
reach), in-memory and chained (``a::b``) URLs are not witnesses."""

_OUTSIDE_HINT = "a witness must be somewhere the ward's writers cannot edit: another disk, a bucket, a share"


def _protocol(location: str) -> str | None:
    """The URL scheme of ``location`` (lower-cased), or None for a plain path."""
    scheme, sep, _ = location.partition("://")
    return scheme.lower() if sep else None


def _check_backend(protocol: str) -> None:
    import fsspec  # here, not at import: only a ward with a witness uses it

    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError):
        raise InputError(
            f"the witness protocol {protocol}:// has no filesystem backend installed",
            hint="install its fsspec backend (s3fs for s3://, gcsfs for gs://, adlfs for az:// and abfs://)",
        ) from None


def check_witness_location(location: str, ward_folder: Path) -> str:
    """The witness ``location`` as stored: a local folder, resolved (symlinks and ``..``) and outside the
    ward folder, or an object-store URL of :data:`WITNESS_PROTOCOLS` whose backend is installed.

    Refused (InputError): an empty location, a chained URL (``::``), any other protocol, and a folder
    inside the ward (a copy its writers can edit witnesses nothing). The errors never name a server
    path: they reach API clients, who need not learn where the ward lives."""
    location = location.strip()
    if not location:
        raise InputError("the witness location is empty")
    if "::" in location:
        raise InputError(
            "the witness location is a chained URL (it holds '::'); a witness is one folder or one bucket",
            hint=f"give a local folder outside the ward, or a URL of {', '.join(WITNESS_PROTOCOLS)}",
        )
    protocol = _protocol(location)
    if protocol is not None and protocol != "file":
        if protocol not in WITNESS_PROTOCOLS:
            raise InputError(
                f"the witness protocol {protocol}:// is not allowed",
                hint=f"give a local folder outside the ward, or a URL of {', '.join(WITNESS_PROTOCOLS)}",
            )
        _check_backend(protocol)
        return location
    local = location[len("file://") :] if protocol == "file" else location
    if not local or "\x00" in local:
        raise InputError("the witness location is not a folder path")
    path = Path(local).expanduser().resolve()
    ward = ward_folder.expanduser().resolve()
    if path == ward or ward in path.parents:
        raise InputError("the witness location is inside the ward's folder", hint=_OUTSIDE_HINT)
    return str(path)


WITNESS_ALLOW_ENV = "DATAWARD_WITNESS_ALLOW"
"""The operator's list of where a served ward's witness may be (comma-separated folders and URL
prefixes); unset, anywhere ``check_witness_location`` accepts."""


def witness_allowed(location: str, allowed: Sequence[str]) -> bool:
    """Whether the witness ``location`` (as ``check_witness_location`` stores it) is one of ``allowed``
    or inside one: a folder at or below an allowed folder (both resolved, compared by path components, so
    ``/srv/w`` does not allow ``/srv/w-other``), a URL of the same protocol at or below an allowed URL."""
    protocol = _protocol(location)
    for entry in (a.strip() for a in allowed):
        if not entry:
            continue
        kind = _protocol(entry)
        if kind is not None and kind != "file":
            base = entry.rstrip("/")
            if protocol == kind and (location.rstrip("/") == base or location.startswith(base + "/")):
                return True
            continue
        if protocol is not None and protocol != "file":
            continue
        folder = Path(entry[len("file://") :] if kind == "file" else entry).expanduser().resolve()
        path = Path(location[len("file://") :] if protocol == "file" else location)
        if path == folder or folder in path.parents:
            return True
    return False


def _require_witness_admin(uc: UseCase) -> None:
    """Refuse (``AccessDenied``) a caller that is not a ward admin through its key: a leaked read-only
    key of an admin must not switch off the anchor that catches the newest events being deleted."""
    if not acts_as_admin(uc, Scope.ward(), Action.PRINCIPAL_CREATE):
        raise AccessDenied(
            "only a ward admin may change where checkpoints are witnessed",
            hint="use an admin's key that is not limited to other scopes",
        )


def refuse_witness_outside(location: str, allowed: Sequence[str]) -> None:
    """Refuse (``AccessDenied``) the witness ``location`` (as stored) when ``allowed`` (the operator's
    list, :data:`WITNESS_ALLOW_ENV`) is not empty and holds neither it nor a folder or URL above it. The
    refusal does not list the allowed locations: they are the server's folders and buckets."""
    if allowed and not witness_allowed(location, allowed):
        raise AccessDenied(
            f"the witness location is outside the locations this server's operator allows ({WITNESS_ALLOW_ENV})",
            hint=f"ask whoever runs the server which folders or buckets {WITNESS_ALLOW_ENV} names, and give one of "
            "them or a folder inside one",
        )


@contextmanager
def _reaching(location: str) -> Iterator[None]:
    """Any failure to reach the witness as an ``OSError`` naming it. Object stores' clients raise their
    own errors (botocore's ``NoCredentialsError`` or ``EndpointConnectionError``, an ``ImportError`` for a
    protocol whose package is missing); every caller reports an ``OSError`` as a witness out of reach
    (logged, or ``verify``'s ``witness_unreachable``) instead of failing the read or write it serves."""
    try:
        yield
    except (OSError, ValueError):
        raise
    except Exception as exc:
        raise OSError(f"the witness {location} cannot be reached: {type(exc).__name__}: {exc}") from exc


def witness_root(location: str, ward_id: str) -> tuple[Any, str]:
    """The fsspec filesystem and folder where this ward's witness copies go. A location no longer
    allowed (set in ``ward.json`` before the protocols were limited) raises ValueError, which the
    callers report as a witness they could not reach."""
    import fsspec  # here, not at import: only a ward with a witness uses it

    protocol = _protocol(location)
    if "::" in location or (protocol is not None and protocol not in ("file", *WITNESS_PROTOCOLS)):
        raise ValueError("the witness location is not an allowed witness; set it again (`checkpoint witness`)")
    fs, root = fsspec.core.url_to_fs(location)
    return fs, f"{root.rstrip('/')}/{ward_id}"


def send_to_witness(checkpoint: Checkpoint, location: str) -> str:
    """Copy ``checkpoint`` to the witness; never overwrites a copy already there. Returns its path (raises
    ``OSError`` when the witness cannot be reached)."""
    with _reaching(location):
        fs, folder = witness_root(location, checkpoint.ward)
        path = f"{folder}/{checkpoint.name}"
        fs.makedirs(folder, exist_ok=True)
        if not fs.exists(path):
            fs.pipe_file(path, checkpoint.to_json().encode("utf-8"))
        return path


def read_witness(location: str, ward_id: str) -> Loaded:
    """Every witness copy of this ward's checkpoints (raises ``OSError`` when unreachable)."""
    with _reaching(location):
        fs, folder = witness_root(location, ward_id)
        loaded = Loaded()
        if not fs.exists(folder):
            return loaded
        for path in sorted(fs.glob(f"{folder}/*.json")):
            try:
                loaded.checkpoints.append(Checkpoint.from_json(fs.cat_file(path), source=f"witness {path}"))
            except DatawardError as exc:
                loaded.unreadable.append((f"witness {path}", exc.message))
        return loaded


def read_folder(folder: Path, *, label: str) -> Loaded:
    """Every ``*.json`` checkpoint in a local folder."""
    loaded = Loaded()
    if not folder.is_dir():
        return loaded
    for path in sorted(folder.glob("*.json")):
        try:
            loaded.checkpoints.append(Checkpoint.from_json(path.read_bytes(), source=f"{label} {path.name}"))
        except DatawardError as exc:
            loaded.unreadable.append((f"{label} {path.name}", exc.message))
        except OSError as exc:
            loaded.unreadable.append((f"{label} {path.name}", str(exc)))
    return loaded


def load_checkpoint_files(paths: Iterable[str | os.PathLike[str]]) -> list[Checkpoint]:
    """Checkpoints named on the command line: files, or folders of ``*.json`` checkpoints (a witness
    folder works as is). A file that is not a checkpoint is an ``InputError``."""
    found: list[Checkpoint] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files = sorted(path.rglob("*.json"))
            if not files:
                raise InputError(f"{path} holds no *.json checkpoint")
        elif not path.exists():
            raise missing_file(path)
        else:
            files = [path]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read the checkpoint {file}: {exc.strerror or exc}") from None
            found.append(Checkpoint.from_json(data, source=str(file)))
    return found


def empty_state_warning(folder: Path) -> str:
    """What ``verify`` and ``serve`` say when the (state) folder holds no kept checkpoint."""
    return (
        f"no kept checkpoint in {folder / CHECKPOINTS_DIR}: nothing here anchors the ledger against a rollback "
        "(a restored or cut catalog is not refused) until the ward takes its next checkpoint; if this is a new "
        "--state folder, copy the old one's checkpoints/ and removals.jsonl into it, or run `dataward checkpoint` now"
    )


def state_warnings(folder: Path, checkpointed: bool) -> list[str]:
    """Why the (state) ``folder`` anchors nothing: it holds no kept checkpoint though the ledger holds an
    event after which the ward keeps one (``checkpointed``: a new, empty ``--state`` folder, or one
    emptied). A ward that never revoked, disabled or promoted anything has none yet, rightly."""
    if not checkpointed or any((folder / CHECKPOINTS_DIR).glob("*.json")):
        return []
    return [empty_state_warning(folder)]


def checkpointed(conn: Connection) -> bool:
    """Whether the ledger holds an event of ``CHECKPOINT_AFTER`` (after which a kept checkpoint exists)."""
    query = select(ledger_events.c.seq).where(ledger_events.c.type.in_(sorted(CHECKPOINT_AFTER))).limit(1)
    return conn.execute(query).first() is not None


class CheckpointService(Service):
    """Use cases on checkpoints and on the ward's public key."""

    def checkpoint(self) -> dict[str, Any]:
        """Sign a checkpoint of the ledger as it is now (kept in the ward and sent to the witness)."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            seq, digest = ledger_store.head(uc.conn)
            witness = signed_witness(uc.conn)
        checkpoint = Checkpoint.sign(self.signer, ward=self.ward_id, seq=seq, head=digest, time=format_time(self.now()))
        return {**checkpoint.to_dict(), **self._keep(checkpoint, witness.location)}

    def checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoints kept in the ward folder, oldest first."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()):
            loaded = read_folder(self.folder / CHECKPOINTS_DIR, label="kept")
        return [{**c.to_dict(), "file": c.name} for c in loaded.checkpoints]

    def take_witnessed_removals(self) -> int:
        """Read the witness's copies of the list of access removals (the witness the signed ledger names)
        and count every one signed by the ward's key as in force in this process (``RemovalList.
        take_witness``). A server does it once per worker at start: someone who rolls the catalog back
        and deletes ``removals.jsonl`` too does not get a revoked key back there. An unreachable witness
        is logged, not raised (``verify`` reports it), and read again by a later request. Returns how many
        removals the file lacked."""
        try:
            with self.db.reading() as conn:
                return self.context.removals.take_witness(conn)
        except SQLAlchemyError as exc:
            log.warning("the witness's copies of the list of access removals were not read: %s", exc)
            return 0

    def state_warnings(self) -> list[str]:
        """``state_warnings`` of this ward's folder (read without a key: the server says it on start)."""
        with self.db.reading() as conn:
            return state_warnings(self.folder, checkpointed(conn))

    def public_key(self) -> dict[str, Any]:
        """The ward's Ed25519 public key, to pin outside the ward for ``verify --public-key``.

        Any principal with a standing key may read it (the caller is authenticated, no role is asked): a
        dataset owner who checks a model's attestation offline needs it, and a public key is public."""
        with self.use_case(Action.LEDGER_READ, Scope.ward(), check=False, write=False):
            pass
        b64 = self.signer.public_key_b64
        return {
            "ward": self.ward_id,
            "public_key": b64,
            "fingerprint": key_fingerprint(b64),
            "pem": self.signer.public_key_pem,
        }

    def witness(self) -> dict[str, Any]:
        """Where witness copies of checkpoints go (``None``: nowhere): the location of the newest signed
        ``ward.witness_set`` event, not ``ward.json``'s copy of it."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            witness = signed_witness(uc.conn)
        return {"ward": self.ward_id, "witness": witness.location}

    def check_may_set_witness(self) -> None:
        """Refuse (``AuthenticationError``, ``AccessDenied``; recorded as any refusal) a caller that may
        not set the witness: what a server asks before it checks a location against its operator's list,
        so that nobody else learns from its answer where the ward's folder is or what the list holds."""
        with self.use_case(Action.LEDGER_READ, Scope.ward(), check=False, write=False) as uc:
            _require_witness_admin(uc)

    def set_witness(self, location: str | None) -> dict[str, Any]:
        """Send a witness copy of every future checkpoint to ``location`` (a folder or fsspec URL
        outside the ward); ``None`` stops it. Admins only; recorded as ``ward.witness_set``."""
        # A write: the event and the configuration change go together, under the lock.
        with self.use_case(Action.LEDGER_READ, Scope.ward(), check=False, write=True) as uc:
            _require_witness_admin(uc)
            # Checked once the caller is known to be an admin: the refusal of a location inside the
            # ward says where the ward's folder is.
            resolved = None if location is None else check_witness_location(location, self.folder)
            previous = signed_witness(uc.conn).location
            uc.emit(WITNESS_EVENT, {"ward": self.ward_id}, {"witness": resolved, "previous": previous})
            # ward.json keeps a copy for people reading the folder; nothing reads the witness from it.
            config = WardConfig.load(self.folder)
            WardConfig(**{**config.__dict__, "witness": resolved}).save(self.folder)
        return {"ward": self.ward_id, "witness": resolved}

    # --- writing checkpoints --------------------------------------------------------------------

    def _keep(self, checkpoint: Checkpoint, location: str | None, previous: str | None = None) -> dict[str, Any]:
        """Store ``checkpoint`` in the ward folder and send it to the witness ``location`` (the signed
        one, ``signed_witness``) and, after a move or stop, to the ``previous`` one too, so that the old
        witness records where its watch ended; say where it went."""
        folder = self.folder / CHECKPOINTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / checkpoint.name
        if not path.exists():
            tmp = folder / f".{checkpoint.name}.{os.getpid()}.tmp"
            tmp.write_text(checkpoint.to_json(), "utf-8")
            os.replace(tmp, path)
        where: dict[str, Any] = {"kept": str(path), "witness": None}
        if previous and previous != location:
            try:
                send_to_witness(checkpoint, previous)
            except (OSError, ValueError) as exc:
                log.warning("checkpoint #%s was not sent to the previous witness %s: %s", checkpoint.seq, previous, exc)
        if location:
            try:
                where["witness"] = send_to_witness(checkpoint, location)
            except (OSError, ValueError) as exc:
                log.warning("checkpoint #%s was not sent to the witness %s: %s", checkpoint.seq, location, exc)
                where["witness_error"] = str(exc)
        return where

    def checkpoint_after(self, events: list[Event]) -> None:
        """After a committed use case: checkpoint its last event when it promoted something or took
        access away (``takes_checkpoint``).

        The event is already recorded; a checkpoint that cannot be written is logged, not raised.
        """
        if events:
            self._list_removals(events)
        if not events or not any(takes_checkpoint(e) for e in events):
            return
        last = events[-1]
        try:
            with self.db.reading() as conn:
                witness = signed_witness(conn)
            checkpoint = Checkpoint.sign(
                self.signer, ward=self.ward_id, seq=last.seq, head=last.hash, time=format_time(self.now())
            )
            self._keep(checkpoint, witness.location, _previous_witness(events, witness))
        except (OSError, DatawardError, SQLAlchemyError) as exc:
            log.warning("no checkpoint was written after event #%s: %s", last.seq, exc)

    def _list_removals(self, events: list[Event]) -> None:
        """Put the events that take access away on the ward's list of access removals and send the new
        lines to the witness (``service/removal_list.py``). Logged, not raised: the events are committed."""
        try:
            lines = self.context.removals.append(self.signer, events)
            if not lines:
                return
            with self.db.reading() as conn:
                location = signed_witness(conn).location
            for line in lines if location else ():
                try:
                    send_removal_to_witness(line, location, self.ward_id)  # type: ignore[arg-type]
                except (OSError, ValueError) as exc:
                    log.warning("removal of event #%s was not sent to the witness %s: %s", line.seq, location, exc)
        except (OSError, DatawardError, SQLAlchemyError) as exc:
            log.warning("the list of access removals was not extended after event #%s: %s", events[-1].seq, exc)


def send_removal_to_witness(line: RemovalLine, location: str, ward_id: str) -> str:
    """Copy one line of the list of access removals to the witness, as its own file under ``removals/``
    (object stores cannot append); never overwrites a copy already there. Returns its path (raises
    ``OSError`` when the witness cannot be reached)."""
    with _reaching(location):
        fs, folder = witness_root(location, ward_id)
        folder = f"{folder}/{WITNESS_REMOVALS}"
        # ``.jsonl``, not ``.json``: a witness folder given to ``verify --checkpoint`` is read for ``*.json``
        # checkpoints, recursively.
        path = f"{folder}/{line.n:08d}-{line.seq:012d}-{line.digest.split(':', 1)[-1][:16]}.jsonl"
        fs.makedirs(folder, exist_ok=True)
        if not fs.exists(path):
            fs.pipe_file(path, (line.to_json() + "\n").encode("utf-8"))
        return path


def read_witness_removals(location: str, ward_id: str) -> list[tuple[str, bytes]]:
    """Every witness copy of this ward's removal lines, ``(where, text)`` in file-name order (raises
    ``OSError`` when unreachable).

    A witness without this ward's folder counts as out of reach, not as one that holds no removal: the
    folder holds a checkpoint from the moment the witness is set, so its absence is a share not mounted
    (or a folder moved or emptied), and a process that took it for an empty witness would never read it
    again (``RemovalList.read_witness_once`` tries a witness out of reach again later)."""
    with _reaching(location):
        fs, folder = witness_root(location, ward_id)
        if not fs.exists(folder):
            raise OSError(f"the witness {location} holds no folder of this ward (not mounted, moved or emptied?)")
        folder = f"{folder}/{WITNESS_REMOVALS}"
        if not fs.exists(folder):
            return []
        return [(f"witness {path}", fs.cat_file(path)) for path in sorted(fs.glob(f"{folder}/*.jsonl"))]


def _previous_witness(events: list[Event], now: SignedWitness) -> str | None:
    """The witness that ``events`` moved away from or stopped (None when they did not change it)."""
    for event in reversed(events):
        if event.type == WITNESS_EVENT and isinstance(event.payload, dict):
            previous = event.payload.get("previous")
            return previous if isinstance(previous, str) and previous != now.location else None
    return None
