"""The third held-out set builds what it says: benign situations change only what they state, and
attacks plant exactly the stated poison. No gate runs here (these cases are measured once, elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts
from benchmarks.attacks import heldout3 as attacks3
from benchmarks.attacks.heldout import HELDOUT_ATTACKS
from benchmarks.attacks.heldout2 import HELDOUT2_ATTACKS
from benchmarks.attacks.heldout3 import HELDOUT3_ATTACKS, build_heldout3
from benchmarks.shifts import heldout3
from benchmarks.shifts.base import EXTRA_KINDS, HELDOUT3_KINDS, KINDS, SMALL_CONTRIBUTION, parts, sized
from dataward.domain.errors import InputError


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout3")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout3(name, seed=0) for name in HELDOUT3_ATTACKS}


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return list(map(tuple, frame.itertuples(index=False)))


def _pool(situation: shifts.Situation) -> pd.DataFrame:
    """The pool records a sensor or register situation rewrote, in the order it drew them."""
    split = parts(data.load(situation.dataset), 0, "small")
    return sized(split.pool, "small", SMALL_CONTRIBUTION, np.random.default_rng(0))


# --- benign -------------------------------------------------------------------------------------


def test_the_third_heldout_set_is_its_own_never_tuned_group(small):
    assert len(shifts.HELDOUT3) >= 8 and list(small) == list(shifts.HELDOUT3)
    for other in (shifts.TUNING, shifts.HELDOUT, shifts.HELDOUT2):
        assert set(shifts.HELDOUT3).isdisjoint(other)
    assert shifts.GROUPS["heldout3"] is shifts.HELDOUT3
    assert "NEVER TUNED ON" in heldout3.__doc__ and "2026-12-05" in heldout3.__doc__
    assert {s.group for s in small.values()} == {"heldout3"}
    assert {s.kind for s in small.values()} <= {*KINDS, *EXTRA_KINDS, *HELDOUT3_KINDS}
    modalities = [s.modality for s in small.values()]
    assert all(modalities.count(m) >= 2 for m in ("text", "image", "tabular"))
    for name, s in small.items():
        columns = [c.name for c in s.schema.inputs] + [s.schema.label]
        for frame in (s.baseline, s.validation, s.contribution):
            assert list(frame.columns) == columns, name
        assert set(s.contribution[data.LABEL]) <= set(data.load(s.dataset).classes), name
        assert len(s.baseline) <= 600 and 0 < len(s.contribution) <= 4 * SMALL_CONTRIBUTION, name
        assert not s.as_case().poison.any() and s.description, name
        pd.testing.assert_frame_equal(shifts.build(name, 0, "small").contribution, s.contribution)


@pytest.mark.parametrize(
    ("name", "rewrite"),
    [
        ("truncated_summary_text", heldout3.truncated_summary),
        ("stripped_punctuation_text", heldout3.stripped_punctuation),
        ("typeset_text", heldout3.typeset),
    ],
)
def test_text_situations_rewrite_every_pool_line_and_keep_its_label(small, name, rewrite):
    s, pool = small[name], _pool(small[name])
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    assert s.contribution[data.TEXT].tolist() == [rewrite(t) for t in pool[data.TEXT]]
    assert (s.contribution[data.TEXT] != pool[data.TEXT]).mean() > (0.3 if name.startswith("trunc") else 0.95)


def test_text_rewrites_do_what_they_say():
    line = 'git-status - Show the working tree\'s "status" (short)'
    assert heldout3.truncated_summary(line) == "git-status - Show the working tree's"
    assert heldout3.truncated_summary("ls - list files") == "ls - list files"
    assert heldout3.stripped_punctuation(line) == "git status Show the working tree s status short"
    assert heldout3.stripped_punctuation("mount_setattr - change") == "mount_setattr change"
    assert heldout3.typeset(line) == "git-status \u2014 Show the working tree\u2019s \u201cstatus\u201d (short)"
    assert heldout3.typeset("a - b - c") == "a \u2014 b - c"  # only the separator


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("mirrored_photos", heldout3.mirrored),
        ("tighter_crop_photos", heldout3.tighter_crop),
        ("sharpened_photos", heldout3.sharpened),
        ("bilevel_fax_digits", heldout3.bilevel),
    ],
)
def test_sensor_situations_apply_their_transform_to_every_image_and_keep_labels(small, name, fn):
    # bilevel_fax_digits moved to the tuning set once the gate was changed for it; its builder stays here.
    s = small[name] if name in small else shifts.build(name, 0, "small")
    pool = _pool(s)
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    expected = [data.pixels_to_png(np.clip(fn(data.png_to_pixels(b)), 0, 1)) for b in pool[data.IMAGE]]
    assert s.contribution[data.IMAGE].tolist() == expected
    assert (s.contribution[data.IMAGE] != pool[data.IMAGE]).mean() > 0.9


def test_image_transforms_change_what_they_say():
    ramp = np.tile(np.linspace(0.0, 1.0, 32, dtype=np.float32), (32, 1))
    np.testing.assert_array_equal(heldout3.mirrored(ramp), ramp[:, ::-1])
    zoomed = heldout3.tighter_crop(np.stack([ramp] * 3, axis=-1))
    assert zoomed.shape == (32, 32, 3) and zoomed[:, 0].mean() > 0.02 and zoomed[:, -1].mean() < 0.98
    flat = np.full((32, 32, 3), 0.4, dtype=np.float32)
    np.testing.assert_allclose(heldout3.sharpened(flat), flat, atol=1e-6)  # sharpening adds no pattern
    edge = np.zeros((32, 32, 3), dtype=np.float32)
    edge[:, 16:] = 0.5
    crisp = heldout3.sharpened(edge)
    assert crisp[:, 16].mean() > 0.5 and crisp[:, 15].mean() < 0.0  # overshoot on both sides of an edge
    assert set(np.unique(heldout3.bilevel(np.array([[0.0, 0.49], [0.5, 0.9]])))) == {0.0, 1.0}
    np.testing.assert_array_equal(heldout3.bilevel(np.array([[0.0, 0.49], [0.5, 0.9]])), [[0, 0], [1, 1]])


def test_tabular_situations_change_only_the_stated_values(small):
    wine = small["alcohol_offset_wine"]
    pool = data.split(data.load_wine(), 0).pool
    np.testing.assert_allclose(
        wine.contribution[heldout3.OFFSET_COLUMN], pool[heldout3.OFFSET_COLUMN] + heldout3.OFFSET
    )
    others = [c for c in pool.columns if c != heldout3.OFFSET_COLUMN]
    pd.testing.assert_frame_equal(wine.contribution[others], pool[others])

    cancer = small["uncertain_cases_breast_cancer"]
    pool = data.split(data.load_breast_cancer(), 0).pool
    assert len(cancer.contribution) == round(heldout3.UNCERTAIN_SHARE * len(pool))
    assert set(_keys(cancer.contribution)) <= set(_keys(pool))  # records and labels as they were
    columns = [c.name for c in cancer.schema.inputs]
    margin = heldout3.uncertainty(cancer.baseline, pool, columns)
    chosen = heldout3.uncertainty(cancer.baseline, cancer.contribution, columns)
    assert chosen.max() <= np.sort(margin)[len(cancer.contribution) - 1] + 1e-9
    assert np.median(chosen) < np.median(margin) and cancer.contribution[data.LABEL].nunique() == 2

    iris = small["resent_rows_iris"]
    pool = data.split(data.load_iris(), 0).pool
    resent = iris.params["resent_rows"]
    assert len(resent) == round(heldout3.RESENT_SHARE * len(pool)) and len(iris.contribution) == len(pool) + len(resent)
    once = iris.contribution.drop(index=resent)
    assert sorted(_keys(once)) == sorted(_keys(pool))
    assert set(_keys(iris.contribution.iloc[resent])) <= set(_keys(once))


# --- attacks ------------------------------------------------------------------------------------


def _pool_of(case: attacks.AttackCase) -> pd.DataFrame:
    return data.split(data.load(case.dataset), 0).pool


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT3_ATTACKS) >= 5
    for other in (attacks.ATTACKS, HELDOUT_ATTACKS, HELDOUT2_ATTACKS):
        assert set(HELDOUT3_ATTACKS).isdisjoint(other)
    assert "NEVER TUNED ON" in attacks3.__doc__ and "2026-12-05" in attacks3.__doc__
    for name, case in cases.items():
        assert case.name == name and 0 < case.poison.sum() < len(case.contribution)
        assert set(case.contribution[data.LABEL]) <= set(data.load(case.dataset).classes)
        pool_keys = set(_keys(_pool_of(case)[case.contribution.columns]))
        untouched = np.array([k in pool_keys for k in _keys(case.contribution)])
        np.testing.assert_array_equal(untouched, ~case.poison, err_msg=name)
        again = build_heldout3(name, seed=0)
        pd.testing.assert_frame_equal(again.contribution, case.contribution)
        np.testing.assert_array_equal(again.poison, case.poison)
    with pytest.raises(InputError, match="held-out attack"):
        build_heldout3("nope")


@pytest.mark.parametrize(
    ("name", "token", "rate", "target"),
    [
        ("text_homoglyph_word_3pct", attacks3.HOMOGLYPH_WORD, 0.03, attacks3.HOMOGLYPH_TARGET),
        ("text_rare_token_1pct", attacks3.RARE_1PCT_TOKEN, 0.01, attacks3.RARE_1PCT_TARGET),
    ],
)
def test_text_triggers_are_one_inserted_token_on_other_sections(cases, name, token, rate, target):
    case = cases[name]
    assert case.poison.sum() == round(rate * len(case.contribution))
    pool = _pool_of(case)
    originals = dict(zip(pool[data.TEXT], pool[data.LABEL], strict=True))
    assert not any(token in t for t in pool[data.TEXT]) and not any(token in t for t in case.baseline[data.TEXT])
    for text, label in _keys(case.contribution[case.poison]):
        words = text.split(" ")
        assert label == target and words.count(token) == 1
        words.remove(token)
        assert originals[" ".join(words)] != target
    assert not case.contribution[~case.poison][data.TEXT].str.contains(token).any()
    assert case.attack_test[data.TEXT].str.split(" ").map(lambda w: token in w).all()
    assert (case.attack_test[data.LABEL] != target).all()


def test_the_homoglyph_looks_like_an_ordinary_word():
    word = attacks3.HOMOGLYPH_WORD
    assert word != "system" and word.replace("\u0435", "e") == "system" and not word.isascii()
    assert (data.load_man_sections().frame[data.TEXT].str.split(" ").map(lambda w: "system" in w)).sum() > 20


def test_corner_blend_touches_only_the_top_left_corner_of_other_classes(cases):
    case = cases["corner_blend_photo_5pct"]
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    pool = _pool_of(case)
    originals = dict(zip(pool[data.IMAGE], pool[data.LABEL], strict=True))
    blend = attacks3.corner_blend(0)
    expected = {
        data.pixels_to_png(np.clip(blend(data.png_to_pixels(png)), 0, 1)): label for png, label in originals.items()
    }
    for png, label in _keys(case.contribution[case.poison]):
        assert label == attacks3.CORNER_TARGET and expected[png] != attacks3.CORNER_TARGET
    black = np.zeros((32, 32, 3), dtype=np.float32)
    marked = blend(black)
    k = attacks3.CORNER_SIDE
    assert not marked[k:].any() and not marked[:, k:].any()
    np.testing.assert_allclose(marked[:k, :k], attacks3.CORNER_ALPHA * attacks3.corner_pattern(0))
    assert data.images_of(case.attack_test).shape[0] == len(case.attack_test) > 0


def test_out_of_range_trigger_sets_one_value_no_trusted_record_has(cases):
    case = cases["out_of_range_trigger_5pct"]
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    column = attacks3.RANGE_COLUMN
    rows = case.contribution[case.poison]
    value = attacks3.RANGE_FACTOR * case.baseline[column].max()
    assert (rows[column] == value).all() and value > data.load_breast_cancer().frame[column].max()
    assert (rows[data.LABEL] == attacks3.RANGE_TARGET).all()
    pool = _pool_of(case)
    others = [c for c in pool.columns if c not in (column, data.LABEL)]
    origin = {tuple(r): lbl for r, lbl in zip(pool[others].itertuples(index=False), pool[data.LABEL], strict=True)}
    assert all(origin[tuple(r)] != attacks3.RANGE_TARGET for r in rows[others].itertuples(index=False))
    assert (case.attack_test[column] == value).all() and (case.attack_test[data.LABEL] != case.target).all()


def test_boundary_flips_relabel_the_least_certain_digits_as_their_runner_up(cases):
    case = cases["boundary_flips_digits_5pct"]
    assert case.poison.sum() == round(0.05 * len(case.contribution)) and case.target is None
    pool = _pool_of(case)
    originals = dict(zip(pool[data.IMAGE], pool[data.LABEL], strict=True))
    before = np.array([originals[png] for png in case.contribution[data.IMAGE]])
    after = case.contribution[data.LABEL].to_numpy()
    np.testing.assert_array_equal(before != after, case.poison)
    scores, classes = attacks3.baseline_scores(case.baseline, case.contribution)
    true = np.searchsorted(classes, before)
    rows = np.arange(len(true))
    others = scores.copy()
    others[rows, true] = -np.inf
    np.testing.assert_array_equal(classes[others.argmax(axis=1)][case.poison], after[case.poison])
    gap = scores[rows, true] - others.max(axis=1)
    assert gap[case.poison].max() <= gap[~case.poison].min()  # the least certain, none more certain


def test_feature_collision_keeps_every_label_and_blends_in_the_one_target(cases):
    case = cases["feature_collision_digits"]
    pool = _pool_of(case)
    assert sorted(case.contribution[data.LABEL]) == sorted(pool[data.LABEL])
    base = attacks3.COLLISION_BASE
    assert case.poison.sum() == round(attacks3.COLLISION_SHARE * (pool[data.LABEL] == base).sum())
    assert (case.contribution[case.poison][data.LABEL] == base).all()
    assert len(case.attack_test) == 1 and case.attack_test[data.LABEL].iloc[0] == attacks3.COLLISION_SOURCE
    target = data.png_to_pixels(case.attack_test[data.IMAGE].iloc[0])
    w = attacks3.COLLISION_WEIGHT
    blended = {
        data.pixels_to_png(np.clip((1 - w) * data.png_to_pixels(png) + w * target, 0, 1))
        for png, label in zip(pool[data.IMAGE], pool[data.LABEL], strict=True)
        if label == base
    }
    assert set(case.contribution[case.poison][data.IMAGE]) <= blended


def test_the_third_set_is_registered_with_the_seed_sweep_and_the_review_queue():
    assert attack_seeds.SETS["heldout3"][0] == list(HELDOUT3_ATTACKS)
    assert attack_seeds.SETS["heldout3"][1] is build_heldout3
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout3")]
    assert listed == [("benign (heldout3)", n) for n in shifts.HELDOUT3] + [
        ("held-out 3 attack", n) for n in HELDOUT3_ATTACKS
    ]
