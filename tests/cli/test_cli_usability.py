"""Usability of the `dataward` command line: global options after the subcommand, ids given by a
prefix, pipes closed early, and errors that suggest what was meant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from dataward.cli.global_options import hoist_global_options


def run(*args: str, ward: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "80", **(env or {})}
    full.pop("DATAWARD_KEY", None)
    full.pop("DATAWARD_URL", None)
    if ward is not None:
        full["DATAWARD_WARD"] = str(ward)
    else:
        full.pop("DATAWARD_WARD", None)
    return subprocess.run(
        [sys.executable, "-m", "dataward", *args], env=full, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ward = tmp_path_factory.mktemp("ux") / "ward"
    assert run("init", str(ward)).returncode == 0
    return ward


def test_global_options_after_the_subcommand_move_in_front_of_it() -> None:
    assert hoist_global_options(["verify", "--ward", "w"]) == ["--ward", "w", "verify"]
    assert hoist_global_options(["dataset", "create", "x", "--ward=w", "--json"]) == [
        "--ward",
        "w",
        "dataset",
        "create",
        "x",
        "--json",
    ]
    assert hoist_global_options(["--ward", "w", "verify", "--ward", "w"]) == ["--ward", "w", "verify"]
    # `serve --ward` is serve's own option; a value after `--` is an argument.
    assert hoist_global_options(["serve", "--ward", "w"]) == ["serve", "--ward", "w"]
    assert hoist_global_options(["trace", "--", "--ward"]) == ["trace", "--", "--ward"]
    with pytest.raises(typer.BadParameter, match="different values: a, b"):
        hoist_global_options(["--ward", "a", "verify", "--ward", "b"])


def test_ward_is_accepted_after_the_subcommand(folder: Path, tmp_path: Path) -> None:
    after = run("verify", "--ward", str(folder))
    assert after.returncode == 0, after.stderr
    listed = run("datasets", "--json", f"--ward={folder}")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    twice = run("--ward", str(folder), "datasets", "--ward", str(tmp_path / "other"))
    assert twice.returncode == 2 and "given twice with different values" in twice.stderr


def _closed_reader(*args: str, ward: Path) -> tuple[int, str]:
    """Run the command with its stdout's reader gone before it writes (`| head` that stopped early)."""
    env = {**os.environ, "DATAWARD_WARD": str(ward)}
    env.pop("DATAWARD_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataward", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize("args", [("--help",), ("verify",), ("whoami", "--json")])
def test_a_reader_that_stops_early_ends_the_command_quietly(folder: Path, args: tuple[str, ...]) -> None:
    code, err = _closed_reader(*args, ward=folder)
    assert code == 141 and err == ""
