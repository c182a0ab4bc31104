"""Options shared by every command (``--ward``, ``--url``), and opening the ward they point at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataward.api import WardAPI


@dataclass
class CliState:
    """Global options of one CLI invocation."""

    ward_path: str | None = None
    url: str | None = None


state = CliState()

JSON_HELP = "Print a JSON document instead of tables (stable keys, see docs/cli.md)."


def open_ward() -> WardAPI:
    """The served ward at ``--url``/``$DATAWARD_URL`` when one is given, else the ward folder from
    ``--ward``, ``$DATAWARD_WARD`` or ``./.dataward``; acting as ``$DATAWARD_KEY`` (or, for a folder,
    its local credentials). Every command works the same through either."""
    import dataward

    return dataward.open(state.url or state.ward_path)
