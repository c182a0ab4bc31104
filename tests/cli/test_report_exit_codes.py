"""A report command exits as the run that made its report did: `gate report` as `gate run` (and
`model report` as `model gate`, tests/models/test_registry_http.py): 0 pass, 8 review, 9 block.

`gate report` used to exit 0 on a blocked contribution while `model report` exited 9 on a blocked model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_training_ward, write_csv


def run(ward: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATAWARD_WARD": str(ward), "COLUMNS": "200"}
    env.pop("DATAWARD_KEY", None)
    env.pop("DATAWARD_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "dataward", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A ward whose 'wine' has a 120-record training version, and two contributions: a clean one (pass) and
    one of 20 exact copies of trusted records under another label (block)."""
    root = tmp_path_factory.mktemp("report-exit")
    ward = wine_training_ward(root, NO_APPROVALS_POLICY, 120)
    clean = ward.contribute("wine", write_csv(root / "clean.csv", wine_rows(120, 150, shuffled=True)), source="b")
    flipped = wine_rows(0, 20, shuffled=True)
    for row in flipped:
        row["cultivar"] = (int(row["cultivar"]) + 1) % 3
    blocked = ward.contribute("wine", write_csv(root / "flipped.csv", flipped), source="c")
    assert (clean["gate"]["verdict"], blocked["gate"]["verdict"]) == ("pass", "block")
    folder = ward.folder
    ward.close()
    return folder, {"pass": clean["ref"], "block": blocked["ref"]}


@pytest.mark.parametrize(("verdict", "code"), [("pass", 0), ("block", 9)])
def test_gate_report_exits_with_the_code_of_the_verdict_it_shows(
    gated: tuple[Path, dict[str, str]], verdict: str, code: int
) -> None:
    ward, refs = gated
    shown = run(ward, "gate", "report", refs[verdict])
    assert shown.returncode == code, shown.stderr
    assert shown.stdout.startswith(verdict.upper())
    as_json = run(ward, "gate", "report", refs[verdict], "--json")
    assert as_json.returncode == code and json.loads(as_json.stdout)["verdict"] == verdict


def test_a_report_that_cannot_be_shown_exits_with_its_error_not_a_verdict(gated: tuple[Path, dict[str, str]]) -> None:
    ward, _ = gated
    missing = run(ward, "gate", "report", "wine#99", "--json")
    assert missing.returncode == 3 and json.loads(missing.stdout)["error"] == "not_found"
