"""``verify`` checks the catalog's rows without parsing them (``verify_stored``): each event's hash is
recomputed over its stored columns put together. These tests hold it to what ``verify_chain`` reports on
the parsed events, and play the attack the shortcut invites: moving text from one column to another
so that the put-together bytes (and so the hash) stay the same (docs/ledger-format.md, "Checking
stored rows")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dataward.domain.hashing import canonical_json
from dataward.ledger.events import (
    GENESIS,
    LEGACY_FORMAT,
    Actor,
    Event,
    decode_stored,
    seal,
    verify_chain,
    verify_stored,
)
from dataward.ledger.signing import SignatureVerifier, WardSigner

WARD = "w_rows"
SIGNER = WardSigner.generate()
VERIFIER = SignatureVerifier(SIGNER.public_key_b64)


def _event(seq: int, prev: str, payload: dict[str, Any], *, key: str | None = "k_1", fmt: int = 2) -> Event:
    return seal(
        seq=seq,
        prev=prev,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        actor=Actor("p_admin", key),
        type="test.event",
        subject={"n": seq, "name": "é ✓"},
        payload=payload,
        signer=SIGNER,
        ward_id=WARD,
        format=fmt,
    )


def _chain(payloads: list[dict[str, Any]], legacy: int = 0) -> list[Event]:
    events, prev = [], GENESIS
    for i, payload in enumerate(payloads):
        events.append(_event(i + 1, prev, payload, key=None if i % 3 == 0 else "k_1", fmt=1 if i < legacy else 2))
        prev = events[-1].hash
    return events


def _row(e: Event, **changes: Any) -> tuple[Any, ...]:
    row = {
        "seq": e.seq,
        "prev": e.prev,
        "hash": e.hash,
        "time": e.time,
        "type": e.type,
        "actor_principal": e.actor["principal"],
        "actor_key": e.actor["key"],
        "subject": canonical_json(e.subject).decode(),
        "payload": canonical_json(e.payload).decode(),
        "sig": e.sig,
        "format": None if e.format == LEGACY_FORMAT else e.format,
    }
    return tuple({**row, **changes}.values())


def _both(rows: list[tuple[Any, ...]], every: int = 4) -> list[tuple[int, str]]:
    """What ``verify_stored`` reports, checked equal to ``verify_chain`` over the parsed rows."""
    quick = [(p.seq, p.kind) for p in verify_stored(rows, VERIFIER, WARD, signature_every=every)]
    exact = [
        (p.seq, p.kind) for p in verify_chain([decode_stored(r) for r in rows], VERIFIER, WARD, signature_every=every)
    ]
    assert quick == exact
    return quick


PAYLOADS = [{"i": i, "ratio": i / 3, "text": f'row {i} \\ "quoted"', "zero": 0.0} for i in range(10)]


def test_sound_rows_verify_in_both_formats_and_every_kind_of_damage_is_reported_as_verify_chain_does() -> None:
    events = _chain(PAYLOADS, legacy=2)
    rows = [_row(e) for e in events]
    assert _both(rows) == [] and _both(rows, every=1) == []
    edited = list(rows)
    edited[4] = _row(events[4], payload=rows[4][8].replace('"i":4', '"i":44'))
    assert _both(edited) == [(5, "altered")]
    edited[4] = _row(events[4], payload=rows[4][8].replace('"ratio":1.3333333333333333', '"ratio":1.3333333333333335'))
    assert edited[4] != rows[4] and _both(edited) == [(5, "altered")]
    assert _both(rows[:3] + rows[4:]) == [(5, "gap"), (5, "broken_link")]
    downgraded = list(rows)
    downgraded[6] = _row(events[6], format=None)
    assert _both(downgraded) == [(7, "downgraded"), (7, "altered"), (7, "bad_signature")]
    forged = list(rows)
    forged[9] = _row(events[9], sig=WardSigner.generate().sign(b"x"))
    assert _both(forged) == [(10, "bad_signature")]
    garbled = list(rows)
    garbled[2] = _row(events[2], subject="{not json")
    assert _both(garbled) == [(3, "altered")]


def test_text_moved_between_columns_with_the_same_bytes_is_altered() -> None:
    """The sealed payload holds, nested, what looks like the event's own ``prev``, ``seq`` and
    ``subject`` keys (a user-supplied parameter could): cut there, the payload and subject columns put
    together give the sealed bytes, so the hash matches, yet neither column is what was sealed."""
    first = _event(1, GENESIS, {"x": 1})
    nested = {"params": {"a": 0, "prev": first.hash, "seq": 2, "subject": {"n": 2, "name": "é ✓"}}}
    second = _event(2, first.hash, nested)
    payload, subject = canonical_json(second.payload).decode(), canonical_json(second.subject).decode()
    cut = payload.index(',"prev":"')
    tail = f',"prev":"{first.hash}","seq":2,"subject":'
    moved = _row(second, payload=payload[:cut], subject=payload[cut + len(tail) :] + tail + subject)
    assert moved[8] + tail + moved[7] == payload + tail + subject  # the same bytes, put together
    assert _both([_row(first), _row(second)]) == []
    assert _both([_row(first), moved]) == [(2, "altered")]


def test_short_columns_with_quotes_take_the_exact_path() -> None:
    """A quote or backslash in a short column could move a boundary: such rows are parsed and checked
    the exact way, so a sound one passes and an edited one is altered."""
    first = _event(1, GENESIS, {"x": 1})
    odd = seal(
        seq=2,
        prev=first.hash,
        time=first.time,
        actor=Actor('p_"x\\', None),
        type='test."odd"',
        subject={},
        payload={},
        signer=SIGNER,
        ward_id=WARD,
    )
    assert _both([_row(first), _row(odd)]) == []
    assert _both([_row(first), _row(odd, type='test."even"')]) == [(2, "altered")]


def test_a_quote_in_a_short_column_cannot_move_the_subjects_end() -> None:
    """The sealed subject ends with a ``time`` key of its own; cut there, the rest of it moves into the
    time column, and the columns put together still give the sealed bytes. The quote in the time
    column sends the row to the exact path, which finds the subject altered."""
    first = _event(1, GENESIS, {"x": 1})
    second = seal(
        seq=2,
        prev=first.hash,
        time=first.time,
        actor=Actor("p_admin", "k_1"),
        type="test.event",
        subject={"a": "x", "time": "z"},
        payload={},
        signer=SIGNER,
        ward_id=WARD,
    )
    sound = _row(second)
    moved = _row(second, subject='{"a":"x"', time='z"},"time":"' + sound[3])
    assert moved[7] + ',"time":"' + moved[3] == sound[7] + ',"time":"' + sound[3]  # the same bytes
    assert _both([_row(first), sound]) == []
    assert _both([_row(first), moved]) == [(2, "altered")]


def test_hostile_rows_are_reported_not_raised() -> None:
    """SQLite keeps any type in any column: text where a number belongs, or a text nested deeper than
    the parser goes, is a finding of ``verify``, never a crash."""
    events = _chain(PAYLOADS[:3])
    rows = [_row(e) for e in events]
    deep = list(rows)
    deep[1] = _row(events[1], payload="[" * 200_000)
    assert _both(deep) == [(2, "altered")]
    lettered = list(rows)
    lettered[1] = _row(events[1], format="x")
    assert [(p.seq, p.kind) for p in verify_stored(lettered, VERIFIER, WARD)] == [(2, "unknown_format")]
    numbered = list(rows)
    numbered[1] = _row(events[1], seq="two")
    # The row is out of sequence and its hash and signature (over seq 2) no longer hold; the next
    # row is then a gap after it.
    reported = [(p.seq, p.kind) for p in verify_stored(numbered, VERIFIER, WARD)]
    assert reported == [(-1, "gap"), (-1, "altered"), (-1, "bad_signature"), (3, "gap")]


def test_only_byte_exact_payloads_are_marked_and_the_fast_parser_reads_what_json_reads() -> None:
    """``verify_stored`` marks as exact only rows whose stored payload is the sealed bytes; the catalog
    check parses those with ``msgspec`` (the ``fast`` extra) and every other row with ``json.loads``.
    A payload re-spelled with a duplicate key (whose value ``json.loads`` reads as sealed, the last
    key winning) is accepted by value but never marked; texts ``msgspec`` refuses or might read
    otherwise fall back to, or agree with, ``json.loads``."""
    from dataward.catalog.ledger_store import fast_json, stored_facts

    payloads = [
        {"changes": [{"table": "t", "op": "insert", "key": {"id": i}, "values": {"n": 2**40 + i}}]} for i in range(6)
    ]
    payloads[3]["ratio"] = 0.5e-6  # Python writes 5e-07, RFC 8785 5e-7: accepted by value, not byte-exact
    events = _chain(payloads)
    rows = [_row(e) for e in events]
    text = rows[2][8]
    bogus = '{"changes":[{"table":"t","op":"insert","key":{"id":99},"values":{"n":1}}],'
    rows[2] = _row(events[2], payload=bogus + text[1:])
    rows[4] = _row(events[4], payload=text)  # another event's payload: altered
    exact = bytearray(len(rows))
    problems = verify_stored(rows, VERIFIER, WARD, signature_every=4, exact=exact)
    assert [(p.seq, p.kind) for p in problems] == [(5, "altered")]
    assert list(exact) == [1, 1, 0, 0, 0, 1]
    facts = stored_facts(rows, exact)
    assert facts.changes == stored_facts(rows).changes
    assert 99 not in [c["key"]["id"] for c in facts.changes] and facts.changes[0]["values"]["n"] == 2**40
    # Texts msgspec refuses (NaN, 1e400, a lone surrogate, deep nesting) or reads alike (big integers,
    # floats, escapes), marked exact: read as json.loads reads them.
    odd = ["NaN", "1e400", '"\\ud800"', "[" * 5000 + "]" * 5000, "-123456789012345678901234567890", "1.5e-320"]
    odd_rows = [(0, "", "", "", "x", "", None, "{}", '{"changes":[{"v":' + v + "}]}", "", 2) for v in odd]
    ones = bytearray(b"\x01" * len(odd_rows))
    assert repr(stored_facts(odd_rows, ones).changes) == repr(stored_facts(odd_rows).changes)
    assert len(stored_facts(odd_rows).changes) == len(odd) - 1  # json.loads refuses the deep nesting too
    assert fast_json() is not None  # the dev install has the fast extra: the path above was taken


def test_a_chain_split_with_a_forked_child_reports_what_one_process_reports(monkeypatch: Any) -> None:
    """``jobs=2``: the rows from ``SPLIT_SHARE`` on are checked in a forked child, which starts from the
    stored state of the row before its part. A sound chain passes with the same exact marks, and the
    caller's work runs on the first part meanwhile; damage in either part or across the boundary
    (an edited row, a row dropped or two swapped there, a downgrade just after it) is reported as the
    one-process check reports it."""
    from dataward.ledger import events as ev

    monkeypatch.setattr(ev, "SPLIT_MIN", 10)
    events = _chain([{"i": i, "changes": [i]} for i in range(40)], legacy=3)
    rows = [_row(e) for e in events]
    k = int(len(rows) * ev.SPLIT_SHARE)
    seen: list[int] = []
    exact, serial_exact = bytearray(len(rows)), bytearray(len(rows))
    assert verify_stored(rows, VERIFIER, WARD, signature_every=4, exact=exact, jobs=2, meanwhile=seen.append) == []
    assert verify_stored(rows, VERIFIER, WARD, signature_every=4, exact=serial_exact) == []
    assert seen == [k] and exact == serial_exact and sum(exact) == len(rows)

    def split(damaged: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
        seen.clear()
        found = verify_stored(damaged, VERIFIER, WARD, signature_every=4, jobs=2, meanwhile=seen.append)
        return [(p.seq, p.kind) for p in found]

    cases = []
    for i in (5, k - 1, k, 30):
        edited = list(rows)
        edited[i] = _row(events[i], payload=rows[i][8].replace('"changes":[', '"changes":[7,'))
        cases.append(edited)
    cases.append(rows[: k - 1] + rows[k:])  # the last row of the first part dropped
    cases.append(rows[:k] + rows[k + 1 :])  # the first row of the child's part dropped
    cases.append([*rows[: k - 1], rows[k], rows[k - 1], *rows[k + 1 :]])  # swapped across the boundary
    downgraded = list(rows)
    downgraded[k] = _row(events[k], format=None)
    cases.append(downgraded)
    for n, damaged in enumerate(cases):
        found = split(damaged)
        assert found and found == _both(damaged)
        if n == 0:
            assert seen == []  # a damaged first part is not handed to the caller's work


def test_the_forked_child_reads_the_format_before_its_part_as_the_chain_check_does(monkeypatch: Any) -> None:
    """The child starts from the format of the row before its part. A format column the one-process
    check reads as 2 (``" 2"`` or ``b"2"``: SQLite keeps text and blobs in an integer column) must count
    as 2 there too, or a format-1 event just after it (a downgrade, which one process reports) passes."""
    from dataward.ledger import events as ev

    monkeypatch.setattr(ev, "SPLIT_MIN", 10)
    k = int(20 * ev.SPLIT_SHARE)
    events, prev = [], GENESIS
    for i in range(20):
        events.append(_event(i + 1, prev, {"i": i}, fmt=1 if i == k else 2))
        prev = events[-1].hash
    for spelled in (" 2", b"2"):
        rows = [_row(e) for e in events]
        rows[k - 1] = _row(events[k - 1], format=spelled)
        one = _both(rows)
        assert (k + 1, "downgraded") in one
        split = verify_stored(rows, VERIFIER, WARD, signature_every=4, jobs=2)
        assert [(p.seq, p.kind) for p in split] == one


def test_a_killed_child_has_its_part_checked_in_this_process(monkeypatch: Any) -> None:
    """A child that dies (here killed at its first signature check) sends nothing: its part is checked
    here, with the same marks and report as one process, damage in its part included."""
    import os
    import signal

    from dataward.ledger import events as ev

    monkeypatch.setattr(ev, "SPLIT_MIN", 10)
    parent = os.getpid()

    class Dying(SignatureVerifier):
        def verify(self, message: bytes, sig: str) -> bool:
            if os.getpid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().verify(message, sig)

    dying = Dying(SIGNER.public_key_b64)
    rows = [_row(e) for e in _chain([{"changes": [i]} for i in range(20)])]
    exact = bytearray(len(rows))
    assert verify_stored(rows, dying, WARD, signature_every=4, exact=exact, jobs=2) == []
    assert sum(exact) == len(rows)
    rows[15] = _row(decode_stored(rows[15]), payload='{"changes":[99]}')
    found = [(p.seq, p.kind) for p in verify_stored(rows, dying, WARD, signature_every=4, jobs=2)]
    assert found == _both(rows) and (16, "altered") in found

    # A child that hangs instead (a lock another thread held at the fork) is stopped past its wait.
    class Stuck(SignatureVerifier):
        def verify(self, message: bytes, sig: str) -> bool:
            if os.getpid() != parent:
                signal.pause()
            return super().verify(message, sig)

    monkeypatch.setattr(ev, "CHILD_MIN_WAIT", 0.5)
    stuck = Stuck(SIGNER.public_key_b64)
    found = [(p.seq, p.kind) for p in verify_stored(rows, stuck, WARD, signature_every=4, jobs=2)]
    assert found == _both(rows) and (16, "altered") in found


def test_the_childs_pipe_is_read_whatever_its_descriptor_number() -> None:
    """A server holding many connections hands the pipe a descriptor past select()'s limit (1024)."""
    import os
    import time

    from dataward.ledger import events as ev

    read_end, write_end = os.pipe()
    high = os.dup2(read_end, 1500)
    os.close(read_end)
    os.write(write_end, b"answer")
    os.close(write_end)
    assert ev._read_until(high, time.monotonic() + 5) == b"answer"
    silent, kept_open = os.pipe()
    high = os.dup2(silent, 1501)
    os.close(silent)
    assert ev._read_until(high, time.monotonic() + 0.05) is None
    os.close(kept_open)
