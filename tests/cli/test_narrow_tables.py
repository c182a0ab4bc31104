"""Tables on an 80-column terminal (or a pipe, which Rich reads as 80 columns) lose nothing: a table
too wide for the terminal, or one that would cut every word of its prose, is printed as records,
one ``column  value`` line each; ids, key prefixes and detector names stay whole.

Found by trial 50 (a new user's walk-through): ``contributions`` dropped its ``+``, ``-`` and
``when`` columns past a long source URI, ``access review`` cut every word of its detail and action
to four characters ("adm…"), ``key list`` showed ``dw_5jfen…`` for the prefix ``key revoke`` needs,
and ``review list`` cut ``label_consistency`` and the reason without a mark.
"""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from dataward.cli import access_commands, gate_commands, output
from dataward.cli.app import app

DETAIL = (
    "admin can approve, merge, submit, override blocks, change the policy, write the validation set, "
    "promote, retire versions on reviews, which is in training (via admin on ward)"
)

REASON = "label 'neg' agrees with 0 of 5 nearest trusted records (most are 'pos'); p=3.8e-06"


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.console, "_width", 80)


def _printed(*args: Any) -> str:
    with output.console.capture() as captured:
        output.table(*args)
    return captured.get()


def test_a_table_wider_than_the_terminal_keeps_its_last_columns(narrow: None) -> None:
    rows = [
        ("reviews#4", "rejected", "block", "scraper", "https://example.org/backdoor.csv", 274, 0, "2026-12-06T01:11:58")
    ]
    shown = _printed("Contributions", ["ref", "status", "gate", "by", "source", "+", "-", "when"], rows)
    assert "2026-12-06T01:11:58" in shown and "274" in shown and "https://example.org/backdoor.csv" in shown
    assert max(len(line.rstrip()) for line in shown.splitlines()) <= 80


def test_prose_that_would_be_cut_to_a_few_characters_is_printed_whole(narrow: None) -> None:
    rows = [("medium", "training_write_access", "admin", "-", "reviews", DETAIL, "revoke it (dataward grant revoke)")]
    shown = _printed("Access review", ["severity", "finding", "principal", "owner", "dataset", "detail", "do"], rows)
    assert "…" not in shown
    assert DETAIL in " ".join(shown.split())  # wrapped over lines, every word whole
    assert max(len(line.rstrip()) for line in shown.splitlines()) <= 80


def test_a_table_that_fits_is_still_a_table(narrow: None) -> None:
    shown = _printed("Keys", ["key", "principal", "scopes"], [("dw_5jfeneaw", "scraper", "all roles")])
    assert "┃" in shown and "dw_5jfeneaw" in shown


class _Stub:
    """The few reads `key list` and `review list` make, without a ward."""

    def keys(self, principal: str | None) -> list[dict[str, Any]]:
        return [
            {
                "prefix": "dw_5jfeneaw",
                "principal": "scraper",
                "state": "active",
                "scopes": None,
                "expires_at": "2027-01-05T01:11:16",
                "last_used_at": "2026-12-06T01:13:38.123",
            }
        ]

    def review_list(self, dataset: str | None, *, status: str, contribution: str | None) -> list[dict[str, Any]]:
        return [
            {
                "id": "q_d3485fce14ebb264",
                "contribution": "reviews#3",
                "row": 184,
                "score": 1.0,
                "detectors": ["duplicates", "label_consistency", "outliers"],
                "reason": REASON,
            }
        ]


def _reads_in_order(text: str, shown: str) -> bool:
    """Whether every word of ``text`` is printed, whole and in order, in ``shown``: a cell wrapped over
    lines of a table has the other columns' words and the borders between its own."""
    printed = iter(shown.replace("│", " ").replace("┃", " ").split())
    return all(any(word == seen for seen in printed) for word in text.split())


@pytest.mark.parametrize("width", [80, 200])
def test_key_list_and_review_list_show_what_the_next_command_needs(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    monkeypatch.setattr(output.console, "_width", width)
    monkeypatch.setattr(access_commands, "open_ward", _Stub)
    monkeypatch.setattr(gate_commands, "open_ward", _Stub)
    keys = CliRunner().invoke(app, ["key", "list"])
    assert keys.exit_code == 0 and "dw_5jfeneaw " in keys.output and "dw_5jfen…" not in keys.output
    queue = CliRunner().invoke(app, ["review", "list"])
    assert queue.exit_code == 0, queue.output
    assert "label_consistency" in queue.output and "q_d3485fce14ebb264" in queue.output
    # The reason is prose: it wraps, whole, as docs/cli.md says of every prose column.
    assert _reads_in_order(REASON, queue.output) and "…" not in queue.output


@pytest.mark.parametrize("width", [120, 140, 250])
def test_review_list_wraps_a_long_reason_instead_of_cutting_it(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """Trial: at 140 columns the reason column read `p=…` and `near duplic…`, cut at 72 characters
    whatever the terminal's width."""
    long = (
        "near duplicate (distance 0.0123, typical 0.456) of a record with another label, here labelled '7'; "
        "p=1.2e-05; far from the trusted records labelled '7'; p=2.1e-105"
    )

    class _Long(_Stub):
        def review_list(self, dataset: str | None, *, status: str, contribution: str | None) -> list[dict[str, Any]]:
            return [{**super().review_list(dataset, status=status, contribution=contribution)[0], "reason": long}]

    monkeypatch.setattr(output.console, "_width", width)
    monkeypatch.setattr(gate_commands, "open_ward", _Long)
    queue = CliRunner().invoke(app, ["review", "list"])
    assert queue.exit_code == 0, queue.output
    assert _reads_in_order(long, queue.output) and "…" not in queue.output
    assert max(len(line.rstrip()) for line in queue.output.splitlines()) <= width


@pytest.mark.parametrize("width", [80, 85, 95])
def test_review_list_never_squeezes_the_reason_to_a_word_a_line(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """Trial (language-model data): a queue flagged by `llm_triggers` alone left the reason 11 to 25
    columns at 80 to 95, above the 10 a prose column may shrink to, so it read one or two words a line
    ("carries / prompt / trigger 'a / tab or line / ..."). Narrower than a few words a line, the rows are
    printed as records, the reason on lines of its own beside its name, as a labelled queue already was."""
    reason = "carries prompt trigger 'a tab or line break' with response repeats 'the passage from the'"

    class _Llm(_Stub):
        def review_list(self, dataset: str | None, *, status: str, contribution: str | None) -> list[dict[str, Any]]:
            item = super().review_list(dataset, status=status, contribution=contribution)[0]
            return [{**item, "contribution": "howto#3", "detectors": ["llm_triggers"], "reason": reason}]

    monkeypatch.setattr(output.console, "_width", width)
    monkeypatch.setattr(gate_commands, "open_ward", _Llm)
    queue = CliRunner().invoke(app, ["review", "list"])
    assert queue.exit_code == 0, queue.output
    assert _reads_in_order(reason, queue.output)
    lines = [line for line in queue.output.splitlines() if "carries" in line]
    assert lines and "carries prompt trigger 'a tab or line" in lines[0]
