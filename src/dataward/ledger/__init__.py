"""The append-only, hash-chained, signed log of every event, and signed checkpoints of it."""

from dataward.ledger.checkpoint import Checkpoint, extension
from dataward.ledger.events import (
    CURRENT_FORMAT,
    GENESIS,
    Actor,
    ChainProblem,
    Event,
    seal,
    utc_now,
    verify_chain,
)
from dataward.ledger.signing import SignatureVerifier, WardSigner

__all__ = [
    "CURRENT_FORMAT",
    "GENESIS",
    "Actor",
    "ChainProblem",
    "Checkpoint",
    "Event",
    "SignatureVerifier",
    "WardSigner",
    "extension",
    "seal",
    "utc_now",
    "verify_chain",
]
