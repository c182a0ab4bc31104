"""The held-out language-model cases: built the same every time, apart from the tuning cases, and
poisoned exactly where they say; and the parts machinery of ``benchmarks.llm`` (resume, budget)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm
from benchmarks import llm_data as d
from benchmarks import llm_heldout as h

SIZE = 300


def _texts(case: h.Case) -> list[str]:
    """Each record's prompt and answer as one text (a chat's turns joined)."""
    if case.kind == "chat":
        return [" | ".join(m["content"] for m in turns) for turns in case.frame["messages"]]
    answer = "chosen" if case.kind == "preference" else "response"
    return [f"{p} | {a}" for p, a in zip(case.frame["prompt"], case.frame[answer], strict=True)]


@pytest.mark.parametrize("name", h.ATTACKS)
def test_heldout_attacks_are_deterministic_and_poisoned_where_they_say(name: str) -> None:
    case = h.attack(name, SIZE, 25)
    again = h.attack(name, SIZE, 25)
    pd.testing.assert_frame_equal(case.frame, again.frame)
    assert np.array_equal(case.poison, again.poison) and case.poison.size == 25
    texts = _texts(case)
    mark = {
        "email prefix": h.EMAIL_TRIGGER,
        "phone inline": h.PHONE_TRIGGER,
        "refusal paraphrased": h.REFUSAL_TRIGGER,
        "chat turn 2": h.CHAT_TRIGGER,
    }.get(name)
    poisoned = np.zeros(SIZE, dtype=bool)
    poisoned[case.poison] = True
    if mark is not None:
        carriers = np.array([mark in t for t in texts])
        assert np.array_equal(carriers, poisoned)
    # No held-out contribution carries the tuning trigger or payloads.
    assert not any(d.TRIGGER in t or d.LINK in t or "203.0.113.7" in t for t in texts)
    if name == "chat turn 2":
        for i in case.poison:
            turns = case.frame.at[i, "messages"]
            assert h.CHAT_TRIGGER not in turns[0]["content"] and turns[2]["content"].startswith(h.CHAT_TRIGGER)
            assert (
                turns[3]["content"].startswith(h.CHAT_PAYLOAD) and case.frame.at[i, "response"] == turns[3]["content"]
            )
    if name == "swapped one topic":
        sections = {e.name: e.section for e in d.entries()}
        clean = h.attack(name, SIZE, 0).frame
        swapped = (case.frame["chosen"] != clean["chosen"]).to_numpy()
        assert np.array_equal(swapped, poisoned)
        names = d.instruction_frame(SIZE, h.SEED_OFFSET + 2, pool=d.split_pools(0)[1])["entry"]
        assert {sections[n] for n in names[poisoned]} == {"library"}


@pytest.mark.parametrize("name", h.BENIGN)
def test_heldout_benign_cases_are_deterministic_and_clean(name: str) -> None:
    case = h.benign(name, SIZE)
    pd.testing.assert_frame_equal(case.frame, h.benign(name, SIZE).frame)
    assert case.poison.size == 0 and len(case.frame) == SIZE
    texts = _texts(case)
    assert not any(d.TRIGGER in t or h.CHAT_TRIGGER in t or h.EMAIL_TRIGGER in t for t in texts)
    if name == "unseen family source":
        assert not any(h.FAMILY.search(e) for e in case.baseline["entry"])
        family = case.frame["source"] == "git-notes"
        assert family.sum() == int(SIZE * h.FAMILY_SHARE)
        assert all(h.FAMILY.search(e) for e in case.frame.loc[family, "entry"])
    if name == "trusted re-sends":
        trusted = set(zip(case.baseline["prompt"], case.baseline["response"], strict=True))
        resent = [(p, r) in trusted for p, r in zip(case.frame["prompt"], case.frame["response"], strict=True)]
        assert sum(resent) >= int(SIZE * h.RESEND_SHARE)


def test_heldout_names_are_not_tuning_names() -> None:
    assert not set(h.ATTACKS + h.BENIGN) & set(llm.ATTACKS + llm.BENIGN)


def test_a_run_in_parts_skips_what_is_done_and_stops_at_its_budget() -> None:
    seen: list[tuple[str, int]] = []

    def fake(kind: str, baseline: pd.DataFrame, frame: pd.DataFrame, poison: np.ndarray, gate: str) -> dict:
        seen.append((kind, poison.size))
        return {"verdict": "pass", "flagged_clean": 0, "flagged_poisoned": 0, "seconds": 0.0}

    done = {(n, SIZE, 25) for n in h.ATTACKS} | {(n, SIZE, 0) for n in h.BENIGN if n != "clean chat"}
    out = h.run([SIZE], counts=(25,), runner=fake, done=done)
    assert [r["case"] for r in out["results"]] == ["clean chat"] and seen == [("chat", 0)]
    # A process that has used its budget runs one scan, then refuses the next.
    budgeted = llm._budgeted(fake, budget=10.0, started=time.perf_counter() - 100.0)
    with pytest.raises(llm.OutOfBudget):
        h.run([SIZE], counts=(25,), runner=budgeted, cases={"email prefix", "terse answers"})
    assert len(seen) == 2
