"""Submitting the same content again makes a new contribution that names the earlier one: `same content as
wine#1 (gated, gate pass)` in the CLI, ``same_content_as`` in ``--json``.

Two contributions with one content hash used to look unrelated until someone compared their hashes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import NO_APPROVALS_POLICY, run_cli, wine_rows, wine_ward, write_csv


def run(ward: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(ward, *args, columns=200)


def test_a_resubmission_names_the_earlier_contribution_and_a_new_content_names_none(tmp_path: Path) -> None:
    batch = write_csv(tmp_path / "a.csv", wine_rows(0, 40, shuffled=True))
    # The first contribution is made in this process, as the ward's services make it for the command: the
    # commands asserted on are the later ones (a `contribute` process imports the gate, ~3 CPU s), and a
    # new content's empty ``same_content_as`` in `--json` is asserted on the command below ("Other content").
    with wine_ward(tmp_path / "ward", NO_APPROVALS_POLICY) as ward:
        folder = ward.folder
        first = ward.contribute("wine", batch, source="s1")
    assert first["ref"] == "wine#1" and first["same_content_as"] == []

    # The same records from another source: a contribution of its own, naming the first.
    again = run(folder, "contribute", "wine", str(batch), "--source", "s2", "--json")
    assert again.returncode == 0, again.stderr
    info = json.loads(again.stdout)
    assert info["ref"] == "wine#2" and info["content_hash"] == first["content_hash"]
    assert info["same_content_as"] == [{"contribution": "wine#1", "status": "gated", "gate_verdict": "pass"}]

    third = run(folder, "contribute", "wine", str(batch), "--source", "s3")
    assert third.returncode == 0, third.stderr
    assert "same content as wine#1 (gated, gate pass), wine#2 (gated, gate pass)" in third.stdout

    # Other content (one record fewer) repeats nothing.
    other = write_csv(tmp_path / "b.csv", wine_rows(0, 39, shuffled=True))
    different = run(folder, "contribute", "wine", str(other), "--source", "s1", "--json")
    assert json.loads(different.stdout)["same_content_as"] == []
    fresh = run(folder, "contribute", "wine", str(write_csv(tmp_path / "c.csv", wine_rows(50, 60))), "--source", "s1")
    assert fresh.returncode == 0 and "same content as" not in fresh.stdout
