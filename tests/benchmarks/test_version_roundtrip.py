"""The version round-trip benchmark runs end to end on a small input and reads every record back."""

from __future__ import annotations

from pathlib import Path

from benchmarks import version_roundtrip


def test_a_small_round_trip_reads_back_every_record(tmp_path: Path) -> None:
    figures = version_roundtrip.main(["--records", "2000", "--work", str(tmp_path)])
    assert figures["rows"] == 2000
    assert all(figures[k] > 0 for k in ("contribute", "merge", "read_fresh", "read_again"))
