"""Writing a file the user named, whole or not at all, without trusting the folder it goes into.

A file is written under a temporary name beside its target and renamed over it once complete. That
temporary name must not be one someone else can guess: in a folder another account can write (a team's
shared folder, ``/tmp``), a name such as ``.out.csv.PID.part`` can be created beforehand as a symbolic
link to any file of the person exporting, and opening it for writing writes *through* the link: the
export's bytes (records the attacker may have contributed) replace that file, and the rename then puts
the link in the export's place. :func:`staged_file` therefore creates the temporary file with
``mkstemp`` (a random name, ``O_CREAT | O_EXCL``: never an existing file or link), and the rename moves
that file itself.

``mkstemp`` makes the file owner-only; once written it gets the mode a file created normally would have,
``0o666`` less the process's umask (:func:`new_file_mode`), so a user whose umask keeps files private
gets a private export.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux's
    ``/proc/self/status``); elsewhere set and put back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def staged_file(target: Path, *, durable: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write ``target``'s content into: created exclusively under a random name in
    ``target``'s folder, moved over ``target`` when the block ends, removed if it raises. ``durable``
    syncs the content to disk before the rename."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(name, new_file_mode())
        os.replace(name, target)  # a link at ``target`` is replaced, never written through
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
