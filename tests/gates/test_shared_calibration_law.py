"""The law of a sum over records whose conformal p-values share one calibration set (Fisher's sum of
``label_consistency``): its tail against exact enumeration, importance sampling and plain simulation,
far enough out for a block at ``block_p``; the edges; and ``fisher_excess_p_value`` built on it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special

from benchmarks.fisher_sum_null import fisher_weights, gamma_tail, importance_sampled_tail, level_sum, simulated_sums
from dataward.gates import shared_calibration_law
from dataward.gates.calibration import conformal_p_values, fisher_excess_p_value
from dataward.gates.shared_calibration_law import composition_sum_tail


def test_the_tail_is_the_exact_law_of_four_records_against_sixty_calibration_records() -> None:
    weights = fisher_weights(60)
    # Every multiset of 4 cells among 61 is one composition, each as likely as the others.
    cells = np.array(list(itertools.combinations_with_replacement(range(61), 4)))
    sums = np.sort(weights[cells].sum(axis=1))
    for level in (1e-2, 1e-4, 5e-6):
        t = sums[int((1 - level) * sums.size)]
        exact = float(np.mean(sums >= t))
        assert composition_sum_tail(weights, 4, t) == pytest.approx(exact, rel=0.2), level


@pytest.mark.parametrize(("n_calibration", "n", "samples"), [(50, 50, 40_000), (120, 60, 20_000)])
def test_the_tail_holds_at_block_p_where_a_gamma_law_was_too_light(n_calibration: int, n: int, samples: int) -> None:
    weights = fisher_weights(n_calibration)
    t = level_sum(composition_sum_tail, weights, n, 1e-6)
    estimate, error = importance_sampled_tail(weights, n, t, samples, np.random.default_rng(n))
    assert error < 0.1 * estimate
    assert composition_sum_tail(weights, n, t) == pytest.approx(estimate, rel=0.25)
    # What the moment-matched gamma law said there: too light, so a clean batch would be blocked more
    # often than block_p.
    assert gamma_tail(weights, n, t) < 0.6 * estimate


def test_the_tail_matches_simulated_clean_batches_from_the_bulk_to_1e_3() -> None:
    rng = np.random.default_rng(3)
    n_calibration, n, draws = 200, 400, 160_000
    weights = fisher_weights(n_calibration)
    sums = simulated_sums(n_calibration, n, draws, rng)
    for level in (0.1, 1e-2, 1e-3):
        t = level_sum(composition_sum_tail, weights, n, level)
        simulated = float(np.mean(sums >= t))
        spread = 4.0 * np.sqrt(level / draws)
        assert abs(simulated - level) <= spread + 0.05 * level, (level, simulated)


def test_the_edges_of_the_law() -> None:
    weights = fisher_weights(30)
    n = 4
    top = n * weights.max()
    # Every record in the most extreme cell: one composition of C(n + 30, n).
    assert composition_sum_tail(weights, n, top) == pytest.approx(1.0 / 46_376, rel=1e-9)
    assert composition_sum_tail(weights, n, top + 1e-6) == 0.0
    assert composition_sum_tail(weights, n, n * weights.mean()) == 1.0
    assert composition_sum_tail(weights, n, 0.0) == 1.0
    assert composition_sum_tail(weights, 0, 1.0) == 0.0
    assert 0.0 < composition_sum_tail(weights, n, 0.9 * top) < composition_sum_tail(weights, n, 0.6 * top) < 1.0


def test_merged_cells_only_ever_raise_the_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    weights = fisher_weights(5_000)
    t = level_sum(composition_sum_tail, weights, 300, 1e-5)
    exact = composition_sum_tail(weights, 300, t)
    monkeypatch.setattr(shared_calibration_law, "EXACT_CELLS", 100)
    monkeypatch.setattr(shared_calibration_law, "MERGE_WIDTH", 1e-3)
    merged = composition_sum_tail(weights, 300, t)
    assert exact <= merged <= 3.0 * exact


def test_fisher_excess_reads_each_p_value_at_its_cell() -> None:
    n_calibration = 100
    rng = np.random.default_rng(0)
    p = conformal_p_values(rng.random(n_calibration), rng.random(80))
    # A tie broken inside a cell (as label_consistency does) is its cell, and nothing goes below the floor.
    nudged = np.maximum(p - 1e-4 / (n_calibration + 1), 0.0)
    assert fisher_excess_p_value(nudged, n_calibration) == fisher_excess_p_value(p, n_calibration)
    floor = np.full(80, 1.0 / (n_calibration + 1))
    assert fisher_excess_p_value(floor * 1e-9, n_calibration) == fisher_excess_p_value(floor, n_calibration)
    # Every record beyond every calibration record: exactly the one composition that puts all 80 there.
    assert fisher_excess_p_value(floor, n_calibration) == pytest.approx(
        np.exp(-(np.sum(np.log(np.arange(81, 181))) - np.sum(np.log(np.arange(1, 101))))), rel=1e-6
    )


def test_where_a_few_compositions_reach_the_sum_it_is_their_exact_count() -> None:
    # Two records against 2,999 calibration records: the sums are a few atoms far out, and a smooth
    # law's tail misses the atom's own mass (it said 2.9e-7 for the second-largest sum, whose two
    # compositions of C(3001, 2) are 4.4e-7: a clean pair blocked 1.5 times as often as promised).
    n_calibration = 2_999
    weights = fisher_weights(n_calibration)
    first, second = np.triu_indices(weights.size)
    sums = np.sort(weights[first] + weights[second])[::-1]
    atoms = np.unique(sums[:3_000])[::-1][:80]
    exact = np.searchsorted(-sums, -atoms, side="right") / sums.size
    tails = np.array([composition_sum_tail(weights, 2, t) for t in atoms])
    assert tails[1] == pytest.approx(2.0 / sums.size, rel=1e-9)
    assert np.all(tails >= exact * (1 - 1e-9))
    # Products that tie (1 x 4 = 2 x 2) are one sum: counted together, never lighter, not much heavier.
    assert np.all(tails <= 1.3 * exact)


def test_p_values_of_a_few_scored_calibration_records_are_read_against_their_lattice() -> None:
    # n_scored = 0: only a record beyond every calibration record has p < 1, so Fisher's sum is
    # log(N) times the count of such records, a lattice; a smooth law was 8 to 10 times too light on it.
    n_calibration, n = 10_000, 2
    p = np.array([1.0 / (n_calibration + 1), 1.0])
    exact = n / (n + n_calibration)  # compositions with at least one record in the first cell
    assert fisher_excess_p_value(p, n_calibration, n_scored=0) == pytest.approx(exact, rel=1e-9)
    p = np.array([1.0 / (n_calibration + 1)] * 2 + [1.0] * 98)
    exact = float(np.exp(special.gammaln(98 + 10_001) - special.gammaln(99) - special.gammaln(10_001)))
    exact /= float(np.exp(special.gammaln(100 + 10_001) - special.gammaln(101) - special.gammaln(10_001)))
    assert fisher_excess_p_value(p, n_calibration, n_scored=0) == pytest.approx(exact, rel=1e-9)


def test_a_sum_within_rounding_of_its_mean_is_no_evidence_and_no_error() -> None:
    weights = fisher_weights(4)
    n = 100_000
    mean = n * float(weights.mean())
    for t in (np.nextafter(mean, np.inf), mean * (1 + 1e-13), mean * (1 + 1e-12)):
        assert 0.45 <= composition_sum_tail(weights, n, t) <= 1.0


def test_the_exact_count_reads_the_same_floats_from_its_lgamma_table_as_term_by_term(monkeypatch) -> None:
    """The closed terms of the exact count are read from a table of lgammas of whole numbers; without
    the table (a count beyond its size) they are computed one by one. Both give the same floats, so a
    batch's p-value does not depend on which way it was counted: clean batches of the false-alarm-rate
    simulation (tests/gates/test_combined_evidence.py) and a lattice of few scored records."""
    rng = np.random.default_rng(0)
    cases = []
    for n_calibration, n in ((300, 2000), (716, 178)):
        for _ in range(6):
            cases.append((conformal_p_values(rng.random(n_calibration), rng.random(n)), n_calibration, None))
    lattice = np.array([1.0 / 10_001] * 2 + [0.5] * 30 + [1.0] * 68)
    cases.append((lattice, 10_000, 3))
    monkeypatch.setattr(shared_calibration_law, "_lgammas", np.zeros(0))
    tabled = [fisher_excess_p_value(p, n_cal, n_scored=scored) for p, n_cal, scored in cases]
    assert shared_calibration_law._lgammas.size > 0  # the exact count ran and read the table
    monkeypatch.setattr(shared_calibration_law, "LGAMMA_TABLE", 0)
    monkeypatch.setattr(shared_calibration_law, "_lgammas", np.zeros(0))
    one_by_one = [fisher_excess_p_value(p, n_cal, n_scored=scored) for p, n_cal, scored in cases]
    assert shared_calibration_law._lgammas.size == 0
    assert tabled == one_by_one
    assert any(p < 0.05 for p in tabled) and any(p > 0.5 for p in tabled)  # the cases span the law
