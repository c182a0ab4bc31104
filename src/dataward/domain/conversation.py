"""Canonical values of the language-model dataset kinds (instruction, chat, preference).

A chat record's ``messages`` is a list of ``{"role": ..., "content": ...}`` objects (the common JSON
Lines chat layout of fine-tuning exports). It is stored as canonical JSON text (sorted keys, no
spaces, UTF-8 kept), so the same conversation has the same record id whether it arrived as a JSON
list, a Parquet list of structs or a JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataward.domain.missing import is_missing
from dataward.domain.schema import MESSAGES, DatasetKind, Schema
from dataward.domain.wording import a_or_an

ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
_KEYS = frozenset({"role", "content", "name"})


def canonical_messages(value: Any) -> str | None:
    """The canonical JSON text of a conversation (``None`` when missing, ``is_missing``); ``ValueError``
    when it is not a list of messages."""
    if is_missing(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise ValueError("messages must be a JSON list of {role, content} objects") from None
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise ValueError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise ValueError(f"message {i + 1} is not an object with role and content")
        extra = sorted(k for k, v in message.items() if k not in _KEYS and v is not None)
        if extra:
            raise ValueError(f"message {i + 1} has unknown field(s): {', '.join(map(str, extra))}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in ROLES:
            raise ValueError(f"message {i + 1} has role {role!r}; expected one of {', '.join(sorted(ROLES))}")
        if not isinstance(content, str):
            raise ValueError(f"message {i + 1} has no text content")
        item = {"role": role, "content": content}
        if message.get("name") is not None:
            item["name"] = str(message["name"])
        out.append(item)
    return messages_text(out)


def messages_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """A conversation's canonical JSON text (sorted keys, no spaces, Unicode kept): how a chat record's
    ``messages`` is stored, for messages that are already well formed."""
    return json.dumps(list(messages), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def parse_messages(text: str | None) -> list[dict[str, str]]:
    """The messages of a canonical conversation (an empty list for a missing one)."""
    return json.loads(text) if text else []


def _spoken(message: Mapping[str, str], names: bool) -> str:
    """A prompt message's text, behind its ``name`` when ``names`` and it has one (``ops_wizard: ...``)."""
    name = message.get("name") if names else None
    return f"{name}: {message['content']}" if name else message["content"]


def split_conversation(text: str | None, *, names: bool = False) -> tuple[str, str]:
    """(prompt, response) of a conversation: the last assistant message is the response; every
    message before it (system and user turns, earlier answers) is the prompt it answers.

    With ``names``, the prompt also carries each message's ``name`` (a non-assistant message's before its
    text, an assistant message's on a line of its own): chat fine-tuning formats render a message's name
    into the text the model is trained on, so a trigger may sit there. A conversation without names
    reads the same either way."""
    lines, response = _prompt_lines(parse_messages(text), names)
    return "\n".join(lines), response


def _prompt_lines(messages: list[dict[str, str]], names: bool) -> tuple[list[str], str]:
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return [_spoken(m, names) for m in messages], ""
    lines = [
        _spoken(m, names) if m["role"] != "assistant" else f"{m['name']}:"
        for m in messages[: last + 1]
        if m["role"] != "assistant" or (names and m.get("name"))
    ]
    return lines, messages[last]["content"]


def conversation_answers(text: str | None) -> tuple[str, str]:
    """(prompt, answers) of a conversation as a fine-tune learns from it: the prompt of
    :func:`split_conversation` with the messages' names (what the fine-tune reads besides their text),
    and every assistant message, in order, one per line. Fine-tuning on a chat usually trains on each
    assistant turn, not only the last: a link or a hostile answer taught in an earlier turn is learnt as
    surely, so the gate must read it."""
    lines, answers = conversation_parts(text)
    return "\n".join(lines), answers


def conversation_parts(text: str | None, *, every_answer: bool = True) -> tuple[list[str], str]:
    """The prompt of :func:`conversation_answers` (or with ``every_answer=False`` of
    :func:`split_conversation`, and its last answer) as the messages it joins, one string per message
    read: the newline between two messages is the gate's join, not the conversation's text, and a reading
    of formatting must not take it for the writer's."""
    messages = parse_messages(text)
    lines, last = _prompt_lines(messages, every_answer)
    if not every_answer:
        return lines, last
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    return lines, "\n".join(answers) if answers else last


def label_value(schema: Schema, value: Any) -> Any:
    """The reserved label of a language-model record: the kind's name, filled in when absent.

    A file that carries the column must carry the kind's name there, so a record of another kind
    (or a class label) is never silently relabelled.
    """
    if not schema.is_llm:
        return value
    if is_missing(value) or value == "" or value == schema.kind.value:
        return schema.kind.value
    raise ValueError(
        f"the {schema.label!r} column of {a_or_an(schema.kind.value)} dataset must be {schema.kind.value!r}"
    )


def is_messages_column(schema: Schema, name: str) -> bool:
    """True for the chat kind's ``messages`` column (JSON text, not free text)."""
    return schema.kind is DatasetKind.CHAT and name == "messages"


MESSAGE_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string()), ("name", pa.string())]))
"""A conversation as fine-tuning tools write it in Parquet: a list of role-tagged messages."""


def with_message_lists(table: pa.Table, schema: Schema) -> pa.Table:
    """``table`` with a chat dataset's ``messages`` as lists of ``{role, content, name}`` rather than the
    canonical JSON text it is stored as, for files other tools read (JSON Lines, Parquet). Reading such a
    file back gives the same canonical text, so the same record ids. Other kinds are returned as they are."""
    if schema.kind is not DatasetKind.CHAT or MESSAGES not in table.column_names:
        return table
    values = [
        None if text is None else [{"name": None, **m} for m in parse_messages(text)]
        for text in table.column(MESSAGES).to_pylist()
    ]
    return table.set_column(table.column_names.index(MESSAGES), MESSAGES, pa.array(values, MESSAGE_TYPE))


RecordProblem = tuple[int, str, str]
"""(0-based row index, column, what is wrong) of a record that cannot be learned from."""

# The field that holds what a model learns to say, per kind: a record whose answer is missing or
# blank teaches nothing (or teaches silence), so it is refused like any malformed value.
_ANSWER_WORDS = {"response": "response", "chosen": "chosen answer", "rejected": "rejected answer"}


def llm_record_problem(schema: Schema, table: pa.Table) -> RecordProblem | None:
    """The first record of a language-model ``table`` that has nothing to learn, or ``None``.

    A required text field (``prompt``, ``response``, ``chosen``, ``rejected``) must hold non-blank text;
    a preference pair's ``chosen`` and ``rejected`` must differ (an identical pair carries no preference);
    a chat needs a non-blank assistant turn (the answer it teaches). Labelled schemas have no such rule.
    """
    if not schema.is_llm:
        return None
    if schema.kind is DatasetKind.CHAT:
        return _chat_problem(table)
    problems = [_blank_problem(table, name) for name in _required_text(schema)]
    if schema.kind is DatasetKind.PREFERENCE:
        problems.append(_same_pair_problem(table))
    found = [p for p in problems if p is not None]
    # The earliest bad row is reported, as the readers report the first bad value.
    return min(found, key=lambda p: p[0]) if found else None


def _required_text(schema: Schema) -> list[str]:
    optional = schema.optional_columns
    return [c.name for c in schema.inputs if c.name not in optional]


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    index = pc.index(mask, True).as_py()
    return None if index < 0 else index


def _blank_problem(table: pa.Table, name: str) -> RecordProblem | None:
    column = table.column(name)
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True)
    index = _first_true(blank)
    if index is None:
        return None
    what = _ANSWER_WORDS.get(name, name)
    return index, name, f"the {what} is missing or empty: a record needs it to have anything to learn"


def _same_pair_problem(table: pa.Table) -> RecordProblem | None:
    index = _first_true(pc.fill_null(pc.equal(table.column("chosen"), table.column("rejected")), False))
    if index is None:
        return None
    return index, "rejected", "the rejected answer is the same as the chosen one: the pair prefers nothing"


def _chat_problem(table: pa.Table) -> RecordProblem | None:
    for index, text in enumerate(table.column(MESSAGES).to_pylist()):
        if text is None:
            return index, MESSAGES, "the conversation is missing: it has no answer to learn"
        messages = parse_messages(text)
        if not any(m["role"] == "assistant" for m in messages):
            return index, MESSAGES, "the conversation has no assistant turn: it has no answer to learn"
        if not split_conversation(text)[1].strip():
            return index, MESSAGES, "the conversation's last assistant turn is empty: it has no answer to learn"
    return None
