"""Clean-validation impact: a contribution that hurts held-out accuracy of a class is blocked."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates.base import Evidence, GateContext, GateData, Requirement, registered
from dataward.gates.detectors.clean_validation import REVIEW_FLOOR, CleanValidationDetector

SCHEMA = Schema("label", tuple(Column(f"p{i}", ColumnKind.NUMERIC) for i in range(64)))
CLASSES = tuple(str(i) for i in range(10))


@pytest.fixture(scope="module")
def split():
    data = load_digits()
    perm = np.random.default_rng(0).permutation(len(data.target))
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    b, c, v = perm[:300], perm[300:1100], perm[1100:1600]
    return (x[b], y[b]), (x[c], y[c]), GateData(x[v], y[v])


@pytest.fixture(scope="module")
def fitted(split) -> CleanValidationDetector:
    """One detector fitted on the baseline, shared by the tests that only score."""
    (xb, yb), _, validation = split
    return CleanValidationDetector(max_iter=100).fit(GateData(xb, yb), context(validation))


def context(validation: GateData | None, **options) -> GateContext:
    return GateContext(
        SCHEMA, CLASSES, alpha=0.01, validation=validation, options={"clean_validation": options} if options else {}
    )


def test_clean_validation_is_registered() -> None:
    assert registered()["clean_validation"] is CleanValidationDetector


def test_relabelling_one_class_drops_its_accuracy_and_blocks(split, fitted) -> None:
    _, (xc, yc), _ = split
    poisoned = yc.copy()
    poisoned[yc == 3] = 8
    sources = np.where(yc == 3, "vendor-b", "vendor-a")
    result = fitted.score(GateData(xc, poisoned, groups={"source": sources}))
    three = result.summary["per_class"]["3"]
    assert three["without"] > 0.8
    assert three["drop"] > 0.3
    assert three["p_value"] < 1e-6
    assert result.block is True
    assert "'3'" in result.block_reason
    assert result.p_value < 1e-6
    assert result.statistic == pytest.approx(result.summary["overall"]["drop"])
    # The source that relabelled the class is the one whose removal restores accuracy.
    per_source = result.summary["per_source"]
    assert per_source["vendor-b"]["effect"] > 0.02
    assert per_source["vendor-b"]["per_class_effect"]["3"] > 0.3
    assert per_source["vendor-b"]["p_value"] < 1e-6
    assert per_source["vendor-a"]["effect"] <= 0.01
    bad = sources == "vendor-b"
    assert np.all(result.p_values[bad] < 0.01) and np.all(result.p_values[~bad] == 1.0)
    assert not result.flagged.any()  # contribution-level: nothing is flagged record by record


def test_a_source_that_sent_the_whole_batch_leaves_its_records_at_one(split, fitted) -> None:
    # A ward's contribution has one declared source. Its harm is the batch's; given to every record, it
    # lifted every record's combined score to about 1 and the "most suspicious first" order ranked nothing.
    _, (xc, yc), _ = split
    poisoned = yc.copy()
    poisoned[yc == 3] = 8
    result = fitted.score(GateData(xc, poisoned, groups={"source": np.full(len(yc), "vendor")}))
    assert result.block is True and result.p_value < 1e-6
    assert result.summary["per_source"]["vendor"]["p_value"] < 1e-6  # still reported
    assert np.all(result.p_values == 1.0)


def test_random_label_noise_makes_the_probe_less_sure_and_blocks(split, fitted) -> None:
    _, (xc, yc), _ = split
    rng = np.random.default_rng(5)
    noisy = yc.copy()
    flip = rng.choice(len(yc), len(yc) // 4, replace=False)
    noisy[flip] = (yc[flip] + rng.integers(1, 10, flip.size)) % 10
    result = fitted.score(GateData(xc, noisy))
    overall = result.summary["overall"]
    assert overall["log_loss_with"] > overall["log_loss_without"]
    assert overall["p_value"] < 1e-6
    assert result.block is True


def test_clean_contribution_does_not_block(split, fitted) -> None:
    _, (xc, yc), _ = split
    result = fitted.score(GateData(xc, yc))
    overall = result.summary["overall"]
    assert overall["with"] >= overall["without"] - 0.01
    assert result.block is False
    assert result.block_reason is None
    assert result.p_value > 0.01
    assert set(result.summary["per_class"]) == set(CLASSES)
    assert result.summary["per_source"] == {}
    assert np.all(result.p_values == 1.0)


def test_tolerance_from_the_policy_decides_what_blocks(split) -> None:
    (xb, yb), (xc, yc), validation = split
    poisoned = yc.copy()
    poisoned[yc == 3] = 8
    det = CleanValidationDetector(max_iter=100).fit(GateData(xb, yb), context(validation, max_validation_drop=0.9))
    result = det.score(GateData(xc, poisoned))
    assert result.summary["max_validation_drop"] == 0.9
    assert result.block is False  # the drop is real but within this (lax) tolerance
    assert result.summary["harm_p"] < 1e-6
    assert result.p_value == 1.0


def test_without_a_validation_set_the_detector_says_so(split) -> None:
    (xb, yb), (xc, yc), _ = split
    det = CleanValidationDetector().fit(GateData(xb, yb), context(None))
    result = det.score(GateData(xc, yc))
    assert result.summary == {"skipped": "no clean validation set"}
    assert result.p_value == 1.0 and np.all(result.p_values == 1.0)


def test_unknown_probe_model_is_refused(split) -> None:
    (xb, yb), _, validation = split
    with pytest.raises(InputError, match="probe model"):
        CleanValidationDetector().fit(GateData(xb, yb), context(validation, model="forest"))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"no_such_option": 1}, "no_such_option"),
        ({"max_validation_drop": 1.5}, "max_validation_drop"),
        ({"significance": 0}, "significance"),
        ({"max_iter": "many"}, "max_iter"),
        ({"max_train": 2.5}, "max_train"),
    ],
)
def test_options_are_validated(split, options, message) -> None:
    (xb, yb), _, validation = split
    with pytest.raises(InputError, match=message):
        CleanValidationDetector().fit(GateData(xb, yb), context(validation, **options))
    with pytest.raises(InputError, match=message):
        CleanValidationDetector(**options)


def test_declares_poisoning_evidence_and_needs_a_validation_set() -> None:
    assert CleanValidationDetector.evidence is Evidence.POISONING
    assert Requirement.VALIDATION in CleanValidationDetector.requires
    assert CleanValidationDetector.flags_records is False


def shifted(x: np.ndarray) -> np.ndarray:
    """Digits from a new scanner: every image one pixel to the right and 10% darker."""
    images = x.reshape(-1, 8, 8)
    out = np.zeros_like(images)
    out[:, :, 1:] = images[:, :, :-1]
    return (0.9 * out).reshape(-1, 64)


def test_a_shifted_scanner_that_does_not_harm_accuracy_never_blocks(split, fitted) -> None:
    _, (xc, yc), _ = split
    result = fitted.score(GateData(shifted(xc), yc))
    assert result.block is False and result.block_reason is None
    assert result.p_value >= 1e-4  # review-level at most: it cannot block through its p-value either
    assert not result.flagged.any()
    # The linear probe loses a little on the old scanner's images; a probe that can learn both does not,
    # and the report says so instead of blocking.
    confirmation = result.summary["confirmation"]
    assert confirmation["block_reason"] is None
    assert result.contribution_findings and "more flexible probe" in result.contribution_findings[0].reason


def test_a_harmful_relabelling_is_confirmed_by_the_flexible_probe(split, fitted) -> None:
    _, (xc, yc), _ = split
    poisoned = yc.copy()
    poisoned[yc == 3] = 8
    result = fitted.score(GateData(xc, poisoned))
    assert result.block is True
    assert result.summary["confirmation"]["block_reason"] is not None


def test_the_policy_tolerance_reaches_the_detector_and_its_own_option_overrides_it(split) -> None:
    (xb, yb), _, validation = split
    policy_wide = GateContext(SCHEMA, CLASSES, validation=validation, max_validation_drop=0.5)
    det = CleanValidationDetector(max_iter=50).fit(GateData(xb, yb), policy_wide)
    assert det.max_validation_drop == 0.5
    both = GateContext(
        SCHEMA,
        CLASSES,
        validation=validation,
        max_validation_drop=0.5,
        options={"clean_validation": {"max_validation_drop": 0.1}},
    )
    assert CleanValidationDetector(max_iter=50).fit(GateData(xb, yb), both).max_validation_drop == 0.1


def _two_overlapping_classes(rng: np.random.Generator, n0: int, n1: int) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes 1.5 standard deviations apart in two dimensions: they overlap, so where the
    boundary sits between them depends on the classes' priors in training."""
    x = np.vstack([rng.normal(0.0, 1.0, (n0, 2)), rng.normal((1.5, 0.0), 1.0, (n1, 2))]).astype(np.float32)
    return x, np.repeat([0, 1], [n0, n1]).astype(np.int64)


def _overlap_context(validation: GateData) -> GateContext:
    schema = Schema("label", (Column("a", ColumnKind.NUMERIC), Column("b", ColumnKind.NUMERIC)))
    return GateContext(schema, ("0", "1"), alpha=0.01, validation=validation)


def test_a_one_class_source_moves_the_priors_without_being_harm() -> None:
    """A vendor labelling only class 0 moves a probe's boundary toward class 1 (class 1 loses accuracy
    on the clean validation set) although every record is correctly labelled: a difference from the
    baseline (``drift`` reports the priors), never a block here. The same-size batch with a class's
    content relabelled still blocks."""
    rng = np.random.default_rng(3)
    xb, yb = _two_overlapping_classes(rng, 300, 300)
    xv, yv = _two_overlapping_classes(rng, 500, 500)
    detector = CleanValidationDetector().fit(GateData(xb, yb), _overlap_context(GateData(xv, yv)))
    x_vendor, y_vendor = _two_overlapping_classes(rng, 3000, 0)
    vendor = detector.score(GateData(x_vendor, y_vendor))
    assert vendor.block is False
    assert vendor.summary["per_class"]["1"]["drop"] <= 0.02
    # What a model trained on the merge would do is still said, for review: at its own priors the probe
    # loses class 1, which the old check blocked on.
    (balance,) = vendor.contribution_findings
    assert "balance" in balance.reason and "'1'" in balance.reason
    assert REVIEW_FLOOR <= vendor.p_value < 0.01
    # What the correction takes out: the probe trained with the batch, read at its own priors, would
    # have lost a large share of class 1 (the old check blocked on exactly that).
    x_relabelled, _ = _two_overlapping_classes(rng, 0, 3000)
    relabelled = detector.score(GateData(x_relabelled, np.zeros(3000, dtype=np.int64)))
    assert relabelled.block is True
    assert "'1'" in relabelled.block_reason


def test_prior_matching_is_the_label_shift_correction() -> None:
    """Probabilities of a probe trained at priors ``t`` are moved to the baseline's priors ``b`` exactly
    as Bayes' rule says: ``p_b(c|x)`` proportional to ``p_t(c|x) b(c) / t(c)``; unchanged when the priors
    are the same; a class the baseline does not hold keeps its probability."""
    from dataward.gates.detectors.clean_validation import prior_matched

    likelihood = np.array([[0.2, 0.6, 0.2], [0.5, 0.25, 0.25]])  # p(x|c) for two inputs, three classes
    classes = np.array([0, 1, 2])
    trained_on = np.repeat(classes, [600, 200, 200])  # priors 0.6, 0.2, 0.2
    baseline = np.repeat(classes, [200, 200, 600])  # priors 0.2, 0.2, 0.6
    as_trained = likelihood * [0.6, 0.2, 0.2]
    as_trained /= as_trained.sum(axis=1, keepdims=True)
    expected = likelihood * [0.2, 0.2, 0.6]
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prior_matched(as_trained, classes, trained_on, baseline), expected)
    assert prior_matched(as_trained, classes, baseline, baseline) is as_trained
    only_two = np.repeat([0, 1], [200, 200])  # class 2 is new: its weight stays 1
    moved = prior_matched(as_trained, classes, trained_on, only_two)
    weights = np.array([0.5 / 0.6, 0.5 / 0.2, 1.0])
    np.testing.assert_allclose(moved, as_trained * weights / (as_trained * weights).sum(axis=1, keepdims=True))
