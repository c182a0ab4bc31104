"""Content hashing and canonical JSON: the two primitives that make ids and signatures stable."""

from __future__ import annotations

import json
import math
import re
import secrets
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


_MAX_EXACT = 2**53 - 1


_MARKER = re.compile(r'"\\u0000([0-9a-f]{16}):(\d+)\\u0000"')
"""A float's place in :func:`jcs_quick`'s text: a string no content holds (the nonce is random)."""


class _NotPlain(Exception):
    """A value :func:`jcs_quick` leaves to the reference encoder."""


def js_number(value: float) -> str:
    """A finite float as ECMAScript's ``Number.prototype.toString`` writes it (what RFC 8785 asks for):
    the same shortest digits as Python's ``repr``, in decimal from 1e-6 up to 1e21, else ``de±x``."""
    if value == 0:
        return "0"
    text = repr(value)
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text
    mantissa, _, exp = text.partition("e")
    exponent = int(exp)
    if not 1e-6 <= abs(value) < 1e21:
        return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"
    sign, mantissa = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + exponent
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def jcs_text(text: str | bytes) -> str:
    """The RFC 8785 form of the value a JSON text holds, by Python's C parser and encoder: floats,
    caught as the parser reads them, written as ECMAScript writes them. Faithful (it parses back to the
    text's value), and equal to :func:`jcs` of that value when its keys are ASCII and its integers
    within +/-(2**53 - 1); anything else may differ, so use it where a mismatch is checked anyway
    (``verify``). Raises ``ValueError`` when ``text`` is not JSON."""
    floats: list[str] = []
    nonce = secrets.token_hex(8)

    def on_float(token: str) -> str:
        floats.append(js_number(float(token)))
        return f"\x00{nonce}:{len(floats) - 1}\x00"

    value = json.loads(text, parse_float=on_float)
    out = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if floats:
        out = _MARKER.sub(lambda m: floats[int(m.group(2))] if m.group(1) == nonce else m.group(0), out)
    return out


def jcs_quick(value: Any) -> bytes:
    """:func:`jcs` by Python's C JSON encoder: floats written as ECMAScript writes them, and anything
    whose RFC 8785 form that encoder cannot give (a non-ASCII key, whose order RFC 8785 takes in UTF-16
    code units; a type other than JSON's) handed to the reference encoder. Tested equal to
    :func:`jcs`; used where speed matters and a mismatch is checked anyway (``verify``)."""
    floats: list[str] = []
    nonce = secrets.token_hex(8)

    def walk(v: Any) -> Any:
        kind = type(v)
        if kind is str or kind is bool or v is None:
            return v
        if kind is int:
            if not -_MAX_EXACT <= v <= _MAX_EXACT:
                raise _NotPlain
            return v
        if kind is float:
            if not math.isfinite(v):
                raise ValueError(f"canonical JSON cannot hold the non-finite number {v!r}")
            floats.append(js_number(v))
            return f"\x00{nonce}:{len(floats) - 1}\x00"
        if kind is dict:
            if not all(type(k) is str and k.isascii() for k in v):
                raise _NotPlain
            return {k: walk(x) for k, x in v.items()}
        if kind is list or kind is tuple:
            return [walk(x) for x in v]
        raise _NotPlain

    try:
        plain = walk(value)
    except _NotPlain:
        return jcs(value)
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if floats:
        text = _MARKER.sub(lambda m: floats[int(m.group(2))] if m.group(1) == nonce else m.group(0), text)
    return text.encode("utf-8")
