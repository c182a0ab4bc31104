"""Where a ward lives and how its folder is laid out."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataward.domain.errors import InputError, NotFound
from dataward.domain.limits import InputLimits

DEFAULT_WARD_DIR = ".dataward"
WARD_FILE = "ward.json"
SIGNING_KEY_FILE = "keys/ward-ed25519.pem"
CHECKPOINTS_DIR = "checkpoints"
REMOVALS_FILE = "removals.jsonl"
"""The signed list of access removals (``service/removal_list.py``): beside ``checkpoints/``, not in it,
so that moving the newer kept checkpoints aside after a restore leaves it in place."""
CREDENTIALS_FILE = "credentials"


def locate_ward(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--ward PATH``, else ``$DATAWARD_WARD``, else ``./.dataward``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("DATAWARD_WARD")
    return Path(env) if env else Path.cwd() / DEFAULT_WARD_DIR


@dataclass(frozen=True)
class WardConfig:
    """Contents of ``ward.json``: identity of the ward and where its catalog and objects are."""

    ward_id: str
    catalog_url: str
    store_url: str
    created_at: str
    format: int = 1
    witness: str | None = None
    """Where a witness copy of every checkpoint goes: a folder or fsspec URL outside the ward."""
    input_limits: dict[str, Any] | None = None
    """The ward's input limits over the defaults, e.g. ``{"max_record_bytes": "64MiB"}``
    (names and defaults in :class:`dataward.domain.limits.InputLimits`)."""

    @classmethod
    def load(cls, folder: Path) -> WardConfig:
        """Read ``ward.json`` from a ward folder."""
        path = folder / WARD_FILE
        if not path.exists():
            raise NotFound(
                f"no ward at {folder} (missing {WARD_FILE})",
                hint="create one with `dataward init PATH`; point to it with --ward PATH on the command line, "
                "ward=dataward.open(PATH) in Python, or DATAWARD_WARD",
            )
        try:
            data = json.loads(path.read_text("utf-8"))
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path} is not a valid ward file: {exc}") from exc

    def save(self, folder: Path) -> None:
        """Write ``ward.json`` atomically."""
        data = {k: v for k, v in self.__dict__.items() if not (k in ("witness", "input_limits") and v is None)}
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        tmp = folder / (WARD_FILE + ".tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, folder / WARD_FILE)

    def limits(self) -> InputLimits:
        """The ward's input limits: the defaults, with ``input_limits`` laid over them."""
        try:
            return InputLimits.coerce(self.input_limits)
        except InputError as exc:
            raise InputError(f"{WARD_FILE}: input_limits: {exc.message}", hint=exc.hint) from exc

    def resolved_catalog_url(self, folder: Path) -> str:
        """SQLite paths in ward.json are relative to the ward folder, so the folder can be moved."""
        if self.catalog_url.startswith("sqlite:///./"):
            return "sqlite:///" + str(folder / self.catalog_url[len("sqlite:///./") :])
        return self.catalog_url

    def resolved_store(self, folder: Path) -> str:
        """The object store location; relative paths are inside the ward folder."""
        if "://" not in self.store_url:
            return str(folder / self.store_url)
        return self.store_url
