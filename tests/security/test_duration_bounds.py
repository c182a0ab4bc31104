"""Durations and counts far beyond any real use are refused by name, on every path, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.errors import InputError
from dataward.service.ward import Ward


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_principal("rita")
    return ward


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda w: w.issue_key("rita", ttl_days=10**20), "ttl_days"),
        (lambda w: w.issue_key("rita", ttl_days=0), "ttl_days"),
        (lambda w: w.access_review(unused_days=10**20), "unused_days"),
        (lambda w: w.access_review(recent_days=-1), "recent_days"),
        (lambda w: w.ledger(limit=10**30), "limit"),
    ],
)
def test_out_of_range_arguments_are_input_errors(ward: Ward, call, name: str) -> None:
    head = ward.ledger(limit=1)[0]["hash"]
    with pytest.raises(InputError, match=name):
        call(ward)
    assert ward.ledger(limit=1)[0]["hash"] == head


def test_a_huge_rotation_overlap_is_refused(ward: Ward) -> None:
    key = ward.issue_key("rita")["key"]
    with pytest.raises(InputError, match="overlap_hours"):
        ward.rotate_key(key, overlap_hours=1e300)


def test_the_cli_names_the_argument_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, admin_key = Ward.init(tmp_path / "cli-ward")
    monkeypatch.setenv("DATAWARD_WARD", str(tmp_path / "cli-ward"))
    monkeypatch.setenv("DATAWARD_KEY", admin_key)
    result = CliRunner().invoke(app, ["access", "review", "--unused-days", str(10**20)])
    assert result.exit_code == 2, result.output
    assert "unused_days" in result.output and "Traceback" not in result.output
