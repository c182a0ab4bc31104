"""label_consistency: flips caught per record, clean records flagged at alpha, options refused when wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.metrics import roc_auc_score

from dataward.domain.errors import InputError
from dataward.gates import scan
from dataward.gates.base import Evidence
from dataward.gates.detectors.label_consistency import LabelConsistency, NaiveBayes
from tests.gates.conftest import flip_labels

MAN_SECTIONS = Path(__file__).resolve().parents[2] / "examples" / "data" / "man_sections.csv"
ONLY = {"detectors": ["label_consistency"]}


def _man_sections(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    frame = pd.read_csv(MAN_SECTIONS, dtype=str, keep_default_na=False)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    schema = {"label": "label", "inputs": [{"name": "text", "kind": "text"}]}
    return frame.iloc[:1200].reset_index(drop=True), frame.iloc[1200:].reset_index(drop=True), schema


def _random_flips(frame: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = frame.copy()
    rows = np.sort(rng.choice(len(out), int(share * len(out)), replace=False))
    classes = sorted(out["label"].unique())
    for r in rows:
        others = [c for c in classes if c != out.at[r, "label"]]
        out.at[r, "label"] = others[int(rng.integers(len(others)))]
    poison = np.zeros(len(out), dtype=bool)
    poison[rows] = True
    return out, poison


def test_text_flips_are_ranked_and_flagged():
    baseline, contribution, schema = _man_sections()
    flipped, poison = _random_flips(contribution, 0.05, seed=1)
    result = scan(baseline, flipped, schema, policy=ONLY).results["label_consistency"]
    assert roc_auc_score(poison, 1 - result.p_values) >= 0.9
    assert result.flagged[poison].mean() >= 0.25  # 5% random flips of man-page sections, alpha = 0.01
    assert result.flagged[~poison].mean() <= 0.02
    # 50 flips in 999 lines against 1,200 trusted ones: reviewed (nine lie beyond every trusted score,
    # which an exchangeable batch reaches at about 1e-4 once the calibration set is as random as the
    # batch); 80 flips are blocked (test below).
    assert result.p_value < 1e-4 and result.summary["views"] == ["knn_margin", "text_probe", "contribution_probe"]
    # The most suspicious findings are flips (one clean line of garbled markup, labelled right but read
    # as another section by every view, may rank among them), each with cleanlab's opinion beside it.
    top = result.findings[:5]
    assert sum(bool(poison[f.row]) for f in top) >= 4
    assert all("label_quality" in f.evidence and "cleanlab_label_issue" in f.evidence for f in top)


def test_more_text_flips_block():
    baseline, contribution, schema = _man_sections()
    flipped, poison = _random_flips(contribution, 0.08, seed=1)
    result = scan(baseline, flipped, schema, policy=ONLY).results["label_consistency"]
    assert result.p_value < 1e-6
    assert result.flagged[poison].mean() >= 0.25 and result.flagged[~poison].mean() <= 0.02


def test_image_flips_random_and_targeted_are_flagged(digits):
    baseline, contribution, schema = digits
    flipped, rows = flip_labels(contribution, 0.05, 10, seed=3)
    result = scan(baseline, flipped, schema, policy=ONLY).results["label_consistency"]
    assert result.flagged[rows].mean() >= 0.9
    # Targeted: most 8s relabelled 1. Trained on the trusted baseline only, the probes are not taught
    # the attacker's labelling by the flipped records themselves.
    targeted = contribution.copy()
    eights = np.flatnonzero((targeted["label"] == 8).to_numpy())[:40]
    targeted.loc[eights, "label"] = 1
    result = scan(baseline, targeted, schema, policy=ONLY).results["label_consistency"]
    assert result.flagged[eights].mean() >= 0.7
    assert result.flagged.sum() - result.flagged[eights].sum() <= 0.02 * (len(targeted) - len(eights))


def _gaussian(n: int, seed: int) -> pd.DataFrame:
    """Three overlapping Gaussian classes: labels disagree with their neighbours now and then."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [2.0, 0, 1, 0], [0, 2.0, 0, 1]])
    y = rng.integers(0, 3, n)
    frame = pd.DataFrame(centres[y] + rng.normal(size=(n, 4)), columns=[f"f{i}" for i in range(4)])
    frame["label"] = y.astype(str)
    return frame


def test_clean_records_are_flagged_at_alpha_and_p_values_are_valid():
    schema = {"label": "label", "inputs": [{"name": f"f{i}", "kind": "numeric"} for i in range(4)]}
    alpha, reps, n_new = 0.01, 4, 2500
    p_values, flags = [], []
    for rep in range(reps):
        baseline, contribution = _gaussian(1000, seed=2 * rep), _gaussian(n_new, seed=2 * rep + 1)
        result = scan(baseline, contribution, schema, policy={**ONLY, "alpha": alpha}).results["label_consistency"]
        assert result.alpha == alpha and result.n_calibration == 1000 and not result.block
        p_values.append(result.p_values)
        flags.append(result.flagged)
    p, flagged = np.concatenate(p_values), np.concatenate(flags)
    # 10,000 clean records: 100 flags expected; the slack allows for the binomial count and for each
    # 1,000-record calibration set's own rate (sd sqrt(alpha / 1000) per set).
    slack = 3 * np.sqrt(alpha / p.shape[0] + alpha / (1000 * reps))
    assert flagged.mean() <= alpha + slack
    for a in (0.05, 0.1, 0.25, 0.5):
        assert np.mean(p <= a) <= a + 3 * np.sqrt(a / p.shape[0] + a / (1000 * reps)), a


def test_clean_text_flag_rate_on_real_data():
    baseline, contribution, schema = _man_sections(seed=2)
    alpha = 0.05
    result = scan(baseline, contribution, schema, policy={**ONLY, "alpha": alpha}).results["label_consistency"]
    n = len(contribution)
    assert result.flagged.mean() <= alpha + 3 * np.sqrt(alpha / n + alpha / len(baseline))
    assert result.p_value > 1e-3


def test_options_are_validated():
    assert LabelConsistency.evidence is Evidence.POISONING
    with pytest.raises(InputError, match="unknown option"):
        LabelConsistency(no_such_option=1)
    with pytest.raises(InputError, match="k"):
        LabelConsistency(k=0)
    with pytest.raises(InputError, match="folds"):
        LabelConsistency(folds=1)
    with pytest.raises(InputError, match="must be int"):
        LabelConsistency(k="many")
    with pytest.raises(InputError, match="must be bool"):
        LabelConsistency(contribution_probe="yes")
    baseline, contribution = _gaussian(60, 0), _gaussian(30, 1)
    schema = {"label": "label", "inputs": [{"name": f"f{i}", "kind": "numeric"} for i in range(4)]}
    with pytest.raises(InputError, match="unknown option"):
        scan(baseline, contribution, schema, policy={**ONLY, "options": {"label_consistency": {"cleanlab_": 1}}})
    result = scan(baseline, contribution, schema, policy={**ONLY, "options": {"label_consistency": {"k": 3}}})
    assert result.results["label_consistency"].summary["k"] == 3


def test_naive_bayes_leave_one_out_equals_refitting_without_the_row():
    rng = np.random.default_rng(0)
    matrix = sparse.random(40, 30, density=0.3, random_state=1, format="csr") * 3
    labels = rng.integers(0, 3, 40)
    full = NaiveBayes(matrix, labels, 3)
    loo = full.loo_log_joint()
    for i in (0, 7, 23):
        keep = np.arange(40) != i
        refit = NaiveBayes(matrix[keep], labels[keep], 3)
        # Refitted, the row's own-only features are unseen and left out, as leave-one-out does.
        expected = refit.log_joint(matrix[i])[0]
        assert np.allclose(loo[i] - loo[i].max(), expected - expected.max(), atol=1e-8)


def _topic_lines(n: int, seed: int) -> pd.DataFrame:
    """Short texts of three topics: each line draws most words from its topic, some from a shared pool."""
    rng = np.random.default_rng(seed)
    topics = [[f"{t}{w}" for w in range(40)] for t in ("net", "disk", "user")]
    shared = [f"common{w}" for w in range(60)]
    y = rng.integers(0, 3, n)
    lines = []
    for c in y:
        words = list(rng.choice(topics[c], 4)) + list(rng.choice(shared, 4))
        rng.shuffle(words)
        lines.append(" ".join(words))
    return pd.DataFrame({"text": lines, "label": [("net", "disk", "user")[c] for c in y]})


def test_a_few_flips_in_a_batch_larger_than_the_baseline_move_the_verdict():
    # 16 flips in 900 lines against 600 trusted ones: at alpha the count (16 among the 9 clean flags
    # expected) is lost in the calibration set's own uncertainty; beyond every trusted record, where
    # 1.5 clean records are expected, it is not. The contribution probe (naive Bayes over trusted
    # and new lines together) puts the flips there.
    schema = {"label": "label", "inputs": [{"name": "text", "kind": "text"}]}
    baseline, clean = _topic_lines(600, seed=0), _topic_lines(900, seed=1)
    flipped = clean.copy()
    rows = np.random.default_rng(2).choice(len(flipped), 16, replace=False)
    flipped.loc[rows, "label"] = [{"net": "disk", "disk": "user", "user": "net"}[v] for v in flipped.loc[rows, "label"]]
    report = scan(baseline, flipped, schema, policy=ONLY)
    result = report.results["label_consistency"]
    assert report.verdict in ("review", "block")
    assert result.flagged[rows].mean() >= 0.85
    count = result.summary["count_test"]
    assert count["threshold"] == pytest.approx(1 / 601) and count["count"] >= 13
    assert f"{count['count']} at p<=" in report.reasons[0]
    # The same batch without the flips passes, and its records are flagged at alpha.
    report = scan(baseline, clean, schema, policy=ONLY)
    assert report.verdict == "pass"
    assert report.results["label_consistency"].flagged.mean() <= 0.01 + 3 * np.sqrt(0.01 / 900 + 0.01 / 600)


def test_the_count_beyond_every_calibration_score_is_calibrated():
    # Exchangeable scores: 400 calibration, 2,000 new records; the test's p-value is at most its level.
    from dataward.gates.calibration import beyond_calibration_p_value, conformal_p_values

    rng = np.random.default_rng(0)
    p = np.array(
        [beyond_calibration_p_value(conformal_p_values(rng.random(400), rng.random(2000)), 400) for _ in range(600)]
    )
    for level in (0.01, 0.05, 0.2):
        assert np.mean(p <= level) <= level + 3 * np.sqrt(level / p.shape[0]), level
    assert np.mean(p <= 0.5) > 0.2  # not vacuous: it does reject at larger levels


def test_a_class_that_moved_with_its_batch_is_not_flagged_but_flips_in_that_batch_are():
    """A recalibrated instrument moves class 0 towards class 1: against the trusted records many of its
    records look like class 1, but among the batch's own records they still read as class 0. They are a
    difference for review, not flips; records of class 1's content labelled 0 in that same batch read
    as class 1 among the batch's records too, and stay flagged."""
    from tests.gates.test_detectors_core import SEPARATED_SCHEMA, _separated_classes

    baseline = _separated_classes(0, 400)
    moved = _separated_classes(1, 200, shift=2.0)
    policy = {"detectors": ["label_consistency"]}
    report = scan(baseline, moved, SEPARATED_SCHEMA, policy=policy)
    result = report.results["label_consistency"]
    assert report.verdict != "block", report.reasons
    assert result.summary["moved_with_batch"] > 50
    assert result.flagged.mean() <= 0.02
    # Their ranks are kept: the excuse changes flags and the count, not the order a reviewer reads.
    assert result.p_values.min() < 0.01

    flips = moved[moved["label"] == 1].iloc[:15].copy()
    flips["label"] = 0
    poisoned = pd.concat([moved.drop(flips.index), flips], ignore_index=True)
    attacked = scan(baseline, poisoned, SEPARATED_SCHEMA, policy=policy)
    flagged = attacked.results["label_consistency"].flagged
    assert attacked.verdict == "block"
    assert flagged[-15:].mean() >= 0.8 and flagged[:-15].mean() <= 0.02


def test_records_that_resemble_no_class_cannot_vouch_for_flips_in_a_moved_class():
    """The attacker's side of the excuse above: move class 2 towards class 1 (correct labels), hide 30
    flips of class-1 content labelled 2 at the edge of class 1, and add six 'vouchers' of that content
    pushed outwards until they resemble no trusted class, labelled 2 too. The vouchers are suspects by
    their rank, so they are left out of the class-move test and of the batch's reference; the flips
    stay flagged."""
    from tests.gates.test_detectors_core import SEPARATED_SCHEMA, _separated_classes

    rng = np.random.default_rng(5)
    columns = [f"f{i}" for i in range(8)]
    class_1, class_2 = np.zeros(8), np.zeros(8)
    class_1[0], class_2[1] = 7.0, 7.0
    towards_1 = (class_1 - class_2) / np.linalg.norm(class_1 - class_2)
    batch = _separated_classes(1, 200)
    batch.loc[batch["label"] == 2, columns] += 1.5 * towards_1

    def labelled_2(points: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(points, columns=columns)
        frame["label"] = 2
        return frame

    flips = labelled_2(class_1 + 4.5 * towards_1 + rng.normal(scale=0.05, size=(30, 8)))
    vouchers = labelled_2(class_1 + 6.8 * towards_1 + rng.normal(scale=0.05, size=(6, 8)))
    attacked = pd.concat([batch, vouchers, flips], ignore_index=True)
    report = scan(_separated_classes(0, 400), attacked, SEPARATED_SCHEMA, policy={"detectors": ["label_consistency"]})
    assert report.verdict == "block"
    assert report.results["label_consistency"].flagged[-30:].mean() >= 0.8


def test_a_batch_drawn_like_the_baseline_has_no_class_that_moved():
    """The class-move test censors both sides at the same pooled level: on a batch drawn exactly like a
    baseline of 3,000 records a class, no class is called moved and nothing is excused. With the trusted
    side cut at each class's own 90th percentile instead, the easy class was called moved (p = 1e-11)
    and 138 records were excused."""
    from tests.gates.test_detectors_core import SEPARATED_SCHEMA, _separated_classes

    policy = {"detectors": ["label_consistency"]}
    report = scan(_separated_classes(0, 3000), _separated_classes(3, 3000), SEPARATED_SCHEMA, policy=policy)
    assert report.results["label_consistency"].summary["moved_with_batch"] == 0
