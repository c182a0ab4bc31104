"""docs/cli.md names every option of every command in the usage cell of the command's row.

`principal disable` and `key revoke` took `--reason` (kept in the ledger), but their rows did not list it:
someone reading the reference could not know a reason can be recorded with the removal.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from dataward.cli.app import app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
GLOBAL = {"--json", "--ward", "--url", "--help"}
"""Options every command takes, described once above the table."""


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Each command that runs (not a group), by its words (``key revoke``)."""
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path), command


def _usage_cells() -> list[str]:
    """The first cell of each row of the command tables (cells split on unescaped pipes)."""
    rows = [line for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    return [re.split(r"(?<!\\)\|", row)[1] for row in rows]


def _commands_in(cell: str) -> set[str]:
    """The command names a usage cell documents: `key revoke KEY`, `grant add\\|revoke PRINCIPAL`..."""
    found = set()
    for match in re.finditer(r"`([a-z][a-z |\\-]*?)(?= [A-Z\[-]|`)", cell):
        words = [w.split("|") for w in match.group(1).replace("\\", "").split()]
        found.update(" ".join(combo) for combo in itertools.product(*words))
    return found


def test_every_option_of_every_command_is_in_its_usage_cell() -> None:
    cells = _usage_cells()
    missing = []
    for name, command in _leaves(typer.main.get_command(app)):
        documented = " ".join(cell for cell in cells if name in _commands_in(cell))
        if not documented:
            missing.append(f"{name}: no row")
            continue
        for param in command.params:
            opts = [o for o in (*param.opts, *getattr(param, "secondary_opts", ())) if o.startswith("-")]
            if not opts or GLOBAL & set(opts):
                continue
            if not any(re.search(re.escape(o) + r"(?![\w-])", documented) for o in opts):
                missing.append(f"{name}: {opts[0]}")
    assert not missing, "options docs/cli.md does not list: " + ", ".join(missing)


def test_the_reason_of_a_removal_is_listed() -> None:
    cells = _usage_cells()
    for name in ("principal disable", "key revoke"):
        row = " ".join(cell for cell in cells if name in _commands_in(cell))
        assert re.search(r"--reason(?![\w-])", row), name
