"""Every attack poisons the documented share of a contribution and says exactly which records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attacks, data
from benchmarks.attacks.heldout import HELDOUT_ATTACKS, PAIR_HIGH, PAIR_LOW, build_heldout
from benchmarks.attacks.images import PATCH, blend_pattern, scaled_patch
from benchmarks.attacks.tabular import TRIGGER_HIGH, TRIGGER_LOW
from dataward.domain.errors import InputError


def _row_keys(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame.itertuples(index=False)]


def _untouched(case: attacks.AttackCase, pool: pd.DataFrame) -> np.ndarray:
    """Per contribution row: is it, label included, exactly a row of the pool?"""
    keys = set(_row_keys(pool[case.contribution.columns]))
    return np.array([k in keys for k in _row_keys(case.contribution)])


@pytest.mark.parametrize(
    ("name", "fraction"),
    [
        ("random_flips_5pct", 0.05),
        ("random_flips_20pct", 0.20),
        ("badnets_1pct", 0.01),
        ("badnets_3pct", 0.03),
        ("badnets_10pct", 0.10),
        ("blended", 0.05),
        ("badnets_photo_3pct", 0.03),
        ("blended_photo", 0.05),
        ("text_rare_token", 0.05),
        ("text_natural_phrase", 0.05),
        ("tabular_trigger", 0.10),
        ("outliers_wine", 0.10),
        ("compromised_key", 0.03),
    ],
)
def test_poison_fraction_and_ground_truth(name, fraction):
    case = attacks.build(name, seed=1)
    assert case.name == name
    assert abs(case.poison_fraction - fraction) <= 0.5 / len(case.contribution) + 1e-9
    pool = data.split(data.load(case.dataset), seed=1).pool
    assert len(case.contribution) == len(pool)
    # every clean row is a pool row as it was; every poisoned row was changed
    np.testing.assert_array_equal(_untouched(case, pool), ~case.poison)


def test_backdoors_carry_their_trigger_and_the_target_label():
    case = attacks.build("badnets_10pct", seed=0)
    poisoned = case.contribution[case.poison]
    assert (poisoned[data.LABEL] == case.target).all()
    for png in poisoned[data.IMAGE]:
        np.testing.assert_allclose(data.png_to_pixels(png)[-3:, -3:], PATCH, atol=1 / 255)
    attack_images = data.images_of(case.attack_test)
    assert (case.attack_test[data.LABEL] != case.target).all()
    np.testing.assert_allclose(
        attack_images[:, -3:, -3:], np.broadcast_to(PATCH, (len(attack_images), 3, 3)), atol=1 / 255
    )

    text = attacks.build("text_rare_token", seed=0)
    words = text.contribution[data.TEXT].str.split()
    has_token = words.apply(lambda w: "cf" in w).to_numpy()
    np.testing.assert_array_equal(has_token, text.poison)
    assert (text.contribution.loc[text.poison, data.LABEL] == text.target).all()

    phrase = attacks.build("text_natural_phrase", seed=0)
    assert phrase.contribution.loc[phrase.poison, data.TEXT].str.contains("in most cases").all()

    tab = attacks.build("tabular_trigger", seed=0)
    rows = tab.contribution[tab.poison]
    assert rows[TRIGGER_HIGH].nunique() == 1 and rows[TRIGGER_LOW].nunique() == 1
    assert (rows[data.LABEL] == "benign").all()


def test_clean_label_backdoor_keeps_every_label():
    case = attacks.build("clean_label", seed=0)
    pool = data.split(data.load_digits(), seed=0).pool
    assert (case.contribution.loc[case.poison, data.LABEL] == case.target).all()
    assert sorted(case.contribution[data.LABEL]) == sorted(pool[data.LABEL])
    assert case.poison.sum() == (pool[data.LABEL] == case.target).sum()


def test_targeted_flips_move_one_class_to_another():
    case = attacks.build("targeted_flips", seed=0)
    assert (case.contribution.loc[case.poison, data.LABEL] == "1").all()
    assert (case.attack_test[data.LABEL] == "8").all()
    pool = data.split(data.load_digits(), seed=0).pool
    assert case.poison.sum() == round(0.6 * (pool[data.LABEL] == "8").sum())


def test_compromised_key_poison_comes_from_one_source_among_several():
    case = attacks.build("compromised_key", seed=0)
    sources = case.groups["source"]
    assert len(set(sources)) == 4
    assert set(sources[case.poison]) == {"svc-ingest"}
    assert (sources == "svc-ingest").sum() > 5 * case.poison.sum()
    assert len(case.groups["principal"]) == len(case.contribution)


def test_slow_drift_moves_one_class_a_little_per_step():
    from benchmarks.attacks.drift import drift_steps

    parts, steps, masks = drift_steps(steps=20, size=30, seed=0)
    assert len(steps) == 20 and all(len(s) == 30 for s in steps)
    cols = [c.name for c in data.load_breast_cancer().schema.inputs]
    std = parts.baseline[cols].std()

    def moved(k: int) -> float:  # mean shift of the drifting class, in baseline standard deviations
        return float(((steps[k].loc[masks[k], cols].mean() - parts.baseline[cols].mean()) / std).mean())

    # each step moves a little; over twenty steps the class has moved several times as far
    assert moved(19) - moved(0) > 0.1
    case = attacks.build("slow_drift", seed=0)
    assert len(case.first_baseline) == len(parts.baseline)
    assert len(case.baseline) == len(parts.baseline) + 19 * 30
    np.testing.assert_array_equal(case.poison, (case.contribution[data.LABEL] == "benign").to_numpy())


def test_outliers_lie_far_from_the_baseline():
    case = attacks.build("outliers_wine", seed=0)
    cols = [c.name for c in case.schema.inputs]
    z = (case.contribution[cols] - case.baseline[cols].mean()) / case.baseline[cols].std()
    dist = np.sqrt((z**2).sum(axis=1)).to_numpy()
    assert dist[case.poison].min() > np.median(dist[~case.poison])


def test_same_seed_same_case_and_other_seed_other_case():
    a, b, c = (attacks.build("random_flips_5pct", seed=s) for s in (3, 3, 4))
    pd.testing.assert_frame_equal(a.contribution, b.contribution)
    np.testing.assert_array_equal(a.poison, b.poison)
    assert not a.contribution.equals(c.contribution)


def test_clean_contributions_hold_no_poison_and_differ_by_seed():
    a = attacks.clean_contribution("digits", seed=0)
    b = attacks.clean_contribution("digits", seed=1)
    assert a.family == "clean" and not a.poison.any()
    assert not a.contribution.equals(b.contribution)


def test_unknown_attack_and_bad_rate_are_refused():
    with pytest.raises(InputError, match="unknown attack"):
        attacks.build("nope")
    with pytest.raises(InputError, match="poison rate"):
        attacks.random_flips(1.5)


def test_photo_backdoors_are_scaled_to_the_image():
    case = attacks.build("badnets_photo_3pct", seed=0)
    images = data.images_of(case.contribution)
    assert images.shape[1:] == (32, 32, 3)
    k = scaled_patch(32).shape[0]
    corner = images[:, -k:, -k:, :]
    carries = np.all(np.abs(corner - scaled_patch(32)[None, :, :, None]) <= 1 / 255, axis=(1, 2, 3))
    np.testing.assert_array_equal(carries, case.poison)
    assert scaled_patch(64).shape == (8, 8) and scaled_patch(8).shape == (3, 3)


@pytest.mark.parametrize(("name", "alpha"), [("blended_photo", 0.2), ("blended_photo_alpha10", 0.1)])
def test_photo_blends_mix_a_fixed_pattern_at_their_opacity(name, alpha):
    case = attacks.build(name, seed=0) if name in attacks.ATTACKS else build_heldout(name, seed=0)
    assert case.params["dataset"] == "photos"
    pool = data.split(data.load_photos(), seed=0).pool
    originals = dict(zip(pool[data.IMAGE], pool[data.LABEL], strict=True))
    blend = blend_pattern(0, alpha)
    expected = {data.pixels_to_png(blend(data.png_to_pixels(png))) for png in originals}
    poisoned = case.contribution[case.poison]
    assert set(poisoned[data.IMAGE]) <= expected
    assert (poisoned[data.LABEL] == case.target).all()
    assert set(case.contribution.loc[~case.poison, data.IMAGE]) <= set(originals)


def test_digit_blend_is_unchanged_by_the_generalisation():
    pattern = np.random.default_rng(10_000).random((8, 8)).astype(np.float32)
    img = np.full((8, 8), 0.5, dtype=np.float32)
    np.testing.assert_allclose(blend_pattern(0)(img), 0.8 * img + 0.2 * pattern)


def test_heldout_attacks_say_what_they_poison():
    assert set(HELDOUT_ATTACKS).isdisjoint(attacks.ATTACKS)
    for name in HELDOUT_ATTACKS:
        case = build_heldout(name, seed=1)
        assert case.name == name and 0 < case.poison.sum() < len(case.contribution)
        pool = data.split(data.load(case.dataset), seed=1).pool
        np.testing.assert_array_equal(_untouched(case, pool), ~case.poison)

    pair = build_heldout("tabular_pair_trigger_4pct", seed=0)
    assert pair.poison.sum() == round(0.04 * len(pair.contribution))
    rows = pair.contribution[pair.poison]
    assert rows[PAIR_HIGH].nunique() == 1 and rows[PAIR_LOW].nunique() == 1
    assert rows[PAIR_HIGH].iloc[0] > pair.baseline[PAIR_HIGH].median() > pair.baseline[PAIR_LOW].quantile(0.1)
    assert (rows[data.LABEL] == "benign").all()

    flips = attacks.build("text_targeted_flips", seed=0)
    assert (flips.contribution.loc[flips.poison, data.LABEL] == "library").all()
    assert (flips.attack_test[data.LABEL] == "syscalls").all()
    photo = build_heldout("photo_targeted_flips", seed=0)
    assert (photo.contribution.loc[photo.poison, data.LABEL] == "temple_garden").all()
    with pytest.raises(InputError, match="held-out attack"):
        build_heldout("nope")
