"""The seed of a ward's gate run: the dataset policy's ``seed`` when it pins one, otherwise derived from a
secret of the ward and the contribution judged.

Detectors sample large contributions (``triggers``' batch tie, ``backdoor``'s within-batch reference,
the text featurizer's SVD sample, the folds). With a seed anyone can know (the policy default, 0) and
the batch size, a contributor knows which positions of his file are sampled and can put innocent
carriers of his trigger there and the poisoned ones elsewhere. A derived seed is a keyed BLAKE3 hash,
under a key only the ward holds, of what the contribution is: its dataset, content hash and id lists
(which fix the order of its records). So the contributor cannot compute it before the gate has judged
his records, and any change to his file draws a fresh one; the same contribution always gets the same
seed, so a re-run of its gate reproduces the report. The seed is recorded in the report and the
``gate.completed`` event (docs/gates.md, "Sampling seed").

The key is derived from the ward's Ed25519 signing key (``WardSigner.derive_key`` with ``SEED_CONTEXT``),
not kept in a file of its own: every service of a ward, embedded or served (where the catalog and the
signing key may be the only parts there are), already holds that key, an existing ward needs nothing
created, and the secret is exactly as well kept as the key that signs the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import blake3

from dataward.domain.hashing import canonical_json
from dataward.ledger.signing import WardSigner

SEED_CONTEXT = "dataward 2026-12-02 gate sampling seed v1"
"""The BLAKE3 key-derivation context of the seed key: names this one use of the signing key."""
SEED_BITS = 31
"""Derived seeds are below 2**31: detectors add small offsets (``seed + class``), and scikit-learn takes
``random_state`` below 2**32."""

POLICY, WARD = "policy", "ward"
"""Where a run's seed came from: pinned by the dataset policy, or derived from the ward's secret."""


@dataclass(frozen=True)
class GateSeed:
    """The seed a gate run used and where it came from (``POLICY`` or ``WARD``)."""

    value: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The report's and the ``gate.completed`` event's ``seed``."""
        return {"value": self.value, "source": self.source}


def contribution_subject(contribution: Any) -> dict[str, Any]:
    """What a derived seed is bound to: the contribution's dataset, content hash and id lists (the
    added list fixes the records' order, hence which positions a sample reads)."""
    return {
        "dataset": contribution.dataset_id,
        "content_hash": contribution.content_hash,
        "added": contribution.added_object,
        "removed": contribution.removed_object,
    }


def derive_seed(key: bytes, subject: Mapping[str, Any]) -> int:
    """A seed below ``2**SEED_BITS``: the keyed BLAKE3 hash of ``subject``'s canonical JSON under ``key``."""
    digest = blake3.blake3(canonical_json(dict(subject)), key=key).digest(8)
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


def gate_seed(signer: WardSigner, gate_policy: Mapping[str, Any], contribution: Any) -> GateSeed:
    """The seed of a gate run on ``contribution`` under the dataset's ``gate`` policy section.

    A ``seed`` the policy names is used as is (a pinned seed is reproducible anywhere, and as predictable
    to a contributor as the policy is readable); otherwise it is derived under the ward's secret."""
    pinned = gate_policy.get("seed")
    if pinned is not None:
        return GateSeed(int(pinned), POLICY)
    return GateSeed(derive_seed(signer.derive_key(SEED_CONTEXT), contribution_subject(contribution)), WARD)
