"""Types, hashing and errors shared by every layer. Imports nothing from the other layers.

The names below are imported from their modules on first use: ``dataward.domain.errors`` is needed by
every command, ``dataward.domain.records`` brings numpy and pyarrow, and importing one must not cost the
other (a command's start-up imports this package whatever it uses of it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataward.domain.errors import (
        AccessDenied,
        AuthenticationError,
        ClockBehind,
        Conflict,
        DatawardError,
        InputError,
        IntegrityViolation,
        KeyExpired,
        KeyRevoked,
        NotFound,
        PolicyViolation,
        PrincipalSuspended,
    )
    from dataward.domain.hashing import blake3_hex, canonical_json, content_hash, json_hash
    from dataward.domain.records import canonical_table, encode_record, record_id, record_ids, with_record_ids
    from dataward.domain.schema import RECORD_ID, Column, ColumnKind, Schema

# Each public name and the module that defines it.
_HOMES = {
    **dict.fromkeys(
        [
            "AccessDenied",
            "AuthenticationError",
            "ClockBehind",
            "Conflict",
            "DatawardError",
            "InputError",
            "IntegrityViolation",
            "KeyExpired",
            "KeyRevoked",
            "NotFound",
            "PolicyViolation",
            "PrincipalSuspended",
        ],
        "errors",
    ),
    **dict.fromkeys(["blake3_hex", "canonical_json", "content_hash", "json_hash"], "hashing"),
    **dict.fromkeys(["canonical_table", "encode_record", "record_id", "record_ids", "with_record_ids"], "records"),
    **dict.fromkeys(["RECORD_ID", "Column", "ColumnKind", "Schema"], "schema"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups do not come back here
    return value


__all__ = [
    "RECORD_ID",
    "AccessDenied",
    "AuthenticationError",
    "ClockBehind",
    "Column",
    "ColumnKind",
    "Conflict",
    "DatawardError",
    "InputError",
    "IntegrityViolation",
    "KeyExpired",
    "KeyRevoked",
    "NotFound",
    "PolicyViolation",
    "PrincipalSuspended",
    "Schema",
    "blake3_hex",
    "canonical_json",
    "canonical_table",
    "content_hash",
    "encode_record",
    "json_hash",
    "record_id",
    "record_ids",
    "with_record_ids",
]
