"""A record's normalized identity: its id once its text is read as a person reads it.

A record id hashes text exactly as given (``records.canonical_text`` keeps every byte), so a trailing
space, CRLF line ends, a no-break space or the decomposed form of an accent make another record to the
id, while a reader and a model see the same one. The normalized identity is the BLAKE3 of the same
canonical encoding (``records.record_digest_array``, no second encoder) over the record with every text
value normalized:

* NFKC form, without the characters no screen draws (``names.read_alike``) and without the control
  characters that are not whitespace (C0 but tab and line ends, DEL, C1: a bell or a NUL slipped into a
  text is drawn by no screen, and tokenizers drop them);
* every run of whitespace (Unicode's, as ``str.split`` knows it) folded to one space, and none at
  either end;
* an input text left empty by that is a missing one (an instruction's ``input`` of ``""`` or of one
  space is no input to a prompt template).

Text values are the text input columns, the label, and each message's content (and speaker name) of a
chat's conversation. Other kinds (numbers, categories, image bytes, embeddings) are kept as they are.
A schema without text input columns has no normalized identity (``None``): its labels alone do not make
two records near copies, and such datasets pay nothing.

The identity never replaces a record id (which every stored version and signed event names); it is
only compared with that of quarantined records, to hold back near copies of them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dataward.domain.conversation import is_messages_column, messages_text, parse_messages
from dataward.domain.names import read_alike
from dataward.domain.records import record_digest_array
from dataward.domain.schema import RECORD_ID, ColumnKind, Schema

NORMALIZATION = "dataward/normalized/v2"
"""Names this normalization: a change to it must change this name (caches of digests are keyed on it)."""


_CONTROLS = {code: None for code in (*range(0x20), *range(0x7F, 0xA0)) if not chr(code).isspace()}
"""The control characters (category Cc) that are not whitespace, for ``str.translate`` to drop."""


def normalized_text(text: str) -> str:
    """``text`` with its Unicode form and spacing normalized (see the module docstring)."""
    if not text.isprintable():  # a C test: most texts hold no control character (a line end is one)
        text = text.translate(_CONTROLS)
    return " ".join(read_alike(text).split())


def _normalized_messages(text: str) -> str:
    messages = parse_messages(text)
    for message in messages:
        for key in ("content", "name"):
            if isinstance(message.get(key), str):
                message[key] = normalized_text(message[key])
        if message.get("name") == "":
            # A speaker name of nothing drawn (empty, or only spaces and invisible characters) names no
            # one: the same message as one without a name.
            del message["name"]
    return messages_text(messages)


def text_columns(schema: Schema) -> tuple[str, ...]:
    """The columns the normalization changes: the text input columns, then the label; none (an empty
    tuple) when the schema has no text input column."""
    texts = tuple(c.name for c in schema.inputs if c.kind is ColumnKind.TEXT)
    return (*texts, schema.label) if texts else ()


def encoding_key(schema: Schema) -> tuple[tuple[str, str], ...]:
    """What a record's canonical encoding depends on: each column's name and kind (the label's as
    ``label``). Two schemas with the same key give the same digests to the same values."""
    kinds = [(c.name, c.kind.value) for c in schema.inputs] + [(schema.label, "label")]
    return tuple(sorted(kinds))


def normalized_table(schema: Schema, table: pa.Table) -> pa.Table | None:
    """``table`` (canonical columns; ``record_id``, if any, dropped) with every text value normalized;
    ``None`` when the schema has no text input column."""
    columns = text_columns(schema)
    if not columns:
        return None
    if RECORD_ID in table.column_names:
        table = table.drop_columns([RECORD_ID])
    for name in columns:
        fold = _normalized_messages if is_messages_column(schema, name) else normalized_text
        values = [None if v is None else fold(v) for v in table.column(name).to_pylist()]
        if name != schema.label:
            # Text of nothing drawn reads as no text (a prompt template leaves out an empty input).
            values = [v or None for v in values]
        index = table.column_names.index(name)
        table = table.set_column(index, table.field(index), pa.array(values, table.field(index).type))
    return table


def normalized_digest_array(schema: Schema, table: pa.Table) -> np.ndarray | None:
    """The normalized identity of every row of a canonical table, as ``(n, 32)`` uint8 digests in its
    order; ``None`` when the schema has no text input column (see the module docstring)."""
    normalized = normalized_table(schema, table)
    return None if normalized is None else record_digest_array(schema, normalized)


__all__ = [
    "NORMALIZATION",
    "encoding_key",
    "normalized_digest_array",
    "normalized_table",
    "normalized_text",
    "text_columns",
]
