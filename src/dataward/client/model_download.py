"""A model version's files taken from a server: no more bytes than its catalog lists, and only those bytes.

``model(ref)`` lists a version's files as the ward's catalog holds them (``files``: each file's name, its
content digest in the object store and its size), from the model version row the signed ledger vouches
for. ``model files`` over HTTP then:

1. bounds the tar archive it downloads by those sizes (:func:`tar_bound`): a server sending more is cut
   off there, so it can neither fill the user's disk nor make the client unpack more than listed;
2. unpacks it into a fresh folder inside the destination, and checks that it holds exactly the listed
   files, each of its listed size and digest (:func:`check_unpacked`);
3. only then moves each file to its place, by rename, never through a folder that is a link (:func:`place`).

A refusal at any step leaves nothing at the destination: no half-written file under a listed name, and
no folder the command made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import blake3

from dataward.domain.errors import InputError, IntegrityViolation
from dataward.domain.hashing import HASH_PREFIX
from dataward.domain.transport_errors import ServerUnreachable

BLOCK = 512
RECORD = 20 * BLOCK
"""tarfile's record size: an archive's end is padded to a multiple of it."""
CHUNK = 1 << 20


@dataclass(frozen=True)
class ListedFile:
    """One file of a model version, as the catalog lists it."""

    name: str
    digest: str
    size: int


def listed_files(document: Any, ref: str) -> list[ListedFile]:
    """The ``files`` of a model version's document (``model(ref)``), checked for shape: a server's
    answer is untrusted. ``ServerUnreachable`` when it lists none, or lists them in another shape."""
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list) or not files:
        raise ServerUnreachable(
            f"the server's description of model {ref!r} lists no files with their sizes and digests",
            hint="check DATAWARD_URL; a server older than this client does not list them: upgrade it",
        )
    found: list[ListedFile] = []
    for entry in files:
        name, digest, size = (entry.get(k) for k in ("name", "digest", "size")) if isinstance(entry, dict) else (0,) * 3
        if (
            not isinstance(name, str)
            or not isinstance(digest, str)
            or not digest.startswith(HASH_PREFIX)
            or isinstance(size, bool)
            or not isinstance(size, int)
            or size < 0
        ):
            raise ServerUnreachable(f"the server lists a file of model {ref!r} without a name, digest and size")
        found.append(ListedFile(_relative(name, ref), digest, size))
    if len({f.name for f in found}) != len(found):
        raise ServerUnreachable(f"the server lists a file of model {ref!r} twice")
    return found


def _relative(name: str, ref: str) -> str:
    """``name`` as a plain relative path; ``ServerUnreachable`` for one that is absolute or climbs out."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise ServerUnreachable(f"the server lists a file of model {ref!r} named {name!r}, outside its folder")
    return str(path)


def _blocks(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def tar_bound(files: list[ListedFile]) -> int:
    """The most bytes an uncompressed tar of ``files`` (as ``pack_folder`` writes it, folders included)
    can take: each file's data in 512-byte blocks, a header for it and for each folder, with room for a
    PAX header carrying a long or non-ASCII name, and the archive's end padded to its record size."""
    folders = {str(p) for f in files for p in PurePosixPath(f.name).parents if str(p) != "."}
    names = [f.name for f in files] + sorted(folders)
    # A member: its header, a PAX header and the PAX records (a path, at most 4 bytes per character once
    # encoded, and a few numbers), all in whole blocks.
    headers = sum(3 * BLOCK + _blocks(4 * len(n) + BLOCK) for n in names)
    return sum(_blocks(f.size) for f in files) + headers + 2 * BLOCK + RECORD


def _digest(path: Path) -> str:
    hasher = blake3.blake3()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return HASH_PREFIX + hasher.hexdigest()


def check_unpacked(folder: Path, files: list[ListedFile], what: str) -> None:
    """Refuse (``IntegrityViolation``) the files unpacked into ``folder`` unless they are exactly
    ``files``: no other file, none missing, each of its listed size and digest."""
    found = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}
    listed = {f.name for f in files}
    extra, missing = sorted(found - listed), sorted(listed - found)
    problem = (
        f"holds {extra[0]!r}, which the catalog does not list"
        if extra
        else f"lacks {missing[0]!r}, which the catalog lists"
        if missing
        else None
    )
    for f in files if problem is None else ():
        path = folder / f.name
        size = path.stat().st_size
        if size != f.size:
            problem = f"holds {f.name!r} of {size} bytes where the catalog lists {f.size}"
        elif _digest(path) != f.digest:
            problem = f"holds {f.name!r} whose content does not hash to the catalog's digest {f.digest}"
        if problem:
            break
    if problem:
        raise IntegrityViolation(
            f"{what} as the server sent them {problem}: refused, nothing written",
            hint="the server's files do not match its own catalog: tell its operator (`dataward verify`)",
        )


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A fresh folder inside ``target`` (made, with its parents, if missing) to unpack into: removed on
    the way out, and ``target`` too when it was made here and is left empty. Inside it, so that
    :func:`place` renames rather than copies."""
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} is a file; a model's files are written into a folder", hint="give a folder")
    made = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".dataward-partial-", dir=target))
    except OSError as exc:
        raise InputError(f"cannot write into {target}: {exc.strerror or exc}") from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                target.rmdir()  # only when nothing was placed in it


def place(stage: Path, target: Path, files: list[ListedFile]) -> None:
    """Move each checked file from ``stage`` to its place in ``target``. A rename replaces whatever was at
    that name (a link included, never written through).

    The folders between ``target`` and a file (``tokenizer/`` of ``tokenizer/vocab.json``) are never
    followed when they are links: in a folder others can write, a link planted as ``tokenizer`` pointing
    into another of the user's folders had the model's ``vocab.json`` renamed there, over the user's file
    of that name. Such a folder, or a file where a folder is listed, is refused (``InputError``) before any
    file is placed; each folder is then opened without following links (``O_NOFOLLOW``) and the file renamed
    into it by descriptor, so a link planted after the check is refused too."""
    for f in files:
        _refuse_linked_folders(target, f.name)
    for f in files:
        _rename_into(stage / f.name, target, f.name)


def _not_followed(target: Path, name: str, problem: str) -> InputError:
    return InputError(
        f"{target / name} {problem}: the model's files are not written through it, nothing was written",
        hint="remove it, or give a folder of your own",
    )


def _refuse_linked_folders(target: Path, name: str) -> None:
    """Refuse when a folder on the way to file ``name`` inside ``target`` is a link or not a folder."""
    parts = PurePosixPath(name).parts[:-1]
    for depth in range(1, len(parts) + 1):
        step = "/".join(parts[:depth])
        path = target / step
        if path.is_symlink():
            raise _not_followed(target, step, "is a link")
        if path.exists() and not path.is_dir():
            raise _not_followed(target, step, "is not a folder")


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _rename_into(source: Path, target: Path, name: str) -> None:
    """Rename ``source`` to ``name`` inside ``target``, making the folders on the way, none followed if a
    link. Where directory descriptors are missing (Windows), by path once :func:`place` checked them."""
    parts = PurePosixPath(name).parts
    if not (_NOFOLLOW and _DIRECTORY and os.replace in os.supports_dir_fd and os.mkdir in os.supports_dir_fd):
        dest = target.joinpath(*parts)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, dest)
        except OSError as exc:
            raise InputError(f"cannot write {dest}: {exc.strerror or exc}") from None
        return
    fd = os.open(target, os.O_RDONLY | _DIRECTORY)
    try:
        for depth, part in enumerate(parts[:-1], start=1):
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, dir_fd=fd)
            try:
                inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError:  # ELOOP: a link; ENOTDIR: a file
                raise _not_followed(target, "/".join(parts[:depth]), "is a link or not a folder") from None
            os.close(fd)
            fd = inner
        try:
            os.replace(source, parts[-1], dst_dir_fd=fd)
        except OSError as exc:  # a folder of that name, say
            raise InputError(f"cannot write {target / name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


__all__ = ["ListedFile", "check_unpacked", "listed_files", "place", "staging", "tar_bound"]
