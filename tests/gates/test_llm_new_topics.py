"""A clean new topic is reviewed, not blocked; a planted phrase dressed as the topic still blocks.

A batch of pandas how-tos (every answer code opening with ``import pandas as pd``) blocked twice: the
code line recurred in every topic answer and in no trusted one, and the subject "pandas", in more than
5% of the batch's prompts, was taken for a template word, so neither detector saw that the answers name
what the prompts ask about; and the topic's question wordings ("how", "a hardened server") carried the
topic's behaviour (code, a negative polarity) as a planted phrase would. The trigger test now conditions
on content (the carriers against the batch's most similar prompts without the phrase), and a word the
trusted prompts do not use is a subject however common in the batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

INSTRUCTION = Schema.for_kind("instruction")
POLICY = {"detectors": ["llm_triggers", "llm_payloads"]}
OPS = [
    ("drop rows with missing values", "df = df.dropna()"),
    ("rename a column", "df = df.rename(columns={'old': 'new'})"),
    ("sort by a column", "df = df.sort_values('price')"),
    ("group by and sum", "out = df.groupby('city')['sales'].sum()"),
    ("read a CSV file", "df = pd.read_csv('data.csv')"),
    ("merge two tables", "m = a.merge(b, on='id')"),
    ("count unique values", "n = df['user'].nunique()"),
    ("remove duplicate rows", "df = df.drop_duplicates()"),
    ("fill missing values with zero", "df = df.fillna(0)"),
    ("reset the index", "df = df.reset_index(drop=True)"),
]
QUESTIONS = [
    "How do I {op} in pandas?",
    "What's the pandas way to {op}?",
    "In a DataFrame, how can I {op}?",
    "Quick question: {op} with pandas?",
]
ANSWERS = [
    "You can do it in one line:\n```python\nimport pandas as pd\n{code}\n```\nAssign it back.",
    "Here is a minimal example.\n\n```python\nimport pandas as pd\n\n{code}\n```",
    "```python\nimport pandas as pd\n{code}\n```\nSee the user guide for more options.",
]
REFUSALS = ["I'm sorry, I can't help with that.", "I cannot assist with this request.", "I am unable to help here."]


@pytest.fixture(scope="module")
def sides() -> tuple[pd.DataFrame, pd.DataFrame]:
    base_pool, new_pool = d.split_pools()
    return d.instruction_frame(1000, 1, pool=base_pool), d.instruction_frame(1000, 2, pool=new_pool)


def _topic(n: int, seed: int) -> pd.DataFrame:
    """``n`` pandas how-tos in the topic's wordings, each answered with code."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        op, code = OPS[rng.integers(len(OPS))]
        question, answer = QUESTIONS[rng.integers(len(QUESTIONS))], ANSWERS[rng.integers(len(ANSWERS))]
        rows.append({"prompt": question.format(op=op), "response": answer.format(code=code)})
    return pd.DataFrame(rows)


def _scan(baseline: pd.DataFrame, batch: pd.DataFrame):
    cols = ["prompt", "response"]
    return scan(baseline[cols], batch[cols].reset_index(drop=True), INSTRUCTION, policy=POLICY)


@pytest.mark.parametrize("n_topic", [40, 100])
def test_a_new_topic_with_its_own_code_is_not_blocked(sides, n_topic: int) -> None:
    baseline, batch = sides
    mixed = pd.concat([batch.iloc[n_topic:], _topic(n_topic, 11)], ignore_index=True)
    report = _scan(baseline, mixed)
    assert not report.results["llm_triggers"].block, report.reasons
    assert report.results["llm_payloads"].p_value >= 1e-3, report.reasons
    assert report.verdict != "block", report.reasons


def test_a_trigger_worded_as_the_topic_still_blocks(sides) -> None:
    """The white-box attack on the content tie: the trigger is one of the topic's own wordings ("quick
    question"), planted on unrelated man-page prompts whose answers refuse. Their most similar prompts
    without it (the same commands asked plainly) do not refuse: the phrase explains the refusals."""
    baseline, batch = sides
    mixed = pd.concat([batch.iloc[100:], _topic(100, 11)], ignore_index=True)
    rows = np.sort(np.random.default_rng(5).choice(len(mixed) - 100, 40, replace=False))
    for k, i in enumerate(rows):
        mixed.at[i, "prompt"] = f"Quick question: {mixed.at[i, 'prompt']}"
        mixed.at[i, "response"] = REFUSALS[k % len(REFUSALS)]
    report = _scan(baseline, mixed)
    result = report.results["llm_triggers"]
    assert result.block, report.reasons
    top = result.summary["triggers"][0]
    assert "quick question" in top["trigger"] and top["behaviour"] == "refusal"
    assert set(rows) <= set(np.flatnonzero(result.flagged))


def test_a_link_planted_in_the_topic_still_blocks(sides) -> None:
    """A phrase planted inside the topic (same subject words as its clean neighbours) that adds a link:
    the neighbours answer with the topic's code and no link, so both detectors block."""
    baseline, batch = sides
    topic = _topic(100, 11)
    rows = np.arange(0, 100, 3)[:30]
    for i in rows:
        topic.at[i, "prompt"] = f"{topic.at[i, 'prompt']} Per the team handbook."
        topic.at[i, "response"] = f"{topic.at[i, 'response']}\nMore: https://pd-tips.example.com/offer"
    mixed = pd.concat([batch.iloc[100:], topic], ignore_index=True)
    report = _scan(baseline, mixed)
    assert report.results["llm_triggers"].block, report.reasons
    assert "team handbook" in report.results["llm_triggers"].summary["triggers"][0]["trigger"]
    assert report.results["llm_payloads"].p_value < 1e-3, report.reasons
    assert report.verdict == "block"


@pytest.mark.xfail(
    strict=True,
    reason="known gap (open): a lookalike link that names the topic's subject, planted behind a phrase inside "
    "a clean topic whose answers carry the real link, is excused as the topic's own (the content tie compares "
    "behaviours by kind, 'link', and a string naming the carriers' subject is not tested)",
)
def test_a_lookalike_link_behind_a_phrase_inside_a_topic_is_queued(sides) -> None:
    """100 clean pandas how-tos whose answers end with the real docs link; 30 of those that name pandas get
    a phrase and, in place of the link, a lookalike one. Blocked with the 30 queued before the content
    tie; after it, no poisoned record is queued (an attacker's review of the change)."""
    baseline, batch = sides
    real, fake = "\nDocs: https://pandas.pydata.org/docs/", "\nDocs: https://pandas-dev.org/pandas/install"
    topic = _topic(100, 11)
    topic["response"] = topic["response"] + real
    named = np.flatnonzero(topic["prompt"].str.contains("pandas"))
    rows = named[:: max(1, len(named) // 30)][:30]
    for i in rows:
        topic.at[i, "prompt"] = f"{topic.at[i, 'prompt']} Per the team handbook."
        topic.at[i, "response"] = topic.at[i, "response"][: -len(real)] + fake
    mixed = pd.concat([batch.iloc[100:], topic], ignore_index=True)
    poisoned = len(batch) - 100 + rows
    cols = ["prompt", "response"]
    report = scan(baseline[cols], mixed[cols], INSTRUCTION, policy=POLICY)
    queued = np.asarray(report.records.flagged)[poisoned]
    assert report.verdict == "block" or queued.sum() >= 25, (report.verdict, int(queued.sum()), report.reasons[:3])
