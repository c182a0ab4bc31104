"""Promoting a version that holds the same records as the training version it retires is allowed, with a
note (`same_records_as`): what training reads is unchanged.

`promote digits@v2` on a version identical to digits@v1 used to look like the release of new data.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, run_cli, wine_rows, wine_training_ward, write_csv


def run(ward: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(ward, *args, columns=250)


def test_promoting_the_same_records_again_is_allowed_with_a_note(tmp_path: Path) -> None:
    ward = wine_training_ward(tmp_path, NO_APPROVALS_POLICY, 60)  # wine@v1, in training
    # wine@v2 and wine@v3: the same 60 records submitted again (nothing new), wine@v4: ten more records.
    for source in ("again", "once more"):
        merge_reviewed(ward, ward.contribute("wine", tmp_path / "a.csv", source=source)["ref"])
    more = ward.contribute("wine", write_csv(tmp_path / "m.csv", wine_rows(60, 70, shuffled=True)), source="more")
    merge_reviewed(ward, more["ref"])
    folder = ward.folder
    ward.close()

    same = run(folder, "promote", "wine@v2", "--json")
    assert same.returncode == 0, same.stderr
    info = json.loads(same.stdout)
    assert (info["stage"], info["retired"], info["same_records_as"]) == ("training", "wine@v1", "wine@v1")

    shown = run(folder, "promote", "wine@v3")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "wine@v3 is now training (wine@v2 retired)" in text
    assert "note: wine@v3 holds the same 60 records as wine@v2, the training version it retires" in text

    # A version with new records: no note.
    new = run(folder, "promote", "wine@v4")
    assert new.returncode == 0, new.stderr
    assert "wine@v4 is now training (wine@v3 retired)" in new.stdout and "note" not in new.stdout
    assert json.loads(run(folder, "versions", "wine", "--json").stdout)[-1]["stage"] == "training"
