"""The code identity of a transformation step: which code, at which revision, made the records.

Computed on the caller's side (the step runs there, not in the ward): the git commit of the
repository holding the script and whether its working tree had uncommitted changes, plus the hash of
the script file itself, so that a step run from a dirty tree or from no repository is still pinned
to the exact bytes that ran.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from dataward.domain.errors import InputError
from dataward.domain.hashing import content_hash

_PACKAGE = Path(__file__).resolve().parents[1]
_GIT_TIMEOUT_S = 10


def _git(folder: Path, *args: str) -> str | None:
    """Output of ``git -C folder ARGS``, or None when git is missing or the folder is no repository."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def caller_script() -> Path | None:
    """The file of the first frame on the stack outside the dataward package and the standard
    library's context managers: the script (or test, or notebook kernel file) running the step.

    The frames are walked as they are: ``inspect.stack()`` would read the source lines around every
    frame of the stack first, about 0.2 s a call under a test runner or a notebook, for names it never
    uses."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        frame = frame.f_back
        if name.startswith("<"):
            continue
        path = Path(name).resolve()
        if path.is_relative_to(_PACKAGE) or path.name == "contextlib.py":
            continue
        return path if path.is_file() else None
    return None


def code_identity(script: str | Path | None = None) -> dict[str, Any]:
    """Identify the code of a step: ``{"kind": "git", "path", "commit", "dirty", "file_hash"}`` when
    ``script`` (default: the calling script) lies in a git repository, ``{"kind": "file", "path",
    "file_hash"}`` otherwise, and ``{"kind": "unknown"}`` for code with no file (an interactive shell).

    ``dirty`` is true when tracked files differ from the commit or the script itself is not tracked:
    the commit alone then does not say what ran, the file hash does."""
    path = Path(script).resolve() if script is not None else caller_script()
    if path is None or not path.is_file():
        return {"kind": "unknown"}
    file_hash = content_hash(path.read_bytes())
    folder = path.parent
    top = _git(folder, "rev-parse", "--show-toplevel")
    commit = _git(folder, "rev-parse", "HEAD") if top else None
    if not top or not commit:
        return {"kind": "file", "path": path.name, "file_hash": file_hash}
    root = Path(top).resolve()
    relative = path.relative_to(root).as_posix()
    changed = _git(root, "status", "--porcelain", "--untracked-files=no")
    # The path is relative to the repository's top, so ask from there.
    tracked = _git(root, "ls-files", "--error-unmatch", "--", relative) is not None
    return {
        "kind": "git",
        "path": relative,
        "commit": commit,
        "dirty": bool(changed) or not tracked,
        "file_hash": file_hash,
    }


def check_code_identity(code: Any) -> dict[str, Any]:
    """Validate a code identity received from a caller (it is stored and signed as given)."""
    if not isinstance(code, dict) or code.get("kind") not in ("git", "file", "unknown"):
        raise InputError("a transformation's code identity must be a mapping with kind git, file or unknown")
    allowed = {"kind", "path", "commit", "dirty", "file_hash", "repository"}
    extra = set(code) - allowed
    if extra:
        raise InputError(f"unknown code identity field(s): {sorted(extra)}")
    for name in ("path", "commit", "file_hash", "repository"):
        if name in code and not isinstance(code[name], str):
            raise InputError(f"code identity field {name!r} must be text")
    if "dirty" in code and not isinstance(code["dirty"], bool):
        raise InputError("code identity field 'dirty' must be true or false")
    return dict(code)


__all__ = ["caller_script", "check_code_identity", "code_identity"]
