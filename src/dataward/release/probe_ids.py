"""Probe ids that say what was asked: ``KIND:RECORD:DIGEST``, for the labelled probe
(``dataward.release.probe``) and the language-model probe (``dataward.release.llm_probe``) alike.

An answer file written for one probe set (``dataward model probe-inputs``) is read back by a gate that
builds the set afresh, and between the two the triggers may change (a contribution merged, the data
gate's findings grown). An id made from a row's place in the set would then name another trigger's row
and its answer would be silently misread; an id made from the row's content names only the row that was
answered, and ``FilePredictor`` refuses rows the file does not answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from dataward.domain.hashing import blake3_hex, canonical_json

ID_DIGITS = 16
"""Hex digits of the digest in a probe id: 64 bits, so that two rows of one probe set never share one."""


def probe_id(kind: str, record_id: str, asked: Mapping[str, Any], **context: Any) -> str:
    """The id of one probe row: ``KIND:RECORD:DIGEST``, ``record_id`` the validation record the row comes
    from and the digest the first ``ID_DIGITS`` hex digits of the BLAKE3 hash of ``kind``, what the model
    is asked (``asked``, the row's input fields) and ``context``, what was stamped on the row and where
    (two triggers' controls may be the same edit in the same place)."""
    return f"{kind}:{record_id}:{digest({'kind': kind, 'asked': dict(asked), **context})[:ID_DIGITS]}"


def row_ids(kind: str, record_ids: Sequence[str], block: pa.Table, **context: Any) -> list[str]:
    """``probe_id`` of each row of ``block`` (its columns being what the model is asked), in order."""
    return [probe_id(kind, r, asked, **context) for r, asked in zip(record_ids, block.to_pylist(), strict=True)]


def digest(value: Any) -> str:
    """The BLAKE3 hex digest of ``value``'s canonical JSON, bytes in it by their own digest."""
    return blake3_hex(canonical_json(_hashable(value)))


def _hashable(value: Any) -> Any:
    """``value`` as canonical JSON can hold it: bytes (an image) by their BLAKE3 digest, a non-finite
    number by its name. Text, finite numbers and None are kept as they are, so that a language model's
    ids (text fields only) are what they were before the labelled probe shared this code."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"blake3": blake3_hex(bytes(value))}
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _hashable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hashable(v) for v in value]
    return value
