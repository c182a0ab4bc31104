"""A chat dataset exports its conversations as lists of messages, the layout fine-tuning tools read, in
JSON Lines and Parquet (CSV keeps the JSON text a cell holds); reading an export back gives the same
records, id for id."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dataward.domain.schema import Schema
from dataward.service.ward import Ward

CHATS = [
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"What does tool {i} do?"},
        {"role": "assistant", "content": f"Tool {i} does thing {i} — vraiment."},
    ]
    for i in range(12)
]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_an_exported_chat_dataset_reads_back_to_the_same_records(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "chats.jsonl"
    source.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in CHATS), "utf-8")
    ward, _ = Ward.init(tmp_path / "ward")
    policy = "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [duplicates]\n"
    for name in ("chats", "again"):
        ward.create_dataset(name, Schema.for_kind("chat"))
        ward.set_policy(name, policy)
    ward.merge(ward.contribute("chats", source, source="curated")["ref"])
    out = tmp_path / f"export{suffix}"
    ward.export("chats@v1", out, format=suffix.lstrip("."))
    if suffix == ".jsonl":
        first = json.loads(out.read_text("utf-8").splitlines()[0])
        assert isinstance(first["messages"], list) and first["messages"][0]["role"] in ("system", "user")
    elif suffix == ".parquet":
        column = pq.read_table(out).column("messages")
        assert str(column.type).startswith("list<") and column[0].as_py()[-1]["role"] == "assistant"
    ward.merge(ward.contribute("again", out, source="round trip")["ref"])
    ids = sorted(ward.dataset("chats").version("v1").to_arrow().column("record_id").to_pylist())
    assert sorted(ward.dataset("again").version("v1").to_arrow().column("record_id").to_pylist()) == ids


def test_train_load_writes_conversations_as_export_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    source = tmp_path / "chats.jsonl"
    source.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in CHATS), "utf-8")
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("chats", Schema.for_kind("chat"))
    ward.set_policy(
        "chats", "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [duplicates]\n"
    )
    ward.merge(ward.contribute("chats", source, source="curated")["ref"])
    ward.promote("chats@v1")
    ward.db.dispose()
    monkeypatch.setenv("DATAWARD_WARD", str(tmp_path / "ward"))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    runner = CliRunner()
    started = runner.invoke(app, ["train", "start", "chat-bot", "--json"])
    assert started.exit_code == 0, started.output
    run = json.loads(started.stdout)["run"]
    out = tmp_path / "train.jsonl"
    loaded = runner.invoke(app, ["train", "load", run, "chats@training", "-o", str(out)])
    assert loaded.exit_code == 0, loaded.output
    first = json.loads(out.read_text("utf-8").splitlines()[0])
    assert isinstance(first["messages"], list) and first["messages"][-1]["role"] == "assistant"
