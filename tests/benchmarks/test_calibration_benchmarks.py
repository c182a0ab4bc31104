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


def test_the_fisher_sum_benchmark_compares_both_laws_on_the_same_batches(tmp_path, monkeypatch) -> None:
    from benchmarks import fisher_sum_null

    monkeypatch.setattr(fisher_sum_null, "SIZES", ((20, 20), (20, 600)))
    out = tmp_path / "fisher.json"
    fisher_sum_null.main(["--batches", "400", "--samples", "300", "--out", str(out)])
    rows = json.loads(out.read_text())
    assert [(r["calibration"], r["batch"]) for r in rows] == [(20, 20), (20, 600)]
    for row in rows:
        for law in ("gamma", "saddlepoint"):
            shares = [row[law][str(level)] for level in fisher_sum_null.LEVELS]
            assert all(0.0 <= s <= 1.0 for s in shares) and shares == sorted(shares, reverse=True)
    # The block level is estimated by the urn for the small batch only.
    assert str(fisher_sum_null.BLOCK_LEVEL) in rows[0]["saddlepoint"]
    assert str(fisher_sum_null.BLOCK_LEVEL) not in rows[1]["saddlepoint"]
    # The urn's estimate of a tail that simulation can reach agrees with simulation.
    weights = fisher_sum_null.fisher_weights(20)
    rng = np.random.default_rng(1)
    t = fisher_sum_null.level_sum(fisher_sum_null.composition_sum_tail, weights, 20, 1e-2)
    simulated = float(np.mean(fisher_sum_null.simulated_sums(20, 20, 40_000, rng) >= t))
    estimate, error = fisher_sum_null.importance_sampled_tail(weights, 20, t, 4_000, rng)
    assert abs(estimate - simulated) < 4 * error + 4 * np.sqrt(simulated / 40_000)
