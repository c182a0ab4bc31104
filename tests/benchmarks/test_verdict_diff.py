"""``benchmarks.verdict_diff compare``: the cases whose figures a change of the gate moved."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import verdict_diff


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(case: str, **changes: object) -> dict:
    row = {"group": "tuning attack", "case": case, "verdict": "block", "blockers": ["triggers"], "queued": 20}
    row |= {"poison_queued": 20, "at_alpha": 21, "r1": 1.0, "auroc": 1.0, "seconds": 3.0}
    return row | changes


def test_only_moved_figures_are_listed_and_timings_are_not_figures(tmp_path: Path) -> None:
    before = _write(tmp_path / "a", [_row("x"), _row("y"), _row("gone")])
    after = _write(tmp_path / "b", [_row("x", seconds=9.0), _row("y", verdict="review", blockers=[]), _row("new")])
    moved = verdict_diff.compare(before, after)
    assert moved == [
        "tuning attack / gone: only before",
        "tuning attack / new: only after",
        "tuning attack / y: verdict block -> review, blockers ['triggers'] -> []",
    ]


def test_the_blind_set_is_never_scanned() -> None:
    groups, benign_sets = verdict_diff.scanned({verdict_diff.DEFAULT_SKIP})
    assert verdict_diff.DEFAULT_SKIP == "heldout10" and "heldout10" not in groups + benign_sets
    assert "heldout9" in groups and "heldout8" in groups
    groups, benign_sets = verdict_diff.scanned({"heldout9", "heldout8", "tuning"})
    assert "heldout8" not in groups and "tuning" not in groups + benign_sets and "fixed" in groups


def test_kind_keeps_only_the_cases_with_such_a_column(monkeypatch) -> None:
    from types import SimpleNamespace

    import numpy as np

    from dataward.domain.schema import Column, ColumnKind, Schema

    def case(kind: ColumnKind) -> SimpleNamespace:
        return SimpleNamespace(schema=Schema("y", (Column("x", kind),)), contribution=[0, 1])

    made = {"photo": case(ColumnKind.IMAGE), "line": case(ColumnKind.TEXT), "wine": case(ColumnKind.NUMERIC)}
    monkeypatch.setattr(
        verdict_diff.review_queue,
        "_cases",
        lambda group: iter(
            [(group, name, c, np.zeros(2, bool)) for name, c in made.items()] if group == "tuning" else []
        ),
    )
    monkeypatch.setattr(verdict_diff.shifts, "GROUPS", {"tuning": [], "heldout": []})
    names = [name for _, name, _, _ in verdict_diff.cases({"heldout9"}, ColumnKind.IMAGE)]
    assert names == ["photo"]
    assert [name for _, name, _, _ in verdict_diff.cases({"heldout9"})] == ["photo", "line", "wine"]
