"""The gate on the demo's own data (``scripts/demo_data.py``), as ``make demo`` runs it.

What the demo promises a new user, kept true by the suite rather than by reading the demo's output: a clean
vendor that documents one section only is reviewed with what moved, never blocked; the scraper's batch with
a rare-token backdoor is blocked with the token named; the self-test on the promoted data says whether, and
from how many planted records on, the gate sees flipped labels and a trigger.
"""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.selftest_demo import demo_frames
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan
from dataward.gates.selftest import held_out_split, selftest

SCHEMA = Schema.parse("label", ["text:text"])


@pytest.fixture(scope="module")
def demo() -> dict[str, pd.DataFrame]:
    return demo_frames()


def test_a_one_section_vendor_is_reviewed_with_what_moved_and_the_scraper_backdoor_is_blocked(demo) -> None:
    debian, validation = demo["batch-debian"], demo["validation"]
    vendor = scan(debian, demo["batch-vendor"], SCHEMA, validation)
    assert vendor.verdict == "review", vendor.reasons
    assert not any(r.block for r in vendor.results.values())
    # What moved is said in words: the section the vendor documents.
    assert any("library" in reason for reason in vendor.reasons), vendor.reasons

    trusted = pd.concat([debian, demo["batch-vendor"], demo["batch-scraper-early"]], ignore_index=True)
    scraper = scan(trusted, demo["batch-scraper"], SCHEMA, validation)
    assert scraper.verdict == "block", scraper.reasons
    assert any("zx7q" in reason for reason in scraper.reasons), scraper.reasons


def test_the_selftest_on_the_demo_data_finds_flipped_labels_from_a_count_it_names(demo) -> None:
    """A fifth of the demo's promoted data held out, by the rule ``dataward gate selftest`` uses (over the
    files' order, seed 0). That clean slice is itself reviewed (a cluster of 'syscalls' lines of its own),
    which must not hide the copy with flipped labels when that copy is reviewed for its labels: before, a
    clean copy's review made every canary review count as 'not detected', at any count."""
    table = pd.concat([demo["batch-debian"], demo["batch-vendor"]], ignore_index=True)
    held_out, rest = held_out_split(len(table), 0)
    clean, trusted = table.iloc[held_out], table.iloc[rest]
    report = selftest(trusted, clean, SCHEMA, demo["validation"], seed=0).to_dict()

    assert report["clean"]["verdict"] != "block"
    flips, trigger = report["canaries"]
    for canary in (flips, trigger):
        for attempt in canary["attempts"]:
            moved = attempt["verdict"] == "block" or (
                attempt["verdict"] == "review"
                and (report["clean"]["verdict"] == "pass" or bool(attempt["new_sources"]))
            )
            assert attempt["detected"] == moved, attempt
    # Random flips among six overlapping man-page sections are hard: a few percent of 178 lines pass
    # unseen. The report says from how many on label_consistency sees them (36 here, a fifth of the slice).
    assert flips["detection_floor"] is not None and flips["detection_floor"] <= 36, flips["attempts"]
    caught = next(a for a in flips["attempts"] if a["detected"])
    assert "label_consistency" in caught["new_sources"], caught
    assert trigger["detected"] and trigger["trigger_named"] and trigger["detection_floor"] == trigger["planted"]
