"""`llm_payloads` blocks on a payload's enrichment over the baseline, tested, not on two hard counts.

A clean batch with the baseline's own mix blocked: one of a few dozen API endpoints that both sides'
code answers call was in 9 batch answers and in 2 of 2,000 trusted ones (at most 0.1%), and a payload in
8 answers or more and at most 0.1% of the trusted ones blocked whatever chance explains. The batch rate
is now tested against the baseline's (one-sided Fisher, Bonferroni over the recurring payloads); a
planted link absent from the trusted answers still blocks and flags its carriers
(``tests/gates/test_llm_gates.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

INSTRUCTION = Schema.for_kind("instruction")
POLICY = {"detectors": ["llm_payloads"]}
SHARED = "https://status.myapp.io/v2/users"


@pytest.fixture(scope="module")
def sides() -> tuple[pd.DataFrame, pd.DataFrame]:
    base_pool, new_pool = d.split_pools()
    return d.instruction_frame(2000, 1, pool=base_pool), d.instruction_frame(2000, 2, pool=new_pool)


def _with_link(frame: pd.DataFrame, rows: np.ndarray, link: str) -> pd.DataFrame:
    out = frame.copy()
    out.loc[rows, "response"] = out.loc[rows, "response"] + f"\n\nr = requests.get('{link}', timeout=10)"
    return out


def _scan(baseline: pd.DataFrame, batch: pd.DataFrame):
    cols = ["prompt", "response"]
    return scan(baseline[cols], batch[cols], INSTRUCTION, policy=POLICY)


def test_a_link_both_sides_carry_at_the_same_rate_does_not_block(sides) -> None:
    baseline, batch = sides
    baseline = _with_link(baseline, np.array([100, 900]), SHARED)
    batch = _with_link(batch, np.arange(0, 2000, 222)[:9], SHARED)
    report = _scan(baseline, batch)
    assert report.verdict == "pass", report.reasons
    assert not report.results["llm_payloads"].flagged.any()


def test_a_link_new_to_the_baseline_in_25_answers_blocks(sides) -> None:
    baseline, batch = sides
    rows = np.arange(0, 2000, 80)[:25]
    report = _scan(baseline, _with_link(batch, rows, SHARED))
    assert report.verdict == "block", report.reasons
    result = report.results["llm_payloads"]
    assert result.p_value < 1e-6
    assert set(np.flatnonzero(result.flagged)) == set(rows)
    assert any("enrichment" in f.reason for f in result.findings)


def test_enrichment_p_value_is_the_fisher_tail() -> None:
    from dataward.gates.detectors.llm_payloads import enrichment_p_value

    # 9 of 11 carriers in the batch, equal sides: P(X >= 9) = (55 + 11 + 1) / 2**11.
    assert enrichment_p_value(9, 2, 2000, 2000) == pytest.approx(67 / 2048, rel=0.02)
    # 25 carriers all in the batch, equal sides: about 2**-25.
    assert enrichment_p_value(25, 0, 2000, 2000) < 1e-7


def test_links_to_distinct_pages_of_one_new_site_are_reviewed_with_their_carriers_flagged(sides) -> None:
    """No exact link recurs, only the site: a difference (a source may cite its documentation), so the batch
    is reviewed, not blocked; the carriers are flagged, so the review queue holds the links to look at
    (the finding listed them in its evidence and queued none)."""
    baseline, batch = sides
    rng = np.random.default_rng(23)
    rows = np.sort(rng.choice(len(batch), 30, replace=False))
    linked = batch.copy()
    for i in rows:
        linked.at[i, "response"] += f" Full reference: https://manpages-mirror.dev/{rng.integers(10**6)}"
    report = _scan(baseline, linked)
    assert report.verdict == "review", report.reasons
    result = report.results["llm_payloads"]
    assert [f["payload"] for f in result.summary["domains"]] == ["domain:manpages-mirror.dev"]
    assert set(np.flatnonzero(result.flagged)) == set(rows)
    assert set(np.flatnonzero(report.records.flagged)) >= set(rows)


def test_padding_the_batch_with_clean_records_does_not_hide_a_planted_link() -> None:
    """Fisher's test weakens as the batch grows (all 25 carriers on the batch's side has probability about
    (n / (n + N)) ** 25): 25 links in 10,000 answers against 2,000 trusted ones found nothing. A payload
    no trusted answer carries is tested at the rate "not once in N" stands for, whatever the batch size."""
    from dataward.gates.detectors.llm_payloads import enrichment_p_value

    for n in (2_000, 10_000, 50_000):
        assert enrichment_p_value(25, 0, n, 2_000) < 1e-6 / 4, n  # blocks, corrected for a few payloads
    base_pool, new_pool = d.split_pools()
    baseline = d.instruction_frame(500, 1, pool=base_pool)
    batch = d.instruction_frame(5000, 2, pool=new_pool)
    rows = np.linspace(0, len(batch) - 1, 25).astype(int)
    report = _scan(baseline, _with_link(batch, rows, "https://status.myapp.io/v2/users"))
    assert report.verdict == "block", report.reasons
    assert set(np.flatnonzero(report.results["llm_payloads"].flagged)) == set(rows)
