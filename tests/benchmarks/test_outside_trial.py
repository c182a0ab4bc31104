"""The outside trial's cases build as described: disjoint parts, the change applied to the contribution only."""

from __future__ import annotations

from benchmarks.outside_trial import CASES


def test_every_case_of_the_trial_is_there() -> None:
    assert len(CASES) == 37
    named = {"bc_column_zero", "wine_magnesium_zero", "digits_low_res6", "bc_hard_examples", "bc_screening"}
    assert named <= set(CASES)


def test_a_case_changes_only_the_contribution() -> None:
    base, val, contrib, schema = CASES["bc_column_zero"](0)
    assert (contrib["mean_fractal_dimension"] == 0).all()
    assert (base["mean_fractal_dimension"] > 0).all() and (val["mean_fractal_dimension"] > 0).all()
    assert schema["label"] == "label" and len(base) + len(val) + len(contrib) < 569
