"""The shortcuts ``verify`` takes to re-hash ledger events give exactly the bytes the reference RFC 8785
encoder gives: ``jcs_quick`` on any JSON value, ``jcs_text`` on its stored text, ``js_number`` on any
finite float, and ``stored_body`` (an event put together from its stored texts) whenever it answers."""

from __future__ import annotations

import json
import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from dataward.domain.hashing import canonical_json, jcs, jcs_quick, jcs_text, js_number
from dataward.ledger.events import Actor, seal, stored_body
from dataward.ledger.signing import WardSigner

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | finite | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(finite)
@settings(max_examples=500)
def test_js_number_is_ecmascript_number_to_string(value: float) -> None:
    assert js_number(value).encode() == rfc8785.dumps(value)


def test_js_number_at_the_edges_of_decimal_notation() -> None:
    for value in (1e-7, 1.5e-7, 1e-6, 9.99e-7, 1e-5, 1e16, 1.5e16, 1e20, 1e21, 1e22, -0.0, 5e-324, 2.0**53, -1e-6):
        assert js_number(value).encode() == rfc8785.dumps(value), value


@given(values)
@settings(max_examples=500)
def test_jcs_quick_is_rfc8785(value: object) -> None:
    assert jcs_quick(value) == jcs(value)
    # jcs_text, from a stored text: the same numbers (as RFC 8785 reads them, doubles) and strings
    # always, RFC 8785's bytes when every key is ASCII.
    text = canonical_json(value).decode()
    assert json.loads(jcs_text(text), parse_int=float) == json.loads(text, parse_int=float)
    if _ascii_keys(value):
        assert jcs_text(text).encode() == jcs(value)


def _ascii_keys(value: object) -> bool:
    if isinstance(value, dict):
        return all(k.isascii() and _ascii_keys(v) for k, v in value.items())
    return all(_ascii_keys(v) for v in value) if isinstance(value, list) else True


@pytest.mark.parametrize("bad", [math.inf, {"x": math.nan}, {"big": 2**60}, [-(2**53)]])
def test_jcs_quick_refuses_what_rfc8785_refuses(bad: object) -> None:
    with pytest.raises(ValueError):
        jcs(bad)
    with pytest.raises(ValueError):
        jcs_quick(bad)


def _plain(value: object) -> bool:
    """No float and no non-ASCII key anywhere: Python's canonical JSON is then RFC 8785's."""
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(k.isascii() and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return True


@given(st.dictionaries(st.text(max_size=6), values, max_size=4), st.dictionaries(st.text(max_size=6), values))
@settings(max_examples=200)
def test_stored_body_is_the_sealed_bytes_or_nothing(subject: dict, payload: dict) -> None:
    signer = WardSigner.generate()
    event = seal(
        seq=7,
        prev="b3:" + "1" * 64,
        time="2026-12-01T10:00:00.000000Z",
        actor=Actor("p_1", "k1"),
        type="test.event",
        subject=subject,
        payload=payload,
        signer=signer,
        ward_id="w_1",
    )
    body = stored_body(event, canonical_json(event.subject).decode(), canonical_json(event.payload).decode())
    assert body is not None and json.loads(body) == event.body()
    # Python's canonical JSON is RFC 8785's unless a float or a non-ASCII key (RFC 8785 orders keys by
    # UTF-16 code units) is in it; otherwise the bytes differ and ``verify`` re-encodes exactly.
    if _plain(event.subject) and _plain(event.payload):
        assert body == event.canonical_body()


def test_stored_body_declines_strings_it_would_have_to_escape() -> None:
    signer = WardSigner.generate()
    event = seal(
        seq=1,
        prev="b3:" + "0" * 64,
        time="2026-12-01T10:00:00.000000Z",
        actor=Actor('p_"quoted"', None),
        type="test.event",
        subject={},
        payload={},
        signer=signer,
        ward_id="w_1",
    )
    assert stored_body(event, "{}", "{}") is None
