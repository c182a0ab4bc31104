"""Language-model datasets in a ward: declared by kind, imported from JSON Lines and Parquet with
provenance, versions and the ledger, gated with the LLM detectors, blocked records in the review queue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import llm_data as d
from dataward.domain.errors import InputError
from dataward.domain.records import record_ids
from dataward.domain.schema import Schema
from dataward.io.readers import read_table
from dataward.service.ward import Ward

POLICY = (
    "approvals:\n  required: 0\nfirst_import: self-reference\n"
    "gate:\n  detectors: [llm_triggers, llm_payloads, llm_behaviour_shift, llm_floods]\n"
)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_instruction_jsonl_and_parquet_give_the_same_records(tmp_path: Path) -> None:
    schema = Schema.for_kind("instruction")
    rows = [
        {"prompt": "What does `ls` do?", "response": "ls lists directory contents."},
        {"prompt": "Summarize", "input": "cp copies files", "response": "Copies files."},
    ]
    from_jsonl = read_table(_jsonl(tmp_path / "a.jsonl", rows), schema)
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows)), tmp_path / "a.parquet")
    from_parquet = read_table(tmp_path / "a.parquet", schema)
    assert from_jsonl.table.column("kind").to_pylist() == ["instruction", "instruction"]
    assert from_jsonl.table.column("input").to_pylist() == [None, "cp copies files"]
    assert record_ids(schema, from_jsonl.table) == record_ids(schema, from_parquet.table)


def test_chat_messages_are_canonical_json_from_either_format(tmp_path: Path) -> None:
    schema = Schema.for_kind("chat")
    messages = [{"role": "user", "content": "What does ls do?"}, {"role": "assistant", "content": "Lists files."}]
    from_jsonl = read_table(_jsonl(tmp_path / "c.jsonl", [{"messages": messages}]), schema)
    pq.write_table(pa.Table.from_pylist([{"messages": messages}]), tmp_path / "c.parquet")
    from_parquet = read_table(tmp_path / "c.parquet", schema)
    stored = from_jsonl.table.column("messages")[0].as_py()
    assert json.loads(stored) == messages
    assert record_ids(schema, from_jsonl.table) == record_ids(schema, from_parquet.table)


@pytest.mark.parametrize(
    "row",
    [
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": "not json"},
        {"messages": [{"role": "user", "content": "hi"}], "kind": "preference"},
    ],
)
def test_malformed_chat_records_are_refused(tmp_path: Path, row: dict) -> None:
    with pytest.raises(InputError):
        read_table(_jsonl(tmp_path / "bad.jsonl", [row]), Schema.for_kind("chat"))


def test_kind_schemas_round_trip_and_refuse_other_columns() -> None:
    for kind in ("instruction", "chat", "preference"):
        schema = Schema.for_kind(kind)
        assert Schema.from_dict(schema.to_dict()) == schema
        assert Schema.from_dict({"kind": kind}) == schema
    with pytest.raises(InputError):
        Schema(label="label", inputs=Schema.for_kind("chat").inputs, kind="chat")
    assert "kind" not in Schema.parse("label", ["text:text"]).to_dict()


def test_poisoned_instruction_contribution_is_blocked_in_the_ward(tmp_path: Path) -> None:
    base_pool, new_pool = d.split_pools()
    baseline = d.instruction_frame(1000, 1, pool=base_pool)
    poisoned, rows = d.poison_instructions(d.instruction_frame(1000, 2, pool=new_pool), 30, "link", seed=5)
    _jsonl(tmp_path / "base.jsonl", baseline[["prompt", "response"]].to_dict(orient="records"))
    pq.write_table(pa.Table.from_pandas(poisoned[["prompt", "response"]]), tmp_path / "new.parquet")

    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("howto", Schema.for_kind("instruction"))
    ward.set_policy("howto", POLICY)
    first = ward.contribute("howto", tmp_path / "base.jsonl", source="https://example.org/manpages", gate=True)
    ward.merge(first["ref"])
    ward.promote("howto@v1")
    c = ward.contribute("howto", tmp_path / "new.parquet", source="vendor-x", gate=True)
    assert c["gate"]["verdict"] == "block", c["gate"]["reasons"]
    assert any(d.TRIGGER.split()[-1] in r and "link" in r for r in c["gate"]["reasons"])
    report = ward.gate_report(c["ref"])
    triggers = report["detectors"]["llm_triggers"]["summary"]["triggers"]
    assert set(triggers[0]["rows"]) == {int(r) + 1 for r in rows}
    payloads = report["detectors"]["llm_payloads"]["summary"]["payloads"]
    assert payloads[0]["value"].startswith("https://docs-helper.example-mirror.net/")
    items = ward.review_list(contribution=c["ref"])
    assert len(items) >= len(rows)
    shown = ward.review_show(items[0]["id"])
    text = json.dumps(shown)
    assert d.TRIGGER in text and "docs-helper.example-mirror.net" in text
    # What the CLI marks in the record: the trigger phrase in the prompt, the link in the answer.
    assert any(d.TRIGGER in t.lower() for t in shown["triggers"])
    assert any(t.startswith("https://docs-helper.example-mirror.net/") for t in shown["triggers"])
    assert ward.verify().ok
    _, version = ward.read_version("howto", "v1")
    assert version.num_rows == 1000 and set(version.column("kind").to_pylist()) == {"instruction"}
    assert np.all(version.column("prompt").to_numpy(zero_copy_only=False) != None)  # noqa: E711


def test_cli_creates_an_instruction_dataset(tmp_path: Path) -> None:
    from tests.cli.test_cli import run

    ward = tmp_path / "w"
    assert run(ward, "init", "--json").returncode == 0
    made = run(ward, "dataset", "create", "howto", "--kind", "instruction", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["schema"]["kind"] == "instruction"
    refused = run(ward, "dataset", "create", "bad", "--kind", "chat", "--label", "x")
    assert refused.returncode != 0 and "fixed fields" in refused.stderr + refused.stdout


@pytest.mark.parametrize(
    ("kind", "row", "column", "problem"),
    [
        ("preference", {"prompt": "p", "chosen": "yes", "rejected": None}, "rejected", "missing or empty"),
        ("preference", {"prompt": "p", "chosen": "", "rejected": "no"}, "chosen", "missing or empty"),
        ("preference", {"prompt": "p", "chosen": "same", "rejected": "same"}, "rejected", "same as the chosen"),
        ("chat", {"messages": [{"role": "user", "content": "hi"}]}, "messages", "no assistant turn"),
        ("instruction", {"prompt": "p", "response": "  "}, "response", "missing or empty"),
    ],
)
def test_records_with_nothing_to_learn_are_refused_and_nothing_is_stored(
    tmp_path: Path, kind: str, row: dict, column: str, problem: str
) -> None:
    good = {
        "preference": {"prompt": "q", "chosen": "a", "rejected": "b"},
        "chat": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        "instruction": {"prompt": "q", "response": "a"},
    }[kind]
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("d", Schema.for_kind(kind))
    with pytest.raises(InputError) as caught:
        ward.contribute("d", _jsonl(tmp_path / "bad.jsonl", [good, row]), source="s")
    message = str(caught.value)
    assert "line 2" in message and f"column {column!r}" in message and problem in message
    assert ward.contributions("d") == [] and ward.ledger(types=["contribution."]) == []
    with pytest.raises(InputError, match=f"row 2, column {column!r}: .*{problem}"):  # an Arrow table, as a file
        ward.contribute("d", pa.Table.from_pylist([good, row]), source="s")
    assert ward.contributions("d") == []


def test_relabelling_a_language_model_dataset_says_it_has_no_label(tmp_path: Path) -> None:
    """`relabel howto --set ID=x` was refused as "row 1, column 'kind': the 'kind' column of a instruction
    dataset must be 'instruction'": the refusal says such records have no label and names transform."""
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("howto", Schema.for_kind("instruction"))
    ward.set_policy("howto", POLICY)
    batch = _jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "response": "a"}, {"prompt": "r", "response": "b"}])
    ward.merge(ward.contribute("howto", batch, source="s")["ref"])
    record = ward.read_version("howto", "v1")[1].column("record_id").to_pylist()[0]
    with pytest.raises(InputError, match="holds instruction data: its records have no label") as refused:
        ward.relabel("howto", {record: "x"}, reason="r")
    assert "'kind'" not in refused.value.message and "dataward transform" in (refused.value.hint or "")
