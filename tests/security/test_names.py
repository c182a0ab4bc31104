"""Names that look like another name, or hold what nobody can see, are refused: a dataset named
``wine\\n`` or ``wіne`` (Cyrillic ``і``) beside ``wine`` would let a grant, an export or a review land
on the wrong dataset while reading right."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.access.roles import Scope
from dataward.domain.errors import Conflict, InputError
from dataward.domain.names import name_problem, same_name, skeleton
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import wine_schema_specs


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    admin, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.create_principal("alice")
    return admin


def _schema() -> Schema:
    label, specs = wine_schema_specs()
    return Schema.parse(label, specs)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("wine\n", "ends with whitespace (U+000A LINE FEED)"),
        ("wine\r\n", "ends with whitespace"),
        (" wine", "starts with whitespace"),
        ("wine\t", "ends with whitespace"),
        ("wi\u200bne", "U+200B ZERO WIDTH SPACE"),
        ("wine\u200d", "U+200D ZERO WIDTH JOINER"),
        ("\u202ewine", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("wi\u00a0ne", "U+00A0 NO-BREAK SPACE"),
        ("wi\x00ne", "U+0000 NULL"),
        ("wine\u2028", "U+2028 LINE SEPARATOR"),
        ("wine\u034f", "'wine\\u034f' holds an invisible or control character (U+034F COMBINING GRAPHEME JOINER)"),
        ("wine\ufe0f", "U+FE0F VARIATION SELECTOR-16"),
        ("wi\u3164ne", "U+3164 HANGUL FILLER"),
        ("cafe\u0301", "not NFC-normalized"),
        ("wine:v2", "U+003A COLON"),
        ("wine#1", "U+0023 NUMBER SIGN"),
    ],
)
def test_invisible_and_unprintable_names_are_refused(ward: Ward, name: str, problem: str) -> None:
    for create in (lambda: ward.create_dataset(name, _schema()), lambda: ward.create_principal(name)):
        with pytest.raises(InputError) as refused:
            create()
        assert problem in refused.value.message
    assert [d["name"] for d in ward.datasets()] == ["wine"]
    assert "alice" in {p["name"] for p in ward.principals()}
    assert name not in {p["name"] for p in ward.principals()}


@pytest.mark.parametrize(
    "name",
    [
        "WINE",  # case
        "Wine",
        "w\u0456ne",  # Cyrillic i
        "\u0461ine",  # Cyrillic omega, looks like w
        "\uff57\uff49\uff4e\uff45",  # fullwidth
    ],
)
def test_a_dataset_name_that_reads_as_an_existing_one_is_refused(ward: Ward, name: str) -> None:
    with pytest.raises(InputError, match="too close to the existing dataset 'wine'"):
        ward.create_dataset(name, _schema())
    assert [d["name"] for d in ward.datasets()] == ["wine"]


def test_a_principal_name_that_reads_as_an_existing_one_is_refused(ward: Ward) -> None:
    for name in ("Alice", "\u0430lice", "al\u0456ce", "ALICE"):
        with pytest.raises(InputError, match="too close to the existing principal 'alice'"):
            ward.create_principal(name)
    ward.create_principal("model")
    with pytest.raises(InputError, match="'model'"):
        ward.create_principal("rnodel")
    # The exact same name is still the conflict it always was.
    with pytest.raises(Conflict):
        ward.create_principal("alice")


def test_distinct_names_in_any_script_are_accepted(ward: Ward) -> None:
    for name in ("wine2", "wine-v2", "café", "日本語", "вино"):
        assert ward.create_dataset(name, _schema())["name"] == name
    assert ward.grant("alice", "reader", "dataset:café")["scope"] == "dataset:café"


def test_scopes_and_columns_refuse_a_trailing_newline(ward: Ward) -> None:
    with pytest.raises(InputError, match="LINE FEED"):
        Scope.parse("dataset:wine\n")
    with pytest.raises(InputError):
        ward.grant("alice", "reader", "dataset:wine\n")
    with pytest.raises(InputError, match="not a valid column name"):
        Schema.parse("cultivar\n", ["alcohol:numeric"])
    with pytest.raises(InputError, match="not a valid column name") as named:
        Schema.parse("label", ["sepal length (cm):numeric"])
    assert "letters, digits, _ . -" in (named.value.hint or "")


def test_folding_is_documented_behaviour() -> None:
    assert skeleton("\u0440\u0430ypal") == skeleton("paypal")
    assert same_name("Ilya", "1lya") and same_name("b0b", "bob")
    assert not same_name("data-v2", "data-n2") and not same_name("alice", "alicia")
    assert name_problem("wine", "dataset") is None and name_problem("_wine", "dataset") is not None


def test_a_principal_name_shaped_like_a_principal_id_is_refused(ward: Ward) -> None:
    """Commands take a principal by id or by name: a principal named ``p_<alice's id>`` let an admin's
    ``principal disable p_…`` (meant for it) disable alice instead, and left it active."""
    alice = next(p for p in ward.principals() if p["name"] == "alice")
    for name in (alice["id"], "p_0123456789abcdef"):
        with pytest.raises(InputError, match="principal id"):
            ward.create_principal(name)
    assert ward.create_principal("p_team")["name"] == "p_team"
    assert ward.disable_principal(alice["id"], reason="leaving")["principal"] == "alice"
