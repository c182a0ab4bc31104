"""Build the ledger test vector (``ledger-vector.json``): a small chain with format-1 and format-2
events, the public key that signs it, a checkpoint, and every intermediate value a verifier in another
language needs to check itself against (canonical JSON, hashes, signed messages, BLAKE3 of test inputs).

Everything is deterministic (a fixed key; Ed25519 signatures are deterministic), so the committed file
is exactly what this module builds. Regenerate with ``python -m tests.security.vectors.generate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dataward.ledger.checkpoint import Checkpoint
from dataward.ledger.events import GENESIS, Actor, Event, seal
from dataward.ledger.signing import WardSigner

VECTOR = Path(__file__).with_name("ledger-vector.json")
WARD = "w_00112233445566ff"
SEED = bytes(range(32))
BLAKE3_LENGTHS = (0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 8192, 8193, 31744)

_EVENTS: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = [
    (1, "ward.created", {"ward": WARD}, {"catalog": "sqlite", "store": "objects"}),
    (1, "principal.created", {"principal": "p_admin"}, {"name": "admin", "kind": "human"}),
    (
        2,
        "grant.created",
        {"principal": "p_bob"},
        {
            "role": "approver",
            "scope": "dataset:wine",
            "changes": [
                {
                    "table": "grants",
                    "op": "insert",
                    "key": {"id": "g_1"},
                    "values": {"id": "g_1", "role": "approver", "revoked_at": None},
                }
            ],
        },
    ),
    (
        2,
        "gate.completed",
        {"contribution": "c_1", "dataset": "d_wine"},
        {
            "verdict": "review",
            "statistic": 0.1,
            "p_value": 1e-7,
            "huge": 1e21,
            "integral_float": 3.0,
            "negative": -2.5e-10,
            "precise": 123456789012345.6,
            "flags": [True, False, None],
            "text": 'é ✓ \u2028 "quoted" \\ back\nslash\t\u0001',
            "\ue000": "private use key (sorts after the emoji key in UTF-16 order)",
            "😀": "astral key",
            "Zebra": 1,
            "apple": 2,
        },
    ),
    (
        2,
        "contribution.submitted",
        {"contribution": "c_2", "dataset": "d_wine"},
        {"source": "https://example.org/big.csv", "note": "x" * 5000, "rows": 9007199254740991},
    ),
]


def signer() -> WardSigner:
    return WardSigner(Ed25519PrivateKey.from_private_bytes(SEED))


def events() -> list[Event]:
    key = signer()
    chain: list[Event] = []
    prev = GENESIS
    for seq, (fmt, kind, subject, payload) in enumerate(_EVENTS, start=1):
        if kind == "ward.created":
            payload = {**payload, "public_key": key.public_key_b64}
        event = seal(
            seq=seq,
            prev=prev,
            time=f"2026-01-0{seq}T12:00:00.000000Z",
            actor=Actor("p_admin", None if seq < 3 else "k_0123456789"),
            type=kind,
            subject=subject,
            payload=payload,
            signer=key,
            ward_id=WARD,
            format=fmt,
        )
        chain.append(event)
        prev = event.hash
    return chain


def build_vector() -> dict[str, Any]:
    key = signer()
    chain = events()
    checkpoint = Checkpoint.sign(
        key, ward=WARD, seq=chain[-1].seq, head=chain[-1].hash, time="2026-01-06T00:00:00.000000Z"
    )
    return {
        "description": (
            "dataward ledger test vector (docs/ledger-format.md): a chain export with two format-1 and three "
            "format-2 events, the public key that signs it, a checkpoint of its head, and the intermediate "
            "values a verifier must reproduce. blake3 cases hash the bytes i % 251 for i in range(length)."
        ),
        "public_key": key.public_key_b64,
        "public_key_pem": key.public_key_pem,
        "ledger": {
            "type": "dataward.ledger",
            "format": 1,
            "ward": WARD,
            "public_key": key.public_key_b64,
            "events": [e.to_dict() for e in chain],
        },
        "checkpoint": checkpoint.to_dict(),
        "expected": {
            "events": [
                {
                    "seq": e.seq,
                    "format": e.format,
                    "canonical": e.canonical_body().decode("utf-8"),
                    "hash": e.hash,
                    "signed_message_hex": e.signed_message(WARD).hex(),
                }
                for e in chain
            ],
            "checkpoint": {"signed_message_hex": checkpoint.signed_message().hex()},
            "blake3": [
                {"length": n, "hash": blake3.blake3(bytes(i % 251 for i in range(n))).hexdigest()}
                for n in BLAKE3_LENGTHS
            ],
        },
    }


def render(vector: dict[str, Any]) -> str:
    return json.dumps(vector, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    VECTOR.write_text(render(build_vector()), "utf-8")
    print(f"wrote {VECTOR}")
