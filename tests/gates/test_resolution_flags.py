"""Flags where the calibration set is too small to resolve alpha: only a significant pile-up at the floor."""

from __future__ import annotations

import numpy as np

from dataward.gates.calibration import conformal_p_values, flag_mask, resolution_flags


def test_a_small_baseline_flags_the_pile_of_records_beyond_every_trusted_score() -> None:
    """Every poisoned record is flagged; clean records come along only at the floor's own rate 1/(n+1)."""
    rng = np.random.default_rng(0)
    alpha, n_cal, clean_flags, clean_total = 0.003, 200, 0, 0
    for _ in range(40):
        calibration = rng.normal(size=n_cal)  # 1/(n+1) ~ 0.005 > alpha: flag_mask can never flag
        clean, poisoned = rng.normal(size=150), rng.normal(6.0, 0.5, size=15)
        p = conformal_p_values(calibration, np.concatenate([clean, poisoned]))
        assert not flag_mask(p, alpha, n_cal).any()
        flags = resolution_flags(p, alpha, n_cal)
        assert flags[150:].all()
        clean_flags += int(flags[:150].sum())
        clean_total += 150
    rate = 1.0 / (n_cal + 1)
    assert clean_flags / clean_total <= rate + 3 * np.sqrt(rate * (1 - rate) / clean_total)


def test_clean_batches_almost_never_get_resolution_flags() -> None:
    rng = np.random.default_rng(1)
    fired = 0
    for _ in range(300):
        calibration = rng.normal(size=200)
        p = conformal_p_values(calibration, rng.normal(size=150))
        fired += bool(resolution_flags(p, 0.003, 200).any())
    # The pile-up test runs at 1e-3: a few firings in 300 batches would already be too many.
    assert fired <= 1


def test_no_resolution_flags_where_alpha_is_resolved() -> None:
    p = np.full(50, 1.0 / 1001)
    assert not resolution_flags(p, 0.01, 1000).any()
