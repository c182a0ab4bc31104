"""How much of a server's answer the client reads: a cap on documents, another on downloads.

The client reads what a server sends as untrusted input (``dataward.client.http``). A server that is not
dataward, or a compromised one, could answer a ``whoami`` with gigabytes of JSON or a download with an
endless body: read whole, the first filled the user's memory (a 256 MiB answer grew the process by
850 MiB before ``json.loads`` was done with it) and the second the user's disk. So every answer is read
as it arrives and refused once it passes its cap, before more is read:

- a JSON document (every answer but a download, an error document included) stops at
  ``max_answer_bytes``: ``DATAWARD_MAX_ANSWER_MB`` (default 256 MiB, room for a large ward's whole
  ledger export);
- a download (an export, a probe set, a version read into memory as Parquet) stops at
  ``max_download_bytes``: ``DATAWARD_MAX_DOWNLOAD_MB`` (default 16 GiB). A model's files are held to
  much less: the sizes the ward's catalog lists for them (``dataward.client.model_download``);
- a streamed version (``stream_version``, an Arrow IPC stream) is a download as a whole, and each of
  its messages (a batch of at most ``batch_rows`` rows) is held in memory at once, so one message stops
  at the answer cap, ``max_answer_bytes``: a message declares its length before its bytes, so a hostile
  server's batch of a terabyte is refused from the 8 bytes that declare it, before anything is allocated
  (``dataward.client.http._ResponseFile``).

An answer past its cap ends the command with ``unreachable`` (exit 1): nothing is kept of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO

import httpx

from dataward.domain.errors import InputError
from dataward.domain.transport_errors import ServerUnreachable

MiB = 1 << 20
ANSWER_ENV = "DATAWARD_MAX_ANSWER_MB"
DOWNLOAD_ENV = "DATAWARD_MAX_DOWNLOAD_MB"
DEFAULT_MAX_ANSWER_BYTES = 256 * MiB
DEFAULT_MAX_DOWNLOAD_BYTES = 16 * 1024 * MiB
CHUNK = 1 << 20


def _from_env(name: str, default: int) -> int:
    """``$name`` in MiB (a positive number) as bytes; ``default`` when it is unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):  # NaN fails the comparison too
        raise InputError(f"{name}={text!r} is not a positive number of MiB", hint=f"unset {name} or give e.g. 512")
    return max(int(value * MiB), 1)


def _explicit(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name} must be a positive whole number of bytes, not {value!r}")
    return value


def answer_limit(explicit: int | None = None) -> int:
    """The cap on one JSON answer: ``explicit`` when given, else ``$DATAWARD_MAX_ANSWER_MB``, else 256 MiB."""
    return _explicit("max_answer_bytes", explicit) or _from_env(ANSWER_ENV, DEFAULT_MAX_ANSWER_BYTES)


def download_limit(explicit: int | None = None) -> int:
    """The cap on one download: ``explicit`` when given, else ``$DATAWARD_MAX_DOWNLOAD_MB``, else 16 GiB."""
    return _explicit("max_download_bytes", explicit) or _from_env(DOWNLOAD_ENV, DEFAULT_MAX_DOWNLOAD_BYTES)


def too_large(what: str, limit: int, hint: str) -> ServerUnreachable:
    """The refusal of an answer that passed its cap (``what`` says which answer)."""
    return ServerUnreachable(f"{what} is larger than {_size(limit)}: refused, nothing kept", hint=hint)


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"


def answer_hint() -> str:
    return (
        f"a dataward answer is far smaller: check DATAWARD_URL; if the server is yours and the answer "
        f"expected (a large ledger export), raise {ANSWER_ENV}"
    )


def download_hint() -> str:
    return f"check DATAWARD_URL; if the server is yours and the download expected, raise {DOWNLOAD_ENV}"


def _declared_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def refuse_declared(response: httpx.Response, limit: int, what: str, hint: str) -> None:
    """Refuse (``ServerUnreachable``) a streamed ``response`` whose ``Content-Length`` passes ``limit``."""
    declared = _declared_length(response)
    if declared is not None and declared > limit:
        raise too_large(what, limit, hint)


def capped_chunks(response: httpx.Response, limit: int, what: str, hint: str) -> Iterator[bytes]:
    """The body of a streamed ``response`` as it arrives, refused (``ServerUnreachable``) as soon as more
    than ``limit`` bytes came, or at once when its ``Content-Length`` says it would."""
    refuse_declared(response, limit, what, hint)
    seen = 0
    for chunk in response.iter_bytes(CHUNK):
        seen += len(chunk)
        if seen > limit:
            raise too_large(what, limit, hint)
        yield chunk


def read_capped(response: httpx.Response, limit: int, what: str, hint: str) -> bytes:
    """The whole body of a streamed ``response``, at most ``limit`` bytes (else ``ServerUnreachable``)."""
    return b"".join(capped_chunks(response, limit, what, hint))


def write_capped(response: httpx.Response, out: IO[bytes], limit: int, what: str, hint: str) -> int:
    """Copy a streamed ``response``'s body into ``out``, at most ``limit`` bytes; the bytes copied. The
    caller removes what was written when this raises."""
    written = 0
    for chunk in capped_chunks(response, limit, what, hint):
        out.write(chunk)
        written += len(chunk)
    return written


__all__ = [
    "ANSWER_ENV",
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DOWNLOAD_ENV",
    "answer_hint",
    "answer_limit",
    "capped_chunks",
    "download_hint",
    "download_limit",
    "read_capped",
    "refuse_declared",
    "too_large",
    "write_capped",
]
