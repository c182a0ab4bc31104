"""Ids can be given by a unique prefix (a table may show them cut, a person types a few characters);
an ambiguous prefix is refused naming the ids it could mean, and tables show ids whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataward.domain.errors import InputError, NotFound
from dataward.service import rows as rows_module
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_training_ward, write_csv


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ward, Path, str, list[str]]:
    """A ward whose ``wine#2`` has three records in the review queue (exact conflicts with trusted ones)."""
    root = tmp_path_factory.mktemp("prefixes")
    ward = wine_training_ward(root, NO_APPROVALS_POLICY, 100)
    trusted = wine_rows(0, 100, shuffled=True)
    batch = wine_rows(100, 130, shuffled=True)
    for row in trusted[:3]:
        batch.append({**row, "cultivar": (int(row["cultivar"]) + 1) % 3})
    c = ward.contribute("wine", write_csv(root / "b.csv", batch), source="s")
    items = [i["id"] for i in ward.review_list("wine")]
    assert len(items) == 3
    return ward, root / "ward", c["id"], items


def test_a_unique_prefix_names_the_item_or_contribution(queued: tuple[Ward, Path, str, list[str]]) -> None:
    ward, _, contribution_id, items = queued
    item = items[0]
    assert ward.review_show(item[:10])["id"] == item
    assert ward.review_show(item[:13] + "…")["id"] == item  # as a cut table cell shows it
    assert ward.contribution(contribution_id[:10])["id"] == contribution_id
    with pytest.raises(NotFound):
        ward.review_show("q_zzzzzz")
    with pytest.raises(NotFound):
        ward.review_show("q_")  # too short to stand for an id


def test_an_ambiguous_prefix_is_refused_naming_the_candidates(
    queued: tuple[Ward, Path, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ward, _, _, items = queued
    monkeypatch.setattr(rows_module, "PREFIX_MIN", 2)
    with pytest.raises(InputError) as refused:
        ward.review_show("q_")
    assert all(item in refused.value.message for item in items)
    assert refused.value.details["candidates"] == sorted(items)


def test_an_80_column_table_shows_ids_whole(queued: tuple[Ward, Path, str, list[str]]) -> None:
    _, folder, _, items = queued
    env = {**os.environ, "DATAWARD_WARD": str(folder), "COLUMNS": "80"}
    env.pop("DATAWARD_KEY", None)
    shown = subprocess.run(
        [sys.executable, "-m", "dataward", "review", "list", "wine"], env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert all(item in shown.stdout for item in items), shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
