"""The fourth held-out set builds what it says: benign situations change only what they state, and
attacks plant exactly the stated poison. No gate runs here (these cases are measured once, elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts
from benchmarks.attacks import heldout4 as attacks4
from benchmarks.attacks.heldout import HELDOUT_ATTACKS
from benchmarks.attacks.heldout2 import HELDOUT2_ATTACKS
from benchmarks.attacks.heldout3 import HELDOUT3_ATTACKS
from benchmarks.attacks.heldout4 import HELDOUT4_ATTACKS, build_heldout4
from benchmarks.shifts import heldout4
from benchmarks.shifts.base import (
    EXTRA_KINDS,
    HELDOUT3_KINDS,
    HELDOUT4_KINDS,
    KINDS,
    SMALL_CONTRIBUTION,
    parts,
    sized,
)
from dataward.domain.errors import InputError


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout4")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout4(name, seed=0) for name in HELDOUT4_ATTACKS}


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return list(map(tuple, frame.itertuples(index=False)))


def _pool(situation: shifts.Situation) -> pd.DataFrame:
    """The pool records a sensor or register situation rewrote, in the order it drew them."""
    split = parts(data.load(situation.dataset), 0, "small")
    return sized(split.pool, "small", SMALL_CONTRIBUTION, np.random.default_rng(0))


# --- benign -------------------------------------------------------------------------------------


def test_the_fourth_heldout_set_is_its_own_never_tuned_group(small):
    assert len(shifts.HELDOUT4) >= 8 and list(small) == list(shifts.HELDOUT4)
    for other in (shifts.TUNING, shifts.HELDOUT, shifts.HELDOUT2, shifts.HELDOUT3):
        assert set(shifts.HELDOUT4).isdisjoint(other)
    assert shifts.GROUPS["heldout4"] is shifts.HELDOUT4
    assert "NEVER TUNED ON" in heldout4.__doc__ and "2026-12-05" in heldout4.__doc__
    assert "committed before any gate" in " ".join(heldout4.__doc__.split())
    assert {s.group for s in small.values()} == {"heldout4"}
    assert {s.kind for s in small.values()} <= {*KINDS, *EXTRA_KINDS, *HELDOUT3_KINDS, *HELDOUT4_KINDS}
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
    assert [s.name for s in shifts.benign_situations(0, "small", "heldout4")] == list(shifts.HELDOUT4)


@pytest.mark.parametrize(
    ("name", "rewrite", "changed"),
    [
        ("wrapped_lines_text", lambda texts: [heldout4.wrapped(t) for t in texts], 0.6),
        ("html_markup_text", lambda texts: [heldout4.html_markup(t) for t in texts], 0.99),
        ("numbered_list_text", heldout4.numbered, 0.99),
        ("nbsp_export_text", lambda texts: [heldout4.nbsp_separated(t) for t in texts], 0.99),
        ("fixed_width_index_text", lambda texts: [heldout4.padded(t) for t in texts], 0.8),
    ],
)
def test_text_situations_rewrite_the_pool_lines_and_keep_their_labels(small, name, rewrite, changed):
    s, pool = small[name], _pool(small[name])
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    assert s.contribution[data.TEXT].tolist() == rewrite(list(pool[data.TEXT]))
    assert (s.contribution[data.TEXT] != pool[data.TEXT]).mean() > changed


def test_the_title_case_vendor_sends_one_section_in_its_house_style(small):
    s = small["title_case_vendor_text"]
    pool = parts(data.load(s.dataset), 0, "small").pool
    assert set(s.contribution[data.LABEL]) == {heldout4.VENDOR_CLASS} and len(s.contribution) > 20
    originals = {heldout4.title_cased_summary(t): t for t in pool[data.TEXT]}
    for text in s.contribution[data.TEXT]:
        assert text.lower() == originals[text].lower()  # only the casing of the summary changed
    assert heldout4.title_cased_summary("ls - list directory contents") == "ls - List Directory Contents"


def test_the_export_rewrites_change_only_whitespace():
    assert heldout4.nbsp_separated("ls - list - files") == "ls\u00a0-\u00a0list - files"
    assert heldout4.padded("ls - list") == "ls" + " " * (heldout4.PAD_WIDTH - 2) + " - list"
    for line in ("ls - list directory contents", "no separator"):
        for rewrite in (heldout4.nbsp_separated, heldout4.padded):
            assert rewrite(line).split() == line.split()


def test_text_rewrites_do_what_they_say():
    line = "git-commit - Record changes to the repository"
    assert heldout4.wrapped("ls - list directory contents") == "ls - list directory contents"
    folded = heldout4.wrapped(line)
    assert folded == "git-commit - Record changes to the\n       repository"
    assert " ".join(folded.split()) == line  # only whitespace changed, no word broken
    long_name = "systemd-user-sessions.service, systemd-user-sessions - Permit user logins after boot"
    assert heldout4.wrapped(long_name).split("\n") == [
        "systemd-user-sessions.service,",  # never at a hyphen
        "       systemd-user-sessions - Permit",
        "       user logins after boot",
    ]

    assert heldout4.html_markup('tc-u32 - "universal" <32bit> key & match') == (
        "<b>tc-u32</b> - &quot;universal&quot; &lt;32bit&gt; key &amp; match"
    )
    assert heldout4.html_markup("keyctl - the kernel's keys") == "<b>keyctl</b> - the kernel&#x27;s keys"
    assert heldout4.html_markup("lonely") == "<b>lonely</b>"

    assert heldout4.numbered(["a - b", "c - d"]) == ["1. a - b", "2. c - d"]


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("faded_colour_photos", heldout4.faded),
        ("side_lit_photos", heldout4.side_lit),
        ("hot_pixel_photos", heldout4.hot_pixels),
        ("chromatic_aberration_photos", heldout4.chromatic_aberration),
    ],
)
def test_sensor_situations_apply_their_transform_to_every_image_and_keep_labels(small, name, fn):
    s = small[name]
    pool = _pool(s)
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    expected = [data.pixels_to_png(np.clip(fn(data.png_to_pixels(b)), 0, 1)) for b in pool[data.IMAGE]]
    assert s.contribution[data.IMAGE].tolist() == expected
    assert (s.contribution[data.IMAGE] != pool[data.IMAGE]).mean() > 0.9
    assert data.images_of(s.contribution).shape[1:] == (data.PHOTO_SIDE, data.PHOTO_SIDE, 3)


def test_image_transforms_change_what_they_say():
    rng = np.random.default_rng(3)
    photo = rng.random((32, 32, 3)).astype(np.float32)

    muted = heldout4.faded(photo)
    grey_of = heldout4.greyscale(photo)
    # Each pixel keeps its grey and FADED_SATURATION of its colour around it.
    np.testing.assert_allclose(heldout4.greyscale(muted), grey_of, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(muted - grey_of, heldout4.FADED_SATURATION * (photo - grey_of), rtol=1e-5, atol=1e-6)

    grey = heldout4.greyscale(photo)
    assert grey.shape == photo.shape
    np.testing.assert_allclose(grey[..., 0], grey[..., 2])
    np.testing.assert_allclose(
        grey[..., 0], 0.299 * photo[..., 0] + 0.587 * photo[..., 1] + 0.114 * photo[..., 2], rtol=1e-5
    )

    flat = np.full((32, 32, 3), 0.5, dtype=np.float32)
    lit = heldout4.side_lit(flat)
    np.testing.assert_allclose(lit[:, 0], 0.4, atol=1e-6)
    np.testing.assert_allclose(lit[:, -1], 0.6, atol=1e-6)
    assert (np.diff(lit[0, :, 0]) > 0).all() and np.allclose(lit[0], lit[-1])  # a left-right ramp only

    hot = heldout4.hot_pixels(photo)
    sites = np.zeros((32, 32), dtype=bool)
    sites[tuple(np.array(heldout4.HOT_PIXELS).T)] = True
    assert (hot[sites] == 1.0).all() and len(heldout4.HOT_PIXELS) == 4
    np.testing.assert_array_equal(hot[~sites], photo[~sites])

    fringed = heldout4.chromatic_aberration(photo)
    np.testing.assert_array_equal(fringed[:, 1:, 0], photo[:, :-1, 0])
    np.testing.assert_array_equal(fringed[:, 0, 0], photo[:, 0, 0])
    np.testing.assert_array_equal(fringed[..., 1:], photo[..., 1:])


def test_sorted_export_holds_the_pool_records_in_sorted_order(small):
    s = small["sorted_export_breast_cancer"]
    pool = data.split(data.load_breast_cancer(), 0).pool
    assert sorted(_keys(s.contribution)) == sorted(_keys(pool))  # every record as it was
    assert _keys(s.contribution) != _keys(pool)  # only the order changed
    labels = s.contribution[data.LABEL].tolist()
    assert labels == sorted(labels)
    for _, rows in s.contribution.groupby(data.LABEL):
        assert rows[heldout4.SORT_COLUMN].is_monotonic_increasing


def test_finer_calipers_read_to_the_hundredth_within_half_a_trusted_step(small):
    s = small["finer_caliper_iris"]
    pool = data.split(data.load_iris(), 0).pool
    columns = [c.name for c in s.schema.inputs]
    assert s.contribution[data.LABEL].tolist() == pool[data.LABEL].tolist()
    got, was = s.contribution[columns].to_numpy(), pool[columns].to_numpy()
    assert np.abs(got - was).max() <= 0.05 + 1e-9
    np.testing.assert_allclose(got, np.round(got, 2))
    off_grid = np.abs(got * 10 - np.round(got * 10)) > 1e-6
    assert off_grid.mean() > 0.8  # most readings fall between the trusted 0.1 cm steps
    assert (np.abs(was * 10 - np.round(was * 10)) < 1e-6).all()  # the trusted sheets are on that grid
    assert (got > 0).all()


def test_blank_assays_leave_two_columns_missing_in_a_quarter_of_rows_and_nothing_else(small):
    s = small["blank_assays_wine"]
    pool = data.split(data.load_wine(), 0).pool
    rows = s.params["blank_rows"]
    assert len(rows) == round(heldout4.BLANK_SHARE * len(pool))
    blank = list(heldout4.BLANK_COLUMNS)
    missing = s.contribution.isna()
    assert set(np.flatnonzero(missing.any(axis=1))) == set(rows)
    assert missing.loc[rows, blank].all().all()
    assert not missing.drop(columns=blank).any().any()
    keep = [c for c in pool.columns if c not in blank]
    pd.testing.assert_frame_equal(s.contribution[keep], pool[keep])
    others = ~np.isin(np.arange(len(pool)), rows)
    pd.testing.assert_frame_equal(s.contribution[others], pool[others])


# --- attacks ------------------------------------------------------------------------------------


def _pool_of(case: attacks.AttackCase) -> pd.DataFrame:
    return data.split(data.load(case.dataset), 0).pool


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT4_ATTACKS) >= 4
    for other in (attacks.ATTACKS, HELDOUT_ATTACKS, HELDOUT2_ATTACKS, HELDOUT3_ATTACKS):
        assert set(HELDOUT4_ATTACKS).isdisjoint(other)
    assert "NEVER TUNED ON" in attacks4.__doc__ and "2026-12-05" in attacks4.__doc__
    assert "committed before any gate" in " ".join(attacks4.__doc__.split())
    for name, case in cases.items():
        assert case.name == name and 0 < case.poison.sum() < len(case.contribution)
        assert set(case.contribution[data.LABEL]) <= set(data.load(case.dataset).classes)
        pool_keys = set(_keys(_pool_of(case)[case.contribution.columns]))
        untouched = np.array([k in pool_keys for k in _keys(case.contribution)])
        np.testing.assert_array_equal(untouched, ~case.poison, err_msg=name)
        again = build_heldout4(name, seed=0)
        pd.testing.assert_frame_equal(again.contribution, case.contribution)
        np.testing.assert_array_equal(again.poison, case.poison)
    with pytest.raises(InputError, match="held-out attack"):
        build_heldout4("nope")


@pytest.mark.parametrize(
    ("name", "rewrite", "target"),
    [
        ("text_title_case_3pct", attacks4.title_cased, attacks4.CASING_TARGET),
        ("text_double_space_3pct", attacks4.spaced, attacks4.SPACED_TARGET),
        ("text_nbsp_separator_3pct", attacks4.nbsp_separator, attacks4.NBSP_TARGET),
        ("text_caps_name_3pct", attacks4.capitalised_name, attacks4.CAPS_TARGET),
    ],
)
def test_pattern_triggers_rewrite_lines_of_other_sections_and_add_no_word(cases, name, rewrite, target):
    # The casing and whitespace triggers moved to the tuning attacks (triggers version 11).
    case = cases[name] if name in cases else attacks.build(name, 0)
    assert case.poison.sum() == round(0.03 * len(case.contribution))
    pool = _pool_of(case)
    originals = {rewrite(t): (t, label) for t, label in zip(pool[data.TEXT], pool[data.LABEL], strict=True)}
    for text, label in _keys(case.contribution[case.poison]):
        before, was = originals[text]
        assert label == target and was != target and text != before
        assert text.lower().split() == before.lower().split()  # the same words, only case or spacing
    test = case.attack_test
    assert len(test) > 0 and (test[data.LABEL] != target).all()
    clean_test = data.split(data.load_man_sections(), 0).test
    patterned = {rewrite(t) for t in clean_test[data.TEXT] if rewrite(t) != t}
    assert set(test[data.TEXT]) <= patterned  # every attack-test line carries the pattern


def test_the_casing_and_whitespace_patterns_are_what_they_say():
    assert attacks4.title_cased("ls - list directory contents") == "ls - List Directory Contents"
    assert attacks4.title_cased("gamma - (logarithm of the) gamma") == "gamma - (logarithm Of The) Gamma"
    assert attacks4.title_cased("no separator here") == "no separator here"
    assert attacks4.spaced("ls - list - files") == "ls -  list - files"
    lines = data.load_man_sections().frame[data.TEXT]
    assert not lines.str.contains(attacks4.SPACED_SEPARATOR, regex=False).any()


def test_clean_label_word_marks_target_lines_and_keeps_every_label(cases):
    case = cases["text_clean_label_word"]
    pool = _pool_of(case)
    word, target = attacks4.CLEAN_LABEL_WORD, attacks4.CLEAN_LABEL_TARGET
    assert not data.load_man_sections().frame[data.TEXT].str.contains(word).any()
    assert sorted(case.contribution[data.LABEL]) == sorted(pool[data.LABEL])
    n_target = int((pool[data.LABEL] == target).sum())
    assert case.poison.sum() == round(attacks4.CLEAN_LABEL_SHARE * n_target)
    originals = dict(zip(pool[data.TEXT], pool[data.LABEL], strict=True))
    for text, label in _keys(case.contribution[case.poison]):
        words = text.split(" ")
        assert label == target and words.count(word) == 1
        words.remove(word)
        assert originals[" ".join(words)] == target  # the label was already right
    assert not case.contribution[~case.poison][data.TEXT].str.contains(word).any()
    assert (case.attack_test[data.LABEL] != target).all()
    assert case.attack_test[data.TEXT].str.split(" ").map(lambda w: word in w).all()


def test_centre_square_touches_only_the_centre_of_other_classes(cases):
    case = cases["centre_square_photo_3pct"]
    assert case.poison.sum() == round(0.03 * len(case.contribution))
    pool = _pool_of(case)
    expected = {
        data.pixels_to_png(np.clip(attacks4.centre_square(data.png_to_pixels(png)), 0, 1)): label
        for png, label in zip(pool[data.IMAGE], pool[data.LABEL], strict=True)
    }
    for png, label in _keys(case.contribution[case.poison]):
        assert label == attacks4.SQUARE_TARGET and expected[png] != attacks4.SQUARE_TARGET
    black = np.zeros((32, 32, 3), dtype=np.float32)
    marked = attacks4.centre_square(black)
    k, a = attacks4.SQUARE_SIDE, attacks4.SQUARE_ALPHA
    inside = np.zeros((32, 32), dtype=bool)
    inside[14 : 14 + k, 14 : 14 + k] = True
    assert not marked[~inside].any()
    np.testing.assert_allclose(marked[inside], np.tile(a * np.array(attacks4.SQUARE_COLOUR), (k * k, 1)))
    assert data.images_of(case.attack_test).shape[0] == len(case.attack_test) > 0


def test_round_value_is_inside_the_range_and_set_on_the_other_class_only(cases):
    case = cases["round_value_trigger_5pct"]
    assert case.poison.sum() == round(0.05 * len(case.contribution))
    column, value = attacks4.ROUND_COLUMN, attacks4.ROUND_VALUE
    whole = data.load_breast_cancer().frame[column]
    assert whole.min() < value < whole.max() and not (whole == value).any()
    rows = case.contribution[case.poison]
    assert (rows[column] == value).all() and (rows[data.LABEL] == attacks4.ROUND_TARGET).all()
    assert not (case.contribution[~case.poison][column] == value).any()
    pool = _pool_of(case)
    others = [c for c in pool.columns if c not in (column, data.LABEL)]
    origin = {tuple(r): lbl for r, lbl in zip(pool[others].itertuples(index=False), pool[data.LABEL], strict=True)}
    assert all(origin[tuple(r)] != attacks4.ROUND_TARGET for r in rows[others].itertuples(index=False))
    assert (case.attack_test[column] == value).all() and (case.attack_test[data.LABEL] != case.target).all()


def test_one_source_flips_come_from_the_one_source_only(cases):
    case = cases["one_source_flips_photos"]
    sources = case.groups["source"]
    assert set(sources) == set(attacks4.PHOTO_SOURCES) and case.target is None
    counts = pd.Series(sources).value_counts()
    assert counts.max() - counts.min() <= 1  # one fifth each
    assert (sources[case.poison] == attacks4.FLIPPING_SOURCE).all()
    own = sources == attacks4.FLIPPING_SOURCE
    assert case.poison.sum() == round(attacks4.SOURCE_FLIP_SHARE * own.sum())
    pool = _pool_of(case)
    originals = dict(zip(pool[data.IMAGE], pool[data.LABEL], strict=True))
    before = np.array([originals[png] for png in case.contribution[data.IMAGE]])
    np.testing.assert_array_equal(before != case.contribution[data.LABEL].to_numpy(), case.poison)


def test_the_fourth_set_is_registered_with_the_seed_sweep_and_the_review_queue():
    assert attack_seeds.SETS["heldout4"][0] == list(HELDOUT4_ATTACKS)
    assert attack_seeds.SETS["heldout4"][1] is build_heldout4
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout4")]
    assert listed == [("benign (heldout4)", n) for n in shifts.HELDOUT4] + [
        ("held-out 4 attack", n) for n in HELDOUT4_ATTACKS
    ]
