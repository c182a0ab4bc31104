"""A reader that stops early (``dataward ... | head -1``) ends the command as it ends ``cat``: quietly,
with the status a shell shows for a process stopped by SIGPIPE (141, 128 + 13)."""

from __future__ import annotations

import os
import sys

BROKEN_PIPE_EXIT = 141
"""The exit status when stdout's reader went away: 128 + SIGPIPE, what ``yes | head -1`` reports for ``yes``."""


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that nothing written later (the interpreter's last flush
    included) raises again or prints "Exception ignored ... BrokenPipeError" on stderr."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout has no file descriptor (a test's capture): nothing to flush
        pass
