"""The import timeline prints one JSON line a run: the import's spans by thread, the write transaction
among them in its three parts."""

from __future__ import annotations

import json

import pytest

from benchmarks import import_timeline


def test_import_timeline_prints_the_spans_of_each_run(capsys: pytest.CaptureFixture[str]) -> None:
    import_timeline.main(["--records", "300", "--runs", "2", "--label", "here"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["run"] for line in lines] == [0, 1] and all(line["label"] == "here" for line in lines)
    for line in lines:
        names = {span["name"] for span in line["spans"]}
        assert {"read_table", "stage_new_records", "txn_lock", "txn_body", "txn_commit_and_after"} <= names
        # A file's chunk is written ahead from its records, as their ids are worked out.
        assert {"insert_chunk_blocks", "index_changes", "_put_records_chunk", "records_to_parquet", "result"} <= names
        assert all(0 <= span["start"] <= span["end"] <= line["total"] + 0.01 for span in line["spans"])
