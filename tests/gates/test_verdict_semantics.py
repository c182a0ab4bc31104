"""What a verdict means: block needs evidence of poisoning; difference is reviewed, never blocked;
flags keep the policy's false-positive rate (docs/gates.md, "What a verdict means")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from dataward.domain.errors import InputError
from dataward.gates import scan
from dataward.gates.base import DetectorResult, Evidence, Finding, registered
from dataward.gates.detectors import label_consistency
from dataward.gates.gate import verdict
from dataward.gates.policy import GatePolicy
from tests.gates.conftest import png


def _result(name: str, n: int = 100, *, p_value: float = 1.0, **extra) -> DetectorResult:
    return DetectorResult(name, "1", np.ones(n), np.zeros(n, bool), p_value=p_value, **extra)


def test_every_builtin_detector_declares_what_its_evidence_means() -> None:
    evidence = {name: cls.evidence for name, cls in registered().items()}
    assert evidence["drift"] is Evidence.DIFFERENCE and evidence["outliers"] is Evidence.DIFFERENCE
    for name in ("label_consistency", "duplicates", "triggers", "backdoor", "clean_validation"):
        assert evidence[name] is Evidence.POISONING, name


def test_difference_however_certain_is_review_never_block() -> None:
    policy = GatePolicy()
    results = {"drift": _result("drift", p_value=1e-80), "outliers": _result("outliers", p_value=1e-40)}
    decided, reasons, _ = verdict(results, np.zeros(100, bool), policy)
    assert decided == "review" and len(reasons) == 2


def test_a_difference_detector_may_not_ask_for_a_block() -> None:
    results = {"drift": _result("drift", block=True, block_reason="it moved")}
    with pytest.raises(ValueError, match="may not block"):
        verdict(results, np.zeros(100, bool), GatePolicy())


def test_poisoning_evidence_blocks_below_block_p_and_by_request() -> None:
    policy = GatePolicy()
    by_p = {"label_consistency": _result("label_consistency", p_value=policy.block_p / 10)}
    assert verdict(by_p, np.zeros(100, bool), policy)[0] == "block"
    asked = {"triggers": _result("triggers", block=True, block_reason="token 'cf' tied to 'music'")}
    decided, reasons, _ = verdict(asked, np.zeros(100, bool), policy)
    assert decided == "block" and reasons == ["triggers: token 'cf' tied to 'music'"]
    between = {"label_consistency": _result("label_consistency", p_value=policy.block_p * 10)}
    assert verdict(between, np.zeros(100, bool), policy)[0] == "review"


def test_a_population_finding_is_a_reason_to_review() -> None:
    finding = Finding("drift", 0.99, "class 'a' is 100% of the batch and 10% of the baseline")
    results = {"drift": _result("drift", contribution_findings=[finding])}
    decided, reasons, _ = verdict(results, np.zeros(100, bool), GatePolicy())
    assert decided == "review" and reasons == [f"drift: {finding.reason}"]


def test_a_block_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="block_reason"):
        _result("triggers", block=True)


def test_detector_options_are_validated_by_name_and_type() -> None:
    cls = registered()["triggers"]
    with pytest.raises(InputError, match="unknown option"):
        cls(no_such_option=1)
    with pytest.raises(InputError, match="min_support"):
        cls(min_support="many")
    with pytest.raises(InputError, match="invalid options"):
        cls(min_support=0)
    with pytest.raises(InputError, match="unknown option"):
        scan(*_gaussian(60, 40, seed=0), policy={"detectors": ["drift"], "options": {"drift": {"bogus": 1}}})


def _gaussian(n_base: int, n_new: int, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Three overlapping Gaussian classes in four numeric features: hard enough that labels disagree
    with their neighbours now and then, as in real data."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [2.5, 0, 1, 0], [0, 2.5, 0, 1]])

    def draw(n: int) -> pd.DataFrame:
        y = rng.integers(0, 3, n)
        frame = pd.DataFrame(centres[y] + rng.normal(size=(n, 4)), columns=[f"f{i}" for i in range(4)])
        frame["label"] = y.astype(str)
        return frame

    schema = {"label": "label", "inputs": [{"name": f"f{i}", "kind": "numeric"} for i in range(4)]}
    return draw(n_base), draw(n_new), schema


@pytest.mark.slow
@pytest.mark.parametrize("n_base", [50, 300, 3_000, 200_000])
def test_clean_flag_rate_holds_at_alpha_whatever_the_baseline_size(n_base: int) -> None:
    """The union of flags on clean i.i.d. records stays at the policy's alpha (1x, with only the
    binomial slack of the records tested), from tiny baselines to ones far larger than the reference."""
    alpha, flagged, queued, total = 0.01, 0, 0, 0
    for rep in range(3):
        baseline, contribution, schema = _gaussian(n_base, 2_000, seed=10 * rep + 1)
        report = scan(baseline, contribution, schema, policy={"alpha": alpha})
        assert report.verdict != "block"
        at_alpha = report.records.flagged_at_alpha
        # The review queue holds a subset of the flags at alpha (those that pass the FDR check).
        assert not (report.records.flagged & ~at_alpha).any()
        flagged += int(at_alpha.sum())
        queued += int(report.records.flagged.sum())
        total += len(contribution)
    slack = 3 * np.sqrt(alpha * (1 - alpha) / total)
    assert flagged / total <= alpha + slack, f"{flagged} of {total} clean records flagged"
    # On clean data the queue stays nearly empty: a flag there needs an excess beyond alpha.
    assert queued <= max(3, flagged // 10), f"{queued} of {flagged} clean flags queued"


@pytest.mark.slow
def test_a_clean_first_batch_five_times_a_hand_curated_seed_is_not_blocked() -> None:
    """The first import judged against a small seed (docs/gates.md, "First import"): 2,000 clean
    man-page lines against 400 trusted ones, drawn alike. With the text vocabulary fitted on the seed
    and only a seed-sized sample of the batch, the rest of the batch lost its unseen words, read as
    unlike its class, and was blocked by ``backdoor`` and ``triggers`` (a topical word named as a trigger)."""
    from benchmarks.flag_rate import text_split

    baseline, contribution, schema = text_split(400, 2_000, seed=7)
    report = scan(baseline, contribution, schema, policy={"alpha": 0.01, "seed": 7})
    assert report.verdict != "block", [r.block_reason for r in report.results.values() if r.block]
    assert report.records.flagged_at_alpha.mean() <= 0.01


def _digit_images(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"image": [png(i) for i in images], "label": labels})


@pytest.fixture(scope="module")
def digit_split():
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    base, new, val = order[:900], order[900:1400], order[1400:1700]
    schema = {"label": "label", "inputs": [{"name": "image", "kind": "image"}]}
    return data, base, new, val, schema


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    ["shifted one pixel", "ten percent darker", "one class only"],
)
def test_a_new_scanner_or_a_one_class_source_is_reviewed_with_an_explanation_never_blocked(digit_split, change):
    data, base, new, val, schema = digit_split
    images, labels = data.images[new], data.target[new]
    if change == "shifted one pixel":
        images = np.roll(images, 1, axis=2)
    elif change == "ten percent darker":
        images = images * 0.9
    else:
        keep = labels == 3
        images, labels = images[keep], labels[keep]
    report = scan(
        _digit_images(data.images[base], data.target[base]),
        _digit_images(images, labels),
        schema,
        validation=_digit_images(data.images[val], data.target[val]),
    )
    assert report.verdict == "review", report.reasons
    assert report.records.flagged.mean() <= 0.02, report.reasons
    explanation = " ".join(report.reasons)
    expected = {
        "shifted one pixel": "unlike the baseline together",
        "ten percent darker": "mean brightness",
        "one class only": "class '3' is 100% of the batch",
    }[change]
    assert expected in explanation


@pytest.mark.slow
def test_label_disagreement_from_a_shifted_source_is_reviewed_but_a_whole_class_relabelled_is_blocked(
    digit_split, monkeypatch
):
    """Trusted models misread a shifted scanner's digits; read with the frame's move undone they read as
    their labels, and read as sent they resemble no trusted class and are reviewed as a shift. Relabelling
    every 7 as 1 gives records that are ordinary 7s: blocked, each flagged, even though the batch agrees
    with itself."""
    data, base, new, val, schema = digit_split
    trusted = _digit_images(data.images[base], data.target[base])
    validation = _digit_images(data.images[val], data.target[val])
    moved = _digit_images(np.roll(data.images[new], 1, axis=2), data.target[new])
    consistency = scan(trusted, moved, schema).results["label_consistency"]
    assert not consistency.flagged.any() and consistency.p_value > 0.01
    frame = consistency.summary["frame"]
    assert frame is not None and frame["columns"] > 0 and frame["read_moved_back"] > 0.9 * len(new), frame
    # Read as sent (the frame's move not looked for), the records resemble no trusted class: a shift, reviewed.
    monkeypatch.setattr(label_consistency, "estimate_frame_shift", lambda *args, **kwargs: None)
    shifted = scan(trusted, moved, schema)
    consistency = shifted.results["label_consistency"]
    assert not consistency.flagged.any() and consistency.p_value > 0.01
    assert consistency.summary["disagreeing_but_atypical"] > 20
    assert any("resemble no other trusted class" in r for r in shifted.reasons)
    monkeypatch.undo()
    labels = data.target[new].copy()
    sevens = labels == 7
    labels[sevens] = 1
    relabelled = scan(trusted, _digit_images(data.images[new], labels), schema, validation=validation)
    consistency = relabelled.results["label_consistency"]
    assert relabelled.verdict == "block"
    assert consistency.flagged[sevens].mean() >= 0.9 and not consistency.flagged[~sevens].any()


@pytest.mark.parametrize(
    ("detector", "options"),
    [
        ("outliers", {"k": 50}),
        ("outliers", {"population_k": 21}),
        ("duplicates", {"k": 50}),
        ("label_consistency", {"k": 21}),
    ],
)
def test_a_neighbour_count_beyond_the_search_is_refused_when_the_policy_is_set(detector, options) -> None:
    """{"outliers": {"k": 50}} used to be accepted and then crash every later gate run of the dataset."""
    from dataward.gates.policy import GatePolicy

    with pytest.raises(InputError, match=f"invalid options for detector '{detector}'"):
        GatePolicy.from_dict({"options": {detector: options}})


def test_a_count_reason_names_the_level_that_drove_it_and_never_shows_p_0() -> None:
    """11 of 1,000 lone records at alpha = 0.01 (10 expected), but 700 at p <= 0.16 (160 expected): the count
    test's tail is about 1e-139, which scipy's ``1 - cdf`` rounds to 0. The reason says which count it is and
    gives the tail itself; a tail that does underflow double precision is shown as a bound."""
    from scipy import stats

    from dataward.gates.calibration import betabinom_tail, excess_flags_count, excess_flags_p_value, p_text

    p = np.ones(1000)
    p[:11], p[11:700] = 0.005, 0.1
    _, p_count = excess_flags_p_value(p, 0.01, 1000)
    assert 0.0 < p_count < 1e-100
    counted = excess_flags_count(p, 0.01, 1000)
    assert counted["count"] == 700 and counted["threshold"] == pytest.approx(160 / 1001)
    result = _result("outliers", 1000, p_value=p_count, alpha=0.01, summary={"count_test": counted})
    result.p_values, result.flagged = p, p <= 0.01
    decided, reasons, _ = verdict({"outliers": result}, result.flagged, GatePolicy())
    assert decided == "review"
    assert reasons[0] == (
        "outliers: 11 of 1000 records flagged where 10.0 are expected at alpha=0.01; 700 at p<=0.16 where 159.8 "
        "are expected (p=6.1e-139)"
    )
    assert p_text(0.0) == "p<1e-300" and p_text(3e-7) == "p=3e-07"
    # The tail is exact where scipy's survival function has lost it (3.42e-14 by 50-digit arithmetic).
    assert stats.betabinom.sf(299, 1000, 160, 841) == pytest.approx(1.27e-14, rel=0.01)
    assert betabinom_tail(300, 1000, 160, 841) == pytest.approx(3.4204254e-14, rel=1e-6)
    assert betabinom_tail(200, 1000, 160, 841) == pytest.approx(stats.betabinom.sf(199, 1000, 160, 841))
    # A finding that states its own p-value is not given a second one.
    finding = Finding("drift", 0.9, "answers grew longer (p=2e-05)")
    reasons = verdict({"drift": _result("drift", p_value=2e-5, findings=[finding])}, np.zeros(100, bool), GatePolicy())[
        1
    ]
    assert reasons == ["drift: answers grew longer (p=2e-05)"]
