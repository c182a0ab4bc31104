"""``verify`` checks every event's link and hash, but by default only the signatures of every
``SIGNATURE_SPACING``-th event and of the last one: each of those signs a hash that covers every event
before it. The attacks that spacing must not let through are played here with a spacing of 4, so that
a short history has several signed events and stretches between them (docs/ledger-format.md, "What
verify proves")."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from dataward.catalog import ledger_store
from dataward.domain.schema import Schema
from dataward.ledger.checkpoint import Checkpoint
from dataward.ledger.events import Actor, Event, seal, signatures_checked, verify_chain
from dataward.ledger.signing import SignatureVerifier, WardSigner
from dataward.service import audit
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.security.attacks import delete_tail, events_of, reseal, rewrite_event

SPACING = 4


class CountingVerifier(SignatureVerifier):
    """A real verifier that also counts the signatures it checked."""

    def __init__(self, public_key_b64: str) -> None:
        super().__init__(public_key_b64)
        self.checked: list[bytes] = []

    def verify(self, message: bytes, signature_b64: str) -> bool:
        self.checked.append(message)
        return super().verify(message, signature_b64)


def _chain(signer: WardSigner, count: int, ward_id: str = "w_test") -> list[Event]:
    events: list[Event] = []
    prev = "b3:" + "0" * 64
    for seq in range(1, count + 1):
        events.append(
            seal(
                seq=seq,
                prev=prev,
                time=datetime(2026, 1, 1, tzinfo=UTC),
                actor=Actor("p_admin", None),
                type="test.event",
                subject={"n": seq},
                payload={"text": f"event {seq} é", "ratio": seq / 3},
                signer=signer,
                ward_id=ward_id,
            )
        )
        prev = events[-1].hash
    return events


def test_a_sound_chain_is_checked_with_spaced_signatures_and_the_last() -> None:
    signer = WardSigner.generate()
    events = _chain(signer, 10)
    spaced = CountingVerifier(signer.public_key_b64)
    assert verify_chain(events, spaced, "w_test", signature_every=SPACING) == []
    assert len(spaced.checked) == 3 == signatures_checked(10, SPACING)  # events 4, 8 and 10
    every = CountingVerifier(signer.public_key_b64)
    assert verify_chain(events, every, "w_test") == []
    assert len(every.checked) == 10


def test_a_damaged_chain_is_checked_signature_by_signature() -> None:
    """Anything wrong and every signature is checked, so the report shows the whole extent."""
    signer, forger = WardSigner.generate(), WardSigner.generate()
    events = _chain(signer, 10)
    forged = reseal(events, forger, "w_test", start=6)  # events 6-10 re-signed with another key
    verifier = CountingVerifier(signer.public_key_b64)
    problems = verify_chain(forged, verifier, "w_test", signature_every=SPACING)
    assert [(p.seq, p.kind) for p in problems] == [(n, "bad_signature") for n in range(6, 11)]
    assert len(verifier.checked) == 3 + 10


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spaced")
    ward, _ = Ward.init(root / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    merge_reviewed(ward, ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 40)), source="a")["id"])
    ward.contribute("wine", write_csv(root / "b.csv", wine_rows(40, 80)), source="b")
    for name in ("bob", "carol", "dave"):
        ward.create_principal(name)
    ward.db.dispose()
    return root / "ward"


@pytest.fixture
def ward(history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    monkeypatch.setattr(audit, "SIGNATURE_SPACING", SPACING)
    shutil.copytree(history, tmp_path / "ward")
    opened = Ward.open(tmp_path / "ward")
    report = opened.verify()
    assert report.ok and report.checked["signatures"] < report.checked["events"]
    return opened


def _between_signed(ward: Ward) -> int:
    """An event that is neither a multiple of the spacing nor the last one."""
    last = len(events_of(ward))
    return next(n for n in range(last - 2, 0, -1) if n % SPACING not in (0,) and n + 1 < last)


def _ledger(report: audit.VerifyReport) -> list[tuple[int | None, str]]:
    return [(p.event, p.kind) for p in report.problems if p.area == "ledger"]


def test_an_event_edited_between_signed_events_is_altered(ward: Ward) -> None:
    seq = _between_signed(ward)
    rewrite_event(ward, seq, {"reason": "never checked"}, signer=None)
    report = ward.verify()
    assert (seq, "altered") in _ledger(report) and report.first_bad_event == seq


def test_an_edit_rechained_without_the_ward_key_fails_every_resigned_event(ward: Ward) -> None:
    """The attacker re-hashes the edited event and every later one so the links hold, and signs them
    with a key of their own: the next spaced signature (or the last) fails, then every one is checked."""
    seq = _between_signed(ward)
    rewrite_event(ward, seq, {"reason": "never checked"}, signer=WardSigner.generate())
    report = ward.verify()
    last = len(events_of(ward))
    # This ward object also read the head before the rewrite: it no longer hashes the same.
    assert _ledger(report) == [(n, "bad_signature") for n in range(seq, last + 1)] + [(last, "rewritten")]
    assert report.checked["signatures"] == last
    fresh = Ward.open(ward.folder).verify()
    assert _ledger(fresh) == [(n, "bad_signature") for n in range(seq, last + 1)]


def test_a_signature_replaced_on_an_unaltered_event_shows_with_all_signatures(ward: Ward) -> None:
    """The one thing spacing does not report: an event whose content is intact (its hash is covered by
    a later signature) but whose own ``sig`` was replaced. ``all_signatures`` reports it."""
    seq = _between_signed(ward)
    forger = WardSigner.generate()
    with ward.db.transaction() as conn:
        digest = conn.execute(text("SELECT hash FROM ledger_events WHERE seq = :s"), {"s": seq}).scalar_one()
        conn.execute(
            text("UPDATE ledger_events SET sig = :g WHERE seq = :s"), {"g": forger.sign(digest.encode()), "s": seq}
        )
    assert ward.verify().ok
    full = ward.verify(all_signatures=True)
    assert _ledger(full) == [(seq, "bad_signature")]
    assert full.anchor["signatures"] == "every event"


def test_a_forged_tail_appended_without_the_key_fails_the_last_signature(ward: Ward) -> None:
    events = events_of(ward)
    head = events[-1]
    forger = WardSigner.generate()
    fake = seal(
        seq=head.seq + 1,
        prev=head.hash,
        time=datetime.now(UTC),
        actor=Actor(**head.actor),
        type="grant.created",
        subject={"principal": "mallory"},
        payload={"role": "admin"},
        signer=forger,
        ward_id=ward.ward_id,
    )
    with ward.db.transaction() as conn:
        conn.execute(
            ledger_store.ledger_events.insert().values(
                seq=fake.seq,
                prev=fake.prev,
                hash=fake.hash,
                time=fake.time,
                type=fake.type,
                actor_principal=fake.actor["principal"],
                actor_key=fake.actor["key"],
                subject='{"principal":"mallory"}',
                payload='{"role":"admin"}',
                sig=fake.sig,
                format=fake.format,
            )
        )
    assert (fake.seq, "bad_signature") in _ledger(ward.verify())


def test_a_tail_dropped_after_the_last_signed_event_needs_a_checkpoint(ward: Ward, tmp_path: Path) -> None:
    """Dropping the newest events leaves a chain whose new last event is genuinely signed: no signature
    scheme inside the ward can tell. A checkpoint of the head kept outside the ward does."""
    outside = Checkpoint.from_dict(ward.checkpoint(), source="auditor's copy")
    last = len(events_of(ward))
    keep = last - last % SPACING if last % SPACING else last - SPACING
    deleted = delete_tail(ward, last - keep, with_rows=True)
    plain = Ward.open(ward.folder).verify()
    assert plain.ok and plain.head["seq"] == keep, "a new process without an anchor: the cover-up is complete"
    # The ward object that read the longer ledger is an anchor of its own.
    remembered = ward.verify()
    assert not remembered.ok and remembered.first_bad_event == deleted[0].seq
    anchored = Ward.open(ward.folder).verify(checkpoints=[outside], public_key=ward.signer.public_key_b64)
    assert not anchored.ok and anchored.first_bad_event == deleted[0].seq
    assert any(p.kind == "missing" for p in anchored.problems)


def test_a_checkpoint_forged_with_another_key_proves_nothing(ward: Ward) -> None:
    seq, head = len(events_of(ward)), events_of(ward)[-1].hash
    forged = Checkpoint.sign(
        WardSigner.generate(), ward=ward.ward_id, seq=seq + 5, head=head, time="2030-01-01T00:00:00.000000Z"
    )
    report = ward.verify(checkpoints=[forged], public_key=ward.signer.public_key_b64)
    assert [(p.area, p.kind) for p in report.problems] == [("checkpoint", "bad_signature")]
    assert report.checked["checkpoints"] == 0 or all(cp["seq"] != seq + 5 for cp in report.anchor["checkpoints"])
