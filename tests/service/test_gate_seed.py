"""A ward's gate samples with a seed the contributor cannot know: derived from the ward's secret and the
contribution, unless the dataset policy pins one; recorded with the run so that it can be reproduced."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import blake3
import pytest

import dataward.gates
from dataward.domain.hashing import canonical_json
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan as real_scan
from dataward.service.gate_seed import (
    POLICY,
    SEED_BITS,
    SEED_CONTEXT,
    WARD,
    contribution_subject,
    derive_seed,
    gate_seed,
)
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_schema_specs, wine_training_ward, write_csv

# ``outliers`` fits isolation forests seeded by the run's seed, so its scores show which seed ran.
POLICY_YAML = "approvals:\n  required: 0\ngate:\n  detectors: [outliers]\nfirst_import: self-reference\n"


def _ward(folder: Path, policy: str = POLICY_YAML) -> Ward:
    """A ward whose ``wine`` dataset has a training version of 110 records."""
    return wine_training_ward(folder, policy, 110)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a ward from ``_ward``, built once (its training version is gated, merged and promoted:
    most of a test's time); each test works on a copy of its own (``_copy``). A copy keeps the ward's
    secret, as the one ward each test builds had one of its own: what a test compares is seeds within its
    ward, and the test of two wards builds its second ward anew, with another secret."""
    root = tmp_path_factory.mktemp("seed-template")
    _ward(root).close()
    return root / "ward"


def _copy(template: Path, folder: Path) -> Ward:
    """A copy of the ward at ``template`` in ``folder / "ward"``, opened as its admin."""
    ward = shutil.copytree(template, folder / "ward")
    return Ward.open(ward, key=(ward / "credentials").read_text("utf-8").strip())


def _batch(folder: Path, name: str = "b.csv", *, reverse: bool = False) -> Path:
    """The same 68 records, in file order or reversed."""
    rows = wine_rows(110, 178, shuffled=True)
    return write_csv(folder / name, rows[::-1] if reverse else rows)


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every call of ``dataward.gates.scanning`` a ward makes: its arguments and the policy it was given."""
    calls: list[dict[str, Any]] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append({"args": args, "kwargs": kwargs, "policy": args[4]})
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(dataward.gates, "scan", recording)
    return calls


def _seed(report: dict[str, Any]) -> int:
    return int(report["seed"]["value"])


def _gate_event(ward: Ward, contribution_id: str) -> dict[str, Any]:
    (event,) = [e for e in ward.ledger(types=["gate.completed"]) if e["subject"]["contribution"] == contribution_id]
    return event


def test_the_seed_scan_used_is_the_one_in_the_report_and_the_ledger(tmp_path, scans, template):
    ward = _copy(template, tmp_path)
    c = ward.contribute("wine", _batch(tmp_path), source="b")
    used = scans[-1]["policy"].seed
    assert c["gate"]["seed"] == {"value": used, "source": WARD}
    assert c["gate"]["policy"]["seed"] == used
    assert ward.gate_report(c["ref"])["seed"] == {"value": used, "source": WARD}
    assert _gate_event(ward, c["id"])["payload"]["seed"] == {"value": used, "source": WARD}
    ward.db.dispose()


def test_an_admin_reproduces_a_run_from_its_recorded_policy(tmp_path, scans, template):
    ward = _copy(template, tmp_path)
    c = ward.contribute("wine", _batch(tmp_path), source="b")
    recorded, call = c["gate"], scans[-1]
    args = list(call["args"])
    args[4] = recorded["policy"]  # the dataset's policy with the run's seed
    again = real_scan(*args, **call["kwargs"]).to_dict()
    assert again["records"] == recorded["records"] and again["config_hash"] == recorded["config_hash"]
    # The seed really decided the run: with the policy's default seed the forests score otherwise.
    args[4] = {**recorded["policy"], "seed": 0}
    other = real_scan(*args, **call["kwargs"]).to_dict()
    assert [r["detectors"] for r in other["records"]] != [r["detectors"] for r in recorded["records"]]
    ward.db.dispose()


def test_a_rerun_of_the_same_contribution_uses_the_same_seed(tmp_path, scans, template):
    ward = _copy(template, tmp_path)
    c = ward.contribute("wine", _batch(tmp_path), source="b")
    again = ward.run_gate(c["ref"])
    assert _seed(again) == _seed(c["gate"]) == scans[-1]["policy"].seed == scans[-2]["policy"].seed
    assert again["records"] == c["gate"]["records"]
    ward.db.dispose()


def test_two_wards_judging_the_same_contribution_use_different_seeds(tmp_path, template):
    wards = [_copy(template, tmp_path / "one"), _ward(tmp_path / "two")]  # two wards, two secrets
    seeds = [_seed(w.contribute("wine", _batch(tmp_path / "one"), source="b")["gate"]) for w in wards]
    assert seeds[0] != seeds[1]
    # The secret alone tells them apart: the same contribution row under each ward's key.
    row = SimpleNamespace(dataset_id="ds_1", content_hash="b3:00", added_object="b3:11", removed_object=None)
    assert len({gate_seed(w.signer, {}, row).value for w in wards}) == 2
    for w in wards:
        w.db.dispose()


def test_a_pinned_policy_seed_is_used_as_is(tmp_path, scans, template):
    for pinned in (7, 0):
        folder = tmp_path / str(pinned)
        ward = _copy(template, folder)
        # The policy in force when the batch is gated pins the seed (the training version before it was
        # gated under the ward's own, which nothing here reads).
        ward.set_policy("wine", POLICY_YAML.replace("[outliers]", f"[outliers]\n  seed: {pinned}"))
        c = ward.contribute("wine", _batch(folder), source="b")
        assert c["gate"]["seed"] == {"value": pinned, "source": POLICY}
        assert scans[-1]["policy"].seed == pinned
        assert _gate_event(ward, c["id"])["payload"]["seed"] == {"value": pinned, "source": POLICY}
        ward.db.dispose()


def test_a_contributor_cannot_compute_the_seed_from_what_he_can_read(tmp_path, template):
    """What a contributor reads through the API: the policy (seed 0 by default), his contribution (id,
    content hash, the id lists in its submission event), the ward's public key and the algorithm.
    None of it, hashed the way the ward hashes, gives the seed his records were sampled with."""
    ward = _copy(template, tmp_path)
    c = ward.contribute("wine", _batch(tmp_path), source="b")
    seed = _seed(c["gate"])
    info = ward.contribution(c["ref"])
    events = ward.ledger(types=["contribution.submitted"])
    submitted = next(e for e in events if e["subject"]["contribution"] == c["id"])
    subject = {
        "dataset": submitted["subject"]["dataset"],
        "content_hash": info["content_hash"],
        "added": submitted["payload"]["added_object"],
        "removed": submitted["payload"]["removed_object"],
    }
    public = base64.b64decode(ward.public_key()["public_key"])

    def top_bits(data: bytes) -> int:
        return int.from_bytes(blake3.blake3(data).digest(8), "big") >> (64 - SEED_BITS)

    guesses = {
        ward.policy("wine")["policy"]["gate"].get("seed", 0),
        0,
        top_bits(canonical_json(subject)),  # the contribution alone, unkeyed
        int(info["content_hash"].split(":")[1][:16], 16) >> (64 - SEED_BITS),
        top_bits(info["id"].encode()),
        derive_seed(blake3.blake3(public, derive_key_context=SEED_CONTEXT).digest(), subject),  # public key
        derive_seed(public, subject),
    }
    assert seed not in guesses
    # ... while the ward itself derives exactly that seed from the same subject under its secret.
    assert derive_seed(ward.signer.derive_key(SEED_CONTEXT), subject) == seed
    ward.db.dispose()


def test_learning_a_seed_after_the_fact_does_not_help_rearrange_the_file(tmp_path, template):
    """The report shows the seed once the gate has judged the records. The same records in another
    order (to put other records in the sampled positions) are another contribution with another seed;
    the unchanged file draws the same seed again, so re-submitting it buys no fresh draw."""
    ward = _copy(template, tmp_path)
    first = _seed(ward.contribute("wine", _batch(tmp_path), source="b")["gate"])
    reordered = _seed(ward.contribute("wine", _batch(tmp_path, "r.csv", reverse=True), source="b")["gate"])
    same = _seed(ward.contribute("wine", _batch(tmp_path, "again.csv"), source="b")["gate"])
    assert reordered != first
    assert same == first
    ward.db.dispose()


def test_derived_seeds_fit_every_random_state_and_hang_on_every_part_of_the_contribution():
    key = bytes(range(32))
    seeds = [derive_seed(key, {"n": i}) for i in range(200)]
    assert all(0 <= s < 2**SEED_BITS for s in seeds)  # scikit-learn takes random_state below 2**32
    assert len(set(seeds)) == 200
    row = SimpleNamespace(dataset_id="ds_1", content_hash="b3:00", added_object="b3:11", removed_object=None)
    subject = contribution_subject(row)
    base = derive_seed(key, subject)
    for field, other in (("dataset", "ds_2"), ("content_hash", "b3:01"), ("added", "b3:12"), ("removed", "b3:22")):
        assert derive_seed(key, {**subject, field: other}) != base, field
    assert derive_seed(bytes(32), subject) != base


def test_a_first_import_is_judged_against_the_halves_the_policy_seed_draws(tmp_path, scans):
    """The clean validation set is halved by the policy's seed (default 0), not by the run's: every
    first-import batch is judged against the same half, whatever seed its scan derives."""
    from dataward.service.first_import import trusted_for_first_import

    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    ward.merge(
        ward.contribute("wine-val", write_csv(tmp_path / "v.csv", wine_rows(0, 120, shuffled=True)), source="v")["id"]
    )
    validation = ward.dataset("wine-val").version("v1").to_arrow()
    half, held, _ = trusted_for_first_import(validation, label, 0)
    for name, rows in (("a", wine_rows(120, 150, shuffled=True)), ("b", wine_rows(150, 178, shuffled=True))):
        c = ward.contribute("wine", write_csv(tmp_path / f"{name}.csv", rows), source=name)
        assert c["gate"]["seed"]["source"] == WARD and c["gate"]["seed"]["value"] != 0
        judged_against, held_out = scans[-1]["args"][0], scans[-1]["args"][3]
        assert judged_against.column("record_id").to_pylist() == half.column("record_id").to_pylist()
        assert held_out.column("record_id").to_pylist() == held.column("record_id").to_pylist()
    ward.db.dispose()
