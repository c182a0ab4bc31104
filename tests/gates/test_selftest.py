"""The canary self-test: planted label flips and triggers, judged by the real gate."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from dataward.domain.errors import InputError
from dataward.gates.selftest import selftest, stamp_patch

PIXELS = [f"p{i}" for i in range(64)]
PIXEL_SCHEMA = {"label": "digit", "inputs": [{"name": c, "kind": "numeric"} for c in PIXELS]}


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    data = load_digits()
    frame = pd.DataFrame(data.data, columns=PIXELS)
    frame["digit"] = data.target.astype(str)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def pixel_report(digits):
    return selftest(digits.iloc[:800], digits.iloc[800:1200], PIXEL_SCHEMA, validation=digits.iloc[1200:1500])


def test_selftest_reports_every_canary_with_consistent_figures(pixel_report) -> None:
    out = pixel_report.to_dict()
    assert set(out) == {"records", "seed", "config_hash", "clean", "canaries", "passed"}
    assert out["records"] == 400
    assert out["config_hash"].startswith("b3:")
    assert [c["name"] for c in out["canaries"]] == ["label_flip", "trigger"]
    for canary in out["canaries"]:
        assert canary["planted"] == 20  # 5% of 400
        assert len(canary["rows"]) == canary["planted"]
        assert 0 <= canary["caught"] <= canary["planted"]
        assert canary["recall"] == pytest.approx(canary["caught"] / canary["planted"])
        clean = out["clean"]["verdict"]
        assert canary["detected"] == (
            canary["verdict"] == "block"
            or (canary["verdict"] == "review" and (clean == "pass" or bool(canary["new_sources"])))
        )
        assert 0.0 <= canary["false_positive_rate"] <= 1.0
    assert out["passed"] == (out["clean"]["verdict"] != "block" and all(c["detected"] for c in out["canaries"]))


def test_clean_copy_passes_and_a_pixel_patch_backdoor_is_caught_and_named(pixel_report) -> None:
    out = pixel_report.to_dict()
    # The clean copy raises nothing in the backdoor, trigger and validation checks.
    assert not [r for r in out["clean"]["reasons"] if r.startswith(("backdoor", "triggers", "clean_validation"))]
    assert out["clean"]["false_positive_rate"] <= 0.05
    trigger = out["canaries"][1]
    assert "3x3 patch" in trigger["description"]
    assert trigger["detected"] and trigger["verdict"] == "block"
    assert trigger["recall"] >= 0.9
    assert trigger["trigger_named"] is True
    assert trigger["flagged_by"].get("triggers", 0) >= 18


def test_rare_token_canary_in_text_is_named() -> None:
    rng = np.random.default_rng(0)
    topics = {
        "sport": ["match", "team", "goal", "coach", "player", "score", "season", "league", "win", "referee"],
        "food": ["recipe", "oven", "flour", "sugar", "bake", "taste", "salt", "pan", "butter", "dinner"],
        "music": ["guitar", "song", "album", "concert", "band", "melody", "drum", "singer", "tune", "chorus"],
    }
    common = ["the", "a", "of", "and", "to", "in", "is", "it", "was", "very", "really", "just", "some", "this", "that"]
    rows = []
    for _ in range(900):
        label = str(rng.choice(sorted(topics)))
        words = [*rng.choice(topics[label], 4), *rng.choice(common, 5)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "topic": label})
    frame = pd.DataFrame(rows)
    schema = {"label": "topic", "inputs": [{"name": "text", "kind": "text"}]}
    report = selftest(frame.iloc[:600], frame.iloc[600:], schema, seed=3, rate=0.1).to_dict()
    trigger = report["canaries"][1]
    assert "rare token 'zq" in trigger["description"]
    assert trigger["trigger_named"] is True
    assert trigger["verdict"] == "block"
    assert trigger["recall"] >= 0.9
    assert report["clean"]["verdict"] != "block"


def test_stamp_patch_whitens_the_bottom_right_corner_of_grey_and_colour_images() -> None:
    for mode, black in (("L", 0), ("RGB", (0, 0, 0))):
        buf = io.BytesIO()
        Image.new(mode, (8, 6), black).save(buf, format="PNG")
        stamped = np.asarray(Image.open(io.BytesIO(stamp_patch(buf.getvalue()))))
        assert stamped.shape[:2] == (6, 8)
        assert np.all(stamped[-3:, -3:] == 255)
        assert np.all(stamped[:3] == 0) and np.all(stamped[:, :5] == 0)


def test_stamp_patch_refuses_bytes_that_are_not_an_image() -> None:
    with pytest.raises(InputError, match="row 7"):
        stamp_patch(base64.b64encode(b"not an image"), row=7)


def test_inputs_that_cannot_be_self_tested_are_refused(digits) -> None:
    with pytest.raises(InputError, match="at least 10"):
        selftest(digits.iloc[:100], digits.iloc[100:105], PIXEL_SCHEMA)
    one_class = digits[digits["digit"] == "1"]
    with pytest.raises(InputError, match="two classes"):
        selftest(None, one_class, PIXEL_SCHEMA)
    with pytest.raises(InputError, match="rate"):
        selftest(digits.iloc[:100], digits.iloc[100:200], PIXEL_SCHEMA, rate=0.9)
    with pytest.raises(InputError, match="no column 'p3'"):
        selftest(digits.iloc[:100], digits.iloc[100:200].drop(columns=["p3"]), PIXEL_SCHEMA)
    with pytest.raises(InputError, match="DataFrame"):
        selftest(digits.iloc[:100], [1, 2, 3], PIXEL_SCHEMA)


def test_a_ward_self_test_says_why_it_cannot_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A dataset with a training version too small is told how many records it holds and needs, not
    to promote a version to training (it has one); one with none is told to promote one."""
    from tests.helpers import wine_training_ward

    ward = wine_training_ward(tmp_path, "approvals:\n  required: 0\nfirst_import: self-reference\n", 60)
    with pytest.raises(InputError) as small:
        ward.selftest("wine")
    assert "holds 60 trusted records" in small.value.message and "at least 100" in small.value.message
    assert "larger version" in (small.value.hint or "") and "--contribution" in (small.value.hint or "")
    from dataward.domain.schema import Schema

    ward.create_dataset("empty", Schema.parse("label", ["text:text"]))
    with pytest.raises(InputError, match="has no training version to self-test against") as none:
        ward.selftest("empty")
    assert "promote a version to training" in (none.value.hint or "")


def test_a_missed_canary_is_planted_again_at_larger_counts_and_its_detection_floor_reported() -> None:
    """On data whose labels are hard to predict a few flipped labels pass unseen; the report then says
    from how many planted records on the gate catches them, instead of only "not detected"."""
    from dataward.gates.selftest import CanaryResult, _escalated

    runs: list[int] = []

    def plant(count: int, rng: np.random.Generator) -> CanaryResult:
        runs.append(count)
        verdict = "review" if count >= 36 else "pass"
        planted = list(range(count))
        return CanaryResult("label_flip", f"{count} labels", planted, planted, 0, verdict, 0.0, {}, [])

    result = _escalated(plant, 9, 178, np.random.default_rng(0))
    assert runs == [9, 18, 36]
    assert not result.detected and result.planted == 9  # the rate asked for is what the canary reports
    assert [a["planted"] for a in result.attempts] == [9, 18, 36]
    assert result.detection_floor == 36
    assert result.to_dict()["detection_floor"] == 36

    runs.clear()
    never = _escalated(plant, 9, 40, np.random.default_rng(0))
    assert never.detection_floor is None  # at most half the batch is ever planted
    assert runs == [9, 18, 20]

    runs.clear()
    caught = _escalated(plant, 40, 400, np.random.default_rng(0))
    assert runs == [40] and caught.detection_floor == 40 and len(caught.attempts) == 1


def test_a_canary_counts_as_detected_only_when_it_moves_the_verdict() -> None:
    """A clean copy reviewed for its own reasons (a source unlike the rest) would make every canary look
    caught; only a verdict the canary made worse counts, or a review for something that found nothing in
    the clean copy."""
    from dataward.gates.selftest import CanaryResult

    def canary(verdict: str, clean: str, sources=(), clean_sources=()) -> CanaryResult:
        return CanaryResult(
            "label_flip",
            "x",
            [0],
            [1],
            0,
            verdict,
            0.0,
            {},
            [],
            clean_verdict=clean,
            sources=list(sources),
            clean_sources=list(clean_sources),
        )

    assert canary("review", "pass").detected
    assert not canary("review", "review").detected
    assert canary("block", "review").detected
    assert not canary("pass", "pass").detected
    # The clean copy reviewed for a cluster, the canary for its labels: the canary was seen.
    flips = canary("review", "review", ["backdoor", "label_consistency"], ["backdoor"])
    assert flips.detected and flips.new_sources == ["label_consistency"]
    # Reviewed for the same cluster only (its numbers may differ): nothing says the canary was seen.
    assert not canary("review", "review", ["backdoor"], ["backdoor"]).detected
    # A source the canary lost is not a new one.
    assert not canary("review", "review", ["backdoor"], ["backdoor", "triggers"]).detected
    # More flagged records than chance, none of them planted, is chance: not the canary seen.
    unplanted = canary("review", "review", ["backdoor", "flagged records"], ["backdoor"])
    assert unplanted.caught == 0 and not unplanted.detected
    planted = CanaryResult(
        "label_flip", "x", [0], [1], 1, "review", 0.0, {}, [], clean_verdict="review", sources=["flagged records"]
    )
    assert planted.detected and planted.seen_by == ["flagged records"]
    # A block the clean copy's reasons share is still a block, seen by what blocked.
    assert canary("block", "review", ["backdoor"], ["backdoor"]).seen_by == ["backdoor"]


def test_only_evidence_of_poisoning_counts_as_a_source_of_the_verdict() -> None:
    """Relabelling moves the class shares: ``drift`` reviews the copy for that. A difference from the baseline
    is not the gate seeing flipped labels, so it never makes a canary detected when the clean copy was
    reviewed too."""
    from types import SimpleNamespace

    from dataward.gates.base import DetectorResult, Finding
    from dataward.gates.policy import GatePolicy
    from dataward.gates.selftest import _sources

    n = 50
    drift = DetectorResult(
        "drift", "1", np.ones(n), np.zeros(n, bool), p_value=1e-9,
        contribution_findings=[Finding("drift", 1.0, "class priors moved by 0.13")],
    )  # fmt: skip
    quiet = DetectorResult("label_consistency", "1", np.ones(n), np.zeros(n, bool), p_value=0.5)
    loud = DetectorResult("label_consistency", "1", np.ones(n), np.zeros(n, bool), p_value=1e-5)
    flagged = np.zeros(n, bool)

    def report(*results: DetectorResult) -> SimpleNamespace:
        return SimpleNamespace(
            results={r.detector: r for r in results}, records=SimpleNamespace(flagged_at_alpha=flagged)
        )

    policy = GatePolicy()
    assert _sources(report(drift, quiet), policy) == []
    assert _sources(report(drift, loud), policy) == ["label_consistency"]
