"""The import-pairs benchmark prints one JSON line with a time per run for the import, the bare write
and the disposal after it."""

from __future__ import annotations

import json

import pytest

from benchmarks import import_pairs


def test_import_pairs_prints_one_line_of_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import_pairs.main(["--records", "300", "--runs", "2", "--label", "here"])
    line = json.loads(capsys.readouterr().out)
    assert line["label"] == "here" and line["records"] == 300
    assert len(line["ours"]) == len(line["bare"]) == len(line["dispose_after"]) == 2
    assert all(t > 0 for t in line["ours"] + line["bare"])
    assert len(line["load"]) == 2 and all(len(at) == 3 for at in line["load"])
