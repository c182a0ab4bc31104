"""``llm_behaviour_shift``'s effect-size floor: in a large batch a trivial difference is significant, and
must not become a finding or a review; a material one still does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.base import GateContext, GateData
from dataward.gates.detectors.llm_behaviour_shift import BehaviourShiftDetector, ShiftOptions, odds_ratio
from dataward.gates.scanning import scan

INSTRUCTION = Schema.for_kind("instruction")
ONLY_SHIFT = {"detectors": ["llm_behaviour_shift"]}
GATE_REVIEW_P = 0.01
"""The policy's default ``review_p``: with this detector alone, the gate reviews on its p-value below it."""


def _data(prompts: list[str], responses: list[str]) -> GateData:
    table = pa.table({"prompt": prompts, "response": responses})
    n = table.num_rows
    return GateData(np.zeros((n, 0), np.float32), np.zeros(n, np.int64), table)


def _shift(baseline: list[str], contribution: list[str], **options):
    """The detector alone, fitted on ``baseline`` responses and scoring ``contribution`` ones."""
    context = GateContext(INSTRUCTION, ("",), options={"llm_behaviour_shift": options})
    detector = BehaviourShiftDetector().fit(_data(["What is it?"] * len(baseline), baseline), context)
    return detector.score(_data(["What is it?"] * len(contribution), contribution))


@pytest.fixture(scope="module")
def large() -> tuple[pd.DataFrame, pd.DataFrame]:
    """10,000 trusted answers and 10,000 new ones about the same commands (another draw)."""
    pool = d.split_pools()[0]
    return d.instruction_frame(10_000, 1, pool=pool), d.instruction_frame(10_000, 2, pool=pool)


def _scan(baseline: pd.DataFrame, contribution: pd.DataFrame):
    cols = ["prompt", "response"]
    return scan(baseline[cols], contribution[cols], INSTRUCTION, policy=ONLY_SHIFT)


def test_answers_one_character_longer_in_a_large_batch_are_not_a_finding(large) -> None:
    """Every answer ends with one more full stop: the median is 70 characters against 69, significant
    among 10,000 answers (p = 5e-4 before the floor, a finding and a review), but a contribution answer
    is longer than a trusted one in 51% of pairs (A = 0.514), under the 0.56 of a small effect."""
    baseline, batch = large
    longer = batch.assign(response=batch["response"] + ".")
    report = _scan(baseline, longer)
    result = report.results["llm_behaviour_shift"]
    assert report.verdict == "pass", report.reasons
    assert not result.contribution_findings and not result.findings and not result.summary["shifts"]
    assert result.p_value >= GATE_REVIEW_P
    (floored,) = result.summary["below_floor"]
    assert floored["metric"].startswith("response length") and floored["p_value"] < 1e-3
    assert floored["effect"] == "A" and 0.5 < floored["effect_size"] < 0.56
    # Without the floor the same batch is a finding again: the floor, not the data, makes the difference.
    unfloored = _shift(list(baseline["response"]), list(longer["response"]), length_min_effect=0.0)
    assert unfloored.summary["shifts"] and unfloored.p_value < 1e-3


def test_answers_twice_as_long_in_a_large_batch_are_still_a_finding(large) -> None:
    baseline, batch = large
    doubled = batch.assign(response=batch["response"] + " " + batch["response"])
    report = _scan(baseline, doubled)
    result = report.results["llm_behaviour_shift"]
    assert report.verdict == "review" and result.p_value < 1e-10
    # (Descriptions with one lexicon word, said twice, also turn "negative": a shift of its own.)
    shift = result.summary["shifts"][0]
    assert shift["metric"].startswith("response length") and shift["effect"] == "A" and shift["effect_size"] > 0.9
    assert "A 0.9" in result.contribution_findings[0].reason, result.contribution_findings[0].reason


ANSWER = "It lists the files of a directory."
REFUSAL = "I'm sorry, I can't help with that."


def _answers(n: int, refusals: int) -> list[str]:
    """``n`` answers of one length, ``refusals`` of them refusals (so that no length differs)."""
    assert len(ANSWER) == len(REFUSAL)
    return [REFUSAL] * refusals + [ANSWER] * (n - refusals)


def test_refusals_tripled_from_a_low_base_in_a_large_batch_are_still_a_finding() -> None:
    """1% of the trusted answers refuse, 3% of the batch's: odds ratio 3.06, well above 1.44."""
    result = _shift(_answers(10_000, 100), _answers(10_000, 300))
    (shift,) = result.summary["shifts"]
    assert shift["metric"] == "refusal" and shift["effect"] == "odds ratio"
    assert shift["effect_size"] == pytest.approx(3.06, abs=0.02)
    assert result.p_value < 1e-10 and result.contribution_findings


def test_a_trivial_rate_change_in_a_huge_batch_is_not_a_finding() -> None:
    """10.0% of 100,000 trusted answers refuse and 10.6% of 100,000 new ones: significant (p = 2e-5
    corrected, a finding before the floor) but an odds ratio of 1.07, far under 1.44."""
    result = _shift(_answers(100_000, 10_000), _answers(100_000, 10_600))
    assert not result.summary["shifts"] and not result.contribution_findings and not result.findings
    assert result.p_value >= GATE_REVIEW_P
    (floored,) = result.summary["below_floor"]
    assert floored["metric"] == "refusal" and floored["p_value"] < 1e-3
    assert floored["effect_size"] == pytest.approx(1.067, abs=0.005)
    unfloored = _shift(_answers(100_000, 10_000), _answers(100_000, 10_600), rate_min_odds_ratio=1.0)
    assert unfloored.summary["shifts"] and unfloored.p_value < 1e-3


def test_a_behaviour_new_to_the_baseline_counts_however_large_the_batch() -> None:
    """25 planted links in 20,000 answers where no trusted answer has one: a difference of rates of 0.1
    point, but an odds ratio far above the floor. A fixed count of planted records must not fall under the
    floor as the batch grows."""
    link = ANSWER[:-1] + " https://example.net/x"
    result = _shift(_answers(10_000, 0), [link] * 25 + _answers(19_975, 0))
    assert [s["metric"] for s in result.summary["shifts"]] == ["link"]
    assert result.summary["shifts"][0]["effect_size"] > 10


def test_odds_ratio_is_finite_with_an_empty_cell_and_symmetric() -> None:
    assert odds_ratio(25, 20_000, 0, 10_000) == pytest.approx(25.5 * 10_000.5 / (19_975.5 * 0.5))
    assert odds_ratio(0, 100, 10, 100) == pytest.approx(1 / odds_ratio(10, 100, 0, 100))


@pytest.mark.parametrize(
    "options",
    [
        {"length_min_effect": 0.5},
        {"length_min_effect": -0.1},
        {"rate_min_odds_ratio": 0.9},
        {"rate_min_odds_ratio": float("inf")},
    ],
)
def test_floor_options_are_validated(options) -> None:
    with pytest.raises(ValueError):
        ShiftOptions(**options)
