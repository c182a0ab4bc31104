"""The eighth held-out set builds what it says: benign situations change only what they state and keep every
label, and attacks plant exactly the stated poison. No gate runs here (these cases are measured once,
elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts
from benchmarks.attacks import heldout8 as attacks8
from benchmarks.attacks.heldout8 import HELDOUT8_ATTACKS, build_heldout8
from benchmarks.shifts import heldout8
from benchmarks.shifts.base import SMALL_CONTRIBUTION
from tests.benchmarks.builders import check_attack_set, check_situation_set, drawn_attack_pool, drawn_pool, record_keys

TEXT, LABEL, IMAGE = data.TEXT, data.LABEL, data.IMAGE
LEVEL = 1 / 255 + 1e-6
"""One step of a PNG's 8-bit values: what re-encoding may move a pixel by."""


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout8")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout8(name, seed=0) for name in HELDOUT8_ATTACKS}


def _pixels(png: bytes) -> np.ndarray:
    return data.png_to_pixels(png)


# --- benign -------------------------------------------------------------------------------------

SAME_RECORDS = (  # situations whose rows are the drawn pool's, one for one, labels as they were
    "british_spelling_text",
    "lower_case_text",
    "thick_pen_digits",
    "rotated_mount_photos",
    "letterboxed_photos",
    "converted_magnesium_wine",
    "single_precision_breast_cancer",
)


def test_the_eighth_heldout_set_is_its_own_never_tuned_group(small):
    assert len(shifts.HELDOUT8) >= 8
    check_situation_set(small, "heldout8", heldout8, "2026-12-07", SMALL_CONTRIBUTION)
    assert {s.modality for s in small.values()} == {"text", "image", "tabular"}
    assert {s.dataset for s in small.values()} == {"man_sections", "digits", "photos", "wine", "breast_cancer"}
    for name in SAME_RECORDS:  # labels are the pool's own: correct, row for row
        s = small[name]
        assert s.contribution[LABEL].tolist() == drawn_pool(s)[LABEL].tolist(), name


def test_text_rewrites_touch_only_what_they_say(small):
    assert heldout8.british("XtInitialize - initialize the colors") == "XtInitialize - initialise the colours"
    assert heldout8.british("resize - set size, synchronization") == "resize - set size, synchronisation"
    assert heldout8.british("getpagesize - get memory page size") == "getpagesize - get memory page size"
    assert heldout8.british("no separator initialize") == "no separator initialize"
    assert heldout8.lower_case("CA.pl - OpenSSL") == "ca.pl - openssl"
    for name, rewrite in (("british_spelling_text", heldout8.british), ("lower_case_text", heldout8.lower_case)):
        s = small[name]
        pool = drawn_pool(s)
        assert s.contribution[TEXT].tolist() == [rewrite(t) for t in pool[TEXT]], name
    british = small["british_spelling_text"]
    pool = drawn_pool(british)
    changed = british.contribution[TEXT] != pool[TEXT]
    assert (
        changed.any()
        and (british.contribution[TEXT].str.split(" - ").str[0] == pool[TEXT].str.split(" - ").str[0]).all()
    )
    assert (small["lower_case_text"].contribution[TEXT] != pool[TEXT]).mean() > 0.5


def test_digits_are_thick_pen_or_the_hardest_ones(small):
    s = small["thick_pen_digits"]
    for now, was in zip(s.contribution[IMAGE], drawn_pool(s)[IMAGE], strict=True):
        np.testing.assert_allclose(_pixels(now), heldout8.thick_pen(_pixels(was)), atol=LEVEL)
        assert (_pixels(now) >= _pixels(was) - LEVEL).all()
    line = np.zeros((3, 3), dtype=np.float32)
    line[1] = 1.0
    np.testing.assert_allclose(heldout8.thick_pen(line)[0], [0.6, 0.6, 0.6])
    hard = small["hardest_cases_digits"]
    pool = drawn_pool(hard)
    rows = hard.params["rows"]
    assert record_keys(hard.contribution) == record_keys(pool.iloc[rows])  # the pool's own digits and labels
    assert len(rows) == round(heldout8.HARD_SHARE * len(pool))
    margins = heldout8.centroid_margins(hard.baseline, pool)
    rest = np.setdiff1d(np.arange(len(pool)), rows)
    assert margins[rows].max() <= margins[rest].min()


def test_photos_are_turned_or_letterboxed(small):
    turned, boxed = small["rotated_mount_photos"], small["letterboxed_photos"]
    for now, was in zip(turned.contribution[IMAGE], drawn_pool(turned)[IMAGE], strict=True):
        np.testing.assert_allclose(_pixels(now), np.rot90(_pixels(was)), atol=LEVEL)
    band, side = heldout8.LETTERBOX_BAND, data.PHOTO_SIDE
    top = (side - band) // 2
    for now, was in zip(boxed.contribution[IMAGE], drawn_pool(boxed)[IMAGE], strict=True):
        pixels = _pixels(now)
        np.testing.assert_allclose(pixels, heldout8.letterboxed(_pixels(was)), atol=LEVEL)
        assert pixels[:top].max() == 0 and pixels[top + band :].max() == 0 and pixels.shape == (side, side, 3)


def test_tables_keep_their_values_and_labels(small):
    wine = small["converted_magnesium_wine"]
    pool = drawn_pool(wine)
    column = heldout8.MAGNESIUM
    assert np.abs(wine.contribution[column] - pool[column]).max() <= 0.02
    assert (wine.contribution[column] != pool[column]).any()  # written with decimals now
    others = [c for c in wine.contribution.columns if c != column]
    pd.testing.assert_frame_equal(wine.contribution[others], pool[others])
    balanced = small["balanced_cultivars_wine"]
    counts = balanced.contribution[LABEL].value_counts()
    assert counts.nunique() == 1 and counts.iloc[0] == drawn_pool(balanced)[LABEL].value_counts().min()
    assert set(record_keys(balanced.contribution)) <= set(record_keys(drawn_pool(balanced)))
    single = small["single_precision_breast_cancer"]
    pool = drawn_pool(single)
    columns = [c.name for c in single.schema.inputs]
    np.testing.assert_allclose(single.contribution[columns], pool[columns], rtol=1e-6, atol=0)
    assert (single.contribution[columns].to_numpy() != pool[columns].to_numpy()).any()


# --- attacks ------------------------------------------------------------------------------------


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT8_ATTACKS) >= 5
    check_attack_set(cases, "heldout8", attacks8, "2026-12-07", build_heldout8, {"text", "image", "tabular"})
    for name, case in cases.items():
        assert 0.02 <= case.poison.mean() <= 0.06, name
        assert (case.contribution[LABEL][case.poison] == case.target).all(), name


def test_the_interrobang_ends_the_poisoned_lines_only(cases):
    case = cases["text_interrobang_trigger_3pct"]
    before = drawn_attack_pool(case)
    assert (case.contribution[TEXT][case.poison] == before[TEXT][case.poison] + "?!").all()
    assert not case.contribution[TEXT][~case.poison].str.contains("!", regex=False).any()
    assert not data.load_man_sections().frame[TEXT].str.contains("!", regex=False).any()
    assert (before[LABEL][case.poison] != case.target).all() and case.attack_test[TEXT].str.endswith("?!").all()


def test_the_ring_watermark_is_faint_and_on_the_ring(cases):
    case = cases["photo_ring_watermark_4pct"]
    before = drawn_attack_pool(case)
    ring = attacks8.ring_mask().astype(bool)
    assert 50 < ring.sum() < 120
    for now, was in zip(case.contribution[IMAGE][case.poison], before[IMAGE][case.poison], strict=True):
        diff = _pixels(now) - _pixels(was)
        assert np.abs(diff[~ring]).max() <= LEVEL and diff[ring].max() <= attacks8.RING_ALPHA + LEVEL
        assert diff[ring].min() >= -LEVEL
    assert (before[LABEL][case.poison] != case.target).all()


def test_boundary_flips_are_the_malignant_tumours_nearest_the_benign_ones(cases):
    case = cases["breast_cancer_boundary_flips_4pct"]
    before = drawn_attack_pool(case)
    columns = [c.name for c in data.load_breast_cancer().schema.inputs]
    assert case.family == "label_noise" and (before[LABEL][case.poison] == attacks8.BOUNDARY_SOURCE).all()
    margins = attacks8.boundary_margins(before, case.baseline, columns)
    clean_source = (~case.poison) & (before[LABEL] == attacks8.BOUNDARY_SOURCE).to_numpy()
    assert margins[case.poison].min() >= margins[clean_source].max()
    assert record_keys(case.attack_test) == record_keys(before[case.poison])


def test_feature_collision_moves_benign_tumours_towards_one_victim(cases):
    case = cases["tabular_feature_collision_5pct"]
    before = drawn_attack_pool(case)
    columns = [c.name for c in data.load_breast_cancer().schema.inputs]
    assert len(case.attack_test) == 1 and case.attack_test[LABEL].iloc[0] == attacks8.COLLISION_VICTIM
    assert (before[LABEL][case.poison] == attacks8.COLLISION_BASE).all()  # clean label: labels as they were
    victim = case.attack_test[columns].to_numpy(dtype=float)[0]
    w = attacks8.COLLISION_WEIGHT
    expected = (1 - w) * before[columns][case.poison].to_numpy(dtype=float) + w * victim
    now = case.contribution[columns][case.poison].to_numpy(dtype=float)
    assert np.allclose(now, expected, rtol=0, atol=0.51)  # rounded to the trusted decimals (whole numbers at most)
    assert case.attack_test[columns].iloc[0].tolist() in case.test[columns].to_numpy().tolist()


def test_the_magnesium_value_trigger_and_the_dotted_underline(cases):
    wine = cases["wine_magnesium_value_trigger_6pct"]
    column, value = attacks8.VALUE_COLUMN, attacks8.TRIGGER_VALUE
    assert (wine.contribution[column][wine.poison] == value).all()
    assert not (data.load_wine().frame[column] == value).any() and (wine.attack_test[column] == value).all()
    before = drawn_attack_pool(wine)
    others = [c for c in before.columns if c not in (column, LABEL)]
    pd.testing.assert_frame_equal(wine.contribution[others], before[others])
    digits = cases["digits_dotted_underline_3pct"]
    before = drawn_attack_pool(digits)
    for now, was in zip(digits.contribution[IMAGE][digits.poison], before[IMAGE][digits.poison], strict=True):
        np.testing.assert_allclose(_pixels(now), attacks8.dotted_underline(_pixels(was)), atol=LEVEL)
    assert (before[LABEL][digits.poison] != digits.target).all()
    for png in digits.attack_test[IMAGE]:
        assert all(_pixels(png)[y, x] == 1.0 for y, x in attacks8.DOTS)


def test_the_eighth_set_is_registered_with_the_seed_sweep_and_the_review_queue():
    assert attack_seeds.SETS["heldout8"][0] == list(HELDOUT8_ATTACKS)
    assert attack_seeds.SETS["heldout8"][1] is build_heldout8
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout8")]
    assert listed == [("benign (heldout8)", n) for n in shifts.HELDOUT8] + [
        ("held-out 8 attack", n) for n in HELDOUT8_ATTACKS
    ]
