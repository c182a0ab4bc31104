"""Options shared by every command (``--ward``, ``--url``), and opening the ward they point at."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataward.api import WardAPI


@dataclass
class CliState:
    """Global options of one CLI invocation."""

    ward_path: str | None = None
    url: str | None = None
    opened: list[WardAPI] = field(default_factory=list)
    """Wards opened by this invocation's command, closed when it ends (``close_opened``)."""

    def close_opened(self) -> None:
        """Close every ward the command opened: a folder's catalog finishes the checkpoint its writes
        started (a large import's log is copied into the database now, not left to the next command
        or to a thread killed at exit), and a served ward's connections are closed."""
        while self.opened:
            self.opened.pop().close()


state = CliState()

JSON_HELP = "Print a JSON document instead of tables (stable keys, see docs/cli.md)."


def open_ward() -> WardAPI:
    """The served ward at ``--url``/``$DATAWARD_URL`` when one is given, else the ward folder from
    ``--ward``, ``$DATAWARD_WARD`` or ``./.dataward``; acting as ``$DATAWARD_KEY`` (or, for a folder,
    its local credentials). Every command works the same through either. The ward is closed when
    the command ends, however it ends (``CliState.close_opened``)."""
    import dataward

    target = dataward.served_url(state.url, "--url / $DATAWARD_URL") if state.url else state.ward_path
    ward = dataward.open(target)
    state.opened.append(ward)
    return ward


def refuse_ward_output(path: Path) -> None:
    """Refuse (``InputError``) a file or folder the command would write that lies inside the ward's own
    files (its folder, object store or SQLite catalog), for every ward folder the command opened:
    `checkpoint -o ward/catalog.sqlite` replaced the catalog with a checkpoint. A served ward's files
    are the server's; nothing of them is written here."""
    from dataward.service.guard import export_target, own_paths
    from dataward.service.ward import Ward

    if state.url:
        return
    if not any(isinstance(ward, Ward) for ward in state.opened):
        open_ward()  # checked before anything is done: the ward the command will act on
    for ward in state.opened:
        if isinstance(ward, Ward):
            export_target(path, own_paths(ward.folder, ward.store, ward.db))
