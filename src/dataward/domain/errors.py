"""Typed errors shared by every layer.

Each error names the problem in its message and, where there is one, the fix in ``hint``.
The CLI maps ``exit_code`` to the process exit status, the server maps ``http_status``.
"""

from __future__ import annotations

from typing import Any


class _Reported:
    """What every error the CLI and the server report carries: a message, a hint and details, printed
    as ``message`` then ``hint``, and sent as one JSON shape (``to_dict``)."""

    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"

    def to_dict(self) -> dict[str, Any]:
        """A stable JSON shape: ``{"error": code, "message": ..., "hint": ..., "details": {...}}``."""
        return {"error": self.code, "message": self.message, "hint": self.hint, "details": self.details}


class DatawardError(_Reported, Exception):
    """Base class of every error dataward raises on purpose."""

    code: str = "error"
    exit_code: int = 1
    http_status: int = 400
    local_detail: str | None = None
    """What only someone on the ward's own machine should read, e.g. the file of a lost or altered object
    in the ward's folder. Never part of the error's document (``to_dict``), which a server sends to its
    callers (who must not learn the server's layout): the CLI of an embedded ward shows it to the local
    operator, whose folder it is, and a server writes it to its log for its operator."""


class Interrupted(_Reported, KeyboardInterrupt):
    """Ctrl-C stopped a command after it had stored something: ``message`` says what stands and ``hint``
    how to finish it. A ``KeyboardInterrupt`` still, so that no ``except Exception`` (nor
    ``except DatawardError``) swallows it; the CLI prints it as an error and exits 130."""

    code = "interrupted"
    exit_code = 130


class InputError(DatawardError):
    """The user's input (a file, an argument, a schema) is malformed. Nothing was stored."""

    code = "bad_input"
    exit_code = 2
    http_status = 422


class NotFound(DatawardError):
    code = "not_found"
    exit_code = 3
    http_status = 404


def missing_file(path: object) -> NotFound:
    """The error for an input file that does not exist: ``not_found`` (exit 3), as docs/cli.md lists it,
    not a malformed input; worded the same wherever a file is read (data, predictions, policies,
    checkpoints, attestations, scripts) and by the HTTP client."""
    return NotFound(f"{path}: no such file", hint="check the path", file=str(path))


def what_path_is(path: object) -> str | None:
    """What is at ``path`` when it is not a regular file (following symbolic links): ``"a folder"``,
    ``"a pipe"``, ``"a character device"``...; None for a regular file or nothing at all."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode  # type: ignore[arg-type]
    except (OSError, ValueError):
        return None
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((kind for test, kind in kinds if test(mode)), None)


def not_a_file(path: object, *, what: str = "file") -> DatawardError:
    """The error for an input path that is not a regular file: ``missing_file`` (not found, exit 3) when
    nothing is there; else bad input (exit 2) saying what is there, a folder, a pipe or a device (such a
    path read "no such file", and ``/dev/stdin`` or ``/dev/zero`` "is a folder")."""
    kind = what_path_is(path)
    if kind is None:
        return missing_file(path)
    if kind == "a folder":
        return InputError(
            f"{path} is a folder, not a {what}", hint=f"give the path of the {what} to read", file=str(path)
        )
    return InputError(
        f"{path} is not a regular file: it is {kind}",
        hint="save it to a regular file first and give that file's path",
        file=str(path),
    )


class Conflict(DatawardError):
    """The request clashes with current state: already exists, stale approval, wrong stage."""

    code = "conflict"
    exit_code = 4
    http_status = 409


class ClockBehind(Conflict):
    """The clock reads earlier than the ledger's newest event: it was set back (or this host's clock is
    off). Keys would outlive their expiry and events would be dated before those they follow."""

    code = "clock_behind"


class AuthenticationError(DatawardError):
    """No usable credential: unknown, expired, revoked or suspended key."""

    code = "unauthenticated"
    exit_code = 5
    http_status = 401


class KeyExpired(AuthenticationError):
    code = "key_expired"


class KeyRevoked(AuthenticationError):
    code = "key_revoked"


class PrincipalSuspended(AuthenticationError):
    code = "principal_suspended"


class AccessDenied(DatawardError):
    """The principal is known but lacks the role, scope or separation of duties for this action."""

    code = "access_denied"
    exit_code = 6
    http_status = 403


class PolicyViolation(AccessDenied):
    """The dataset policy forbids this (self-approval, missing approvals, gate verdict)."""

    code = "policy_violation"


class IntegrityViolation(DatawardError):
    """Stored data or records do not match their hashes or signatures: tampering or corruption."""

    code = "integrity_violation"
    exit_code = 7
    http_status = 500


class Busy(DatawardError):
    """The catalog stayed locked by other writers for longer than the lock timeout. Nothing was
    changed by this request; it is safe to run it again."""

    code = "busy"
    exit_code = 10
    http_status = 503
