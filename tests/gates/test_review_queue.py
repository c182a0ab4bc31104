"""The review queue: flags at alpha that pass the false-discovery-rate check, so a reviewer meets mostly
poisoned records, while the flags at alpha (what the verdict counts) keep their false-positive rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataward.domain.errors import InputError
from dataward.gates import scan
from dataward.gates.calibration import conformal_p_values, fdr_confirmed, flag_mask
from dataward.gates.policy import GatePolicy

ALPHA = 0.01 / 3  # each of the three record-flagging detectors' share of the default alpha


def _batch(rng: np.random.Generator, n_cal: int, n_clean: int, n_poisoned: int) -> tuple[np.ndarray, np.ndarray]:
    """Conformal p-values of clean records and of poisoned ones beyond every trusted score."""
    calibration = rng.normal(size=n_cal)
    scores = np.concatenate([rng.normal(size=n_clean), rng.normal(8.0, 0.5, size=n_poisoned)])
    return conformal_p_values(calibration, scores), np.arange(n_clean + n_poisoned) >= n_clean


def test_the_queue_is_mostly_poisoned_records_where_flags_at_alpha_are_not() -> None:
    """25 poisoned records in 5,000: about 17 clean records are flagged at alpha beside them; the queue
    keeps every poisoned record and at most a fifth of clean ones, over many batches."""
    rng = np.random.default_rng(0)
    queued_clean = queued_poisoned = alpha_clean = 0
    for _ in range(20):
        p, poisoned = _batch(rng, 4000, 4975, 25)
        at_alpha = flag_mask(p, ALPHA, 4000)
        queued = fdr_confirmed(p, at_alpha, ALPHA, 4000, 0.2)
        assert not (queued & ~at_alpha).any()  # the queue only ever shrinks the flags
        assert queued[poisoned].all()
        queued_clean += int(queued[~poisoned].sum())
        queued_poisoned += int(queued[poisoned].sum())
        alpha_clean += int(at_alpha[~poisoned].sum())
    assert alpha_clean / 20 > 10  # the floor the queue removes: about alpha x n clean flags per batch
    assert queued_clean / (queued_clean + queued_poisoned) <= 0.2


def test_a_clean_batch_almost_never_queues_anything() -> None:
    """With nothing planted, Benjamini-Hochberg at q queues something in at most a share q of batches
    (its error rate then is the chance of any flag); in practice far fewer."""
    rng = np.random.default_rng(1)
    fired = 0
    for _ in range(200):
        p, _ = _batch(rng, 4000, 5000, 0)
        fired += bool(fdr_confirmed(p, flag_mask(p, ALPHA, 4000), ALPHA, 4000, 0.2).any())
    assert fired <= 0.2 * 200 * 0.5


def test_a_few_poisoned_records_below_the_level_the_floor_allows_still_reach_the_queue() -> None:
    """10 records beyond every one of 4,000 trusted scores in 5,000: about 1.25 clean records are
    expected at that floor, an eighth of the pile, above a detector's share q/3 of q = 0.2. The pile
    is kept anyway (more poisoned than clean, and clean records rarely pile up so): an empty queue
    would leave the reviewer nothing. A clean batch at the same floor keeps nothing."""
    rng = np.random.default_rng(2)
    p, poisoned = _batch(rng, 4000, 4990, 10)
    queued = fdr_confirmed(p, flag_mask(p, ALPHA, 4000), ALPHA, 4000, 0.2 / 3)
    assert queued[poisoned].all()
    assert int(queued[~poisoned].sum()) <= 3
    clean = p[~poisoned]
    assert not fdr_confirmed(clean, flag_mask(clean, ALPHA, 4000), ALPHA, 4000, 0.2 / 3).any()


def test_flags_made_by_another_rule_are_always_queued() -> None:
    """An exact conflict with a trusted record is flagged whatever its p-value: it stays in the queue."""
    p = np.full(1000, 0.5)
    flags = np.zeros(1000, dtype=bool)
    flags[7] = True
    assert fdr_confirmed(p, flags, ALPHA, 4000, 0.2)[7]
    # Also when its p-value is below alpha: the rule that made it, not the threshold, decides.
    p[7] = 1.0 / 4001
    assert not fdr_confirmed(p, flags, ALPHA, 4000, 0.2)[7]
    assert fdr_confirmed(p, flags, ALPHA, 4000, 0.2, by_rule=flags)[7]


def _flipped_blobs(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [5, 0, 0], [0, 5, 0]])

    def draw(n: int) -> pd.DataFrame:
        y = rng.integers(0, 3, n)
        frame = pd.DataFrame(centres[y] + rng.normal(size=(n, 3)), columns=["a", "b", "c"])
        frame["label"] = y.astype(str)
        return frame

    baseline, contribution = draw(1000), draw(1000)
    flipped = np.zeros(len(contribution), dtype=bool)
    flipped[rng.choice(len(contribution), 20, replace=False)] = True
    contribution.loc[flipped, "label"] = ((contribution.loc[flipped, "label"].astype(int) + 1) % 3).astype(str)
    schema = {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in "abc"]}
    return baseline, contribution, schema, flipped


def test_a_scan_queues_the_flipped_records_and_few_clean_ones() -> None:
    """Over a few batches of 20 flips in 1,000 records, the queue is at least 80% flips (the promise is
    on average, as a false discovery rate is), while the flags at alpha carry more clean records."""
    policy = {"detectors": ["label_consistency", "duplicates", "outliers"]}
    queued_flips = queued_clean = alpha_flips = alpha_clean = 0
    for seed in (3, 4):
        baseline, contribution, schema, flipped = _flipped_blobs(seed)
        report = scan(baseline, contribution, schema, policy=policy)
        queued = report.records.flagged
        at_alpha = report.records.flagged_at_alpha
        # 20 flips in 1,000 against 1,000 trusted records: reviewed or blocked, never passed (whether
        # they reach block_p depends on how far beyond the trusted scores they lie at that seed).
        assert report.verdict in ("review", "block")
        assert not (queued & ~at_alpha).any()
        queued_flips += int((queued & flipped).sum())
        queued_clean += int((queued & ~flipped).sum())
        alpha_flips += int((at_alpha & flipped).sum())
        alpha_clean += int((at_alpha & ~flipped).sum())
    assert queued_flips / (queued_flips + queued_clean) >= 0.8, (queued_flips, queued_clean)
    assert queued_flips >= 0.75 * alpha_flips
    assert alpha_clean > queued_clean


def test_the_verdict_counts_the_flags_at_alpha_whatever_the_queue() -> None:
    baseline, contribution, schema, _ = _flipped_blobs(5)
    policy = {"detectors": ["label_consistency", "outliers"], "alpha": 0.02}
    queued = scan(baseline, contribution, schema, policy=policy)
    every = scan(baseline, contribution, schema, policy={**policy, "flag_fdr": None})
    assert (queued.verdict, queued.reasons) == (every.verdict, every.reasons)
    assert queued.groups == every.groups
    assert queued.records.flagged.sum() < every.records.flagged.sum()


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, "0.2", True])
def test_flag_fdr_must_be_a_share_or_null(value: object) -> None:
    with pytest.raises(InputError, match="flag_fdr"):
        GatePolicy.from_dict({"flag_fdr": value})
    assert GatePolicy.from_dict({"flag_fdr": None}).flag_fdr is None


def test_an_exact_conflict_is_queued_in_a_self_referenced_batch_too() -> None:
    """A first import judged against its own folds: a record repeated under another label is queued
    (the rule that flags it, not the false-discovery check, decides), and the report counts both sets."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
    frame["label"] = rng.integers(0, 2, 600).astype(str)
    conflict = frame.iloc[[0]].assign(label="1" if frame.iloc[0]["label"] == "0" else "0")
    batch = pd.concat([frame, conflict], ignore_index=True)
    schema = {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in "abc"]}
    report = scan(None, batch, schema, policy={"detectors": ["duplicates"]})
    assert report.mode == "self-reference"
    assert report.records.flagged[[0, 600]].all()
    counts = report.to_dict()["counts"]
    assert counts["flagged"] <= counts["flagged_at_alpha"]
    assert counts["flagged_at_alpha"] == int(report.records.flagged_at_alpha.sum())


def test_an_exact_conflict_inside_the_batch_is_queued_against_a_small_baseline() -> None:
    """Two records of one batch with the same inputs and different labels are queued whenever trusted
    data holds such pairs more rarely than alpha (450 trusted records: the Bonferroni minimum alone
    needs some 600 before a pair's p-value can go below alpha, and none was queued)."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(490, 3)), columns=["a", "b", "c"])
    frame["label"] = rng.integers(0, 2, 490).astype(str)
    baseline, batch = frame.iloc[:450], frame.iloc[450:].reset_index(drop=True)
    twin = batch.iloc[[0]].assign(label="1" if batch.iloc[0]["label"] == "0" else "0")
    batch = pd.concat([batch, twin], ignore_index=True)
    schema = {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in "abc"]}
    report = scan(baseline, batch, schema, policy={"seed": 0})
    flagged = np.asarray(report.records.flagged, dtype=bool)
    assert flagged[[0, 40]].all() and flagged.sum() == 2
    # A baseline that itself holds exact conflicts more often than alpha does not single them out.
    noisy = pd.concat([baseline, baseline.iloc[:10].assign(label=lambda f: np.where(f["label"] == "0", "1", "0"))])
    again = scan(noisy, batch, schema, policy={"seed": 0, "detectors": ["duplicates"]})
    assert not np.asarray(again.records.flagged, dtype=bool)[[0, 40]].all()
