"""Event formats: new events are hashed over RFC 8785 JSON and signed over a domain-separated
(ward, seq, hash); events of wards made before that keep verifying under their own rules, a ward
made before formats existed is migrated on open, and a chain never steps back to the weaker format."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from dataward.catalog import ledger_store
from dataward.catalog.database import CatalogDatabase
from dataward.domain.hashing import content_hash, jcs
from dataward.domain.schema import Schema
from dataward.ledger.events import EVENT_DOMAIN, Actor, seal, utc_now, verify_chain
from dataward.ledger.signing import SignatureVerifier, WardSigner
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.security.attacks import events_of


def _event(format: int, signer: WardSigner, ward_id: str = "w_one"):  # type: ignore[no-untyped-def]
    return seal(
        seq=1,
        prev="b3:" + "0" * 64,
        time=utc_now(),
        actor=Actor("p_x", "k1"),
        type="grant.created",
        subject={"principal": "p_y"},
        payload={"role": "admin", "score": 1.0, "note": "é\u2028", "n": [1, 2.5, 1e21]},
        signer=signer,
        ward_id=ward_id,
        format=format,
    )


def test_format_2_hash_and_signature_are_domain_separated() -> None:
    signer = WardSigner.generate()
    verifier = SignatureVerifier(signer.public_key_b64)
    event = _event(2, signer)
    assert event.hash == content_hash(jcs(event.body())) and event.body()["format"] == 2
    message = EVENT_DOMAIN + jcs({"hash": event.hash, "seq": 1, "ward": "w_one"})
    assert event.signed_message("w_one") == message
    assert verifier.verify(message, event.sig)
    # Not a signature of the bare hash, and not valid for another ward.
    assert not verifier.verify(event.hash.encode(), event.sig)
    assert verify_chain([event], verifier, "w_one") == []
    assert [p.kind for p in verify_chain([event], verifier, "w_two")] == ["bad_signature"]


def test_a_bare_hash_signature_does_not_pass_as_format_2() -> None:
    signer = WardSigner.generate()
    event = _event(2, signer)
    forged = type(event)(**{**event.__dict__, "sig": signer.sign(event.hash.encode())})
    assert [p.kind for p in verify_chain([forged], SignatureVerifier(signer.public_key_b64), "w_one")] == [
        "bad_signature"
    ]


def test_format_1_keeps_its_rules() -> None:
    signer = WardSigner.generate()
    event = _event(1, signer)
    assert "format" not in event.body()
    assert SignatureVerifier(signer.public_key_b64).verify(event.hash.encode(), event.sig)
    assert verify_chain([event], SignatureVerifier(signer.public_key_b64), "w_one") == []
    assert base64.b64decode(event.sig)


def _old_ward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    """A ward whose history was written before event formats existed, its catalog at revision 0002."""
    with monkeypatch.context() as patch:
        patch.setattr(ledger_store, "CURRENT_FORMAT", 1)
        ward, _ = Ward.init(tmp_path / "ward")
        label, specs = wine_schema_specs()
        ward.create_dataset("wine", Schema.parse(label, specs))
        ward.set_policy("wine", NO_APPROVALS_POLICY)
        merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 30)), source="a")["id"])
    assert {e.format for e in events_of(ward)} == {1}
    from alembic import command
    from alembic.config import Config

    from dataward.catalog.database import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with ward.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    ward.db.dispose()
    assert CatalogDatabase(ward.db.url).schema_revision() == "0002"
    return ward


def test_old_ward_is_migrated_and_verifies_old_and_new_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _old_ward(tmp_path, monkeypatch)
    ward = Ward.open(old.folder)
    assert ward.db.schema_revision() == max(
        p.name[:4] for p in (Path(ledger_store.__file__).parent / "migrations" / "versions").glob("0*.py")
    )
    before = len(events_of(ward))
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(30, 60)), source="b")["id"])
    ward.promote("wine@v2")
    formats = [e.format for e in events_of(ward)]
    assert set(formats[:before]) == {1} and set(formats[before:]) == {2}
    report = ward.verify()
    assert report.ok, report.problems
    # Tampering is still caught on both sides of the switch.
    targets = (before - 1, before + 1)
    with ward.db.transaction() as conn:
        for seq in targets:
            payload = json.loads(
                conn.execute(text("SELECT payload FROM ledger_events WHERE seq = :s"), {"s": seq}).scalar()
            )
            payload["injected"] = True
            conn.execute(
                text("UPDATE ledger_events SET payload = :p WHERE seq = :s"), {"p": json.dumps(payload), "s": seq}
            )
    report = ward.verify()
    assert {p.event for p in report.problems if p.kind == "altered"} == set(targets)
    assert report.first_bad_event == before - 1


def test_a_new_event_cannot_be_downgraded_to_the_old_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _old_ward(tmp_path, monkeypatch)
    ward = Ward.open(old.folder)
    ward.create_principal("carol")
    last = events_of(ward)[-1]
    assert last.format == 2
    # Re-sealed under format 1 with the stolen key, the event would verify on its own rules, but a
    # chain never steps back from format 2 to format 1.
    ward.create_principal("dave")
    head = events_of(ward)[-1]
    downgraded = seal(
        seq=head.seq,
        prev=head.prev,
        time=head.time,
        actor=Actor(**head.actor),
        type=head.type,
        subject=head.subject,
        payload=head.payload,
        signer=ward.signer,
        ward_id=ward.ward_id,
        format=1,
    )
    with ward.db.transaction() as conn:
        conn.execute(
            text("UPDATE ledger_events SET format = 1, hash = :h, sig = :s WHERE seq = :n"),
            {"h": downgraded.hash, "s": downgraded.sig, "n": head.seq},
        )
    # A new process: this one also remembers the head it wrote, and reports the event as rewritten too.
    problems = Ward.open(old.folder).verify().problems
    assert [(p.kind, p.event) for p in problems] == [("downgraded", head.seq)]
    assert ("rewritten", head.seq) in [(p.kind, p.event) for p in ward.verify().problems]
