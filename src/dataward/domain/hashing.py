"""Content hashing and canonical JSON: the two primitives that make ids and signatures stable."""

from __future__ import annotations

import json
import math
from typing import Any

import blake3
import rfc8785

HASH_PREFIX = "b3:"


def blake3_hex(data: bytes) -> str:
    """Hex BLAKE3-256 digest of ``data``."""
    return blake3.blake3(data).hexdigest()


def content_hash(data: bytes) -> str:
    """A self-describing content hash (``b3:<hex>``), used for objects, manifests and events."""
    return HASH_PREFIX + blake3_hex(data)


def _reject_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"canonical JSON cannot hold the non-finite number {value!r}")
    if isinstance(value, dict):
        return {str(k): _reject_non_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reject_non_finite(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8, finite numbers only.

    Two equal Python values always give the same bytes, so their hash can be signed and re-checked.
    """
    return json.dumps(_reject_non_finite(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def json_hash(value: Any) -> str:
    """``content_hash`` of the canonical JSON of ``value``."""
    return content_hash(canonical_json(value))


def jcs(value: Any) -> bytes:
    """JSON per RFC 8785 (JSON Canonicalization Scheme): keys sorted by UTF-16 code units, numbers
    in ECMAScript form, no whitespace, UTF-8. Any language can reproduce these bytes.

    Integers must be within +/-(2**53 - 1) and numbers finite; anything else raises ``ValueError``.
    """
    return rfc8785.dumps(_reject_non_finite(value))


def jcs_hash(value: Any) -> str:
    """``content_hash`` of the RFC 8785 canonical JSON of ``value``."""
    return content_hash(jcs(value))
