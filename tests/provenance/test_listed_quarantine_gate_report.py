"""The gate report counts what waits in the review queue as the queue itself does.

After a restore, the ward's list of removals alone holds wine#3 quarantined; its catalog row (gated, three
items pending) predates the quarantine. The review queue leaves those items out and refuses a decision on
them; the gate report must not tell its reader that three records of wine#3 wait for a reviewer.
"""

from __future__ import annotations

from pathlib import Path

from dataward.service.ward import Ward
from tests.provenance.test_listed_quarantine_review import _flagged_again, _pending_then_quarantined
from tests.security.attacks import json_cli


def test_the_gate_report_counts_no_queued_record_of_a_listed_quarantine(wine_ward: Ward, tmp_path: Path) -> None:
    folder, items = _pending_then_quarantined(wine_ward, tmp_path)
    code, queue = json_cli(folder, "review", "list", "--contribution", "wine#3")
    assert code == 0 and queue == [], queue
    code, shown = json_cli(folder, "review", "list", "--contribution", "wine#3", "--status", "all")
    assert {i["id"] for i in shown} == set(items) and all("quarantine_listed" in i for i in shown), shown
    code, report = json_cli(folder, "gate", "report", "wine#3")
    assert code == 0, report
    assert report["queued_for_review"] == len(queue) == 0, report
    assert "verdict_note" not in report
    # Why nothing is queued, as the queue and the contribution say it: the list's quarantine.
    assert "catalog says gated" in report["quarantine_listed"]["note"], report
    # A live batch's flagged record is counted as before, and is in the queue.
    live = _flagged_again(Ward.open(folder), tmp_path)
    ref = Ward.open(folder).review_show(live)["contribution"]
    code, report = json_cli(folder, "gate", "report", ref)
    code, queue = json_cli(folder, "review", "list", "--contribution", ref)
    assert report["queued_for_review"] == len(queue) == 1 and "quarantine_listed" not in report, report
