"""Code identity of a step: git commit and dirty flag inside a repository, the file hash outside one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dataward.domain.errors import InputError
from dataward.provenance.code import check_code_identity, code_identity


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_commit_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "pipeline"
    repo.mkdir()
    script = repo / "steps" / "dedup.py"
    script.parent.mkdir()
    script.write_text("print('dedup')\n")
    _git(repo, "init", "-q")
    untracked = code_identity(script)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "dedup")
    clean = code_identity(script)
    assert clean["kind"] == "git" and clean["path"] == "steps/dedup.py" and clean["dirty"] is False
    assert len(clean["commit"]) == 40 and clean["file_hash"].startswith("b3:")
    script.write_text("print('dedup, changed')\n")
    dirty = code_identity(script)
    assert dirty["dirty"] is True and dirty["commit"] == clean["commit"] and dirty["file_hash"] != clean["file_hash"]
    # Before the first commit there is no commit to name: the file hash is what identifies the code.
    assert untracked["kind"] == "file"


def test_outside_a_repository_and_validation(tmp_path: Path) -> None:
    script = tmp_path / "step.py"
    script.write_text("x = 1\n")
    identity = code_identity(script)
    assert identity == {"kind": "file", "path": "step.py", "file_hash": identity["file_hash"]}
    assert code_identity(tmp_path / "missing.py") == {"kind": "unknown"}
    assert check_code_identity(identity) == identity
    for bad in ({"kind": "svn"}, {"kind": "git", "dirty": "yes"}, {"kind": "file", "extra": 1}, "git"):
        with pytest.raises(InputError):
            check_code_identity(bad)
