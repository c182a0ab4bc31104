"""The append-only, hash-chained, signed log of every event."""

from dataward.ledger.events import GENESIS, Actor, ChainProblem, Event, seal, utc_now, verify_chain
from dataward.ledger.signing import SignatureVerifier, WardSigner

__all__ = [
    "GENESIS",
    "Actor",
    "ChainProblem",
    "Event",
    "SignatureVerifier",
    "WardSigner",
    "seal",
    "utc_now",
    "verify_chain",
]
