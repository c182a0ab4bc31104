"""The fifth held-out set builds what it says: benign situations change only what they state, and
attacks plant exactly the stated poison. No gate runs here (these cases are measured once, elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts
from benchmarks.attacks import heldout5 as attacks5
from benchmarks.attacks.base import shuffled
from benchmarks.attacks.heldout import HELDOUT_ATTACKS
from benchmarks.attacks.heldout2 import HELDOUT2_ATTACKS
from benchmarks.attacks.heldout3 import HELDOUT3_ATTACKS
from benchmarks.attacks.heldout4 import HELDOUT4_ATTACKS
from benchmarks.attacks.heldout5 import HELDOUT5_ATTACKS, build_heldout5
from benchmarks.shifts import heldout5
from benchmarks.shifts.base import (
    EXTRA_KINDS,
    HELDOUT3_KINDS,
    HELDOUT4_KINDS,
    KINDS,
    SMALL_CONTRIBUTION,
    parts,
    shift_image,
    sized,
)
from dataward.domain.errors import InputError


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout5")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout5(name, seed=0) for name in HELDOUT5_ATTACKS}


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return list(map(tuple, frame.itertuples(index=False)))


def _pool(situation: shifts.Situation) -> pd.DataFrame:
    """The pool records a situation drew (at seed 0, small), in the order it drew them."""
    split = parts(data.load(situation.dataset), 0, "small")
    return sized(split.pool, "small", SMALL_CONTRIBUTION, np.random.default_rng(0)).reset_index(drop=True)


def _pixels(png: bytes) -> np.ndarray:
    return data.png_to_pixels(png)


def _png(pixels: np.ndarray) -> bytes:
    return data.pixels_to_png(np.clip(pixels, 0, 1))


# --- benign -------------------------------------------------------------------------------------


def test_the_fifth_heldout_set_is_its_own_never_tuned_group_of_images(small):
    assert len(shifts.HELDOUT5) >= 6 and list(small) == list(shifts.HELDOUT5)
    for other in (shifts.TUNING, shifts.HELDOUT, shifts.HELDOUT2, shifts.HELDOUT3, shifts.HELDOUT4):
        assert set(shifts.HELDOUT5).isdisjoint(other)
    assert shifts.GROUPS["heldout5"] is shifts.HELDOUT5
    assert "NEVER TUNED ON" in heldout5.__doc__ and "2026-12-06" in heldout5.__doc__
    assert "committed before any gate" in " ".join(heldout5.__doc__.split())
    assert {s.group for s in small.values()} == {"heldout5"}
    assert {s.kind for s in small.values()} <= {*KINDS, *EXTRA_KINDS, *HELDOUT3_KINDS, *HELDOUT4_KINDS}
    assert {s.modality for s in small.values()} == {"image"}
    assert {s.dataset for s in small.values()} == {"photos", "digits"}
    for name, s in small.items():
        columns = [c.name for c in s.schema.inputs] + [s.schema.label]
        for frame in (s.baseline, s.validation, s.contribution):
            assert list(frame.columns) == columns, name
        assert set(s.contribution[data.LABEL]) <= set(data.load(s.dataset).classes), name
        assert len(s.baseline) <= 600 and 0 < len(s.contribution) <= 4 * SMALL_CONTRIBUTION, name
        assert not s.as_case().poison.any() and s.description, name
        images = data.images_of(s.contribution)
        side = data.PHOTO_SIDE if s.dataset == "photos" else data.DIGIT_SIDE
        assert images.shape[1:3] == (side, side) and images.min() >= 0 and images.max() <= 1, name
        pd.testing.assert_frame_equal(shifts.build(name, 0, "small").contribution, s.contribution)
    assert [s.name for s in shifts.benign_situations(0, "small", "heldout5")] == list(shifts.HELDOUT5)
    full = shifts.build("rolling_shutter_photos", 0, "full")
    assert len(full.contribution) > len(small["rolling_shutter_photos"].contribution)


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("rolling_shutter_photos", heldout5.rolling_shutter),
        ("small_writing_digits", heldout5.smaller_writing),
        ("box_line_digits", heldout5.box_line),
    ],
)
def test_sensor_situations_apply_their_transform_to_every_image_and_keep_labels(small, name, fn):
    s = small[name]
    pool = _pool(s)
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    assert s.contribution[data.IMAGE].tolist() == [_png(fn(_pixels(b))) for b in pool[data.IMAGE]]
    assert (s.contribution[data.IMAGE] != pool[data.IMAGE]).mean() > 0.9


def test_image_transforms_change_what_they_say():
    rng = np.random.default_rng(5)
    photo = rng.random((32, 32, 3)).astype(np.float32)
    sheared = heldout5.rolling_shutter(photo)
    np.testing.assert_allclose(sheared[0], photo[0], atol=1e-6)  # the top row is read first, unmoved
    np.testing.assert_allclose(sheared[-1, 2:], photo[-1, :-2], atol=1e-6)  # the bottom one 2 pixels right
    np.testing.assert_allclose(sheared[-1, :2], np.repeat(photo[-1, :1], 2, axis=0), atol=1e-6)
    moved = heldout5.SHUTTER_SKEW * 15 / 31  # row 15 of 31: just under one pixel, between two columns
    frac = 1.0 - moved
    np.testing.assert_allclose(sheared[15, 1:], (1 - frac) * photo[15, :-1] + frac * photo[15, 1:], atol=1e-5)

    cast = heldout5.colour_cast(photo)
    np.testing.assert_allclose(cast, photo * np.array(heldout5.CAST_GAINS, dtype=np.float32), rtol=1e-6)
    assert heldout5.CAST_GAINS[1] > 1 and heldout5.CAST_GAINS[2] == 1.0

    ink = np.ones((8, 8), dtype=np.float32)
    smaller = heldout5.smaller_writing(ink)
    border = np.ones((8, 8), dtype=bool)
    border[1:-1, 1:-1] = False
    assert (smaller[border] == 0).all() and np.allclose(smaller[~border], 1.0)
    digit = data.png_to_pixels(data.load_digits().frame[data.IMAGE][0])
    assert 0.45 < heldout5.smaller_writing(digit).sum() / digit.sum() < 0.85  # about 0.8 squared of the ink

    lined = heldout5.box_line(digit)
    np.testing.assert_array_equal(lined[:-1], digit[:-1])
    np.testing.assert_allclose(lined[-1], np.maximum(digit[-1], heldout5.BOX_LINE_INK))


def test_the_fluorescent_cast_is_on_its_share_of_the_batch_only(small):
    s = small["fluorescent_cast_photos"]
    pool = _pool(s)
    rows = s.params["cast_rows"]
    assert len(rows) == round(heldout5.CAST_SHARE * len(pool))
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    cast = np.isin(np.arange(len(pool)), rows)
    assert (s.contribution[data.IMAGE][~cast] == pool[data.IMAGE][~cast]).all()
    expected = [_png(heldout5.colour_cast(_pixels(b))) for b in pool[data.IMAGE][cast]]
    assert s.contribution[data.IMAGE][cast].tolist() == expected


def test_two_class_sources_hold_only_their_two_classes_of_pool_records(small):
    for name, classes in (("temple_only_photos", heldout5.TEMPLE_CLASSES), ("yes_no_digits", heldout5.YES_NO_CLASSES)):
        s = small[name]
        assert set(s.contribution[data.LABEL]) == set(classes), name
        pool = parts(data.load(s.dataset), 0, "small").pool
        assert set(_keys(s.contribution)) <= set(_keys(pool)), name
        assert s.contribution[data.IMAGE].is_unique, name


def test_every_photo_crop_has_a_window_and_crop_remakes_it():
    photos = data.load_photos().frame
    for png, label in photos[[data.IMAGE, data.LABEL]].head(40).itertuples(index=False):
        window = heldout5.window_of(png)
        assert heldout5.crop(*window) == png and heldout5.fits(label, *window)
    assert len(heldout5._windows()) == len(photos)  # every crop's bytes are its own
    assert not heldout5.fits("temple_sky", "temple", 300, 10, 40) and not heldout5.fits("petals", "temple", 0, 0, 40)
    assert heldout5.wider(("temple", 100, 200, 40)) == ("temple", 95, 195, 50)


def test_the_wider_lens_cuts_wider_windows_of_the_same_scenes_and_keeps_their_classes(small):
    s = small["wider_lens_photos"]
    pool = _pool(s)
    expected = []
    for png, label in pool[[data.IMAGE, data.LABEL]].itertuples(index=False):
        window = heldout5.wider(heldout5.window_of(png))
        assert window[3] == round(heldout5.window_of(png)[3] * heldout5.WIDER_LENS)
        if heldout5.fits(label, *window):
            expected.append((heldout5.crop(*window), label))
    assert _keys(s.contribution) == expected
    assert 0.75 * len(pool) < len(s.contribution) == s.params["kept"] and s.params["of"] == len(pool)
    assert set(s.contribution[data.LABEL]) == set(data.PHOTO_CLASSES)
    assert not set(s.contribution[data.IMAGE]) & set(data.load_photos().frame[data.IMAGE])  # new crops


def test_burst_shots_are_the_pool_and_near_copies_of_its_scenes(small):
    s = small["burst_shots_photos"]
    pool = _pool(s)
    extra = np.isin(np.arange(len(s.contribution)), s.params["burst_rows"])
    assert sorted(_keys(s.contribution[~extra])) == sorted(_keys(pool))
    scenes = round(heldout5.BURST_SHARE * len(pool))
    assert 0.9 * heldout5.BURST_EXTRA * scenes <= extra.sum() <= heldout5.BURST_EXTRA * scenes
    assert s.contribution[data.IMAGE].is_unique
    scene = np.asarray(s.params["scene"])
    for (png, label), first in zip(_keys(s.contribution[extra]), scene[extra], strict=True):
        photo, y, x, side = heldout5.window_of(pool.at[int(first), data.IMAGE])
        assert label == pool.at[int(first), data.LABEL]
        shots = [
            heldout5.crop(photo, y + dy, x + dx, side)
            for dy in range(-heldout5.BURST_JITTER, heldout5.BURST_JITTER + 1)
            for dx in range(-heldout5.BURST_JITTER, heldout5.BURST_JITTER + 1)
            if (dy, dx) != (0, 0) and heldout5.fits(label, photo, y + dy, x + dx, side)
        ]
        assert png in shots


def test_the_jammed_stack_holds_every_form_once_and_a_quarter_again_a_pixel_lower(small):
    s = small["rescanned_jam_digits"]
    pool = _pool(s)
    again = np.isin(np.arange(len(s.contribution)), s.params["rescan_rows"])
    assert again.sum() == round(heldout5.RESCAN_SHARE * len(pool))
    assert sorted(_keys(s.contribution[~again])) == sorted(_keys(pool))
    first = np.asarray(s.params["first_scan"])
    for (png, label), row in zip(_keys(s.contribution[again]), first[again], strict=True):
        original = pool.iloc[int(row)]
        assert label == original[data.LABEL]
        assert png == _png(shift_image(_pixels(original[data.IMAGE]), heldout5.RESCAN_SHIFT, 0))


# --- attacks ------------------------------------------------------------------------------------


def _drawn(case: attacks.AttackCase) -> pd.DataFrame:
    """The pool in the order the attack drew it (its first use of its seed's generator): row ``i`` is
    what row ``i`` of the contribution was before it was poisoned."""
    return shuffled(data.split(data.load(case.dataset), 0).pool, np.random.default_rng(0))


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT5_ATTACKS) >= 4
    for other in (attacks.ATTACKS, HELDOUT_ATTACKS, HELDOUT2_ATTACKS, HELDOUT3_ATTACKS, HELDOUT4_ATTACKS):
        assert set(HELDOUT5_ATTACKS).isdisjoint(other)
    assert "NEVER TUNED ON" in attacks5.__doc__ and "2026-12-06" in attacks5.__doc__
    assert "committed before any gate" in " ".join(attacks5.__doc__.split())
    for name, case in cases.items():
        assert name in attacks5.__doc__  # the docstring says what each plants
        assert case.name == name and 0 < case.poison.sum() < len(case.contribution)
        assert case.modality == "image"
        assert set(case.contribution[data.LABEL]) <= set(data.load(case.dataset).classes)
        before = _drawn(case)
        changed = np.array([a != b for a, b in zip(_keys(case.contribution), _keys(before), strict=True)])
        np.testing.assert_array_equal(changed, case.poison, err_msg=name)
        again = build_heldout5(name, seed=0)
        pd.testing.assert_frame_equal(again.contribution, case.contribution)
        np.testing.assert_array_equal(again.poison, case.poison)
    with pytest.raises(InputError, match="held-out attack"):
        build_heldout5("nope")


def _poisoned(case: attacks.AttackCase) -> list[tuple[bytes, str, bytes, str]]:
    """(image, label, image before, label before) of every poisoned row."""
    before = _drawn(case)
    return [(*_keys(case.contribution.iloc[[i]])[0], *_keys(before.iloc[[i]])[0]) for i in np.flatnonzero(case.poison)]


@pytest.mark.parametrize(
    ("name", "rate", "trigger", "target"),
    [
        ("thin_line_photo_4pct", 0.04, attacks5.thin_line, attacks5.LINE_TARGET),
        ("diagonal_sine_photo_5pct", 0.05, attacks5.diagonal_sine, attacks5.SINE_TARGET),
        ("faint_checker_photo_5pct", 0.05, attacks5.faint_checker, attacks5.FAINT_TARGET),
    ],
)
def test_fixed_triggers_mark_crops_of_other_classes_relabelled_to_their_target(cases, name, rate, trigger, target):
    case = cases[name]
    assert case.family == "backdoor" and case.target == target
    assert case.poison.sum() == round(rate * len(case.contribution))
    for png, label, was_png, was_label in _poisoned(case):
        assert label == target and was_label != target
        assert png == _png(trigger(_pixels(was_png)))
    test = case.attack_test
    assert len(test) > 0 and (test[data.LABEL] != target).all()
    clean_test = data.split(data.load_photos(), 0).test
    assert set(test[data.IMAGE]) <= {_png(trigger(_pixels(b))) for b in clean_test[data.IMAGE]}


def test_the_fixed_triggers_are_what_they_say():
    rng = np.random.default_rng(7)
    photo = rng.random((32, 32, 3)).astype(np.float32)

    lined = attacks5.thin_line(photo)
    np.testing.assert_array_equal(lined[attacks5.LINE_ROW], np.tile(attacks5.LINE_COLOUR, (32, 1)))
    others = np.arange(32) != attacks5.LINE_ROW
    np.testing.assert_array_equal(lined[others], photo[others])

    wave = attacks5.diagonal_sine(photo) - photo
    assert np.abs(wave).max() <= attacks5.SINE_DELTA + 1e-6 and np.abs(wave).max() > 0.9 * attacks5.SINE_DELTA
    np.testing.assert_allclose(wave[..., 0], wave[..., 2], atol=1e-6)  # the same in every channel
    np.testing.assert_allclose(wave[3, 5], wave[5, 3], atol=1e-6)  # constant along the anti-diagonals
    np.testing.assert_allclose(wave[0, :8], wave[0, 8:16], atol=1e-6)  # four periods across 32 pixels

    faint = attacks5.faint_checker(photo)
    corner = np.zeros((32, 32), dtype=bool)
    corner[:8, -8:] = True
    np.testing.assert_array_equal(faint[~corner], photo[~corner])
    black = attacks5.faint_checker(np.zeros((32, 32, 3), dtype=np.float32))
    assert set(np.unique(black[corner])) == {0.0, np.float32(attacks5.FAINT_ALPHA)}
    np.testing.assert_allclose(black[:2, -8:-6, 0], attacks5.FAINT_ALPHA)  # cells of 2 pixels
    np.testing.assert_array_equal(black[:2, -6:-4, 0], 0.0)


def test_the_corner_checker_is_in_a_corner_of_its_own_for_each_crop(cases):
    case = cases["random_corner_checker_photo_3pct"]
    assert case.poison.sum() == round(0.03 * len(case.contribution))
    assert case.target == attacks5.CORNER_TARGET
    used = set()
    for png, label, was_png, was_label in _poisoned(case):
        assert label == attacks5.CORNER_TARGET and was_label != attacks5.CORNER_TARGET
        marks = [c for c in attacks5.CORNERS if png == _png(attacks5.checker_at(_pixels(was_png), c))]
        assert len(marks) == 1
        used.add(marks[0])
    assert len(used) >= 3  # not one fixed corner
    black = attacks5.checker_at(np.zeros((32, 32, 3), dtype=np.float32), "bottom_left")
    assert black[-4:, :4].any() and not black[:-4].any() and not black[:, 4:].any()
    test = case.attack_test
    assert len(test) > 0 and (test[data.LABEL] != case.target).all()


def test_swap_flips_relabel_the_pair_both_ways_and_nothing_else(cases):
    case = cases["swap_flips_digits_5pct"]
    first, second = attacks5.SWAP_PAIR
    assert case.family == "label_noise" and case.target is None and case.attack_test is None
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    flips = [(was, now) for _, now, _, was in _poisoned(case)]
    assert all(png == was_png for png, _, was_png, _ in _poisoned(case))  # only labels changed
    forward, backward = flips.count((first, second)), flips.count((second, first))
    assert forward + backward == len(flips) and abs(forward - backward) <= 1 and backward > 0
    assert case.params["flipped"] == [forward, backward]


def test_the_fifth_set_is_registered_with_the_seed_sweep_and_the_review_queue():
    assert attack_seeds.SETS["heldout5"][0] == list(HELDOUT5_ATTACKS)
    assert attack_seeds.SETS["heldout5"][1] is build_heldout5
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout5")]
    assert listed == [("benign (heldout5)", n) for n in shifts.HELDOUT5] + [
        ("held-out 5 attack", n) for n in HELDOUT5_ATTACKS
    ]
