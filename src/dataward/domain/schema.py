"""Dataset schemas: which column is the label and what kind each input column is.

The schema decides how a value is canonicalized (and so its record id), how it is stored in Arrow,
and which featurizer turns it into vectors for the gates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dataward.domain.errors import InputError
from dataward.domain.wording import a_or_an

if TYPE_CHECKING:
    import pyarrow as pa

RECORD_ID = "record_id"
"""Name of the column that carries a record's id in every table dataward hands out."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
NAME_RULE = (
    "a column name starts with a letter or _ and holds letters, digits, _ . - (at most 128 characters): "
    "rename the file's column first (e.g. 'sepal length (cm)' as sepal_length_cm)"
)


class DatasetKind(StrEnum):
    """What one record of a dataset is.

    ``labelled``: inputs and a class label (the default). The language-model fine-tuning kinds have no
    class label: ``instruction`` (``prompt``, optional ``input``, ``response``), ``chat`` (``messages``, a
    list of ``{"role", "content"}`` objects kept as canonical JSON text) and ``preference`` (``prompt``,
    ``chosen``, ``rejected``). Their schemas are fixed (``Schema.for_kind``); the label slot holds the
    kind's name in a reserved ``kind`` column that readers fill in, so record ids, versions, the ledger
    and every store path stay the same for all kinds, and no detector can mistake it for a class.
    """

    LABELLED = "labelled"
    INSTRUCTION = "instruction"
    CHAT = "chat"
    PREFERENCE = "preference"


LLM_KINDS = frozenset({DatasetKind.INSTRUCTION, DatasetKind.CHAT, DatasetKind.PREFERENCE})
LLM_LABEL = "kind"
"""The reserved label column of the language-model kinds; its value is the kind's name."""
MESSAGES = "messages"
"""The chat kind's one column: the conversation as canonical JSON text."""
_LLM_FIELDS: dict[DatasetKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (required text fields, optional text fields), in schema order
    DatasetKind.INSTRUCTION: (("prompt", "response"), ("input",)),
    DatasetKind.CHAT: ((MESSAGES,), ()),
    DatasetKind.PREFERENCE: (("prompt", "chosen", "rejected"), ()),
}


class ColumnKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    EMBEDDING = "embedding"


MAX_DIM = 2**31 - 1
"""The largest column dimension: an embedding is an Arrow fixed-size list, which holds at most this many
values (a larger one failed when the dataset's Arrow schema was built, or at the ledger's seal)."""


@dataclass(frozen=True)
class Column:
    """One input column. ``dim`` is required for embeddings; ``featurizer`` overrides the default."""

    name: str
    kind: ColumnKind
    dim: int | None = None
    featurizer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind.value}
        if self.dim is not None:
            out["dim"] = self.dim
        if self.featurizer is not None:
            out["featurizer"] = self.featurizer
        return out


def _input_specs(raw: Any) -> list[Mapping[str, Any]]:
    """A schema's ``inputs``: a list of ``{"name", "kind", ["dim"], ["featurizer"]}``, or a mapping of
    each column's name to its kind (``{"text": "text"}``) or to the rest of its spec."""
    if isinstance(raw, Mapping):
        return [{"name": name, **(spec if isinstance(spec, Mapping) else {"kind": spec})} for name, spec in raw.items()]
    if isinstance(raw, str) or not all(isinstance(c, Mapping) for c in raw):
        raise InputError(
            "a schema's inputs are a list of columns, each {'name': ..., 'kind': ...}",
            hint="e.g. {'label': 'y', 'inputs': [{'name': 'text', 'kind': 'text'}]} or {'inputs': {'text': 'text'}}",
        )
    return list(raw)


def _input_column(spec: Mapping[str, Any]) -> Column:
    dim = spec.get("dim")
    if isinstance(dim, bool) or (isinstance(dim, float) and not dim.is_integer()):
        raise InputError(f"column {spec.get('name')!r}: its dimension {dim!r} is not an integer")
    return Column(
        name=str(spec["name"]),
        kind=_kind(spec["kind"]),
        dim=int(dim) if dim is not None else None,
        featurizer=spec.get("featurizer"),
    )


@dataclass(frozen=True)
class Schema:
    """The label column and the input columns of a dataset."""

    label: str
    inputs: tuple[Column, ...] = field(default_factory=tuple)
    kind: DatasetKind = DatasetKind.LABELLED

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _dataset_kind(self.kind))
        if self.kind in LLM_KINDS:
            expected = Schema.for_kind(self.kind)
            if self.label != expected.label or self.inputs != expected.inputs:
                raise InputError(
                    f"{a_or_an(self.kind.value)} dataset has the fixed columns {', '.join(expected.columns)}",
                    hint=f"declare it with kind {self.kind.value!r} only",
                )
        if not _NAME.fullmatch(self.label):
            raise InputError(f"label column name {self.label!r} is not a valid column name", hint=NAME_RULE)
        if not self.inputs:
            raise InputError("a schema needs at least one input column", hint="e.g. --input text:text")
        seen = {self.label}
        for col in self.inputs:
            if not _NAME.fullmatch(col.name):
                raise InputError(f"column name {col.name!r} is not a valid column name", hint=NAME_RULE)
            if col.name in seen:
                raise InputError(f"column {col.name!r} appears twice in the schema")
            if col.name == RECORD_ID:
                raise InputError(f"{RECORD_ID!r} is reserved for record ids", hint="rename the column")
            if col.kind is ColumnKind.EMBEDDING and (col.dim is None or col.dim <= 0):
                raise InputError(
                    f"embedding column {col.name!r} needs a positive dimension",
                    hint=f"{col.name}:embedding:384",
                )
            if col.dim is not None and abs(col.dim) > MAX_DIM:
                raise InputError(f"the dimension of column {col.name!r} is over {MAX_DIM}: {col.dim}")
            if col.featurizer is not None and not isinstance(col.featurizer, str):
                raise InputError(f"the featurizer of column {col.name!r} must be a name, got {col.featurizer!r}")
            seen.add(col.name)

    @classmethod
    def for_kind(cls, kind: DatasetKind | str) -> Schema:
        """The fixed schema of a language-model kind: its text fields and the reserved ``kind`` label."""
        kind = _dataset_kind(kind)
        if kind not in LLM_KINDS:
            raise InputError(f"dataset kind {kind.value!r} has no fixed schema", hint="declare its columns")
        required, optional = _LLM_FIELDS[kind]
        # Hashed n-grams by default: the language-model detectors read the raw text, the vectors only
        # serve the report (a policy may name ``tfidf`` or ``minilm`` per field instead).
        inputs = tuple(Column(name, ColumnKind.TEXT, featurizer="hashed") for name in (*required, *optional))
        schema = object.__new__(cls)
        # Built without __post_init__'s check, which compares against this very schema.
        object.__setattr__(schema, "label", LLM_LABEL)
        object.__setattr__(schema, "inputs", inputs)
        object.__setattr__(schema, "kind", kind)
        return schema

    @property
    def is_llm(self) -> bool:
        """True for the language-model kinds (no class label)."""
        return self.kind in LLM_KINDS

    @property
    def optional_columns(self) -> frozenset[str]:
        """Columns a file may leave out: the reserved label and optional fields of the language-model kinds."""
        if self.kind not in LLM_KINDS:
            return frozenset()
        return frozenset({self.label, *_LLM_FIELDS[self.kind][1]})

    @property
    def columns(self) -> list[str]:
        """All columns in schema order: inputs, then the label."""
        return [c.name for c in self.inputs] + [self.label]

    def column(self, name: str) -> Column:
        for col in self.inputs:
            if col.name == name:
                return col
        raise InputError(f"the schema has no input column {name!r}")

    def of_kind(self, kind: ColumnKind) -> list[Column]:
        return [c for c in self.inputs if c.kind is kind]

    def arrow_schema(self, *, with_record_id: bool = True) -> pa.Schema:
        """The canonical Arrow schema: ``record_id`` (optional), inputs, label."""
        import pyarrow as pa

        from dataward.domain.arrow_types import ARROW_TYPES, LABEL_ARROW_TYPE

        fields = [pa.field(RECORD_ID, pa.string(), nullable=False)] if with_record_id else []
        for col in self.inputs:
            typ = ARROW_TYPES[col.kind]
            if col.kind is ColumnKind.EMBEDDING:
                typ = pa.list_(pa.float32(), col.dim)
            fields.append(pa.field(col.name, typ))
        fields.append(pa.field(self.label, LABEL_ARROW_TYPE, nullable=False))
        return pa.schema(fields)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "inputs": [c.to_dict() for c in self.inputs]}
        if self.kind is not DatasetKind.LABELLED:
            # Only written when not the default, so labelled schemas (and their hashes) are unchanged.
            out["kind"] = self.kind.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if not isinstance(data, Mapping):
            # Indexing a string or a list by field name reported "schema is missing a field: string
            # indices must be integers", which names no field.
            raise InputError(
                f"a schema must be a mapping (or a Schema), not {type(data).__name__}",
                hint="e.g. {'label': 'y', 'inputs': [{'name': 'text', 'kind': 'text'}]}, or {'kind': 'chat'}",
            )
        kind = _dataset_kind(data.get("kind", DatasetKind.LABELLED.value))
        if kind in LLM_KINDS and "inputs" not in data:
            return cls.for_kind(kind)
        try:
            inputs = tuple(_input_column(c) for c in _input_specs(data["inputs"]))
            return cls(label=str(data["label"]), inputs=inputs, kind=kind or DatasetKind.LABELLED)
        except (KeyError, TypeError) as exc:
            raise InputError(f"schema is missing a field: {exc}") from exc
        except ValueError as exc:  # int() of a dimension that is no number
            raise InputError(f"a column's dimension is not an integer: {exc}") from None

    @classmethod
    def parse(cls, label: str, specs: Iterable[str]) -> Schema:
        """Build a schema from CLI specs ``name:kind`` or ``name:embedding:DIM``."""
        cols = []
        for spec in specs:
            parts = spec.split(":")
            if len(parts) not in (2, 3):
                raise InputError(
                    f"input column spec {spec!r} is not NAME:KIND", hint="e.g. text:text or emb:embedding:384"
                )
            dim = None
            if len(parts) == 3:
                try:
                    dim = int(parts[2])
                except ValueError as exc:
                    raise InputError(f"embedding dimension in {spec!r} is not an integer") from exc
            cols.append(Column(parts[0], _kind(parts[1]), dim))
        return cls(label=label, inputs=tuple(cols))


def _dataset_kind(value: Any) -> DatasetKind:
    try:
        return DatasetKind(str(value))
    except ValueError as exc:
        kinds = ", ".join(k.value for k in DatasetKind)
        raise InputError(f"unknown dataset kind {value!r}", hint=f"use one of: {kinds}") from exc


def _kind(value: Any) -> ColumnKind:
    try:
        return ColumnKind(str(value))
    except ValueError as exc:
        kinds = ", ".join(k.value for k in ColumnKind)
        raise InputError(f"unknown column kind {value!r}", hint=f"use one of: {kinds}") from exc
