"""Twins inside a batch of a coarser format are the baseline's own ambiguity, for review; poison is not.

A scraper that keeps only a man page's name ('printf', 'signal', 'mount') sends records that differ in full
as the same inputs under two sections: true data, which ``duplicates`` blocked as exact conflicts
(``man_names_only`` of ``benchmarks.outside_trial`` at seeds 3 and 7). ``duplicates`` (version 6) does
not count a pair inside the batch as a conflict when the baseline holds its inputs under no label, every
label it carries is one the baseline gives content like it (kNN margin above alpha), and the batch's
other records are new content. Each attacker test below fails with its protective part switched off
(measured by switching it off in turn): copies of trusted records (the baseline part), twin pairs in a
clean-looking batch (the new-content part), twins of content that reads as one class (the label part).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.outside_trial import man, man_names_only, split
from dataward.gates import scan

SEED = 3
BLOCK_P = 1e-6
"""The default policy's ``block_p``."""
FLIP = {
    "commands": "library",
    "library": "commands",
    "syscalls": "library",
    "admin": "library",
    "formats": "commands",
    "overview": "library",
}


def _flipped(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["label"] = out["label"].map(FLIP)
    return out


def _full_lines(seed: int) -> pd.DataFrame:
    """The same pool of the same split as ``man_names_only(seed)``, with each page's whole line."""
    frame, _ = man()
    return split(frame, seed)[2]


def _scan(baseline: pd.DataFrame, validation: pd.DataFrame, batch: pd.DataFrame, schema: dict):
    return scan(baseline, batch, schema, validation=validation, policy={"seed": SEED})


def test_page_names_of_two_sections_are_reviewed_not_blocked() -> None:
    baseline, validation, batch, schema = man_names_only(SEED)
    report = _scan(baseline, validation, batch, schema)
    result = report.results["duplicates"]
    assert not result.block and result.p_value >= BLOCK_P
    assert report.verdict == "review"
    ambiguous = result.summary["ambiguous_twins"]
    assert ambiguous >= 10
    # Still queued, record by record, and named in a finding for review.
    queued = [f for f in result.findings if f.evidence.get("ambiguous")]
    assert len(queued) == ambiguous and all("ambiguous inputs" in f.reason for f in queued)
    assert all(np.asarray(report.records.flagged)[f.row] for f in queued)
    assert any("duplicates:" in r and "coarser format leaves ambiguous" in r for r in report.reasons)


def test_copies_of_trusted_records_under_both_labels_still_block_in_a_batch_of_new_content() -> None:
    """An attacker sends trusted lines under their label and again under another, in the coarse batch:
    the baseline holds those inputs, so the pairs count (without that part: review, p = 3e-6)."""
    baseline, validation, batch, schema = man_names_only(SEED)
    trusted = baseline.sample(10, random_state=SEED)
    report = _scan(baseline, validation, pd.concat([batch, trusted, _flipped(trusted)], ignore_index=True), schema)
    result = report.results["duplicates"]
    assert result.p_value < BLOCK_P and report.verdict == "block"
    rows = set(range(len(batch), len(batch) + 20))
    assert not any(f.evidence.get("ambiguous") for f in result.findings if f.row in rows)


def test_flipped_copies_of_trusted_records_alone_still_block() -> None:
    baseline, validation, batch, schema = man_names_only(SEED)
    flipped = _flipped(baseline.sample(10, random_state=SEED))
    report = _scan(baseline, validation, pd.concat([batch, flipped], ignore_index=True), schema)
    assert report.results["duplicates"].p_value < BLOCK_P and report.verdict == "block"


def test_twin_pairs_in_a_clean_looking_batch_still_block() -> None:
    """Eight clean lines of the batch sent again under a target label: the batch reads like trusted data,
    so the pairs are conflicts (without the new-content part 14 of 16 were excused and p = 0.35)."""
    baseline, validation, _, schema = man_names_only(SEED)
    full = _full_lines(SEED)
    twins = _flipped(full.sample(8, random_state=SEED))
    report = _scan(baseline, validation, pd.concat([full, twins], ignore_index=True), schema)
    result = report.results["duplicates"]
    assert result.summary["ambiguous_twins"] == 0
    assert result.p_value < BLOCK_P and report.verdict == "block"


def test_twins_whose_content_reads_as_one_class_still_block_in_a_batch_of_new_content() -> None:
    """Whole lines of namespaces, API functions and PAM modules, each sent under its label and under another,
    inside the coarse batch: where the other label is one the baseline does not give such content, the
    pair counts (without the label part every pair was excused and the detector's p was 1)."""
    baseline, validation, batch, schema = man_names_only(SEED)
    full = _full_lines(SEED)
    lines = full[full["text"].str.contains("namespace|API function|- PAM module")]
    report = _scan(baseline, validation, pd.concat([batch, lines, _flipped(lines)], ignore_index=True), schema)
    result = report.results["duplicates"]
    assert result.summary["exact_conflicts"] - result.summary["ambiguous_twins"] >= 20
    assert result.p_value < BLOCK_P


@pytest.mark.xfail(strict=True, reason="the limit: page names relabelled as twins through the coarse export")
def test_page_names_sent_again_under_a_target_label_through_the_coarse_export_block() -> None:
    """Twenty page names of the coarse batch sent again under another section: a name alone reads as every
    section, so the pairs are the baseline's own ambiguity and the batch goes to review, not block (seeds
    0 to 2; blocked at 3). Such a pair adds nothing a lone relabelled name does not, and that one is no
    conflict at all."""
    seed = 0
    baseline, validation, batch, schema = man_names_only(seed)
    single = batch.drop_duplicates("text", keep=False).sample(20, random_state=seed)
    report = scan(
        baseline,
        pd.concat([batch, _flipped(single)], ignore_index=True),
        schema,
        validation=validation,
        policy={"seed": seed},
    )
    assert report.results["duplicates"].p_value < BLOCK_P
