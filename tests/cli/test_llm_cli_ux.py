"""The commands as someone with language-model data uses them: what a file may leave out a row may too,
and what is shown speaks of prompts and answers, not of labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

HOWTOS = [{"prompt": f"What does tool{i} do?", "response": f"tool{i} does thing {i}."} for i in range(12)]
CHATS = [
    {
        "messages": [
            {"role": "user", "content": f"What does tool{i} do?"},
            {"role": "assistant", "content": f"Thing {i}."},
        ]
    }
    for i in range(12)
]
POLICY = "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [duplicates]\n"


@pytest.fixture
def llm_ward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward")
    for name, kind, rows in (("howto", "instruction", HOWTOS), ("chats", "chat", CHATS)):
        ward.create_dataset(name, Schema.for_kind(kind))
        ward.set_policy(name, POLICY)
        source = tmp_path / f"{name}.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        ward.merge(ward.contribute(name, source, source="curated")["ref"])
    monkeypatch.setenv("DATAWARD_WARD", str(ward.folder))
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    return ward


def _cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(("dataset", "row"), [("howto", HOWTOS[3]), ("chats", CHATS[3])])
def test_trace_row_takes_what_trace_file_reads(llm_ward: Ward, tmp_path: Path, dataset: str, row: dict) -> None:
    """`trace --row '{"prompt": .., "response": ..}' --dataset howto` was refused ("the row lacks column(s)
    ['input', 'kind']"), though `trace --file` reads the same record and the docs say both may be left out."""
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(row) + "\n", "utf-8")
    by_file = _cli("trace", "--file", str(one), "--dataset", dataset, "--json")
    by_row = _cli("trace", "--row", json.dumps(row), "--dataset", dataset, "--json")
    assert by_file.exit_code == 0 and by_row.exit_code == 0, by_row.output
    (traced,) = json.loads(by_row.output)["traces"]
    assert traced["subject"]["id"] == json.loads(by_file.output)["traces"][0]["subject"]["id"]
    assert traced["contributions"][0]["ref"] == f"{dataset}#1"


def test_trace_row_names_what_is_truly_missing(llm_ward: Ward) -> None:
    lacking = _cli("trace", "--row", '{"response": "x"}', "--dataset", "howto")
    assert lacking.exit_code == 2 and "lacks column(s) ['prompt']" in lacking.output
    assert "may be left out" in lacking.output
    # What a file refuses, a row is refused for too: a column the kind does not have, nothing to learn.
    assert _cli("trace", "--row", '{"prompt": "a", "output": "b"}', "--dataset", "howto").exit_code == 2
    blank = _cli("trace", "--row", '{"prompt": "a", "response": " "}', "--dataset", "howto")
    assert blank.exit_code == 2 and "'response'" in blank.output
