"""The stream benchmark runs end to end on a small version and reports what it measured."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_stream


def test_small_stream_benchmark_reports_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "stream.json"
    bench_stream.main(["--records", "2000", "--chunks", "2", "--batch-rows", "300", "--out", str(out)])
    figures = json.loads(out.read_text())
    assert figures["records"] == 2000 and figures["chunks"] == 2 and figures["batch_rows"] == 300
    assert figures["read_whole_seconds"] > 0 and figures["stream_seconds"] > 0
    assert figures["loader_check_seconds"] > 0 and figures["loader_check_peak_mb"] > 0
