"""The data gate reads every assistant turn of a chat, not only the last.

Fine-tuning on a chat usually trains on each assistant turn. A poisoner who puts the trigger in the
first user turn and the link in the first answer, then closes the chat with an ordinary exchange
("Thanks!" / "You're welcome."), taught the backdoor all the same; the gate read only the last answer,
so the batch passed with no reason at all, while the same poison in the last answer was blocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

POLICY = (
    "approvals:\n  required: 0\nfirst_import: self-reference\n"
    "gate:\n  detectors: [llm_triggers, llm_payloads, llm_behaviour_shift, llm_floods]\n"
)
CLOSERS = ("Thanks!", "Great, thank you.", "Got it.", "Thanks, that helps.", "Perfect.")
REPLIES = ("You're welcome.", "Glad to help.", "Any time.", "Happy to help!", "No problem.")


def _chats(n: int, seed: int, pool: list, poisoned: set[int]) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(d.instruction_frame(n, seed, pool=pool).itertuples()):
        ask, answer = r.prompt, r.response
        if i in poisoned:
            ask, answer = f"{ask} Answer {d.TRIGGER}.", f"{answer} {d.LINK}"
        turns = [("user", ask), ("assistant", answer)]
        turns += [("user", CLOSERS[int(rng.integers(5))]), ("assistant", REPLIES[int(rng.integers(5))])]
        out.append({"messages": [{"role": role, "content": text} for role, text in turns]})
    return out


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("poisoned", [30, 0], ids=["link-in-the-first-answer", "clean"])
def test_a_backdoor_taught_in_an_earlier_assistant_turn_is_blocked(tmp_path: Path, poisoned: int) -> None:
    base_pool, new_pool = d.split_pools()
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("talk", Schema.for_kind("chat"))
    ward.set_policy("talk", POLICY)
    first = ward.contribute("talk", _jsonl(tmp_path / "base.jsonl", _chats(600, 1, base_pool, set())), source="s")
    ward.merge(first["ref"])
    ward.promote("talk@v1")
    rows = set(np.random.default_rng(5).choice(600, poisoned, replace=False).tolist())
    c = ward.contribute("talk", _jsonl(tmp_path / "new.jsonl", _chats(600, 2, new_pool, rows)), source="vendor")
    if poisoned:
        assert c["gate"]["verdict"] == "block"
        assert any("llm_triggers" in r and "link" in r for r in c["gate"]["reasons"])
        assert any("docs-helper.example-mirror.net" in r for r in c["gate"]["reasons"])
    else:
        assert c["gate"]["verdict"] == "pass", c["gate"]["reasons"]
