"""A version's attestation bundle is checked as one issue of ``attest``, not envelope by envelope.

The attack (an attacker review of attestations): after a quarantine, the attestation of a version names
the records the loader refuses (``barred_records``, in the dataward predicate). Whoever hands the bundle
on drops that envelope and keeps the SLSA one, or puts the dataward envelope of an issue made before
the quarantine beside the SLSA envelope of the new one, or adds both predicates. Every envelope is
signed by the ward, so `verify --attestation` with the pinned key said ok to each of them.
"""

from __future__ import annotations

import base64
import json

from dataward.provenance.attestation import verify_bundle
from dataward.service.ward import Ward
from tests.provenance.conftest import augment_scraped
from tests.provenance.test_attestation import _ward_key


def _bundle(*envelopes: dict) -> str:
    return "\n".join(json.dumps(e) for e in envelopes)


def test_a_stripped_or_spliced_bundle_fails_verification(wine_ward: Ward) -> None:
    ward = wine_ward
    key = _ward_key(ward)
    augment_scraped(ward)
    before = ward.attest("wine_aug@v1")
    ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    after = ward.attest("wine_aug@v1")
    assert json.loads(base64.b64decode(after[1]["payload"]))["predicate"]["barred_records"]

    assert verify_bundle(_bundle(*after), key).ok
    kinds = {
        "stripped": verify_bundle(_bundle(after[0]), key),
        "spliced": verify_bundle(_bundle(after[0], before[1]), key),
        "doubled": verify_bundle(_bundle(after[0], before[1], after[1]), key),
    }
    assert {name: [p["kind"] for p in check.problems] for name, check in kinds.items()} == {
        "stripped": ["incomplete"],
        "spliced": ["mixed_issues"],
        "doubled": ["duplicate_statement"],
    }
    assert not any(check.ok for check in kinds.values())

    # A whole bundle made before the quarantine still verifies: what it says holds as of its ledger head,
    # which the check shows for each statement, so that a reader can see it is the older one.
    old = verify_bundle(_bundle(*before), key)
    assert old.ok
    heads = [s["ledger_head"]["seq"] for s in old.to_dict()["statements"]]
    new = [s["ledger_head"]["seq"] for s in verify_bundle(_bundle(*after), key).to_dict()["statements"]]
    assert len(set(heads)) == 1 and heads[0] < new[0]
