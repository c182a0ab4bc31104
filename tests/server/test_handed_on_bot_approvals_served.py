"""Over HTTP as in-process: a bot handed on answers for its owners while its key was live (one approver with
them), and two distinct people approving after it are still two people's approval."""

from __future__ import annotations

from pathlib import Path

import pytest

import dataward
from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from tests.helpers import wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest) -> Served:
    """The module's served ward, its catalog SQLite or PostgreSQL."""
    return request.getfixturevalue("served" if request.param == "sqlite" else "served_postgresql")


TWO = "approvals:\n  required: 2\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"


def _setup(served: Served, tmp_path: Path, dataset: str) -> tuple[dict, str]:
    admin = dataward.open(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset(dataset, Schema.parse(label, specs))
    admin.set_policy(dataset, TWO)
    ben, cat, bot = f"{dataset}-ben", f"{dataset}-cat", f"{dataset}-bot"
    admin.create_principal(ben)
    admin.create_principal(cat)
    admin.create_principal(bot, kind="service", owner=ben)
    for name in (ben, cat, bot):
        admin.grant(name, "approver", f"dataset:{dataset}")
    as_ = {n: dataward.open(served.url, key=admin.issue_key(n)["key"]) for n in (ben, cat, bot)}
    ref = admin.contribute(dataset, write_csv(tmp_path / "x.csv", wine_rows(0, 30)), source="s:x")["ref"]
    admin.transfer_principal(bot, cat)  # the key was issued while ben owned it: ben may hold it
    return {"admin": admin, "ben": as_[ben], "cat": as_[cat], "bot": as_[bot]}, ref


def test_one_person_and_the_bot_she_handed_on_do_not_merge_over_http(server: Served, tmp_path: Path) -> None:
    w, ref = _setup(server, tmp_path, "handed1")
    w["bot"].approve(ref, reason="fine")
    w["ben"].approve(ref, reason="fine")
    with pytest.raises(PolicyViolation, match="cannot be merged"):
        w["admin"].merge(ref)


def test_two_people_after_the_bot_they_both_answer_for_merge_over_http(server: Served, tmp_path: Path) -> None:
    w, ref = _setup(server, tmp_path, "handed2")
    w["bot"].approve(ref, reason="fine")
    w["ben"].approve(ref, reason="fine")
    assert w["cat"].approve(ref, reason="fine")["approvals"].startswith("2 of 2")
    w["admin"].merge(ref)
    assert [v["number"] for v in w["admin"].versions("handed2")] == [1]
