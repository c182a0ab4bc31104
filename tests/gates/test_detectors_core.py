"""Each core detector fires where it must and stays quiet on clean held-out data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataward.domain.errors import InputError
from dataward.gates import GatePolicy, scan
from dataward.gates.calibration import excess_flags_p_value, tail_p_values


def test_conflicting_exact_duplicates_are_flagged(wine):
    baseline, contribution, schema = wine
    poisoned = contribution.copy()
    copies = baseline.iloc[:8].copy()
    copies["label"] = (copies["label"] + 1) % 3
    poisoned = poisoned.iloc[:40].reset_index(drop=True)
    poisoned = pd.concat([poisoned, copies], ignore_index=True)
    report = scan(baseline, poisoned, schema, policy={"detectors": ["duplicates"]})
    result = report.results["duplicates"]
    assert result.flagged[-8:].all()
    assert result.summary["exact_conflicts"] == 8
    assert report.verdict == "block"
    clean = scan(baseline, contribution, schema, policy={"detectors": ["duplicates"]})
    assert clean.verdict == "pass" and clean.results["duplicates"].summary["exact_conflicts"] == 0


def _separated_classes(seed: int, per_class: int, shift: float = 0.0) -> pd.DataFrame:
    """Three well-separated Gaussian classes in 8 numeric features; ``shift`` moves every record along f0,
    towards class 1 for class 0 (a recalibrated instrument reading every record higher)."""
    rng = np.random.default_rng(seed)
    means = np.zeros((3, 8))
    means[1, 0] = means[2, 1] = 7.0
    labels = np.repeat(np.arange(3), per_class)
    features = means[labels] + rng.normal(size=(labels.size, 8))
    features[:, 0] += shift
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(8)])
    frame["label"] = labels
    return frame


SEPARATED_SCHEMA = {"label": "label", "inputs": [{"name": f"f{i}", "kind": "numeric"} for i in range(8)]}


def test_a_batch_that_moved_towards_another_class_is_not_a_near_conflict_but_copies_still_are():
    baseline = _separated_classes(0, 400)
    moved = _separated_classes(1, 200, shift=2.75)
    policy = {"detectors": ["duplicates"]}
    report = scan(baseline, moved, SEPARATED_SCHEMA, policy=policy)
    result = report.results["duplicates"]
    # Class 0 as a whole sits closer to class 1's trusted records than the baseline's own records do:
    # a difference (for drift and review), not content contradicting its label.
    assert report.verdict != "block" and result.p_value >= GatePolicy().block_p
    assert result.summary["moved_with_batch"] > 50
    # Near copies of class-1 trusted records labelled 0, slipped into that same moved batch, read as
    # class 1 among the batch's own records too: still near conflicts, and the batch is blocked. (30
    # of them: they tie with the second-largest of the 1,200 trusted near-conflict scores, and 15 such
    # records in 615 are what an exchangeable batch reaches at p = 3e-7 before the corrections.)
    copies = baseline[baseline["label"] == 1].iloc[:30].copy()
    cols = [c for c in copies.columns if c != "label"]
    copies[cols] = copies[cols] + np.random.default_rng(3).normal(scale=0.02, size=(30, len(cols)))
    copies["label"] = 0
    for batch in (moved, _separated_classes(2, 200)):
        poisoned = pd.concat([batch, copies], ignore_index=True)
        attacked = scan(baseline, poisoned, SEPARATED_SCHEMA, policy=policy)
        assert attacked.verdict == "block"
        assert attacked.results["duplicates"].flagged[-30:].all()
        assert attacked.results["duplicates"].summary["exact_conflicts"] == 0


@pytest.mark.parametrize("n", [0, 1, 2, 30, 500])
def test_rows_whose_inputs_carry_more_than_one_label_are_exactly_the_conflicting_rows(n):
    """The set of conflicting rows (what the exact-conflict base rate counts) matches its definition,
    with inputs repeated under the same label, under other labels, and alone."""
    from dataward.gates.detectors.duplicates import LabelledHashes

    rng = np.random.default_rng(n)
    hashes = rng.integers(0, max(n // 3, 1), n).astype(np.uint64)
    labels = rng.integers(0, 3, n)
    pairs = LabelledHashes(hashes, labels)
    expected = np.array([len(set(labels[hashes == h].tolist())) > 1 for h in hashes], dtype=bool)
    assert np.array_equal(pairs.conflicting_rows, expected)
    assert sorted(zip(pairs.hashes.tolist(), pairs.labels.tolist(), strict=True)) == sorted(
        set(zip(hashes.tolist(), labels.tolist(), strict=True))
    )
    if n >= 30:
        assert 0 < expected.sum() < n  # both kinds of row are present


def test_mass_duplication_of_one_record(digits):
    baseline, contribution, schema = digits
    poisoned = pd.concat([contribution.iloc[:200]] + [contribution.iloc[[0]]] * 25, ignore_index=True)
    report = scan(baseline, poisoned, schema, policy={"detectors": ["duplicates"]})
    # A batch that repeats itself is a difference for review, not a flag on each copy.
    assert report.verdict == "review"
    (finding,) = report.results["duplicates"].contribution_findings
    assert "26 copies" in finding.reason


def test_injected_outliers_are_flagged(cancer):
    baseline, contribution, schema = cancer
    poisoned = contribution.copy()
    rows = np.arange(10)
    cols = [c for c in poisoned.columns if c != "label"]
    poisoned.loc[rows, cols] = poisoned.loc[rows, cols].to_numpy() * 8.0
    report = scan(baseline, poisoned, schema, policy={"detectors": ["outliers"]})
    assert report.results["outliers"].flagged[rows].all()
    assert report.verdict in ("review", "block")
    assert scan(baseline, contribution, schema, policy={"detectors": ["outliers"]}).verdict == "pass"


def test_shifted_batch_is_drift_for_review_and_first_baseline_counts(digits):
    baseline, contribution, schema = digits
    shifted = contribution.copy()
    cols = [c for c in shifted.columns if c != "label"]
    shifted[cols] = shifted[cols] + 3.0
    report = scan(baseline, shifted, schema, policy={"detectors": ["drift"]})
    # However certain, a shift is a reason to review, not evidence of poisoning.
    assert report.verdict == "review" and report.results["drift"].p_value < 1e-6
    # The current baseline already drifted; only the first baseline shows the shift.
    slow = scan(
        shifted,
        shifted.sample(frac=0.5, random_state=0),
        schema,
        policy={"detectors": ["drift"]},
        first_baseline=baseline,
    )
    assert slow.results["drift"].summary["tests"]["first_baseline"]["p_value"] < 1e-6
    assert slow.results["drift"].summary["tests"]["baseline"]["p_value"] > 1e-3
    clean = scan(baseline, contribution, schema, policy={"detectors": ["drift"]})
    assert clean.verdict == "pass"


def test_calibration_fraction_flagged_is_about_alpha(digits):
    baseline, contribution, schema = digits
    for name in ("label_consistency", "outliers"):
        report = scan(baseline, contribution, schema, policy={"detectors": [name], "alpha": 0.05})
        assert report.results[name].flagged.mean() <= 0.05 + 0.035, name


def test_tail_p_values_keep_conformal_values_and_rank_beyond_the_maximum():
    cal = np.arange(100, dtype=float)
    p = tail_p_values(cal, np.array([50.0, 99.0, 100.0, 200.0]))
    assert p[0] == pytest.approx(51 / 101) and p[1] == pytest.approx(2 / 101)
    assert p[3] < p[2] < 1 / 101
    rng = np.random.default_rng(0)
    uniform = rng.uniform(size=2000)
    assert excess_flags_p_value(uniform, 0.01, 2000)[1] > 0.01
    assert excess_flags_p_value(np.concatenate([uniform, np.full(40, 1e-4)]), 0.01, 2000)[1] < 1e-6


def test_policy_round_trip_and_errors():
    policy = GatePolicy.from_dict({"detectors": ["outliers"], "alpha": 0.05, "options": {"outliers": {"k": 3}}})
    assert GatePolicy.from_dict(policy.to_dict()) == policy
    assert policy.config_hash().startswith("b3:")
    assert policy.config_hash() != GatePolicy().config_hash()
    with pytest.raises(InputError, match="unknown detector"):
        GatePolicy.from_dict({"options": {"nope": {}}})
    with pytest.raises(InputError, match="unknown detector"):
        GatePolicy.from_dict({"detectors": ["outliers", "nope"]})
    with pytest.raises(InputError, match="unknown option"):
        GatePolicy.from_dict({"options": {"outliers": {"neighbours": 3}}})


def test_config_hash_pins_the_detector_set_and_versions(monkeypatch):
    """Two runs share a config hash only when the same detectors, at the same versions, ran."""
    from dataward.gates.base import registered

    everything = GatePolicy()
    assert everything.resolved_detectors() == {n: c.version for n, c in sorted(registered().items())}
    before = everything.config_hash()
    monkeypatch.setattr(registered()["outliers"], "version", "99")
    assert everything.config_hash() != before


def test_policy_alpha_bounds():
    with pytest.raises(InputError, match="alpha"):
        GatePolicy.from_dict({"alpha": 2})
    with pytest.raises(InputError, match="block_p"):
        GatePolicy.from_dict({"block_p": 0.1, "review_p": 0.01})


def test_drift_counts_only_the_features_that_moved_beyond_chance() -> None:
    """150 trusted records against 600 drawn alike cross the KS floor (0.1) by chance in about one feature
    of five: "76 of 128 features shifted" was said of a batch in which 38 had moved beyond chance. The
    count is the test's: beyond the floor and significant over the features."""
    from dataward.gates.detectors.drift import Drift

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(150, 128)), rng.normal(size=(600, 128))
    b[:, :3] += 1.0  # three features really moved
    drift = Drift()
    drift.ks_floor = 0.1
    found = drift._ks(a, b)
    assert found["features_shifted"] == 3
    assert found["reason"].startswith("3 of 128 features shifted")
