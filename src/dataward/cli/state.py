"""Options shared by every command (``--ward``), and opening the ward they point at."""

from __future__ import annotations

from dataclasses import dataclass

from dataward.service.ward import Ward


@dataclass
class CliState:
    """Global options of one CLI invocation."""

    ward_path: str | None = None


state = CliState()

JSON_HELP = "Print a JSON document instead of tables (stable keys, see docs/cli.md)."


def open_ward() -> Ward:
    """The ward from ``--ward``, ``$DATAWARD_WARD`` or ``./.dataward``, acting as ``$DATAWARD_KEY``
    or the ward's local credentials."""
    return Ward.open(state.ward_path)
