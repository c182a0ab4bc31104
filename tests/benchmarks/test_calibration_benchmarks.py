"""The calibration benchmarks measure what they say: clean batches only, both tests on the same batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from benchmarks import clean_null, extreme_records_null


def test_the_exact_rates_baseline_is_the_binomial_of_each_order_statistic() -> None:
    p = np.concatenate([[1e-4, 2e-4, 3e-4], np.linspace(0.01, 1.0, 97)])
    expected = min(stats.binom.sf(j - 1, 100, p[j - 1]) for j in range(2, 21)) * 19
    assert extreme_records_null.exact_rates_p_value(p, 200) == pytest.approx(expected)
    # A batch larger than the calibration set is left to the count tests, as in the gate.
    assert extreme_records_null.exact_rates_p_value(p, 50) == 1.0


def test_the_null_benchmark_reports_a_share_per_level_for_both_tests(tmp_path) -> None:
    out = tmp_path / "null.json"
    extreme_records_null.main(["--batches", "30", "--out", str(out)])
    rows = json.loads(out.read_text())
    assert len(rows) == 4 * len(extreme_records_null.SIZES)
    for row in rows:
        for test in ("exact_rates", "calibrated"):
            shares = [row[test][str(level)] for level in extreme_records_null.LEVELS]
            assert all(0.0 <= s <= 1.0 for s in shares)
            # Nested levels: a batch at or below 1e-4 is also at or below 1e-2.
            assert shares == sorted(shares, reverse=True)


def test_a_clean_split_is_scanned_and_only_poisoning_detectors_are_kept() -> None:
    row = clean_null.scan_batch("wine", 0)
    assert row["verdict"] in ("pass", "review", "block")
    assert row["records"] > 0 and row["baseline"] > row["records"]
    assert "label_consistency" in row["p_values"]
    assert not {"drift", "outliers"} & set(row["p_values"])
    summary = clean_null.summarize([row, {**row, "verdict": "review", "blockers": [], "p_values": {"x": 1e-5}}])
    assert summary["batches"] == 2 and sum(summary["verdicts"].values()) == 2
    assert summary["smallest_p_at_or_below"]["0.0001"] == 0.5
