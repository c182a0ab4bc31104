"""A dataset's schema read from a JSON file (``dataset create --schema FILE``).

The file holds what ``Schema.to_dict`` writes (and ``datasets --json`` prints under each dataset's ``schema``):
``{"label": "y", "inputs": [{"name": "x1", "kind": "numeric"}, ...]}``, or ``{"kind": "chat"}``. A table
of thirty numeric columns then needs one file, not thirty ``--input`` options, and a dataset's schema can
be copied from another's.
"""

from __future__ import annotations

import json
from pathlib import Path

from dataward.domain.errors import InputError, not_a_file
from dataward.domain.schema import Schema
from dataward.io.jsonl_reader import RepeatedKey, unique_keys

MAX_SCHEMA_BYTES = 1 << 20
"""A schema file larger than this is refused before it is read (a schema is a few kilobytes)."""


def read_schema_file(path: str | Path) -> Schema:
    """The schema in the JSON file at ``path``; a clear ``InputError`` names what is wrong with it."""
    file = Path(path)
    if not file.is_file():
        raise not_a_file(file, what="schema file")
    size = file.stat().st_size
    if size > MAX_SCHEMA_BYTES:
        raise InputError(f"{file}: {size:,} bytes is not a schema (at most {MAX_SCHEMA_BYTES:,})")
    try:
        data = json.loads(file.read_text("utf-8"), object_pairs_hook=unique_keys)
    except RepeatedKey as repeated:
        raise InputError(f"the schema file gives {repeated.key!r} twice", hint="give each field once") from None
    except UnicodeDecodeError:
        raise InputError(f"{file}: a schema file must be UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("schema"), dict) and "inputs" not in data:
        data = data["schema"]  # one dataset's entry of `datasets --json`
    return Schema.from_dict(data)
