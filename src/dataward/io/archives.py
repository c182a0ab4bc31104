"""Unpacking tar archives within limits: every member is checked before one byte is written.

An uncompressed tar cannot hold more bytes than it is long, except through *sparse* members (GNU or
PAX sparse maps), which declare a size far beyond the bytes they carry: a 10 KB archive can unpack to
a 64 GiB file. :func:`extract_tar` therefore walks the members first and refuses, naming the member
and the limit:

- a sparse member;
- anything but a plain file or a folder (links, devices, FIFOs), and any path the standard library's
  ``data`` filter refuses (absolute, or landing outside the target);
- a member over ``max_member_bytes``, a total over ``max_total_bytes``, or more than ``max_members``
  members.

Only then are the members written, each copied at most its checked size.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dataward.domain.errors import InputError
from dataward.domain.limits import format_size

MAX_ARCHIVE_MEMBERS = 10_000
"""The most members (files and folders) an unpacked archive may hold: far above a model's files."""

_COPY_CHUNK = 1 << 20
_NOT_PLAIN = "which is a link, a device or a path that would land outside it"


@dataclass(frozen=True)
class ArchiveLimits:
    """How much an archive may unpack to: one member, all of them together, and how many members."""

    max_member_bytes: int
    max_total_bytes: int
    max_members: int = MAX_ARCHIVE_MEMBERS

    def __post_init__(self) -> None:
        for name in ("max_member_bytes", "max_total_bytes", "max_members"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"the archive limit {name} must be a positive whole number, not {value!r}")

    @classmethod
    def within(cls, total_bytes: int, max_members: int = MAX_ARCHIVE_MEMBERS) -> ArchiveLimits:
        """Limits where one member and all of them together stay within ``total_bytes``."""
        return cls(max_member_bytes=total_bytes, max_total_bytes=total_bytes, max_members=max_members)


def _is_sparse(member: tarfile.TarInfo) -> bool:
    if member.issparse() or member.type == tarfile.GNUTYPE_SPARSE:
        return True
    return any(key.startswith("GNU.sparse.") for key in member.pax_headers)


def _refusal(what: str, member: str, problem: str, hint: str) -> InputError:
    return InputError(f"{what} holds {member!r}, {problem}", hint=hint, member=member)


def checked_members(archive: tarfile.TarFile, target: Path, limits: ArchiveLimits, what: str) -> list[tarfile.TarInfo]:
    """The members of ``archive`` as the ``data`` filter rewrites them for ``target``, refused (InputError
    naming the member and the limit) when one breaks a rule of this module. Reads headers only."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in archive:
        if len(members) >= limits.max_members:
            raise InputError(
                f"{what} holds more than {limits.max_members:,} members (max_members)",
                hint="send fewer files, for instance packed into fewer, larger ones",
                limit="max_members",
            )
        name = member.name
        if _is_sparse(member):
            raise _refusal(
                what,
                name,
                f"a sparse file (it declares {member.size:,} bytes): sparse members are refused",
                "send plain files: pack the folder without --sparse",
            )
        if not (member.isreg() or member.isdir()):
            raise _refusal(what, name, _NOT_PLAIN, "send the folder's plain files")
        try:
            filtered = tarfile.data_filter(member, str(target))
        except tarfile.FilterError:
            raise _refusal(what, name, _NOT_PLAIN, "send the folder's plain files") from None
        if member.size > limits.max_member_bytes:
            raise _refusal(
                what,
                name,
                f"which is {member.size:,} bytes, over the limit of {format_size(limits.max_member_bytes)} for "
                "one member (max_member_bytes)",
                "send smaller files",
            )
        total += member.size
        if total > limits.max_total_bytes:
            raise _refusal(
                what,
                name,
                f"which takes the unpacked total to {total:,} bytes, over the limit of "
                f"{format_size(limits.max_total_bytes)} (max_total_bytes)",
                "send less: the unpacked folder may be no larger than the upload limit",
            )
        members.append(filtered)
    return members


def _copy_bounded(source: IO[bytes], out: IO[bytes], size: int, name: str, what: str) -> None:
    """Copy exactly ``size`` bytes of ``source`` into ``out``; never more."""
    left = size
    while left > 0:
        chunk = source.read(min(_COPY_CHUNK, left))
        if not chunk:
            raise InputError(f"{what} is cut short inside {name!r}")
        out.write(chunk)
        left -= len(chunk)


def extract_tar(archive_path: Path, target: Path, limits: ArchiveLimits, *, what: str) -> None:
    """Unpack the uncompressed tar at ``archive_path`` into the folder ``target`` (made if missing),
    after :func:`checked_members` accepted every member. ``what`` names the archive in refusals.
    Nothing is written when a member is refused; the caller removes a partly written ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path, mode="r:") as archive:
            members = checked_members(archive, target, limits, what)
            for member in members:
                dest = target / member.name
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    raise InputError(f"{what} holds {member.name!r}, which cannot be read as a file")
                with source, open(dest, "wb") as out:
                    _copy_bounded(source, out, member.size, member.name, what)
                if member.mode is not None:
                    os.chmod(dest, member.mode & 0o755)
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{what} did not arrive as a readable tar archive: {exc}") from None
