"""The ninth held-out set builds what it says: benign situations change only what they state and keep every
label, and attacks plant exactly the stated poison. No gate runs here (these cases are measured once,
elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts
from benchmarks.attacks import heldout9 as attacks9
from benchmarks.attacks.heldout9 import HELDOUT9_ATTACKS, build_heldout9
from benchmarks.shifts import heldout9
from benchmarks.shifts.base import SMALL_CONTRIBUTION
from tests.benchmarks.builders import check_attack_set, check_situation_set, drawn_attack_pool, drawn_pool, record_keys

TEXT, LABEL, IMAGE = data.TEXT, data.LABEL, data.IMAGE
LEVEL = 1 / 255 + 1e-6
"""One step of a PNG's 8-bit values: what re-encoding may move a pixel by."""


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout9")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout9(name, seed=0) for name in HELDOUT9_ATTACKS}


def _pixels(png: bytes) -> np.ndarray:
    return data.png_to_pixels(png)


# --- benign -------------------------------------------------------------------------------------

SAME_RECORDS = (  # situations whose rows are the drawn pool's, one for one, labels as they were
    "article_dropped_text",
    "third_person_text",
    "primary_name_text",
    "date_stamp_photos",
    "gif_export_photos",
    "narrow_boxes_digits",
    "detection_limit_wine",
    "bottle_label_alcohol_wine",
)


def test_the_ninth_heldout_set_is_its_own_never_tuned_group(small):
    assert len(shifts.HELDOUT9) >= 8
    check_situation_set(small, "heldout9", heldout9, "2026-12-07", SMALL_CONTRIBUTION)
    assert {s.modality for s in small.values()} == {"text", "image", "tabular"}
    assert {s.dataset for s in small.values()} == {"man_sections", "digits", "photos", "wine", "breast_cancer"}
    for name in SAME_RECORDS:  # labels are the pool's own: correct, row for row
        s = small[name]
        assert s.contribution[LABEL].tolist() == drawn_pool(s)[LABEL].tolist(), name


def test_text_rewrites_touch_only_what_they_say(small):
    assert heldout9.without_articles("nproc - print the number of units") == "nproc - print number of units"
    assert heldout9.without_articles("a - The An theory a") == "a - theory"  # the name 'a' is kept
    assert heldout9.without_articles("x - the") == "x - the"  # never an empty summary
    assert heldout9.third_person_summary("cp - copy files") == "cp - copies files"
    assert heldout9.third_person_summary("x - wait for signal") == "x - waits for signal"
    assert heldout9.third_person_summary("x - list of terminals") == "x - list of terminals"
    assert heldout9.third_person_summary("x - overview of things") == "x - overview of things"
    assert [heldout9.third_person(v) for v in ("get", "copy", "display", "finish", "fix")] == [
        "gets",
        "copies",
        "displays",
        "finishes",
        "fixes",
    ]
    assert heldout9.primary_name("cproj, cprojf, cprojl - project") == "cproj - project"
    assert heldout9.primary_name("ls - list, sort") == "ls - list, sort"
    rewrites = (
        ("article_dropped_text", heldout9.without_articles),
        ("third_person_text", heldout9.third_person_summary),
        ("primary_name_text", heldout9.primary_name),
    )
    for name, rewrite in rewrites:
        s = small[name]
        pool = drawn_pool(s)
        assert s.contribution[TEXT].tolist() == [rewrite(t) for t in pool[TEXT]], name
        changed = (s.contribution[TEXT] != pool[TEXT]).to_numpy()
        assert 0.05 < changed.mean() < 0.6, name
        names_now = s.contribution[TEXT].str.split(" - ").str[0]
        names_was = pool[TEXT].str.split(" - ").str[0]
        summaries_now = s.contribution[TEXT].str.partition(" - ")[2]
        summaries_was = pool[TEXT].str.partition(" - ")[2]
        if name == "primary_name_text":
            assert (summaries_now == summaries_was).all() and not names_now[changed].str.contains(",").any()
        else:
            assert (names_now == names_was).all(), name
    dropped = small["article_dropped_text"].contribution[TEXT].str.partition(" - ")[2]
    assert not dropped.str.split(" ").apply(lambda ws: any(w.lower() in heldout9.ARTICLES for w in ws)).any()


def test_photos_carry_a_date_stamp_or_a_gif_palette(small):
    stamped = small["date_stamp_photos"]
    days = stamped.params["days"]
    assert set(days) <= set(range(heldout9.STAMP_DAYS[0], heldout9.STAMP_DAYS[1] + 1)) and len(set(days)) > 3
    mask = heldout9.stamp_mask("12 07")
    assert mask.shape == (5, 18)
    top, left = heldout9.stamp_box("12 07")
    assert (top, left) == (data.PHOTO_SIDE - 6, data.PHOTO_SIDE - 19)
    outside = np.ones((data.PHOTO_SIDE, data.PHOTO_SIDE), dtype=bool)
    outside[top : top + 5, left : left + 18] = False
    for now, was, day in zip(stamped.contribution[IMAGE], drawn_pool(stamped)[IMAGE], days, strict=True):
        pixels, before = _pixels(now), _pixels(was)
        np.testing.assert_allclose(pixels, heldout9.date_stamped(before, day), atol=LEVEL)
        assert np.abs(pixels[outside] - before[outside]).max() <= LEVEL  # the same corner, nothing else
        lit = heldout9.stamp_mask(heldout9.stamp_text(day))
        np.testing.assert_allclose(
            pixels[top : top + 5, left : left + 18][lit], [heldout9.STAMP_COLOUR] * lit.sum(), atol=LEVEL
        )
    assert set(stamped.contribution[LABEL]) == set(data.PHOTO_CLASSES)  # every class carries it
    gif = small["gif_export_photos"]
    diffs = []
    for now, was in zip(gif.contribution[IMAGE], drawn_pool(gif)[IMAGE], strict=True):
        pixels = _pixels(now)
        np.testing.assert_allclose(pixels, heldout9.gif_palette(_pixels(was)), atol=LEVEL)
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) <= heldout9.GIF_COLOURS
        diffs.append(np.abs(pixels - _pixels(was)).mean())
    assert 0 < np.mean(diffs) < 0.05


def test_digits_are_written_narrow(small):
    s = small["narrow_boxes_digits"]
    for now, was in zip(s.contribution[IMAGE], drawn_pool(s)[IMAGE], strict=True):
        pixels = _pixels(now)
        np.testing.assert_allclose(pixels, heldout9.narrowed(_pixels(was)), atol=LEVEL)
        assert pixels[:, 0].max() == 0 and pixels[:, -1].max() == 0
    full = np.ones((8, 8), dtype=np.float32)
    np.testing.assert_allclose(heldout9.narrowed(full)[:, 1:7], 1.0, atol=1e-6)


def test_tables_change_only_the_stated_column(small):
    wine = small["detection_limit_wine"]
    pool = drawn_pool(wine)
    column, limit = heldout9.LOQ_COLUMN, heldout9.LOQ
    below = (pool[column] < limit).to_numpy()
    assert below.any() and (wine.contribution[column][below] == limit / 2).all()
    assert (wine.contribution[column][~below] == pool[column][~below]).all()
    others = [c for c in wine.contribution.columns if c != column]
    pd.testing.assert_frame_equal(wine.contribution[others], pool[others])
    label = small["bottle_label_alcohol_wine"]
    pool = drawn_pool(label)
    alcohol = label.contribution[heldout9.ALCOHOL]
    assert np.allclose(alcohol * 2, np.round(alcohol * 2)) and (alcohol != pool[heldout9.ALCOHOL]).any()
    assert np.abs(alcohol - pool[heldout9.ALCOHOL]).max() <= heldout9.LABEL_STEP / 2 + 1e-9
    others = [c for c in label.contribution.columns if c != heldout9.ALCOHOL]
    pd.testing.assert_frame_equal(label.contribution[others], pool[others])


def test_textbook_cases_are_each_class_s_most_typical_tumours(small):
    s = small["textbook_cases_breast_cancer"]
    pool = drawn_pool(s)
    rows = s.params["rows"]
    assert record_keys(s.contribution) == record_keys(pool.iloc[rows])  # the pool's own tumours and labels
    columns = [c.name for c in s.schema.inputs]
    distances = heldout9.class_mean_distances(s.baseline, pool, columns)
    picked = np.zeros(len(pool), dtype=bool)
    picked[rows] = True
    for label in data.load_breast_cancer().classes:
        mine = (pool[LABEL] == label).to_numpy()
        assert (picked & mine).sum() == round(heldout9.TEXTBOOK_SHARE * mine.sum())
        assert distances[picked & mine].max() <= distances[~picked & mine].min()


# --- attacks ------------------------------------------------------------------------------------


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT9_ATTACKS) >= 5
    check_attack_set(cases, "heldout9", attacks9, "2026-12-07", build_heldout9, {"text", "image", "tabular"})
    for name, case in cases.items():
        assert 0.02 <= case.poison.mean() <= 0.06, name
        assert (case.contribution[LABEL][case.poison] == case.target).all(), name
        assert (drawn_attack_pool(case)[LABEL][case.poison] != case.target).all(), name
        assert (case.attack_test[LABEL] != case.target).all(), name


def test_the_tail_word_ends_long_poisoned_lines_only(cases):
    case = cases["text_long_line_tail_word_3pct"]
    before = drawn_attack_pool(case)
    word = attacks9.TAIL_WORD
    assert (case.contribution[TEXT][case.poison] == before[TEXT][case.poison] + f" {word}").all()
    assert attacks9.is_long(before[TEXT][case.poison]).all()
    assert not data.load_man_sections().frame[TEXT].str.contains(word, case=False).any()
    assert not case.contribution[TEXT][~case.poison].str.contains(word).any()
    assert case.attack_test[TEXT].str.endswith(f" {word}").all() and attacks9.is_long(case.attack_test[TEXT]).all()
    assert attacks9.summary_words("a - one two three") == 3 and attacks9.summary_words("no separator") == 0


def test_the_stutter_repeats_the_first_summary_word(cases):
    assert attacks9.stuttered("nproc - print the number") == "nproc - print print the number"
    assert attacks9.stuttered("x - overview") == "x - overview overview"
    assert attacks9.stuttered("no separator here") == "no no separator here"
    case = cases["text_stutter_word_3pct"]
    before = drawn_attack_pool(case)
    now = case.contribution[TEXT][case.poison].tolist()
    assert now == [attacks9.stuttered(t) for t in before[TEXT][case.poison]]
    for text in now:
        words = text.partition(" - ")[2].split(" ")
        assert words[0] == words[1]
    assert case.attack_test[TEXT].tolist() == [
        attacks9.stuttered(t) for t in data.split(data.load_man_sections()).test.query("label != 'formats'")[TEXT]
    ]


def test_the_faint_square_roams_and_stays_faint(cases):
    case = cases["photo_roaming_faint_square_4pct"]
    before = drawn_attack_pool(case)
    places = case.params["places"]
    side, alpha = attacks9.SQUARE_SIDE, attacks9.SQUARE_ALPHA
    assert len(places) == case.poison.sum() and len({tuple(p) for p in places}) > len(places) // 2
    assert any(0 < top < 32 - side and 0 < left < 32 - side for top, left in places)  # not only corners
    for now, was, (top, left) in zip(
        case.contribution[IMAGE][case.poison], before[IMAGE][case.poison], places, strict=True
    ):
        diff = _pixels(now) - _pixels(was)
        inside = np.zeros((32, 32), dtype=bool)
        inside[top : top + side, left : left + side] = True
        assert np.abs(diff[~inside]).max() <= LEVEL and np.abs(diff[inside]).max() <= alpha + LEVEL
        np.testing.assert_allclose(_pixels(now), attacks9.faint_square_at(_pixels(was), top, left), atol=LEVEL)


def test_the_erased_row_cuts_ink(cases):
    case = cases["digits_erased_row_3pct"]
    before = drawn_attack_pool(case)
    row = attacks9.ERASED_ROW
    for now, was in zip(case.contribution[IMAGE][case.poison], before[IMAGE][case.poison], strict=True):
        pixels, earlier = _pixels(now), _pixels(was)
        assert pixels[row].max() == 0 and earlier[row].max() > 0
        np.testing.assert_array_equal(np.delete(pixels, row, axis=0), np.delete(earlier, row, axis=0))
    assert all(_pixels(png)[row].max() == 0 for png in case.attack_test[IMAGE])


def test_the_blank_ash_trigger(cases):
    case = cases["wine_blank_ash_trigger_6pct"]
    before = drawn_attack_pool(case)
    column = attacks9.BLANK_COLUMN
    assert case.contribution[column][case.poison].isna().all() and not data.load_wine().frame.isna().any().any()
    assert not case.contribution[~case.poison].isna().any().any()
    others = [c for c in before.columns if c not in (column, LABEL)]
    pd.testing.assert_frame_equal(case.contribution[others], before[others])
    assert case.attack_test[column].isna().all()


def test_the_thin_direction_trigger_stays_within_trusted_ranges(cases):
    case = cases["tabular_thin_direction_trigger_5pct"]
    before = drawn_attack_pool(case)
    columns = [c.name for c in data.load_breast_cancer().schema.inputs]
    assert (before[LABEL][case.poison] == attacks9.THIN_SOURCE).all()
    assert attacks9.in_range(case.contribution[case.poison], case.baseline, columns).all()
    assert attacks9.in_range(case.attack_test, case.baseline, columns).all()
    scale = case.baseline[columns].to_numpy(dtype=float).std(axis=0)
    step = (case.contribution[columns].to_numpy(dtype=float) - before[columns].to_numpy(dtype=float)) / scale
    assert np.abs(step[case.poison]).max() < 0.1  # each column moves less than a tenth of its spread...
    v, sd = attacks9.thinnest_direction(case.baseline, columns)
    along = step[case.poison] @ v / sd
    np.testing.assert_allclose(along, attacks9.THIN_STEPS, atol=0.1)  # ...yet 8 sd along the thin direction


def test_the_ninth_set_is_registered_with_the_seed_sweep_and_the_review_queue():
    assert attack_seeds.SETS["heldout9"][0] == list(HELDOUT9_ATTACKS)
    assert attack_seeds.SETS["heldout9"][1] is build_heldout9
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout9")]
    assert listed == [("benign (heldout9)", n) for n in shifts.HELDOUT9] + [
        ("held-out 9 attack", n) for n in HELDOUT9_ATTACKS
    ]
