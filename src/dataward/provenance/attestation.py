"""in-toto attestations of a dataset version, in DSSE envelopes signed with the ward key.

``dataward attest DATASET@VERSION`` writes an in-toto attestation bundle (JSON Lines, one DSSE
envelope per line, the in-toto bundle format) holding two in-toto Statement v1 about the same subject,
the version's manifest:

1. a SLSA provenance v1 predicate (``https://slsa.dev/provenance/v1``): the version as the output of
   a build whose resolved dependencies are the raw files of its sources, the input versions of its
   transformations and its parent version;
2. a dataward predicate (``PREDICATE_TYPE``): every contribution with its source, principal and key,
   transformations with code identity, parameters, inputs and lineage digest, every gate run with its
   verdict and configuration hash, overrides, approvals (of contributions and of the version), merges
   and promotions.

Envelopes are made and checked with ``securesystemslib``'s DSSE implementation and statements are
validated with ``in-toto-attestation``'s own model, so any standard in-toto / DSSE verifier can check
them offline with the ward's public key. DSSE signs ``PAE(payloadType, payload)``, which starts with
``DSSEv1``: a DSSE signature can never be mistaken for a ledger event or checkpoint signature made
with the same key (those sign their own domain-separated messages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dataward.domain.errors import InputError

if TYPE_CHECKING:
    from securesystemslib.signer import SSlibKey

# securesystemslib (which imports boto3 and the cloud signers), in-toto and protobuf are imported where
# an attestation is made or checked: a one-shot command that does neither does not pay for them.

PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The DSSE payload type of an in-toto statement."""
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
PREDICATE_TYPE = "https://dataward.dev/attestation/version-provenance/v1"
"""The dataward predicate: contributions, transformations, gate verdicts, approvals, promotions
(specified in docs/provenance.md)."""
BUILD_TYPE = "https://dataward.dev/attestation/version-build/v1"
"""The SLSA ``buildType`` of a version: records merged from contributions into a parent version."""


def ssl_key(public_key: Ed25519PublicKey) -> SSlibKey:
    """The ward's public key as a securesystemslib key (its key id is derived from the key itself)."""
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(public_key, scheme="ed25519")


def validate_statement(statement: dict[str, Any]) -> None:
    """Check a statement against the in-toto Statement v1 model (``ValueError`` if it does not fit)."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    proto = statement_pb2.Statement()  # type: ignore[attr-defined]
    json_format.ParseDict(statement, proto)
    Statement.copy_from_pb(proto).validate()


def sign_statement(statement: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Validate ``statement`` and wrap it in a DSSE envelope signed with ``private_key``."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    validate_statement(statement)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(CryptoSigner(private_key, ssl_key(private_key.public_key())))
    return envelope.to_dict()  # type: ignore[no-any-return]


@dataclass
class AttestationCheck:
    """What checking an attestation bundle found: ``ok`` only when every envelope verified with the
    pinned key and held a valid in-toto statement."""

    ok: bool = True
    statements: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "statements": [
                {"predicate_type": s["predicateType"], "subject": s["subject"], "ledger_head": issued_at(s)}
                for s in self.statements
            ],
            "problems": self.problems,
        }


def verify_bundle(text: str, public_key: Ed25519PublicKey) -> AttestationCheck:
    """Check every DSSE envelope of a bundle (JSON Lines; a single JSON envelope is accepted too)
    against the pinned ``public_key``: signature, payload type, statement shape, and that all
    statements name the same subject. Never trusts anything the file says about keys."""
    from google.protobuf import json_format
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    check = AttestationCheck()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError("the attestation file is empty")
    try:
        docs = [json.loads(line) for line in lines]
    except json.JSONDecodeError:
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise InputError(f"the attestation file is not JSON: {exc}") from exc
    key = ssl_key(public_key)
    subjects = set()
    for i, doc in enumerate(docs, start=1):
        try:
            envelope = Envelope.from_dict(doc)
        except (KeyError, TypeError, ValueError) as exc:
            check.problems.append({"envelope": i, "kind": "malformed", "detail": f"not a DSSE envelope: {exc}"})
            continue
        try:
            envelope.verify([key], 1)
        except VerificationError as exc:
            check.problems.append({"envelope": i, "kind": "bad_signature", "detail": str(exc)})
            continue
        if envelope.payload_type != PAYLOAD_TYPE:
            check.problems.append({"envelope": i, "kind": "payload_type", "detail": envelope.payload_type})
            continue
        try:
            statement = json.loads(envelope.payload)
            validate_statement(statement)
        except (ValueError, json_format.ParseError) as exc:
            check.problems.append({"envelope": i, "kind": "bad_statement", "detail": str(exc)})
            continue
        check.statements.append(statement)
        subjects.add(json.dumps(statement["subject"], sort_keys=True))
    if len(subjects) > 1:
        check.problems.append(
            {"envelope": None, "kind": "mixed_subjects", "detail": "statements name different subjects"}
        )
    check.problems.extend(version_bundle_problems(check.statements))
    check.ok = not check.problems and bool(check.statements)
    return check


def _version_kind(statement: dict[str, Any]) -> str | None:
    """``"slsa"`` or ``"dataward"`` for the two statements of a version's attestation, else None (a
    model release's statements, or anything else signed with the ward key, are not judged here)."""
    if statement.get("predicateType") == PREDICATE_TYPE:
        return "dataward"
    if statement.get("predicateType") == SLSA_PROVENANCE:
        definition = (statement.get("predicate") or {}).get("buildDefinition") or {}
        if definition.get("buildType") == BUILD_TYPE:
            return "slsa"
    return None


def issued_at(statement: dict[str, Any]) -> Any:
    """The ledger head a version statement was made at (``{seq, hash}``), or None when it names none:
    an SLSA statement made before the head was written into it."""
    if statement.get("predicateType") == PREDICATE_TYPE:
        return (statement.get("predicate") or {}).get("ledger_head")
    definition = (statement.get("predicate") or {}).get("buildDefinition") or {}
    return (definition.get("internalParameters") or {}).get("ledger_head")


def version_bundle_problems(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What is wrong with the version statements of a bundle taken as one issue of ``attest``: both
    statements, once each, made at the same ledger head.

    Every envelope verifying is not enough. The dataward predicate carries what the SLSA statement
    lacks (gate verdicts, approvals, ``barred_records``): a bundle stripped of it, or holding the
    predicate of an issue made before a quarantine beside the SLSA statement of a later one, or two
    predicates that disagree, verified, and a reader took it for the version's whole, current story."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for s in statements:
        kind = _version_kind(s)
        if kind is not None:
            kinds.setdefault(kind, []).append(s)
    if not kinds:
        return []
    problems = []
    for kind in ("slsa", "dataward"):
        found = kinds.get(kind, [])
        if len(found) != 1:
            what = "SLSA provenance" if kind == "slsa" else "dataward version-provenance"
            problems.append(
                {
                    "envelope": None,
                    "kind": "incomplete" if not found else "duplicate_statement",
                    "detail": f"a version's attestation holds one {what} statement; this bundle holds {len(found)}",
                }
            )
    if not problems:
        heads = [issued_at(kinds[k][0]) for k in ("slsa", "dataward")]
        if heads[0] is not None and heads[0] != heads[1]:
            problems.append(
                {
                    "envelope": None,
                    "kind": "mixed_issues",
                    "detail": "the statements were made at different ledger heads (events "
                    f"#{heads[0].get('seq')} and #{(heads[1] or {}).get('seq')}): parts of two issues",
                }
            )
    return problems


__all__ = [
    "BUILD_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "SLSA_PROVENANCE",
    "STATEMENT_TYPE",
    "AttestationCheck",
    "issued_at",
    "sign_statement",
    "ssl_key",
    "validate_statement",
    "verify_bundle",
    "version_bundle_problems",
]
