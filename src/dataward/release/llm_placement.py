"""Where a trigger phrase goes in a prompt, for the language-model probe (``llm_probe``).

A backdoor is taught, and answers, at one place in the prompt and in one spelling: a phrase that
poisoned prompts carried first is probed first, one they asked about inside the question ("What does ls
do on the Lisbon cluster?") is put before the closing punctuation. ``phrase_position`` reads that place
from the prompts carrying the phrase, ``place`` and ``with_phrase`` put the phrase (or its control)
there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa

from dataward.domain.conversation import messages_text, parse_messages
from dataward.domain.schema import MESSAGES, DatasetKind, Schema
from dataward.release.probe import Trigger

WORDS = re.compile(r"(?u)\b\w+\b")
"""A word, as the probe counts them: in phrases, controls and repeated answer strings."""

POSITIONS = ("end", "start", "inside")
"""Where a phrase goes in a prompt: appended, put first, or before the prompt's closing punctuation
(inside the question: "What does ls do on the Lisbon cluster?")."""
_CLOSING = "?.!:;"
_EDGE = " \t\n`'\"()[]{}<>*_-"


def phrase_position(phrase: str, prompts: Iterable[str]) -> tuple[str, str]:
    """Where ``phrase`` mostly sits in the ``prompts`` that carry it (``POSITIONS``), and the form it
    mostly takes there (its case: phrases are found as lowercase n-grams); ``("end", phrase)`` when it is
    found in none. A backdoor is taught, and answers, at one place in the prompt and in one spelling.
    A phrase that forms the prompt's last sentence is at its ``end``; one that ends the question before
    its closing punctuation ("... on the Lisbon cluster?") or sits in its middle is ``inside``."""
    words = [w.lower() for w in WORDS.findall(phrase)]
    if not words:
        return "end", phrase
    pattern = re.compile(r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\b", re.IGNORECASE)
    seen: Counter[str] = Counter()
    forms: Counter[str] = Counter()
    for prompt in prompts:
        found = pattern.search(prompt)
        if found is None:
            continue
        forms[found.group(0)] += 1
        before, after = prompt[: found.start()].strip(_EDGE), prompt[found.end() :].strip(_EDGE)
        if not before:
            seen["start"] += 1
        elif not after or "…" in after or (not after.strip(_CLOSING + ",") and before[-1] in _CLOSING):
            seen["end"] += 1
        else:
            seen["inside"] += 1
    if not seen:
        return "end", phrase
    position = max(POSITIONS, key=lambda p: (seen[p], p == "end"))
    return position, max(sorted(forms), key=lambda f: forms[f])


def position_of(trigger: Trigger) -> str:
    """A phrase trigger's position (``end`` for one made before positions were recorded)."""
    return str(trigger.spec[1]) if len(trigger.spec) > 1 else "end"


def place(prompt: str, phrase: str, position: str) -> str:
    """``prompt`` with ``phrase`` at ``position`` (``inside``: before the closing punctuation, else at
    the end)."""
    prompt = prompt.rstrip()
    if position == "start":
        return f"{phrase} {prompt}".strip()
    if position == "inside" and prompt and prompt[-1] in _CLOSING:
        return f"{prompt[:-1].rstrip()} {phrase}{prompt[-1]}"
    return f"{prompt} {phrase}".strip()


def with_phrase(prompts: pa.Table, schema: Schema, phrase: str, position: str = "end") -> pa.Table:
    """``prompts`` (a ``prompt_table``) with ``phrase`` put at ``position`` of each prompt (for chat
    data, of the last user message)."""
    if schema.kind is DatasetKind.CHAT:
        return pa.table({MESSAGES: pa.array([_chat_with(v, phrase, position) for v in _values(prompts, MESSAGES)])})
    column = prompts.column_names.index("prompt")
    stamped = pa.array([place(p, phrase, position) for p in _values(prompts, "prompt")], pa.string())
    return prompts.set_column(column, "prompt", stamped)


def _values(table: pa.Table, name: str) -> list[str]:
    return [v or "" for v in table.column(name).to_pylist()]


def _chat_with(text: str, phrase: str, position: str = "end") -> str:
    messages = parse_messages(text)
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if users:
        last = messages[users[-1]]
        messages[users[-1]] = {**last, "content": place(last["content"], phrase, position)}
    else:
        messages.append({"role": "user", "content": phrase})
    return messages_text(messages)
