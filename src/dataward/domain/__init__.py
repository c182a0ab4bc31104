"""Types, hashing and errors shared by every layer. Imports nothing from the other layers."""

from dataward.domain.errors import (
    AccessDenied,
    AuthenticationError,
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

__all__ = [
    "RECORD_ID",
    "AccessDenied",
    "AuthenticationError",
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
