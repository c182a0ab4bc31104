"""What a fresh `dataward` process imports: help and cheap commands must not pay for the libraries of
the commands that compute (the gates, tables, the catalog), since every command is a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the CLI as the console script does, then writes the names of the imported modules to a file.
CHILD = """
import json, sys
modules_file, *args = sys.argv[1:]
sys.argv = ["dataward", *args]
from dataward.cli.app import main
try:
    main()
except SystemExit:
    pass
with open(modules_file, "w") as out:
    json.dump(sorted(sys.modules), out)
"""

NOT_FOR_HELP = (
    "numpy",
    "pandas",
    "pyarrow",
    "sklearn",
    "scipy",
    "cleanlab",
    "sqlalchemy",
    "cryptography",
    "torch",
    "datasets",
    "PIL",
    "dataward.service",
    "dataward.catalog",
    "dataward.gates",
    "dataward.release",
)
"""Help is text: no table, catalog, signing or gate code."""

NOT_FOR_A_READ = (
    "pandas",
    "sklearn",
    "scipy",
    "cleanlab",
    "torch",
    "datasets",
    "PIL",
    "dataward.gates",
    "dataward.release",
)
"""A command that reads the catalog opens the ward (SQLAlchemy, the signing key, the service core) but
not the gates, the release gate or their numerical libraries."""


def imported(tmp_path: Path, *args: str, ward: Path | None = None) -> set[str]:
    """The modules a fresh process imported to run ``dataward ARGS`` (exit code ignored)."""
    modules_file = tmp_path / "modules.json"
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("DATAWARD_URL", None)
    env.pop("DATAWARD_KEY", None)
    if ward is not None:
        env["DATAWARD_WARD"] = str(ward)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(modules_file), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert modules_file.exists(), done.stdout + done.stderr
    return set(json.loads(modules_file.read_text()))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The ``packages`` of which ``modules`` holds the package itself or any of its modules."""
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


@pytest.mark.parametrize(
    ("args", "also_not"),
    [
        (["--help"], ("pydantic",)),
        ([], ("pydantic",)),
        (["--version"], ()),
        # Typer coerces the parameters of the group callbacks on the way to a subcommand (with pydantic).
        (["ledger", "--help"], ()),
        (["gate", "run", "--help"], ()),
    ],
)
def test_help_imports_no_library_of_the_commands(tmp_path: Path, args: list[str], also_not: tuple[str, ...]) -> None:
    modules = imported(tmp_path, *args)
    assert "dataward.cli.app" in modules
    assert loaded(modules, NOT_FOR_HELP + also_not) == []


def test_reading_commands_do_not_import_the_gates(tmp_path: Path) -> None:
    ward = tmp_path / "ward"
    init = subprocess.run(
        [sys.executable, "-m", "dataward", "--ward", str(ward), "init", "--json"], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    for args in (["whoami"], ["ledger", "head", "--json"]):
        modules = imported(tmp_path, *args, ward=ward)
        assert "dataward.service.session" in modules or "dataward.service.audit" in modules, args
        assert loaded(modules, NOT_FOR_A_READ) == [], args
