"""The extreme-records test (``calibration.extreme_records_p_value``) keeps the calibration set random.

A handful of records beyond every trusted score is strong evidence only when they lie *far* beyond it:
where the largest calibration score sits is itself random (the mass beyond it is ``Beta(1, N)``), so
records just past it are what a slightly unlucky calibration set produces. Treating the extrapolated
p-values as exact rates blocked a clean batch from a new scanner (``new_scanner_digits`` at seed 11:
ten shifted digits just beyond 718 trusted records, ``p = 1e-7``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dataward.gates.calibration import (
    _count_at_or_below_tail,
    betabinom_tail,
    excess_flags_p_value,
    extreme_records_p_value,
    tail_p_values,
    tail_scores,
)
from dataward.gates.policy import GatePolicy
from tests.gates.conftest import scan_situation

BLOCK_P = GatePolicy().block_p


def _exponential_calibration_rates(n_cal: int, share: float, draws: int, seed: int) -> np.ndarray:
    """For ``draws`` calibration sets of ``n_cal`` Exp(1) scores: the true share of new records whose
    ``tail_p_values`` p-value is at or below ``share / (n_cal + 1)`` (the mass beyond the score there)."""
    cal = np.sort(np.random.default_rng(seed).exponential(size=(draws, n_cal)), axis=1)
    m = tail_scores(n_cal)
    beta = np.mean(cal[:, -m:] - cal[:, [-m - 1]], axis=1)
    score = cal[:, -1] - beta * math.log(share)
    # The score where tail_p_values puts that p-value (checked on the first calibration set).
    assert tail_p_values(cal[0], score[:1])[0] == pytest.approx(share / (n_cal + 1.0))
    return np.exp(-score)


@pytest.mark.parametrize(("share", "count"), [(0.5, 4), (0.2, 4), (0.05, 3)])
def test_the_count_beyond_calibration_matches_the_fitted_tail_it_comes_from(share: float, count: int) -> None:
    """Calibration sets of 100 exponential scores (the tail the extrapolation fits, 5 tail scores): the
    chance that ``count`` of 100 clean records fall at or below ``share / 101``, by simulation of the
    very fit ``tail_p_values`` makes, against the law. Where the largest score and the fitted scale were
    taken as independent, the law was 1.5 to 2.5 times too small here (and up to 100 times further out)."""
    rates = _exponential_calibration_rates(100, share, 400_000, seed=int(share * 100))
    simulated = float(stats.binom.sf(count - 1, 100, rates).mean())
    assert _count_at_or_below_tail(count, 100, share / 101, 100) == pytest.approx(simulated, rel=0.15)


def test_at_resolved_levels_the_count_is_beta_binomial() -> None:
    assert _count_at_or_below_tail(10, 539, 3 / 719, 718) == pytest.approx(betabinom_tail(10, 539, 3, 716))
    # Just below one calibration bin the integral tends to the beta-binomial with a = 1.
    assert _count_at_or_below_tail(10, 539, 0.999 / 719, 718) == pytest.approx(betabinom_tail(10, 539, 1, 718), rel=0.1)


def test_ten_records_just_beyond_a_small_calibration_set_do_not_block() -> None:
    p = np.concatenate([np.linspace(0.0006, 0.0012, 10), np.linspace(0.02, 1.0, 529)])
    assert BLOCK_P < extreme_records_p_value(p, 718) < 1e-2


def test_a_few_records_far_beyond_calibration_still_block() -> None:
    """The backdoor the test is there for: seven records a hundred times further out than the last bin
    block, with room for the detectors' own corrections (x4); five reach only what a clean batch with a
    slightly unlucky calibration set reaches about once in 300,000 batches."""

    def p(k: int) -> float:
        return extreme_records_p_value(np.concatenate([np.full(k, 1e-5), np.linspace(0.02, 1.0, 539 - k)]), 718)

    assert p(7) < BLOCK_P / 4
    assert p(5) > BLOCK_P


def test_small_and_huge_calibration_sets_give_proper_p_values() -> None:
    """Below ten calibration scores no tail is fitted (anything below the grid is at most beyond them all);
    a million scores (m = 50,000 tail scores) is a few hundred terms, not a minute."""
    assert extreme_records_p_value(np.full(5, 1e-9), 5) == pytest.approx(4 * betabinom_tail(5, 5, 1.0, 5.0))
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        for n_cal in (10, 11, 60):
            assert 0.0 < extreme_records_p_value(np.concatenate([np.full(5, 1e-12), np.ones(n_cal - 5)]), n_cal) < 1e-2
        for n_cal in (10_000, 1_000_000):
            assert 0.0 < extreme_records_p_value(np.concatenate([np.full(19, 1e-12), np.ones(981)]), n_cal) < 1e-20


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
    report = scan_situation("new_scanner_digits", seed)
    assert report.verdict == "review", report.reasons


def test_records_at_the_top_of_the_scale_weigh_nothing() -> None:
    """A batch whose p-values are mostly 1 (a detector that rules most records out) is no evidence."""
    assert extreme_records_p_value(np.ones(100), 200) == 1.0
    assert extreme_records_p_value(np.concatenate([[0.5 / 201], np.ones(99)]), 200) == 1.0


def test_many_records_just_beyond_one_shared_calibration_set_block_in_a_batch_no_larger_than_it() -> None:
    """25 of 227 records just beyond 227 trusted ones, p-values all conformal against them (as
    ``label_consistency``'s): the order statistics stop at 20 records and read records just beyond the
    largest score as little evidence; the exact count beyond every score blocks, with room for the
    detector's Fisher correction (x2). Without ``beyond_calibration`` (p-values from several calibration
    sets) the count is not used and the batch is reviewed."""
    n_cal = 227
    p = np.concatenate([np.full(25, 0.6 / (n_cal + 1)), np.linspace(0.02, 1.0, 202)])
    assert excess_flags_p_value(p, 0.01 / 3, n_cal, beyond_calibration=True)[1] < BLOCK_P / 2
    assert excess_flags_p_value(p, 0.01 / 3, n_cal)[1] > BLOCK_P
