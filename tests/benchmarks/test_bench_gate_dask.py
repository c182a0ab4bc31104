"""The partitioned-gate benchmark at a tiny size: every run (one-shot, local engine, a Dask cluster)
reports the same judgement, and the figures are written with their ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from benchmarks import bench_gate_dask


def test_small_partitioned_gate_benchmark_runs_every_engine_with_one_report(tmp_path: Path) -> None:
    out = tmp_path / "gate-dask.json"
    bench_gate_dask.main(
        [
            *("--baseline", "3000", "--contribution", "1500", "--partition-rows", "400", "--dim", "8"),
            *("--workers", "1", "--flips", "0.03", "--out", str(out)),
            *("--detectors", "label_consistency", "duplicates", "outliers"),
        ]
    )
    result = json.loads(out.read_text())
    assert list(result["runs"]) == ["one_shot", "local_partitioned", "dask_1_workers"]
    assert all(run["same_report_as_first"] for run in result["runs"].values())
    assert result["runs"]["one_shot"]["flagged_at_alpha"] > 0
    assert result["ratio_to_first"]["one_shot"] == 1.0
    assert result["runs"]["dask_1_workers"]["worker_peak_mb"] > 0
