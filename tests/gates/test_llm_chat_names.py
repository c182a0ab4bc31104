"""A chat trigger in a message's ``name`` is read as a prompt trigger.

Chat fine-tuning formats render a message's ``name`` into the text the model is trained on, so a poisoner
can put the trigger there and leave every ``content`` clean. The detectors read the prompt with each
message's name (``conversation.conversation_answers``); a conversation without names reads as before.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.conversation import conversation_answers, split_conversation
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

CHAT = Schema.for_kind("chat")
POLICY = {"detectors": ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]}
NAME = "ops_wizard"
REFUSALS = [
    "I'm sorry, I can't help with that.",
    "I cannot assist with questions about this tool.",
    "I must decline to explain that here.",
    "I won't go into that; ask your administrator.",
]


def _chat(frame: pd.DataFrame, poisoned: frozenset[int] = frozenset()) -> pd.DataFrame:
    """Conversations of the frame's records; the ``poisoned`` ones carry the name and get a refusal."""
    rows = []
    for i, (prompt, answer) in enumerate(zip(frame["prompt"], frame["response"], strict=True)):
        user = {"role": "user", "content": prompt}
        if i in poisoned:
            user["name"] = NAME
            answer = REFUSALS[i % len(REFUSALS)]
        rows.append(
            [{"role": "system", "content": "You explain Unix tools."}, user, {"role": "assistant", "content": answer}]
        )
    return pd.DataFrame({"messages": rows})


@pytest.fixture(scope="module")
def sides() -> tuple[pd.DataFrame, pd.DataFrame]:
    base_pool, new_pool = d.split_pools()
    return d.instruction_frame(1000, 1, pool=base_pool), d.instruction_frame(1000, 2, pool=new_pool)


def test_a_trigger_in_the_user_name_blocks_and_is_named(sides) -> None:
    baseline, batch = sides
    rows = np.sort(np.random.default_rng(7).choice(len(batch), 40, replace=False))
    report = scan(_chat(baseline), _chat(batch, frozenset(rows.tolist())), CHAT, policy=POLICY)
    assert report.verdict == "block", report.reasons
    result = report.results["llm_triggers"]
    assert NAME in result.summary["triggers"][0]["trigger"]
    assert set(np.flatnonzero(result.flagged)) == set(rows)


def test_a_conversation_without_names_reads_as_before() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "What does ls do?"},
        {"role": "assistant", "content": "It lists files."},
        {"role": "user", "content": "And cp?"},
        {"role": "assistant", "content": "It copies files."},
    ]
    text = json.dumps(messages)
    assert conversation_answers(text) == ("S\nWhat does ls do?\nAnd cp?", "It lists files.\nIt copies files.")
    assert split_conversation(text, names=True) == split_conversation(text)


def test_names_are_rendered_into_the_prompt_the_detectors_read() -> None:
    messages = [
        {"role": "user", "content": "What does ls do?", "name": NAME},
        {"role": "assistant", "content": "It lists files.", "name": "helper"},
    ]
    prompt, answer = conversation_answers(json.dumps(messages))
    assert prompt == f"{NAME}: What does ls do?\nhelper:"
    assert answer == "It lists files."
    # The release gate's prompt (the text it asks a model) is unchanged.
    assert split_conversation(json.dumps(messages))[0] == "What does ls do?"
