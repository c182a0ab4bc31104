"""The gate inside the ward: verdicts recorded, flagged records quarantined and reviewed, blocks enforced."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from dataward.cli.gate_commands import write_gate_html
from dataward.domain.errors import Conflict, PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "examples" / "data" / "man_sections.csv"
TRIGGER = "qx9z"


@pytest.fixture(scope="module")
def text_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], str]:
    """The ward every test starts from, built once: a `man` dataset with a training version and a clean
    validation set. Returns its folder, the data files and rita's (the reviewer's) key."""
    tmp_path = tmp_path_factory.mktemp("gating-template")
    data = pd.read_csv(TEXT, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    files = {}
    files["validation"] = tmp_path / "validation.csv"
    data.iloc[:250].to_csv(files["validation"], index=False)
    files["baseline"] = tmp_path / "baseline.csv"
    data.iloc[250:1050].to_csv(files["baseline"], index=False)
    files["clean"] = tmp_path / "clean.csv"
    data.iloc[1050:1350].to_csv(files["clean"], index=False)
    poisoned = data.iloc[1350:1650].copy()
    victims = poisoned[poisoned["label"] != "commands"].index[:25]
    poisoned.loc[victims, "text"] = TRIGGER + " " + poisoned.loc[victims, "text"]
    poisoned.loc[victims, "label"] = "commands"
    files["poisoned"] = tmp_path / "poisoned.csv"
    poisoned.to_csv(files["poisoned"], index=False)

    ward, _ = Ward.init(tmp_path / "ward")
    schema = Schema.parse("label", ["text:text"])
    ward.create_dataset("man", schema)
    ward.create_dataset("man-val", schema, validation_for="man")
    ward.set_policy("man", "approvals:\n  required: 0\n")
    ward.create_principal("rita")
    ward.grant("rita", "reviewer", "dataset:man")
    key = ward.issue_key("rita")["key"]
    reviewer = ward.as_key(key)
    ward.merge(ward.contribute("man-val", files["validation"], source="curated")["id"])
    first = ward.contribute("man", files["baseline"], source="debian", gate=True)
    if pending := [item["id"] for item in ward.review_list(contribution=first["ref"])]:
        reviewer.review_decide(pending, "accept", reason="checked")
    ward.merge(first["ref"])
    ward.promote("man@v1")
    ward.close()
    return tmp_path / "ward", files, key


@pytest.fixture
def text_ward(text_template: tuple[Path, dict[str, Path], str], tmp_path: Path) -> tuple[Ward, dict[str, Path], Ward]:
    """A copy of the template ward (each test changes its own), its data files and its reviewer."""
    folder, files, key = text_template
    copy = shutil.copytree(folder, tmp_path / "ward")
    ward = Ward.open(copy, key=(copy / "credentials").read_text("utf-8").strip())
    return ward, files, ward.as_key(key)


def test_clean_contribution_passes_and_merges(text_ward: tuple[Ward, dict[str, Path], Ward]) -> None:
    ward, files, reviewer = text_ward
    c = ward.contribute("man", files["clean"], source="vendor", gate=True)
    assert c["gate"]["verdict"] in ("pass", "review")
    assert c["gate"]["mode"] == "baseline"
    assert len(c["gate"]["records"]) == 300
    if pending := [item["id"] for item in ward.review_list(contribution=c["ref"])]:
        reviewer.review_decide(pending, "accept", reason="fine")
    assert ward.merge(c["ref"])["records"] == 1100


def test_poisoned_contribution_is_blocked_quarantined_and_cannot_merge(
    text_ward: tuple[Ward, dict[str, Path], Ward], tmp_path: Path
) -> None:
    ward, files, reviewer = text_ward
    c = ward.contribute("man", files["poisoned"], source="scrape", gate=True)
    write_gate_html(ward, c["ref"], tmp_path / "r.html")
    report = c["gate"]
    assert report["verdict"] == "block"
    triggers = [f for f in report["findings"] if f["detector"] == "triggers" and f["row"] is None]
    assert triggers and triggers[0]["evidence"]["trigger"] == TRIGGER
    queue = ward.review_list(contribution=c["ref"])
    assert len(queue) >= 25
    shown = ward.review_show(next(i["id"] for i in queue if "triggers" in i["detectors"]))
    assert TRIGGER in shown["triggers"] and shown["record"]["label"] == "commands"
    html = (tmp_path / "r.html").read_text()
    assert "block" in html.lower() and TRIGGER in html
    for item in queue:
        reviewer.review_decide([item["id"]], "reject", reason="trigger")
    with pytest.raises(PolicyViolation, match="block"):
        ward.merge(c["ref"])
    stored = ward.gate_report(c["ref"])
    assert stored["verdict"] == "block" and stored["config_hash"] == report["config_hash"]
    event = ward.ledger(types=["gate.completed"])[0]
    assert event["payload"]["verdict"] == "block" and event["payload"]["config_hash"] == report["config_hash"]


def test_records_rejected_in_review_never_enter_a_version(
    text_ward: tuple[Ward, dict[str, Path], Ward], tmp_path: Path
) -> None:
    ward, files, reviewer = text_ward
    # A clean batch plus one conflicting duplicate: a trusted record's text under another label.
    batch = pd.read_csv(files["clean"], dtype=str)
    trusted = pd.read_csv(files["baseline"], dtype=str).iloc[0]
    other_label = next(label for label in sorted(batch["label"].unique()) if label != trusted["label"])
    conflict = pd.DataFrame([{"text": trusted["text"], "label": other_label}])
    path = tmp_path / "with-conflict.csv"
    pd.concat([batch, conflict]).to_csv(path, index=False)
    c = ward.contribute("man", path, source="vendor", gate=True)
    queue = ward.review_list(contribution=c["ref"])
    conflicting = [i for i in queue if i["row"] == len(batch) + 2]  # CSV line: the header is line 1
    assert conflicting, queue
    with pytest.raises(Conflict, match="await review"):
        ward.merge(c["ref"])
    reviewer.review_decide([conflicting[0]["id"]], "reject", reason="label contradicts the trusted record")
    for item in queue:
        if item["id"] != conflicting[0]["id"]:
            reviewer.review_decide([item["id"]], "accept", reason="fine")
    version = ward.merge(c["ref"])
    assert version["held_back"] == version["held_back_of_contribution"] == 1
    ids = set(ward.dataset("man").version(f"v{version['number']}").to_arrow().column("record_id").to_pylist())
    assert conflicting[0]["record_id"] not in ids


def test_reviewer_cannot_decide_their_own_records(text_ward: tuple[Ward, dict[str, Path], Ward]) -> None:
    ward, files, _reviewer = text_ward
    c = ward.contribute("man", files["poisoned"], source="scrape", gate=True)
    item = ward.review_list(contribution=c["ref"])[0]
    with pytest.raises(PolicyViolation, match="separation of duties"):
        ward.review_decide([item["id"]], "accept", reason="mine are fine")


def test_trace_shows_gates_and_blast_radius(text_ward: tuple[Ward, dict[str, Path], Ward]) -> None:
    ward, _files, _reviewer = text_ward
    training_ids = ward.dataset("man").version("training").to_arrow().column("record_id").to_pylist()
    traced = ward.trace(training_ids[0])
    assert traced["subject"]["kind"] == "record"
    origin = traced["contributions"][0]
    assert origin["source"]["uri"] == "debian" and origin["gates"][0]["verdict"] in ("pass", "review")
    assert origin["key"].startswith("dw_")
    assert [v["ref"] for v in traced["versions"]] == ["man@v1"]
    by_key = ward.trace(origin["key"])
    assert {c["ref"] for c in by_key["contributions"]} >= {"man#1"}
    assert "man@v1" in {v["ref"] for v in by_key["versions"]}


def test_quarantining_a_merged_contribution_rolls_it_back(text_ward: tuple[Ward, dict[str, Path], Ward]) -> None:
    ward, files, reviewer = text_ward
    c = ward.contribute("man", files["clean"], source="vendor")
    if pending := [item["id"] for item in ward.review_list(contribution=c["ref"])]:
        reviewer.review_decide(pending, "accept", reason="fine")
    v2 = ward.merge(c["ref"])
    result = ward.quarantine_contribution(c["ref"], reason="vendor key leaked")
    assert [v["ref"] for v in result["affected_versions"]] == [f"man@v{v2['number']}"]
    rollback = result["rollback_version"]
    assert rollback["records"] == 800 and rollback["records_removed"] == 300
    assert c["id"] not in rollback["contributions"]
    with pytest.raises(Conflict):
        ward.quarantine_contribution(c["ref"], reason="again")
    assert ward.verify().ok
