"""The import benchmark runs end to end on a small input, on the local disk and on S3, and its
breakdown accounts for the whole import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_import
from benchmarks.s3_server import S3Unavailable


@pytest.mark.parametrize("store", ["local", "s3"])
def test_small_import_benchmark_reports_a_ratio_and_a_full_breakdown(tmp_path: Path, store: str) -> None:
    out = tmp_path / "import.json"
    try:
        bench_import.main(["--records", "1000", "--images", "0", "--repeat", "1", "--store", store, "--out", str(out)])
    except S3Unavailable as exc:
        pytest.skip(f"no S3-compatible server: {exc}")
    figures = json.loads(out.read_text())
    text = figures["text"]
    assert text["records"] == 1000 and text["ratio"] > 0 and text["cpu_ratio"] > 0
    # The pieces on the calling thread add up to the whole; what runs on threads of its own (the chunk,
    # the id list, the checkpoint after) is reported apart, as are the parts of a piece ("of_...").
    breakdown = text["breakdown"]
    apart = [k for k in breakdown if k.startswith("of_") or k.endswith(("_beside", "_after"))]
    parts = {k: v for k, v in breakdown.items() if k not in apart}
    assert all(v >= 0 for v in breakdown.values())
    assert sum(parts.values()) == pytest.approx(text["dataward_seconds"], abs=0.01)
    assert breakdown["id_list_object_seconds_beside"] > 0 and breakdown["chunk_parquet_and_store_seconds_beside"] > 0
    assert "catalog_checkpoint_seconds_after" in breakdown and breakdown["holder_index_seconds"] > 0
    assert ("--store s3" in figures["command"]) == (store == "s3")
    # Every record merged into a version and read back through the ward, beside pyarrow's read of the file.
    back = text["read_back"]
    assert back["records"] == 1000 and back["first_read_ratio"] > 0 and back["read_again_ratio"] > 0
    assert back["merge_seconds"] > 0 and back["stream_ratio"] > 0 and back["stream_batch_rows"] == 10_000
