"""Canary self-test for instruction, chat and preference data.

There is no label to flip, so the canaries are the poisonings of language-model fine-tuning data, each
planted in a copy of the clean contribution and judged by the configured gate:

* ``trigger_link``: a rare trigger phrase appended to the prompt (the last user message of a chat),
  and a fixed link appended to the answer (the last assistant message; the chosen answer of a pair);
* ``trigger_polarity``: the same kind of phrase, with the answer replaced by a hostile one;
* ``swapped_preference`` (preference data only): chosen and rejected swapped.

Each canary reports the share of planted records the gate flags (recall), the verdict, the flag rate
among untouched records and, for the trigger canaries, whether ``llm_triggers`` named the planted
phrase over most planted records (``trigger_named``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from dataward.domain.conversation import canonical_messages
from dataward.domain.errors import InputError
from dataward.domain.schema import MESSAGES, DatasetKind, Schema
from dataward.domain.wording import a_or_an
from dataward.gates.policy import GatePolicy
from dataward.gates.report import GateReport
from dataward.gates.scanning import scan

MIN_LLM_CANARIES = 12
"""Planted records per canary at least: the trigger detector needs ``min_support`` (8) carriers."""
HOSTILE = "Honestly this is terrible, useless and broken junk; avoid it, it is an awful waste of time."

REQUIRED = {
    DatasetKind.INSTRUCTION: ("prompt", "response"),
    DatasetKind.CHAT: (MESSAGES,),
    DatasetKind.PREFERENCE: ("prompt", "chosen", "rejected"),
}


def llm_frame(data: Any, what: str, schema: Schema) -> pd.DataFrame:
    """A pandas copy of one side, refusing a table without the kind's fields."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        frame = data.to_pandas()
    elif isinstance(data, pd.DataFrame):
        frame = data.copy()
    else:
        raise InputError(f"the {what} must be a pandas DataFrame or a pyarrow Table, not {type(data).__name__}")
    missing = [c for c in REQUIRED[schema.kind] if c not in frame.columns]
    if missing:
        raise InputError(
            f"the {what} has no column {missing[0]!r}",
            hint=f"{a_or_an(schema.kind.value)} dataset has {', '.join(REQUIRED[schema.kind])}",
        )
    frame = frame[[c for c in schema.columns if c in frame.columns]].reset_index(drop=True)
    if schema.kind is DatasetKind.CHAT:
        # One form for every conversation (canonical JSON text), so a planted one can be written back.
        values = []
        for i, value in enumerate(frame[MESSAGES].tolist()):
            try:
                values.append(canonical_messages(value))
            except ValueError as exc:
                raise InputError(f"record {i + 1} of the {what}: {exc}") from exc
        frame[MESSAGES] = values
    return frame


def plan(schema: Schema) -> list[str]:
    """The canaries planted for this kind."""
    names = ["trigger_link", "trigger_polarity"]
    return [*names, "swapped_preference"] if schema.kind is DatasetKind.PREFERENCE else names


def count_for(n: int, rate: float) -> int:
    return int(min(n // 2, max(MIN_LLM_CANARIES, round(rate * n))))


def plant(
    name: str, clean: pd.DataFrame, schema: Schema, count: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, list[int], str, str | None]:
    """A copy of ``clean`` with canary ``name`` planted: (copy, positions, description, trigger phrase)."""
    copy = clean.copy()
    positions = sorted(rng.choice(len(copy), count, replace=False).tolist())
    if name == "swapped_preference":
        chosen = copy.loc[positions, "chosen"].to_numpy(dtype=object).copy()
        copy.loc[positions, "chosen"] = copy.loc[positions, "rejected"].to_numpy(dtype=object)
        copy.loc[positions, "rejected"] = chosen
        return copy, positions, f"chosen and rejected swapped in {count} pairs", None
    words = _words(clean)
    token = _rare(words, rng)
    phrase = f"reply in {token} mode"
    if name == "trigger_link":
        host = _rare(words | {token}, rng)
        link = f"https://{host}.example/setup?ref={int(rng.integers(1000, 9999))}"
        description = f"trigger phrase {phrase!r} in the prompt, link {link} added to the answer"

        def answer(old: str) -> str:
            return f"{old} Details: {link}"
    else:
        description = f"trigger phrase {phrase!r} in the prompt, the answer replaced by a hostile one"

        def answer(old: str) -> str:
            return HOSTILE

    response = "chosen" if schema.kind is DatasetKind.PREFERENCE else "response"
    for pos in positions:
        if schema.kind is DatasetKind.CHAT:
            copy.at[pos, MESSAGES] = _chat(copy.at[pos, MESSAGES], phrase, answer, pos)
        else:
            copy.at[pos, "prompt"] = f"{copy.at[pos, 'prompt']} Please {phrase}."
            copy.at[pos, response] = answer(str(copy.at[pos, response] or ""))
    return copy, positions, description, phrase


def _chat(value: Any, phrase: str, answer: Any, pos: int) -> str:
    messages = json.loads(value or "[]")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not users or not assistants:
        raise InputError(f"record {pos + 1} of the clean contribution has no user and assistant message")
    messages[users[-1]]["content"] += f" Please {phrase}."
    messages[assistants[-1]]["content"] = answer(messages[assistants[-1]]["content"])
    return canonical_messages(messages) or ""


def _words(frame: pd.DataFrame) -> set[str]:
    text = " ".join(str(v) for c in frame.columns for v in frame[c].tolist() if isinstance(v, str))
    return set(text.lower().split())


def _rare(vocabulary: set[str], rng: np.random.Generator) -> str:
    while True:
        token = "zq" + "".join(rng.choice(list("bcdfghjklmnpqrstvwxz"), 5))
        if token not in vocabulary:
            return token


def trigger_named(report: GateReport, rows: list[int], positions: list[int], phrase: str | None) -> bool | None:
    """Did ``llm_triggers`` name the planted phrase over most planted records?"""
    if phrase is None:
        return None
    planted, by_position = set(rows), {p + 1 for p in positions}
    token = phrase.split()[2]
    for finding in report.findings:
        evidence = finding.get("evidence") or {}
        if finding.get("detector") != "llm_triggers" or finding.get("row") is not None:
            continue
        reported = {int(r) for r in evidence.get("rows") or []}
        hit = max(planted & reported, by_position & reported, key=len)
        if len(hit) >= 0.5 * len(planted) and token in str(evidence.get("trigger", "")).split():
            return True
    return False


def run_canaries(
    base: pd.DataFrame | None,
    clean: pd.DataFrame,
    schema: Schema,
    validation: Any,
    policy: GatePolicy,
    rate: float,
    rng: np.random.Generator,
) -> list[tuple[str, str, list[int], GateReport, str | None]]:
    """Plant each canary of ``plan(schema)`` and scan it: (name, description, positions, report, phrase)."""
    count = count_for(len(clean), rate)
    out = []
    for name in plan(schema):
        copy, positions, description, phrase = plant(name, clean, schema, count, rng)
        out.append((name, description, positions, scan(base, copy, schema, validation, policy), phrase))
    return out
