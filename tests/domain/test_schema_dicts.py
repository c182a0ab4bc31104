"""A schema given as a dict (``scan``'s ``schema=``, the HTTP API's body): the documented list of
columns, a name-to-kind mapping, and clear refusals of what is neither."""

from __future__ import annotations

import pytest

from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind, Schema


def test_inputs_as_a_list_or_as_a_mapping_give_the_same_schema() -> None:
    listed = Schema.from_dict(
        {"label": "y", "inputs": [{"name": "text", "kind": "text"}, {"name": "e", "kind": "embedding", "dim": 4}]}
    )
    mapped = Schema.from_dict({"label": "y", "inputs": {"text": "text", "e": {"kind": "embedding", "dim": 4}}})
    assert listed == mapped
    assert mapped.column("e").kind is ColumnKind.EMBEDDING and mapped.column("e").dim == 4


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ("text", "list of columns"),
        (["text"], "list of columns"),
        ([{"name": "e", "kind": "embedding", "dim": 1.5}], "not an integer"),
        ([{"name": "e", "kind": "embedding", "dim": True}], "not an integer"),
        ([{"kind": "text"}], "missing a field"),
    ],
)
def test_what_is_no_schema_is_refused_naming_the_problem(inputs: object, words: str) -> None:
    with pytest.raises(InputError, match=words):
        Schema.from_dict({"label": "y", "inputs": inputs})


@pytest.mark.parametrize("given", ["label", ["text:text"], None, 3])
def test_a_schema_that_is_no_mapping_is_refused_saying_so(given: object) -> None:
    """``scan(df, df, "label")`` said "schema is missing a field: string indices must be integers"."""
    with pytest.raises(InputError, match=f"a schema must be a mapping \\(or a Schema\\), not {type(given).__name__}"):
        Schema.from_dict(given)  # type: ignore[arg-type]
