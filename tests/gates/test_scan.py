"""scan() end to end: verdicts on clean and poisoned contributions, inputs, report shape, bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from dataward.domain.errors import InputError
from dataward.gates import GatePolicy, scan
from tests.gates.conftest import flip_labels

CORE = ["label_consistency", "duplicates", "outliers", "drift"]
RECORD_KEYS = {"row", "record_id", "score", "flagged", "flagged_by", "detectors"}


@pytest.mark.parametrize("name", ["digits", "wine", "cancer"])
def test_clean_split_passes(name, request):
    baseline, contribution, schema = request.getfixturevalue(name)
    report = scan(baseline, contribution, schema, policy={"detectors": CORE})
    assert report.verdict == "pass", report.reasons
    assert report.records.flagged.mean() <= 0.03


def test_label_flips_in_digits_are_caught_and_ranked_first(digits):
    baseline, contribution, schema = digits
    poisoned, rows = flip_labels(contribution, 0.05, 10)
    report = scan(baseline, poisoned, schema, policy={"detectors": CORE})
    assert report.verdict in ("review", "block")
    truth = np.zeros(len(poisoned), bool)
    truth[rows] = True
    threshold = np.quantile(report.records.score[~truth], 0.99)
    assert (report.records.score[truth] > threshold).mean() >= 0.7
    assert report.records.flagged[~truth].mean() <= 0.02


def test_report_json_has_every_record_in_order_with_documented_keys(wine):
    baseline, contribution, schema = wine
    contribution = contribution.assign(row=np.arange(10, 10 + len(contribution)))
    report = scan(
        baseline,
        contribution,
        schema,
        policy={"detectors": CORE},
        groups={"source": ["a" if i % 2 else "b" for i in range(len(contribution))]},
    )
    out = json.loads(json.dumps(report.to_dict()))
    assert set(out) == {
        "verdict",
        "reasons",
        "limits",
        "mode",
        "config_hash",
        "policy",
        "counts",
        "detectors",
        "records",
        "groups",
        "findings",
    }
    assert [r["row"] for r in out["records"]] == list(range(10, 10 + len(contribution)))
    for rec in out["records"]:
        assert set(rec) == RECORD_KEYS
        assert 0.0 <= rec["score"] <= 1.0 and len(rec["record_id"]) == 64
        assert set(rec["detectors"]) == set(CORE)
    assert {g["key"] for g in out["groups"]["source"]} == {"a", "b"}
    assert out["config_hash"] == GatePolicy.from_dict({"detectors": CORE}).config_hash()
    assert out["mode"] == "baseline"
    projection = report.extras["projection"]
    assert len(projection["contribution"]) == len(projection["flagged"]) == len(contribution)
    assert {"label_consistency", "duplicates", "outliers"} <= set(report.extras["baseline_scores"])


def test_arrow_and_pandas_give_the_same_report(wine):
    baseline, contribution, schema = wine
    from_pandas = scan(baseline, contribution, schema, policy={"detectors": CORE})
    from_arrow = scan(
        pa.Table.from_pandas(baseline), pa.Table.from_pandas(contribution), schema, policy={"detectors": CORE}
    )
    assert from_pandas.to_dict()["records"] == from_arrow.to_dict()["records"]


def test_self_reference_mode_without_baseline(digits):
    _, contribution, schema = digits
    poisoned, rows = flip_labels(contribution, 0.1, 10)
    report = scan(None, poisoned, schema, policy={"detectors": CORE})
    assert report.mode == "self-reference"
    assert "drift" in report.to_dict()["detectors"] and report.to_dict()["detectors"]["drift"]["p_value"] is None
    truth = np.zeros(len(poisoned), bool)
    truth[rows] = True
    assert report.records.score[truth].mean() > report.records.score[~truth].mean() + 0.3


def test_text_contribution_with_flipped_topics(text_sets):
    baseline, contribution, schema = text_sets
    clean = scan(baseline, contribution, schema, policy={"detectors": CORE})
    assert clean.verdict == "pass", clean.reasons
    poisoned = contribution.copy()
    rows = np.arange(0, 30, 2)
    poisoned.loc[rows, "label"] = poisoned.loc[rows, "label"].map(
        {"sport": "finance", "finance": "science", "science": "sport"}
    )
    report = scan(baseline, poisoned, schema, policy={"detectors": CORE})
    assert report.verdict in ("review", "block")
    assert report.records.flagged[rows].mean() >= 0.6
    evidence = report.extras["evidence"]
    assert evidence and all(e["text"] for e in evidence.values())


def test_image_bytes_and_arrays(digit_images):
    baseline, contribution, schema = digit_images
    clean = scan(baseline, contribution, schema, policy={"detectors": CORE})
    assert clean.verdict == "pass", clean.reasons
    poisoned, rows = flip_labels(contribution, 0.05, 10)
    report = scan(baseline, poisoned, schema, policy={"detectors": CORE})
    assert report.verdict in ("review", "block")
    assert report.records.flagged[rows].mean() >= 0.5
    arrays = contribution.assign(image=[np.zeros((8, 8), np.uint8)] * len(contribution))
    assert len(scan(baseline, arrays, schema, policy={"detectors": ["outliers"]}).records.record_ids) == len(arrays)


def test_bad_inputs_are_refused(wine):
    baseline, contribution, schema = wine
    with pytest.raises(InputError, match="label column"):
        scan(baseline, contribution.drop(columns=["label"]), schema)
    with pytest.raises(InputError, match="empty"):
        scan(baseline, contribution.iloc[:0], schema)
    with pytest.raises(InputError, match="unknown detector"):
        scan(baseline, contribution, schema, policy={"detectors": ["no_such_detector"]})
    with pytest.raises(InputError, match="unknown gate policy key"):
        scan(baseline, contribution, schema, policy={"alpah": 0.1})
    with pytest.raises(InputError, match="pandas DataFrame or a pyarrow Table"):
        scan(baseline, [1, 2, 3], schema)


def _flipped_text(request):
    baseline, contribution, schema = request.getfixturevalue("text_sets")
    poisoned = contribution.copy()
    poisoned.loc[:9, "label"] = "finance"
    return baseline.iloc[:250], poisoned, schema, {}


def _flipped_images(request):
    baseline, contribution, schema = request.getfixturevalue("digit_images")
    poisoned = contribution.iloc[:200].copy()
    poisoned.loc[:14, "label"] = (poisoned.loc[:14, "label"] + 1) % 10
    return baseline.iloc[:500], poisoned, schema, {}


def _flipped_table(request):
    baseline, contribution, schema = request.getfixturevalue("wine")
    return baseline, flip_labels(contribution, 0.15, 3)[0], schema, {}


# The test suite runs every other scan on one thread (the Makefile's DATAWARD_GATE_WORKERS=1: its two
# processes already take both cores), so these cases are what holds the threaded scan, in each modality
# that has one, to the serial one. (A language-model scan runs its detectors one after another whatever
# it is given: ``scanning._scan``.)
@pytest.mark.parametrize("case", [_flipped_text, _flipped_images, _flipped_table])
def test_detectors_on_two_workers_give_the_serial_report(case, request):
    baseline, poisoned, schema, options = case(request)
    serial = scan(baseline, poisoned, schema, workers=1, **options)
    parallel = scan(baseline, poisoned, schema, workers=2, **options)
    assert len(serial.results) >= 4 and serial.verdict != "pass"
    assert json.dumps(parallel.to_dict()) == json.dumps(serial.to_dict())
    assert parallel.skipped == serial.skipped and list(parallel.results) == list(serial.results)
    for name, result in serial.results.items():
        assert np.array_equal(parallel.results[name].p_values, result.p_values), name
        assert parallel.results[name].p_value == result.p_value, name
    assert list(parallel.extras["timings"]) == list(serial.extras["timings"])


def test_a_bad_number_of_workers_is_refused(wine, monkeypatch):
    baseline, contribution, schema = wine
    for bad in (0, -1, 1.5, True, "2", 65):
        with pytest.raises(InputError, match="workers must be a whole number from 1 to 64"):
            scan(baseline, contribution, schema, workers=bad)
    monkeypatch.setenv("DATAWARD_GATE_WORKERS", "two")
    with pytest.raises(InputError, match="DATAWARD_GATE_WORKERS must be a whole number"):
        scan(baseline, contribution, schema)
