"""The extreme-records test (``calibration.extreme_records_p_value``) keeps the calibration set random.

A handful of records beyond every trusted score is strong evidence only when they lie *far* beyond it:
where the largest calibration score sits is itself random (the mass beyond it is ``Beta(1, N)``), so
records just past it are what a slightly unlucky calibration set produces. Treating the extrapolated
p-values as exact rates blocked a clean batch from a new scanner (``new_scanner_digits`` at seed 11:
ten shifted digits just beyond 718 trusted records, ``p = 1e-7``).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.shifts import build as build_situation
from dataward.gates import scan
from dataward.gates.calibration import (
    _count_at_or_below_tail,
    betabinom_tail,
    extreme_records_p_value,
    tail_p_values,
)
from dataward.gates.policy import GatePolicy

BLOCK_P = GatePolicy().block_p


def test_the_count_at_a_level_beyond_calibration_matches_its_simulated_law() -> None:
    """``Binomial(n, q r ** g)``, ``q ~ Beta(1, N)``, ``g ~ Gamma(m, 1/m)`` (``m`` = 36 tail scores of 718):
    the integral against a simulation of that law."""
    rng = np.random.default_rng(0)
    q, g = rng.beta(1, 718, size=2_000_000), rng.gamma(36, 1 / 36, size=2_000_000)
    for share in (0.5, 0.2):
        simulated = (rng.binomial(539, q * share**g) >= 4).mean()
        assert _count_at_or_below_tail(4, 539, share / 719, 718) == pytest.approx(simulated, rel=0.1)


def test_at_resolved_levels_the_count_is_beta_binomial() -> None:
    assert _count_at_or_below_tail(10, 539, 3 / 719, 718) == pytest.approx(betabinom_tail(10, 539, 3, 716))
    # Just below one calibration bin the integral tends to the beta-binomial with a = 1.
    assert _count_at_or_below_tail(10, 539, 0.999 / 719, 718) == pytest.approx(betabinom_tail(10, 539, 1, 718), rel=0.1)


def test_ten_records_just_beyond_a_small_calibration_set_do_not_block() -> None:
    p = np.concatenate([np.linspace(0.0006, 0.0012, 10), np.linspace(0.02, 1.0, 529)])
    assert BLOCK_P < extreme_records_p_value(p, 718) < 1e-2


def test_a_few_records_far_beyond_calibration_still_block() -> None:
    """The backdoor the test is there for: five records a hundred times further out than the last bin."""
    p = np.concatenate([np.full(5, 1e-5), np.linspace(0.02, 1.0, 534)])
    assert extreme_records_p_value(p, 718) < BLOCK_P


def test_clean_batches_raise_the_extreme_test_at_its_nominal_rate() -> None:
    """Clean scores with an exponential tail (the tail the extrapolation assumes, so only the calibration
    set's randomness is left): at most 1% of clean batches reach p <= 0.01. Exact rates, ignoring that
    randomness, reached 4.3%."""
    rng = np.random.default_rng(1)
    results = []
    for _ in range(600):
        p = tail_p_values(rng.exponential(size=700), rng.exponential(size=500))
        results.append(extreme_records_p_value(p, 700))
    assert np.mean(np.array(results) <= 0.01) <= 0.01 + 3 * np.sqrt(0.01 * 0.99 / 600)


@pytest.mark.parametrize("seed", [0, 11])
def test_a_new_scanner_is_not_blocked(seed: int) -> None:
    """Every digit one pixel to the right: a difference for review, at the seed that used to block."""
    situation = build_situation("new_scanner_digits", seed, "full")
    report = scan(situation.baseline, situation.contribution, situation.schema, situation.validation, {"seed": seed})
    assert report.verdict == "review", report.reasons


def test_records_at_the_top_of_the_scale_weigh_nothing() -> None:
    """A batch whose p-values are mostly 1 (a detector that rules most records out) is no evidence."""
    assert extreme_records_p_value(np.ones(100), 200) == 1.0
    assert extreme_records_p_value(np.concatenate([[0.5 / 201], np.ones(99)]), 200) == 1.0
