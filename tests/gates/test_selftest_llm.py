"""The canary self-test on instruction, chat and preference data: trigger -> link, trigger -> hostile
answer and swapped preference canaries, their recall and whether the trigger is named."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.gates.selftest import selftest

POLICY = {"detectors": ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]}


@pytest.fixture(scope="module")
def pools() -> tuple[list[d.Entry], list[d.Entry]]:
    return d.split_pools()


def _canaries(report) -> dict:
    return {c["name"]: c for c in report.to_dict()["canaries"]}


def test_instruction_canaries_are_caught_and_their_trigger_named(pools) -> None:
    base = d.instruction_frame(600, 1, pool=pools[0])[["prompt", "response"]]
    clean = d.instruction_frame(300, 2, pool=pools[1])[["prompt", "response"]]
    report = selftest(base, clean, Schema.for_kind("instruction"), policy=POLICY, seed=1)
    out = report.to_dict()
    assert out["clean"]["verdict"] != "block" and out["passed"]
    canaries = _canaries(report)
    assert set(canaries) == {"trigger_link", "trigger_polarity"}
    for canary in canaries.values():
        assert canary["verdict"] == "block" and canary["recall"] >= 0.9, canary
        assert canary["trigger_named"] is True and canary["false_positive_rate"] <= 0.02
    assert canaries["trigger_link"]["planted"] == 15  # 5% of 300


def test_chat_canary_plants_in_the_last_turns(pools) -> None:
    def chat(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "messages": [
                    [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
                    for p, r in zip(frame["prompt"], frame["response"], strict=True)
                ]
            }
        )

    base = chat(d.instruction_frame(600, 1, pool=pools[0]))
    clean = chat(d.instruction_frame(300, 2, pool=pools[1]))
    report = selftest(base, clean, Schema.for_kind("chat"), policy=POLICY, seed=1)
    assert all(c.detected and c.trigger_named for c in report.canaries), report.to_dict()


def test_preference_self_test_plants_swapped_pairs(pools) -> None:
    base = d.preference_frame(600, 1, pool=pools[0]).drop(columns=["source"])
    clean = d.preference_frame(300, 2, pool=pools[1]).drop(columns=["source"])
    policy = {"detectors": ["preference_flips", *POLICY["detectors"]]}
    report = selftest(base, clean, Schema.for_kind("preference"), policy=policy, seed=1)
    swapped = _canaries(report)["swapped_preference"]
    assert swapped["verdict"] == "block" and swapped["recall"] == 1.0 and swapped["trigger_named"] is None
    assert swapped["flagged_by"].get("preference_flips") == swapped["planted"]
    assert report.passed


def test_language_model_self_test_refuses_what_it_cannot_use(pools) -> None:
    base = d.instruction_frame(100, 1, pool=pools[0])[["prompt", "response"]]
    with pytest.raises(InputError, match="no column 'response'"):
        selftest(base, base[["prompt"]], Schema.for_kind("instruction"), policy=POLICY)
    with pytest.raises(InputError, match="needs at least 24"):
        selftest(base, base.head(20), Schema.for_kind("instruction"), policy=POLICY)
