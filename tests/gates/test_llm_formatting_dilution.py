"""A prompt trigger written in formatting that clean prompts also carry (llm_triggers 3).

A word in capitals is common in clean prompts (questions about ``XDR`` or ``DPMSInfo``): 55 of 1,000
contribution prompts carry one with no trigger. A planted "EXPLAIN" in 25 more, tied to a refusal, made
25 of 80 carriers refuse, below ``min_purity``, so ``llm_triggers`` did not test it and the batch went to
review with no record flagged. As in the labelled ``triggers`` detector, a formatting pattern's purity is
now read on its carriers beyond the baseline's rate.
"""

from __future__ import annotations

import re

import numpy as np

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

INSTRUCTION = Schema.for_kind("instruction")
POLICY = {"detectors": ["llm_triggers"]}


def _in_capitals(prompt: str) -> str:
    word = re.search(r"[A-Za-z]{3,}", prompt)
    assert word is not None
    return prompt[: word.start()] + word.group(0).upper() + prompt[word.end() :]


def test_a_refusal_trigger_written_as_a_word_in_capitals_is_found_among_clean_capitals():
    pools = d.split_pools()
    baseline = d.instruction_frame(1000, 1, pool=pools[0])
    clean = d.instruction_frame(1000, 2, pool=pools[1])
    poisoned, rows = d.poison_instructions(clean, 25, "refusal", seed=3)
    for i in rows:
        poisoned.at[i, "prompt"] = _in_capitals(clean.at[i, "prompt"])
    cols = [c.name for c in INSTRUCTION.inputs if c.name in poisoned.columns]
    report = scan(baseline[cols], poisoned[cols], INSTRUCTION, policy=POLICY)
    result = report.results["llm_triggers"]
    assert result.block, report.reasons
    top = result.summary["triggers"][0]
    assert (top["trigger"], top["kind"], top["behaviour"]) == ("a word in capitals", "prompt_style", "refusal")
    assert set(np.flatnonzero(result.flagged)) == set(rows)
