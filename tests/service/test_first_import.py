"""The first import is judged against the clean validation set; with none, it is refused unless the
dataset's owner opted in to self-reference mode, a recorded policy choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataward.domain.errors import AccessDenied, InputError, PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_schema_specs, write_csv

LIGHT = "gate:\n  detectors: [duplicates]\n"


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    w, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    w.create_dataset("wine", Schema.parse(label, specs))
    w.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    return w


def test_no_validation_set_and_no_training_version_is_refused_before_storing(ward: Ward, tmp_path: Path) -> None:
    seq = ward.ledger_head()["seq"]
    with pytest.raises(PolicyViolation) as refused:
        ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40)), source="s")
    assert "no clean validation set" in refused.value.message
    assert "--validation-for wine" in (refused.value.hint or "")
    assert "first_import: self-reference" in (refused.value.hint or "")
    assert ward.contributions("wine") == []
    events = ward.ledger(newest_first=False)
    assert [e["type"] for e in events if e["seq"] > seq] == ["access.denied"]
    # Stored without a gate, it still cannot be gated (nor merged) until there is something to trust.
    c = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40)), source="s", gate=False)
    with pytest.raises(PolicyViolation, match="no clean validation set"):
        ward.run_gate(c["ref"])


def test_the_self_reference_opt_in_is_an_owners_recorded_choice(ward: Ward, tmp_path: Path) -> None:
    ward.create_principal("rita")
    ward.grant("rita", "reviewer", "dataset:wine")
    rita = ward.as_key(ward.issue_key("rita")["key"])
    with pytest.raises(AccessDenied):
        rita.set_policy("wine", "first_import: self-reference\n")
    with pytest.raises(InputError, match="first_import"):
        ward.set_policy("wine", "first_import: trust-me\n")
    ward.set_policy("wine", LIGHT + "first_import: self-reference\n")
    assert ward.ledger(types=["policy.set"])[0]["payload"]["policy"]["first_import"] == "self-reference"
    c = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 40, shuffled=True)), source="s")
    assert c["gate"]["mode"] == "self-reference" and c["gate"]["trusted"]["kind"] == "self-reference"
    assert "opted in" in c["gate"]["trusted"]["note"]


def test_a_validation_set_is_halved_into_baseline_and_held_out(ward: Ward, tmp_path: Path) -> None:
    ward.set_policy("wine", LIGHT)
    rows = wine_rows(shuffled=True)
    ward.merge(ward.contribute("wine-val", write_csv(tmp_path / "v.csv", rows[:110]), source="curated")["ref"])
    c = ward.contribute("wine", write_csv(tmp_path / "a.csv", rows[110:]), source="s")
    trusted = c["gate"]["trusted"]
    assert c["gate"]["mode"] == "baseline" and trusted["kind"] == "validation-set"
    # Stratified: each class's odd record goes to the baseline half.
    assert trusted["records"] + trusted["held_out"] == 110 and 0 <= trusted["records"] - trusted["held_out"] <= 3
    event = ward.ledger(types=["gate.completed"])[0]["payload"]
    assert event["trusted"] == {k: trusted[k] for k in ("kind", "records", "held_out")}
    # 55 trusted records leave the trigger and backdoor tests little power: the note says so, and how to
    # measure what this gate finds (a new user's backdoored first import passed with nothing said).
    selftest = f"`dataward gate selftest wine --contribution {c['ref']}`"
    assert f"a small backdoor can pass unseen: {selftest}" in trusted["note"]


def _first_batch_with_flips(ward: Ward, tmp_path: Path, validation_records: int) -> dict:
    """The first contribution to 'wine' (the wine rows after the first ``validation_records``, which go to its
    validation set), with 30% of its labels flipped: the contribution's result."""
    rows = wine_rows(shuffled=True)
    validation = write_csv(tmp_path / "v.csv", rows[:validation_records])
    ward.merge(ward.contribute("wine-val", validation, source="curated")["ref"])
    batch = rows[validation_records:]
    for i in np.random.default_rng(0).choice(len(batch), int(len(batch) * 0.3), replace=False):
        batch[i]["cultivar"] = (int(batch[i]["cultivar"]) + 1) % 3  # 30% of the labels flipped
    return ward.contribute("wine", write_csv(tmp_path / "a.csv", batch), source="s")


def test_a_heavily_poisoned_first_batch_no_longer_passes(ward: Ward, tmp_path: Path) -> None:
    c = _first_batch_with_flips(ward, tmp_path, validation_records=70)
    assert c["gate"]["trusted"]["kind"] == "validation-set" and c["gate"]["trusted"]["held_out"] == 0
    assert c["gate"]["verdict"] in ("review", "block"), c["gate"]["reasons"]


@pytest.mark.parametrize("labels", ["abb", "abc"])
def test_a_tiny_self_referenced_first_import_with_one_record_labels_gets_a_verdict(
    ward: Ward, tmp_path: Path, labels: str
) -> None:
    """Three records, a label of one record among them: the duplicates detector used to fail on the fold
    that holds one record per label (see tests/gates/test_duplicates_one_record_labels.py)."""
    ward.create_dataset("tiny", Schema.parse("label", ["x:numeric", "y:numeric"]))
    ward.set_policy("tiny", LIGHT + "first_import: self-reference\n")
    rows = [{"x": float(i), "y": float(i * i), "label": label} for i, label in enumerate(labels)]
    c = ward.contribute("tiny", write_csv(tmp_path / "tiny.csv", rows), source="s")
    assert c["gate"]["mode"] == "self-reference" and c["gate"]["verdict"] in ("pass", "review", "block")


def test_a_validation_set_too_small_to_judge_by_says_so_in_the_report_and_the_cli(ward: Ward, tmp_path: Path) -> None:
    from dataward.cli.gate_commands import show_report
    from dataward.cli.output import console

    c = _first_batch_with_flips(ward, tmp_path, validation_records=1)
    gate = c["gate"]
    assert gate["trusted"]["kind"] == "validation-set" and gate["trusted"]["records"] == 1
    assert gate["verdict"] in ("review", "block")
    assert any("the trusted baseline holds only 1 record" in reason for reason in gate["reasons"])
    with console.capture() as shown:
        show_report(gate)
    assert "the trusted baseline holds only 1 record" in " ".join(shown.get().split())


@pytest.mark.parametrize(("validation_records", "measured"), [(50, False), (110, True)])
def test_clean_validation_is_skipped_for_the_true_reason_when_the_set_is_too_small_to_halve(
    ward: Ward, tmp_path: Path, validation_records: int, measured: bool
) -> None:
    """A 50-record validation set was given: the skipped line says it is too small to halve, never that none
    was given (what the report's header says too); a set large enough to halve is measured on."""
    from dataward.cli.gate_commands import show_report
    from dataward.cli.output import console

    ward.set_policy("wine", "gate:\n  detectors: [duplicates, clean_validation]\n")
    gate = _first_batch_with_flips(ward, tmp_path, validation_records=validation_records)["gate"]
    skipped = (gate["detectors"]["clean_validation"]["summary"] or {}).get("skipped")
    with console.capture() as shown:
        show_report(gate)
    text = " ".join(shown.get().replace("│", " ").split())  # the tree's wrapped lines, read as one
    assert "none was given" not in text
    if measured:
        assert skipped is None and gate["trusted"]["held_out"] > 0
        return
    assert gate["trusted"]["held_out"] == 0 and "fewer than 100 to halve" in gate["trusted"]["note"]
    assert skipped is not None and "none was given" not in skipped
    assert "has 50 records, fewer than 100 to halve" in skipped and "none is held out" in skipped
    assert "clean_validation: skipped (the clean validation set has 50 records, fewer than 100 to halve" in text
