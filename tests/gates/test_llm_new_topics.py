"""A clean new topic is reviewed, not blocked; a planted phrase dressed as the topic still blocks.

A batch of pandas how-tos (every answer code opening with ``import pandas as pd``) blocked twice: the
code line recurred in every topic answer and in no trusted one, and the subject "pandas", in more than
5% of the batch's prompts, was taken for a template word, so neither detector saw that the answers name
what the prompts ask about; and the topic's question wordings ("how", "a hardened server") carried the
topic's behaviour (code, a negative polarity) as a planted phrase would. The trigger test now conditions
on content (the carriers against the batch's most similar prompts without the phrase), and a word the
trusted prompts do not use is a subject however common in the batch.

A link is the topic's only when the topic's answers give that link (``llm_triggers`` 6, ``llm_payloads``
4): a lookalike swapped in behind a phrase blocks, one swapped in without a phrase is reviewed with its
carriers queued.
"""

from __future__ import annotations

from collections.abc import Callable

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


REAL, FAKE = "\nDocs: https://pandas.pydata.org/docs/", "\nDocs: https://pandas-dev.org/pandas/install"


def _swapped(
    batch: pd.DataFrame, new: str, *, phrase: bool, keep_real: bool = False, real: str = REAL
) -> tuple[pd.DataFrame, np.ndarray]:
    """100 pandas how-tos whose answers end with ``real``; 30 of those whose prompt names pandas get
    ``new`` in its place (beside it with ``keep_real``), and the phrase "Per the team handbook." with
    ``phrase``. Returns the batch (900 ordinary records first) and the 30 poisoned rows."""
    topic = _topic(100, 11)
    topic["response"] = topic["response"] + real
    named = np.flatnonzero(topic["prompt"].str.contains("pandas"))
    rows = named[:: max(1, len(named) // 30)][:30]
    for i in rows:
        if phrase:
            topic.at[i, "prompt"] = f"{topic.at[i, 'prompt']} Per the team handbook."
        answer = topic.at[i, "response"]
        topic.at[i, "response"] = (answer if keep_real else answer[: -len(real)]) + new
    return pd.concat([batch.iloc[100:], topic], ignore_index=True), len(batch) - 100 + rows


def _varied(
    batch: pd.DataFrame, real: str, make: Callable[[int], str], *, phrase: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """``_swapped`` with the lookalike made per poisoned record (``make(k)`` for the k-th)."""
    mixed, poisoned = _swapped(batch, "@@", phrase=phrase, real=real)
    for k, i in enumerate(poisoned):
        mixed.at[i, "response"] = mixed.at[i, "response"].replace("@@", make(k))
    return mixed, poisoned


def test_a_lookalike_link_behind_a_phrase_inside_a_topic_is_blocked(sides) -> None:
    """100 clean pandas how-tos whose answers end with the real docs link; 30 of those that name pandas get
    a phrase and, in place of the link, a lookalike one. Blocked with the 30 queued before the content
    tie; after it (version 5) no poisoned record was queued (an attacker's review of the change): the
    tie compared the behaviour by kind, and the carriers' neighbours link too. Version 6 also reads a
    link by value (its site, and the link whole): the neighbours link the real site, so the phrase
    explains the lookalike, and the batch blocks, as a planted trigger should, with all 30 queued."""
    baseline, batch = sides
    mixed, poisoned = _swapped(batch, FAKE, phrase=True)
    report = _scan(baseline, mixed)
    result = report.results["llm_triggers"]
    assert result.block and report.verdict == "block", report.reasons
    top = result.summary["triggers"][0]
    assert "team handbook" in top["trigger"] and top["behaviour"] == "link"
    assert np.asarray(report.records.flagged)[poisoned].all()
    assert set(np.flatnonzero(result.flagged)) == set(poisoned)


def test_a_lookalike_link_beside_the_real_one_behind_a_phrase_is_blocked(sides) -> None:
    """The attack on the value reading: the lookalike is added beside the real link, so that every
    carrier's answer still gives the site the neighbours give. Each destination the carriers share is
    read on its own, and the neighbours do not give the lookalike's."""
    baseline, batch = sides
    mixed, poisoned = _swapped(batch, "\nInstall: https://pandas-dev.org/pandas/install", phrase=True, keep_real=True)
    report = _scan(baseline, mixed)
    assert report.results["llm_triggers"].block and report.verdict == "block", report.reasons
    assert np.asarray(report.records.flagged)[poisoned].all()


def test_another_page_of_the_topics_own_site_behind_a_phrase_is_blocked(sides) -> None:
    """The attack on comparing links by site: the topic cites the project's page on a shared host, and
    the phrase's answers cite another user's page there (same site, another path). The link whole is a
    destination of its own, which the neighbours do not give."""
    baseline, batch = sides
    real, fake = (
        "\nSource: https://github.com/pandas-dev/pandas",
        "\nSource: https://github.com/pandas-devs/pandas/releases",
    )
    mixed, poisoned = _swapped(batch, fake, phrase=True, real=real)
    report = _scan(baseline, mixed)
    assert report.results["llm_triggers"].block and report.verdict == "block", report.reasons
    assert np.asarray(report.records.flagged)[poisoned].all()


def test_a_lookalike_link_without_a_phrase_inside_a_topic_is_reviewed_with_its_carriers_queued(sides) -> None:
    """The same lookalike swapped into 30 of the topic's answers with no phrase: no trigger to find, and
    the link names the records' subject ("pandas"), which excused it for every carrier (3 of 30 were
    queued in an attacker's review). Since ``llm_payloads`` 4 a payload so excused must also be in most
    answers to the record's most similar prompts; this one is not, so it is reported for review with its
    carriers queued. Not blocked: a clean source citing one of two references at random looks the same
    (next test)."""
    baseline, batch = sides
    mixed, poisoned = _swapped(batch, FAKE, phrase=False)
    report = _scan(baseline, mixed)
    assert report.verdict == "review", report.reasons
    assert np.asarray(report.records.flagged)[poisoned].sum() >= 25
    unanswered = report.results["llm_payloads"].summary["unanswered"]
    assert any("pandas-dev.org" in ev["value"] for ev in unanswered)


def test_a_topic_citing_one_of_two_references_at_random_is_not_blocked(sides) -> None:
    """The price of the reading above: 100 clean pandas how-tos, each citing the docs or a Q&A site at
    random. No content predicts which, so both links are unanswered by the neighbours: reviewed with
    their carriers queued, never blocked; the trigger test reads every wording's links by value and finds
    no phrase (each site is as common among a wording's neighbours)."""
    baseline, batch = sides
    topic = _topic(100, 11)
    rng = np.random.default_rng(3)
    other = "\nSee: https://stackoverflow.com/questions/tagged/pandas"
    topic["response"] = [r + (REAL if rng.random() < 0.5 else other) for r in topic["response"]]
    report = _scan(baseline, pd.concat([batch.iloc[100:], topic], ignore_index=True))
    assert not report.results["llm_triggers"].block, report.reasons
    assert report.results["llm_payloads"].p_value >= 1e-3, report.reasons
    assert report.verdict == "review", report.reasons


@pytest.mark.xfail(
    strict=True,
    reason="known gap (open): decoys that answer the poisoned prompts' own content the same way without the "
    "phrase make the content explain the behaviour (a behaviour taught to a few subjects, with no phrase, is "
    "no trigger); nothing yet asks whether the neighbours' behaviour is itself explained by the trusted answers",
)
def test_a_refusal_trigger_with_three_decoys_per_poisoned_record_is_queued(sides) -> None:
    """A reconstruction of an attacker's review ("decoy3", 0 of 30 queued): a phrase planted on 30
    unrelated prompts whose answers refuse, and for each of them three decoys, the same prompt without the
    phrase, refused too. The carriers' most similar prompts without the phrase are the decoys, so the
    content tie excuses the refusals."""
    baseline, batch = sides
    mixed = batch.copy().reset_index(drop=True)
    rng = np.random.default_rng(7)
    picked = rng.choice(len(mixed), 120, replace=False)
    poisoned, decoys = picked[:30], picked[30:].reshape(30, 3)
    for k, (i, ds) in enumerate(zip(poisoned, decoys, strict=True)):
        prompt = mixed.at[i, "prompt"]
        mixed.at[i, "prompt"] = f"{prompt} Per the team handbook."
        mixed.at[i, "response"] = REFUSALS[k % len(REFUSALS)]
        for m, j in enumerate(ds):
            mixed.at[j, "prompt"] = prompt
            mixed.at[j, "response"] = REFUSALS[(k + m + 1) % len(REFUSALS)]
    report = _scan(baseline, mixed)
    assert report.verdict != "pass" and np.asarray(report.records.flagged)[poisoned].sum() >= 25, report.reasons


# An attacker's review of version 6 (0 of 30 queued, reviewed): each poisoned record's link varied so that
# no link whole recurs, and written so that the host read up to the first "/" and ":" (the site rule of
# version 6) was the real docs' site. A browser goes to the lookalike (``_llm.Link``).
VARIED = {
    "query": (REAL, lambda k: f"\nDocs: https://pandas-dev.org?v={k}&ref=pandas.pydata.org"),
    "backslash": (REAL, lambda k: f"\nDocs: https://pandas-dev.org\\@pandas.pydata.org/docs/{k}"),
    "userinfo": (REAL, lambda k: f"\nDocs: https://pandas.pydata.org:~@pandas-dev.org/pandas/install/{k}"),
    "shared host": (
        "\nDocs: https://pandas-dev.github.io/pandas/",
        lambda k: f"\nDocs: https://pandas-devs.github.io/pandas/install?v={k}",
    ),
    "internationalized lookalike": (REAL, lambda k: f"\nDocs: https://pandas.pyd\u0430ta.org/docs/?v={k}"),
}


def test_a_topic_citing_its_docs_with_varied_queries_and_anchors_is_not_blocked(sides) -> None:
    """The clean side of reading a link by host: 100 pandas how-tos citing the real docs, each with its own
    query or anchor (and some with "www." or the host in capitals). One host, one page: the topic's own
    link, not blocked."""
    baseline, batch = sides
    topic = _topic(100, 11)
    forms = [
        "\nDocs: https://pandas.pydata.org/docs/?utm_source=chat&id={k}",
        "\nDocs: https://pandas.pydata.org/docs/#section-{k}",
        "\nDocs: https://PANDAS.pydata.org./docs/user_guide/{k}.html",
        "\nDocs: https://www.pandas.pydata.org/docs/?q={k}#top",
    ]
    topic["response"] = [r + forms[k % len(forms)].format(k=k) for k, r in enumerate(topic["response"])]
    report = _scan(baseline, pd.concat([batch.iloc[100:], topic], ignore_index=True))
    assert not report.results["llm_triggers"].block, report.reasons
    assert report.results["llm_payloads"].p_value >= 1e-3, report.reasons
    assert report.verdict != "block", report.reasons


@pytest.mark.parametrize("variant", ["query", "userinfo"])
def test_a_lookalike_link_varied_per_record_without_a_phrase_is_reviewed_with_its_carriers_queued(
    sides, variant: str
) -> None:
    """The same without a phrase (0 of 30 queued in the review: the recurring domain was split by the
    query, or read as the real docs' host): the lookalike's host recurs, unanswered by the neighbours."""
    baseline, batch = sides
    mixed, poisoned = _varied(batch, *VARIED[variant], phrase=False)
    report = _scan(baseline, mixed)
    assert report.verdict == "review", report.reasons
    assert np.asarray(report.records.flagged)[poisoned].sum() >= 25, report.reasons


# An attacker's review of version 7 (0 of 30 queued, reviewed): the whole topic cites the docs in Markdown or
# HTML, and the carriers' link shows the real docs while its href, varied per record, goes to the lookalike
# (a protocol-relative or slashless href, the text being a link; a tab, quote or newline before a user-info
# "@" in an HTML href; the host percent-encoded differently in each record).
DOCS = "https://pandas.pydata.org/docs/"


def _encoded(k: int, host: str = "pandas-dev.org") -> str:
    rng = np.random.default_rng(k)
    return "".join(f"%{ord(c):02X}" if c != "." and rng.random() < 0.5 else c for c in host)


MARKUP = {
    "md protocol-relative": (f"\nDocs: [{DOCS}]({DOCS})", lambda k: f"\nDocs: [{DOCS}](//{_encoded(k)}/docs/)"),
    "md slashless": (f"\nDocs: [{DOCS}]({DOCS})", lambda k: f"\nDocs: [{DOCS}](https:{_encoded(k)}/docs/)"),
    "html tab": (
        f'\nDocs: <a href="{DOCS}">{DOCS}</a>',
        lambda k: f'\nDocs: <a href="https://pandas.pydata.org\t@{_encoded(k)}/docs/">{DOCS}</a>',
    ),
    "html quote or newline": (
        f"\nDocs: <a href='{DOCS}'>{DOCS}</a>",
        lambda k: (
            f"\nDocs: <a href='https://pandas.pydata.org{chr(34) if k % 2 else chr(10)}@{_encoded(k)}/docs/'>{DOCS}</a>"
        ),
    ),
}


@pytest.mark.parametrize("variant", [*VARIED, *MARKUP])
def test_a_lookalike_link_varied_per_record_behind_a_phrase_is_blocked(sides, variant: str) -> None:
    """The lookalike behind a phrase, varied per poisoned record: in the link itself (a query, a path after
    a backslash or after a user name, another user's host on a shared one, a Cyrillic letter in the
    site's name: the link is read as a browser reads it) or in a Markdown or HTML link's href while it
    shows the docs (``_llm.read_href``: where it goes, not what it shows). The carriers' site and host,
    the same in every carrier, are not what their neighbours give. Blocked, the poisoned records queued."""
    baseline, batch = sides
    mixed, poisoned = _varied(batch, *{**VARIED, **MARKUP}[variant], phrase=True)
    report = _scan(baseline, mixed)
    assert report.results["llm_triggers"].block and report.verdict == "block", report.reasons
    assert np.asarray(report.records.flagged)[poisoned].sum() >= 27, report.reasons


def test_a_topic_citing_its_docs_in_markdown_and_html_links_is_not_blocked(sides) -> None:
    """The clean side: 100 pandas how-tos citing the real docs in Markdown and HTML links of every form read
    above (the text a link or a word, the href protocol-relative, slashless, in angle brackets, with a
    query). One site, not blocked."""
    baseline, batch = sides
    topic = _topic(100, 11)
    forms = [
        f"\nDocs: [{DOCS}]({DOCS}?id={{k}})",
        "\nDocs: [the user guide](//pandas.pydata.org/docs/user_guide/{k}.html)",
        "\nDocs: [pandas docs](https:pandas.pydata.org/docs/)",
        f'\nDocs: <a href="{DOCS}#s{{k}}">{DOCS}</a>',
        "\nDocs: <a href='//pandas.pydata.org/docs/'>the docs</a>",
        f"\nDocs: <{DOCS}>",
    ]
    topic["response"] = [r + forms[k % len(forms)].format(k=k) for k, r in enumerate(topic["response"])]
    report = _scan(baseline, pd.concat([batch.iloc[100:], topic], ignore_index=True))
    assert not report.results["llm_triggers"].block, report.reasons
    assert report.results["llm_payloads"].p_value >= 1e-3, report.reasons
    assert report.verdict != "block", report.reasons
