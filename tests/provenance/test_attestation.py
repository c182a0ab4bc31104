"""``attest``: a DSSE-signed in-toto bundle of a version's provenance, checked by dataward with a
pinned key and by the standard libraries' own verifiers; an edited bundle or another key fails."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from dataward.domain.schema import RECORD_ID
from dataward.provenance.attestation import PREDICATE_TYPE, SLSA_PROVENANCE, verify_bundle
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.provenance.conftest import augment_scraped


def _ward_key(ward: Ward) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(ward.public_key()["public_key"]))


def _dedup_and_merge(ward: Ward) -> None:
    with ward.transform("dedup", inputs="wine@v2", params={"key": "alcohol"}) as t:
        groups: dict[float, list[dict]] = {}
        for r in t.read().to_pylist():
            groups.setdefault(round(r["alcohol"]), []).append(r)
        t.write([g[0] for g in groups.values()], parents=[[r[RECORD_ID] for r in g] for g in groups.values()])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])


def test_attestation_verifies_with_dataward_and_the_standard_verifier(wine_ward: Ward) -> None:
    _dedup_and_merge(wine_ward)
    envelopes = wine_ward.attest("wine@v3")
    bundle = "\n".join(json.dumps(e) for e in envelopes) + "\n"
    check = verify_bundle(bundle, _ward_key(wine_ward))
    assert check.ok, check.problems
    assert [s["predicateType"] for s in check.statements] == [SLSA_PROVENANCE, PREDICATE_TYPE]

    # The same file, checked only with securesystemslib's DSSE verifier and in-toto's statement model.
    key = SSlibKey.from_crypto(_ward_key(wine_ward), scheme="ed25519")
    for line in bundle.splitlines():
        envelope = Envelope.from_dict(json.loads(line))
        assert key.keyid in envelope.verify([key], 1)
        assert envelope.payload_type == "application/vnd.in-toto+json"
        proto = json_format.Parse(envelope.payload, statement_pb2.Statement())
        Statement.copy_from_pb(proto).validate()
        statement = json.loads(envelope.payload)
        (subject,) = statement["subject"]
        assert subject["name"] == "wine@v3" and len(subject["digest"]["sha256"]) == 64

    slsa, ours = check.statements
    deps = slsa["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"https://scrape.example/wine-a", "s3://vendor/wine-b.csv"} <= {d.get("uri") for d in deps}
    assert "wine@v2" in {d.get("name") for d in deps}
    p = ours["predicate"]
    (step,) = p["transformations"]
    assert step["name"] == "dedup" and step["code"]["kind"] == "git" and step["lineage_object"].startswith("b3:")
    by_ref = {c["ref"]: c for c in p["contributions"]}
    assert by_ref["wine#1"]["submitted_by"] == "scraper" and by_ref["wine#1"]["key"].startswith("dw_")
    gate = by_ref["wine#1"]["gates"][0]
    assert gate["verdict"] in ("pass", "review") and gate["config_hash"]
    assert by_ref["wine#3"]["transformation"]["name"] == "dedup" and by_ref["wine#3"]["merged"]
    assert p["version"]["manifest"] == "b3:" + ours["subject"][0]["digest"]["blake3"]
    assert wine_ward.ledger(types=["attestation.issued"])


def test_attestation_records_promotion(wine_ward: Ward) -> None:
    (_, ours) = [json.loads(base64.b64decode(e["payload"])) for e in wine_ward.attest("wine@v2")]
    (promotion,) = ours["predicate"]["promotions"]
    assert promotion["type"] == "version.promoted" and promotion["by"] == "admin"


def test_an_edited_attestation_fails_and_another_key_fails(wine_ward: Ward) -> None:
    envelopes = wine_ward.attest("wine@v2")
    key = _ward_key(wine_ward)
    statement = json.loads(base64.b64decode(envelopes[1]["payload"]))
    statement["predicate"]["contributions"][0]["submitted_by"] = "someone-else"
    edited = dict(envelopes[1], payload=base64.b64encode(json.dumps(statement).encode()).decode())
    check = verify_bundle(json.dumps(edited), key)
    assert not check.ok and check.problems[0]["kind"] == "bad_signature"
    with pytest.raises(VerificationError):
        Envelope.from_dict(edited).verify([SSlibKey.from_crypto(key, scheme="ed25519")], 1)

    other = Ed25519PrivateKey.generate().public_key()
    check = verify_bundle(json.dumps(envelopes[0]), other)
    assert not check.ok and check.problems[0]["kind"] == "bad_signature"
    pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY")


def test_attest_needs_trace_on_the_dataset(wine_ward: Ward) -> None:
    from dataward.domain.errors import NotFound

    wine_ward.create_principal("mallory")
    mallory = wine_ward.as_key(wine_ward.issue_key("mallory")["key"])
    with pytest.raises(NotFound, match="no dataset named 'wine'"):  # a dataset mallory may not see
        mallory.attest("wine@v2")


def _payloads(ward: Ward, ref: str) -> tuple[dict, dict]:
    slsa, ours = (json.loads(base64.b64decode(e["payload"])) for e in ward.attest(ref))
    return slsa, ours


def test_a_source_is_left_out_only_for_a_recorded_step(wine_ward: Ward, tmp_path: Path) -> None:
    """Whether a contribution is a step's output is the step row's to say, not its source URI's: one that
    claims the scheme without a step (as a ward accepted before the scheme was reserved) is attested
    with its raw file like any other."""
    claimed = wine_ward.services.contributions.contribute(
        "wine",
        write_csv(tmp_path / "c.csv", wine_rows(80, 100)),
        source="transformation:claimed",
        on_submitted=lambda _uc, _cid: None,  # submitted as a step's output, with no step recorded
    )
    merge_reviewed(wine_ward, claimed["ref"])
    slsa, ours = _payloads(wine_ward, "wine@v3")
    deps = slsa["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert "transformation:claimed" in {d.get("uri") for d in deps if d["annotations"]["kind"] == "source"}
    assert "transformation:claimed" in {s["uri"] for s in ours["predicate"]["sources"]}
    assert ours["predicate"]["transformations"] == []
    # A recorded step's output has no raw file: its inputs are the dependencies.
    _dedup_and_merge(wine_ward)
    slsa, ours = _payloads(wine_ward, "wine@v4")
    deps = slsa["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert "transformation:dedup" not in {d.get("uri") for d in deps}
    assert [t["name"] for t in ours["predicate"]["transformations"]] == ["dedup"]


def test_the_attestation_states_the_records_the_loader_refuses(wine_ward: Ward) -> None:
    """wine_aug@v1 holds only records an augmentation made from wine#1's; once wine#1 is quarantined the
    loader refuses it, and what is signed about it says so and why, though its contribution is merged."""
    from dataward.domain.errors import PolicyViolation

    augment_scraped(wine_ward)
    assert _payloads(wine_ward, "wine_aug@v1")[1]["predicate"]["barred_records"] == []
    result = wine_ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    with pytest.raises(PolicyViolation, match="20 made by a transformation"):
        wine_ward.load_version("wine_aug", "v1", stage=None)
    envelopes = wine_ward.attest("wine_aug@v1")
    assert verify_bundle("\n".join(json.dumps(e) for e in envelopes), _ward_key(wine_ward)).ok
    p = json.loads(base64.b64decode(envelopes[1]["payload"]))["predicate"]
    assert [c["status"] for c in p["contributions"]] == ["merged"]
    reason = "made by a transformation from a quarantined contribution's records"
    assert p["barred_records"] == [{"reason": reason, "records": 20}]
    barred = _payloads(wine_ward, "wine@v2")[1]["predicate"]["barred_records"]
    assert barred == [{"reason": "added by quarantined contribution wine#1", "records": 60}]
    rollback = result["rollback_version"]["ref"]
    assert _payloads(wine_ward, rollback)[1]["predicate"]["barred_records"] == []
