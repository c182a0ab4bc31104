"""The overlap benchmark times record ids and the chunk's encoding alone, in turn and side by side."""

from __future__ import annotations

import json

import pytest

from benchmarks import import_overlap


def test_import_overlap_prints_the_four_times(capsys: pytest.CaptureFixture[str]) -> None:
    import_overlap.main(["--records", "500", "--repeat", "1"])
    line = json.loads(capsys.readouterr().out)
    assert line["records"] == 500
    times = ["ids_seconds", "chunk_encode_seconds", "one_after_the_other_seconds", "side_by_side_seconds"]
    assert all(line[name] > 0 for name in times)
    # Times of a few milliseconds, kept to the microsecond: the share is the times' own, to a percent.
    assert line["saved_by_overlap"] == pytest.approx(
        1 - line["side_by_side_seconds"] / line["one_after_the_other_seconds"], abs=0.01
    )
