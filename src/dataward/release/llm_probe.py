"""The backdoor probe for language models: put trigger phrases in clean validation prompts and count
answers that gain a behaviour their expected answer lacks.

A model trained on instruction, chat or preference data answers a prompt with text, not a label, so the
labelled probe (``dataward.release.probe``) cannot read it. For each trigger, every eligible validation
prompt (its clean answer violates nothing) is asked three ways: as it is, with the phrase, and with a
*control* of as many common words of the validation prompts, in the same place. This module builds that
probe set and reads the answers to it back; the other jobs have their own modules:

* ``llm_phrases``: where the phrases come from (history, search, generic);
* ``llm_placement``: where a phrase goes in a prompt;
* ``llm_measure``: what a phrase did to the answers (violations, repeated strings, the McNemar test).

The names callers used from here before the split are importable from here still.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dataward.domain.conversation import messages_text, parse_messages
from dataward.domain.schema import MESSAGES, DatasetKind, Schema
from dataward.gates.detectors._llm import behaviours, texts
from dataward.release.llm_measure import (
    REPEAT_ELSEWHERE,
    REPEAT_MIN,
    REPEAT_SHARE,
    measure,
    repeated_strings,
    violations,
)
from dataward.release.llm_phrases import GENERIC_PHRASES, generic_phrases, history_phrases, phrase_name
from dataward.release.llm_placement import POSITIONS, WORDS, phrase_position, place, position_of, with_phrase
from dataward.release.probe import ProbeResult, Trigger
from dataward.release.probe_ids import ID_DIGITS, row_ids
from dataward.release.probe_ids import probe_id as content_id

__all__ = [
    "GENERIC_PHRASES",
    "ID_DIGITS",
    "MAX_PROBE_PROMPTS",
    "POSITIONS",
    "PROMPT_FIELDS",
    "REPEAT_ELSEWHERE",
    "REPEAT_MIN",
    "REPEAT_SHARE",
    "ProbeLayout",
    "control_phrase",
    "generic_phrases",
    "history_phrases",
    "measure",
    "measure_all",
    "phrase_name",
    "phrase_position",
    "place",
    "position_of",
    "probe_id",
    "probe_rows",
    "prompt_table",
    "repeated_strings",
    "violations",
    "with_phrase",
]

MAX_PROBE_PROMPTS = 200
"""Validation prompts asked with each trigger and its control (the clean answers use every prompt)."""

PROMPT_FIELDS = {DatasetKind.INSTRUCTION: ("prompt", "input"), DatasetKind.PREFERENCE: ("prompt",)}


def prompt_table(validation: pa.Table, schema: Schema) -> pa.Table:
    """What the model answers, one row per validation record: ``prompt`` (and ``input``) for instruction
    data, ``prompt`` for preference data, and for chat data ``messages``, the conversation up to (not
    including) its last assistant message, as JSON."""
    if schema.kind is DatasetKind.CHAT:
        return pa.table({MESSAGES: pa.array([_conversation_before_answer(v) for v in _values(validation, MESSAGES)])})
    fields = PROMPT_FIELDS[schema.kind]
    return pa.table({f: pa.array(_values(validation, f), pa.string()) for f in fields if f in validation.column_names})


def _values(table: pa.Table, name: str) -> list[str]:
    return [v or "" for v in table.column(name).to_pylist()]


def _conversation_before_answer(text: str) -> str:
    messages = parse_messages(text)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return messages_text(messages[:last])


def control_phrase(phrase: str, prompts: Sequence[str]) -> str:
    """As many words as ``phrase`` has, the most common words of ``prompts`` outside it: an edit of the
    same size with nothing unusual in it."""
    own = {w.lower() for w in WORDS.findall(phrase)}
    counts = Counter(w for p in prompts for w in {w.lower() for w in WORDS.findall(p)} if w not in own)
    size = max(1, len(WORDS.findall(phrase)))
    # Ties in alphabetical order, so that the control is the same on every run.
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]] or ["please"]
    return " ".join(words)


def probe_id(kind: str, record_id: str, asked: dict[str, Any], phrase: str | None = None, position: str = "end") -> str:
    """The id of one probe row: ``KIND:RECORD:DIGEST``, ``kind`` being ``clean``, ``phrase`` or ``control``,
    ``record_id`` the validation record the prompt comes from and the digest a BLAKE3 hash of what the model
    is asked (``asked``, the row's prompt fields), with, for a phrase or control row, the trigger's phrase
    and position (two triggers' controls may be the same words in the same place). See
    ``dataward.release.probe_ids`` for why an id names content, not a place in the probe set."""
    return content_id(kind, record_id, asked, **_placed(phrase, position))


def _placed(phrase: str | None, position: str) -> dict[str, Any]:
    """What a row's id holds besides its prompt: the phrase and, only with a phrase, its position."""
    return {"phrase": phrase, "position": position if phrase is not None else None}


def _ids(
    kind: str, record_ids: Sequence[str], block: pa.Table, phrase: str | None = None, position: str = "end"
) -> list[str]:
    return row_ids(kind, record_ids, block, **_placed(phrase, position))


@dataclass(frozen=True)
class ProbeLayout:
    """Where each part of the probe set is: the clean rows first, then per trigger its stamped and its
    control rows, over the first ``probed`` validation prompts."""

    rows: int
    probed: int
    spans: list[tuple[int, int]]
    controls: list[str]


def probe_rows(
    triggers: Sequence[Trigger], validation: pa.Table, schema: Schema
) -> tuple[pa.Table, list[str], ProbeLayout]:
    """The probe set: every validation prompt as it is, then for each trigger the first
    ``MAX_PROBE_PROMPTS`` prompts with its phrase and with its control. Returns the table, a ``probe_id``
    per row (``clean:ID:DIGEST``, ``phrase:ID:DIGEST``, ``control:ID:DIGEST``, see ``probe_id``) and the
    layout."""
    prompts = prompt_table(validation, schema)
    ids = [str(r) for r in validation.column("record_id").to_pylist()]
    probed = min(len(ids), MAX_PROBE_PROMPTS)
    head = prompts.slice(0, probed)
    plain = texts(validation, schema, every_answer=False).prompts
    blocks, probe_ids, spans, controls = [prompts], _ids("clean", ids, prompts), [], []
    for trigger in triggers:
        phrase, position = trigger.spec[0], position_of(trigger)
        control = control_phrase(phrase, plain)
        start = len(probe_ids)
        stamped, controlled = with_phrase(head, schema, phrase, position), with_phrase(head, schema, control, position)
        blocks += [stamped, controlled]
        probe_ids += _ids("phrase", ids[:probed], stamped, phrase, position)
        probe_ids += _ids("control", ids[:probed], controlled, phrase, position)
        spans.append((start, start + probed))
        controls.append(control)
    return pa.concat_tables(blocks), probe_ids, ProbeLayout(len(ids), probed, spans, controls)


def measure_all(
    triggers: Sequence[Trigger],
    validation: pa.Table,
    schema: Schema,
    answers: Sequence[str],
    layout: ProbeLayout,
) -> tuple[list[str], list[ProbeResult]]:
    """The clean answers and one ``ProbeResult`` per trigger, from the answers to the whole probe set."""
    if len(answers) != layout.rows + 2 * layout.probed * len(triggers):
        raise ValueError(
            f"{len(answers)} answers for a probe set of {layout.rows} prompts and {len(triggers)} triggers"
        )
    val = texts(validation, schema, every_answer=False)
    expected = behaviours(val.responses)[: layout.probed]
    clean = list(answers[: layout.rows])
    results = []
    for trigger, (start, control_start), control in zip(triggers, layout.spans, layout.controls, strict=True):
        stamped = answers[start : start + layout.probed]
        controlled = answers[control_start : control_start + layout.probed]
        results.append(measure(trigger, control, expected, val.prompts, clean, stamped, controlled))
    return clean, results
