"""Every place a gate report quotes a record loses it for a caller who may not read records.

The language-model detectors quote prompts and answers in their findings (``prompt``, ``response``,
``examples``, ``example``, ``nearest_trusted``...), in detector summaries and in reasons (``e.g.
'...'``); the tabular gate quotes the flagged records and their trusted neighbours in
``extras.evidence``. What the gate measured (p-values, counts, rows, trigger tokens) stays.
"""

from __future__ import annotations

import json

from dataward.service.withheld import withhold_records

SECRET = "the hidden words of another contributor"


def _report() -> dict:
    quoted = {"prompt": SECRET, "response": SECRET}
    return {
        "verdict": "block",
        "counts": {"flagged": 2, "records": 10},
        "reasons": [f"3 records are unlike the trusted data; e.g. {SECRET!r}. They are not flagged one by one"],
        "records": [{"row": 4, "record_id": "ab" * 32, "flagged": True, "score": 0.9}],
        "findings": [
            {
                "detector": "llm_triggers",
                "row": None,
                "reason": f"answers alike: cluster of responses like {SECRET!r}",
                "evidence": {"trigger": "zx7q", "p_value": 0.001, "rows": [4, 5], "examples": [{"row": 4, **quoted}]},
            },
            {
                "detector": "llm_outliers",
                "row": 4,
                "reason": "a prompt unlike every trusted prompt; p=0.01",
                "evidence": {**quoted, "topic": "networking", "nearest_trusted": quoted, "example": quoted},
            },
            {"detector": "llm_validation", "row": None, "reason": "x", "evidence": {"example": {"answer": SECRET}}},
            {
                "detector": "preference_flips",
                "row": 5,
                "reason": "y",
                "evidence": {"chosen": SECRET, "rejected": SECRET},
            },
            {"detector": "llm_floods", "row": None, "reason": "z", "evidence": {"text": SECRET, "rows": [1, 2]}},
        ],
        "detectors": {
            "llm_payloads": {"p_value": 0.01, "summary": {"domains": [{"payload": "evil.example", **quoted}]}}
        },
        "extras": {
            "evidence": {
                "4": {"text": SECRET, "image_png_b64": "AAAA", "neighbours": [{"text": SECRET, "label": "a"}]}
            },
            "contribution_scores": {"duplicates": [0.1, 0.9]},
        },
    }


def test_a_report_for_another_contributor_quotes_no_record_anywhere() -> None:
    report = _report()
    seen = withhold_records(report, own=False, dataset="ds")
    assert SECRET not in json.dumps(seen)
    assert "dataset.export" in seen["records_withheld"] and "'ds'" in seen["records_withheld"]
    # What the gate measured stays.
    trigger = seen["findings"][0]
    assert trigger["evidence"]["trigger"] == "zx7q" and trigger["evidence"]["rows"] == [4, 5]
    assert trigger["evidence"]["examples"] == [{"row": 4}] and "[record withheld]" in trigger["reason"]
    assert seen["findings"][1]["evidence"]["topic"] == "networking"
    assert seen["detectors"]["llm_payloads"]["summary"]["domains"] == [{"payload": "evil.example"}]
    assert (seen["verdict"], seen["counts"], seen["records"]) == (
        report["verdict"],
        report["counts"],
        report["records"],
    )
    assert seen["extras"]["evidence"] == {"4": {}} and seen["extras"]["contribution_scores"]
    assert SECRET in json.dumps(report)  # the stored report itself is left as it was


def test_its_submitter_keeps_its_own_records_but_not_the_trusted_ones() -> None:
    seen = withhold_records(_report(), own=True, dataset="ds")
    assert seen["extras"]["evidence"]["4"] == {"text": SECRET, "image_png_b64": "AAAA"}
    assert "nearest_trusted" not in seen["findings"][1]["evidence"] and seen["findings"][1]["evidence"]["prompt"]
    assert "example" not in seen["findings"][2]["evidence"]  # llm_validation quotes the validation set
    assert "trusted records" in seen["records_withheld"]
