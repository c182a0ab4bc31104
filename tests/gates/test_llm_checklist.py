"""Language-model data: Hugging Face ``datasets`` exports read like any JSON Lines or Parquet file, and a
source answering in another script is reviewed per source, never blocked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import llm_data as d
from dataward.domain.records import record_ids
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan
from dataward.io.readers import read_table

datasets = pytest.importorskip("datasets")


@pytest.mark.parametrize(
    ("kind", "rows"),
    [
        (
            "instruction",
            [
                {"prompt": "What does `ls` do?", "input": "", "response": "ls lists directory contents."},
                {"prompt": "Summarize", "input": "cp copies files", "response": "Copies files."},
            ],
        ),
        (
            "chat",
            [
                {
                    "messages": [
                        {"role": "system", "content": "You explain Unix tools."},
                        {"role": "user", "content": "What does ls do?"},
                        {"role": "assistant", "content": "Lists files."},
                    ]
                }
            ],
        ),
        (
            "preference",
            [{"prompt": "What does ls do?", "chosen": "It lists files.", "rejected": "No idea."}],
        ),
    ],
)
def test_hugging_face_exports_import_as_json_lines_and_parquet(tmp_path: Path, kind: str, rows: list[dict]) -> None:
    schema = Schema.for_kind(kind)
    exported = datasets.Dataset.from_list(rows)
    exported.to_json(str(tmp_path / "export.jsonl"))
    exported.to_parquet(str(tmp_path / "export.parquet"))
    from_jsonl = read_table(tmp_path / "export.jsonl", schema)
    from_parquet = read_table(tmp_path / "export.parquet", schema)
    assert from_jsonl.table.num_rows == len(rows)
    assert record_ids(schema, from_jsonl.table) == record_ids(schema, from_parquet.table)
    if kind == "chat":
        assert json.loads(from_parquet.table.column("messages")[0].as_py())[-1]["content"] == "Lists files."
    else:
        assert from_parquet.table.column("prompt").to_pylist() == [r["prompt"] for r in rows]


def test_a_source_answering_in_another_script_is_reviewed_per_source_not_blocked() -> None:
    base_pool, new_pool = d.split_pools()
    baseline = d.instruction_frame(1000, 1, pool=base_pool)
    batch = d.instruction_frame(1000, 2, pool=new_pool)
    rows = np.arange(100)
    batch.loc[rows, "response"] = [f"{e} — это команда; подробности в руководстве." for e in batch.loc[rows, "entry"]]
    batch.loc[rows, "source"] = "mirror-ru"
    report = scan(
        baseline[["prompt", "response"]],
        batch[["prompt", "response"]],
        Schema.for_kind("instruction"),
        policy={"detectors": ["llm_triggers", "llm_payloads", "llm_behaviour_shift", "llm_floods"]},
        groups={"source": batch["source"].to_numpy()},
    )
    assert report.verdict == "review", report.reasons
    shifts = report.results["llm_behaviour_shift"].summary["shifts"]
    script = {s["group"] for s in shifts if s["metric"] == "non-latin script"}
    assert "source mirror-ru" in script


def test_preference_flips_calibrate_on_the_whole_baseline_not_the_reference_sample() -> None:
    """The preference model reads only the pairs and is cheap: it is fitted and calibrated on every trusted
    pair (up to ``max_calibration``), whatever the policy's ``reference_size`` sample for the other detectors."""
    base_pool, new_pool = d.split_pools()
    baseline = d.preference_frame(2000, 1, pool=base_pool)
    swapped, rows = d.swap_preferences(d.preference_frame(1000, 2, pool=new_pool), 25, seed=3)
    cols = ["prompt", "chosen", "rejected"]
    schema = Schema.for_kind("preference")
    policy = {"detectors": ["preference_flips"], "reference_size": 500}
    report = scan(baseline[cols], swapped[cols], schema, policy=policy)
    result = report.results["preference_flips"]
    assert result.n_calibration == 2000
    assert report.verdict == "block" and set(rows) <= set(np.flatnonzero(result.flagged))
    capped = {**policy, "options": {"preference_flips": {"max_calibration": 800}}}
    assert scan(baseline[cols], swapped[cols], schema, policy=capped).results["preference_flips"].n_calibration == 800
