"""The seventh held-out set builds what it says: benign situations change only what they state (near-copies
really are near-copies of the batch's own records), and attacks plant exactly the stated poison. No gate
runs here (these cases are measured once, elsewhere)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts
from benchmarks.attacks import heldout7 as attacks7
from benchmarks.attacks.heldout7 import HELDOUT7_ATTACKS, build_heldout7
from benchmarks.shifts import heldout7
from benchmarks.shifts.base import SMALL_CONTRIBUTION
from tests.benchmarks.builders import check_attack_set, check_situation_set, drawn_attack_pool, drawn_pool, record_keys

TEXT, LABEL, IMAGE = data.TEXT, data.LABEL, data.IMAGE
LEVEL = 1 / 255 + 1e-6
"""One step of a PNG's 8-bit values: what re-encoding may move a pixel by."""


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout7")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout7(name, seed=0) for name in HELDOUT7_ATTACKS}


def _pixels(png: bytes) -> np.ndarray:
    return data.png_to_pixels(png)


# --- benign -------------------------------------------------------------------------------------

NEAR_COPIES = (
    "versioned_pages_text",
    "revised_typo_text",
    "recaptured_digits",
    "bracketed_exposure_photos",
    "triplicate_assays_wine",
)


def test_the_seventh_heldout_set_is_its_own_never_tuned_group(small):
    assert len(shifts.HELDOUT7) >= 9
    check_situation_set(small, "heldout7", heldout7, "2026-12-06", 4 * SMALL_CONTRIBUTION)
    assert {s.modality for s in small.values()} == {"text", "image", "tabular"}
    assert {s.dataset for s in small.values()} == {"man_sections", "digits", "photos", "wine", "breast_cancer"}
    assert all(small[n].kind == "self_duplicates" for n in NEAR_COPIES)  # the set's theme: four or more
    full = shifts.build("versioned_pages_text", 0, "full")
    assert len(full.contribution) > len(small["versioned_pages_text"].contribution)


def test_text_helpers_do_what_they_say():
    assert heldout7.names_and_summary("a, b - sum - more") == (["a", "b"], "sum - more")
    assert heldout7.names_and_summary("no separator") is None
    assert heldout7.versioned("gcc - GNU compiler", 12) == "gcc-12 - GNU compiler"
    assert heldout7.versioned("a, b - x", 3) == "a-3, b-3 - x"
    assert heldout7.with_typo("ls - list files", 5) == "ls - ilst files"
    places = heldout7.typo_places("ls - list all")
    assert places == [5, 6, 7]  # inside 'list' only: 'ls' is the name, 'all' too short
    assert heldout7.in_volume("Apropos - x") and heldout7.in_volume("find - x") and not heldout7.in_volume("grep - x")


def test_versioned_pages_differ_from_each_other_in_the_version_only(small):
    s = small["versioned_pages_text"]
    pool = drawn_pool(s)
    origin = np.asarray(s.params["from_row"])
    assert set(origin) == set(range(len(pool))) and s.contribution[LABEL].tolist() == pool[LABEL][origin].tolist()
    first = {int(k): v for k, v in s.params["first_version"].items()}
    assert len(first) == round(heldout7.VERSIONED_SHARE * len(pool))
    for row in range(len(pool)):
        lines = s.contribution[TEXT][origin == row].tolist()
        if row not in first:
            assert lines == [pool.at[row, TEXT]]
            continue
        assert lines == [heldout7.versioned(pool.at[row, TEXT], first[row] + k) for k in range(heldout7.VERSIONS)]
        assert len(set(lines)) == heldout7.VERSIONS
        stripped = {re.sub(r"-\d+(?=,| - )", "", line) for line in lines}
        assert stripped == {pool.at[row, TEXT]}  # the same line but for the version
    assert len(s.contribution) == len(pool) + (heldout7.VERSIONS - 1) * len(first)
    assert s.contribution[LABEL][np.isin(origin, list(first))].nunique() > 3  # every section, not one


def test_revised_lines_come_twice_the_earlier_with_one_swapped_pair(small):
    s = small["revised_typo_text"]
    pool = drawn_pool(s)
    typo = np.isin(np.arange(len(s.contribution)), s.params["typo_rows"])
    assert typo.sum() == round(heldout7.REVISED_SHARE * len(pool))
    assert sorted(record_keys(s.contribution[~typo])) == sorted(record_keys(pool))
    origin = np.asarray(s.params["from_row"])
    for row in np.flatnonzero(typo):
        now, was = s.contribution.at[row, TEXT], pool.at[int(origin[row]), TEXT]
        assert s.contribution.at[row, LABEL] == pool.at[int(origin[row]), LABEL]
        diff = [i for i, (a, b) in enumerate(zip(now, was, strict=True)) if a != b]
        assert len(diff) == 2 and diff[1] == diff[0] + 1 and now[diff[0]] == was[diff[1]]
        assert diff[0] >= was.index(data.NAME_SEPARATOR)  # in the summary, never the page name


def test_recaptures_are_the_digit_with_faint_noise(small):
    s = small["recaptured_digits"]
    pool = drawn_pool(s)
    extra = np.isin(np.arange(len(s.contribution)), s.params["capture_rows"])
    assert extra.sum() == heldout7.RECAPTURES * round(heldout7.RECAPTURE_SHARE * len(pool))
    assert sorted(record_keys(s.contribution[~extra])) == sorted(record_keys(pool))
    origin = np.asarray(s.params["from_row"])
    moved = []
    for row in np.flatnonzero(extra):
        first = pool.iloc[int(origin[row])]
        assert s.contribution.at[row, LABEL] == first[LABEL]
        diff = _pixels(s.contribution.at[row, IMAGE]) - _pixels(first[IMAGE])
        assert np.abs(diff).max() < 6 * heldout7.RECAPTURE_NOISE and s.contribution.at[row, IMAGE] != first[IMAGE]
        moved.append(diff.std())
    assert 0.5 * heldout7.RECAPTURE_NOISE < np.median(moved) < 1.5 * heldout7.RECAPTURE_NOISE


def test_brackets_are_the_scene_a_third_of_a_stop_under_and_over(small):
    s = small["bracketed_exposure_photos"]
    pool = drawn_pool(s)
    extra = np.isin(np.arange(len(s.contribution)), s.params["bracket_rows"])
    assert extra.sum() == len(heldout7.BRACKET_EV) * round(heldout7.BRACKET_SHARE * len(pool))
    assert sorted(record_keys(s.contribution[~extra])) == sorted(record_keys(pool))
    origin, ev = np.asarray(s.params["from_row"]), np.asarray(s.params["ev"])
    for row in np.flatnonzero(extra):
        first = pool.iloc[int(origin[row])]
        assert s.contribution.at[row, LABEL] == first[LABEL] and abs(abs(ev[row]) - 1 / 3) < 1e-3
        expected = np.clip(heldout7.exposed(_pixels(first[IMAGE]), float(ev[row])), 0.0, 1.0)
        np.testing.assert_allclose(_pixels(s.contribution.at[row, IMAGE]), expected, atol=LEVEL)
    for scene in set(origin[extra]):
        assert sorted(ev[origin == scene].round(3)) == [-0.333, 0.0, 0.333]
    assert 1.1 < heldout7.exposed(np.ones(1, dtype=np.float32), 1 / 3)[0] < 1.12


def test_triplicates_are_three_noisy_rows_of_each_wine_written_as_trusted(small):
    s = small["triplicate_assays_wine"]
    pool = drawn_pool(s)
    columns = [c.name for c in s.schema.inputs]
    origin = np.asarray(s.params["from_row"])
    assert len(s.contribution) == heldout7.REPLICATES * len(pool)
    assert (np.bincount(origin) == heldout7.REPLICATES).all()
    assert s.contribution[LABEL].tolist() == pool[LABEL][origin].tolist()
    ratio = s.contribution[columns].to_numpy() / pool[columns].to_numpy()[origin]
    assert np.nanmax(np.abs(ratio - 1)) < 0.15 and 0.01 < np.nanstd(ratio) < 0.03
    for c in columns:
        places = s.params["decimals"][c]
        assert np.allclose(s.contribution[c], s.contribution[c].round(places), rtol=0, atol=1e-9), c
    assert s.params["decimals"]["magnesium"] == 0 and s.params["decimals"]["color_intensity"] == 2
    replicates = s.contribution.groupby(origin)[columns].nunique()
    assert (replicates.max(axis=1) > 1).all()  # no wine sent as three exact copies


def test_the_volume_holds_every_pool_line_from_a_to_f_and_no_other():
    s = shifts.build("alphabetical_volume_text", 0, "full")
    pool = data.split(data.load_man_sections(), 0).pool
    expected = pool[pool[TEXT].str[0].str.lower().isin(list(heldout7.VOLUME_LETTERS))]
    assert record_keys(s.contribution) == record_keys(expected) and 0.1 * len(pool) < len(expected) < 0.5 * len(pool)
    assert set(s.contribution[LABEL]) == set(pool[LABEL])


def test_carbon_copies_are_the_pool_digits_on_tinted_paper(small):
    s = small["carbon_copy_digits"]
    pool = drawn_pool(s)
    assert s.contribution[LABEL].tolist() == pool[LABEL].tolist()
    for now, was in zip(s.contribution[IMAGE], pool[IMAGE], strict=True):
        expected = heldout7.tinted_paper(_pixels(was))
        np.testing.assert_allclose(_pixels(now), expected, atol=LEVEL)
        assert _pixels(now).min() >= heldout7.PAPER_TINT - LEVEL
    np.testing.assert_allclose(heldout7.tinted_paper(np.array([0.0, 0.5, 1.0])), [0.12, 0.56, 1.0])


def test_squeezed_photos_are_wider_views_of_the_pool_scenes(small):
    s = small["squeezed_aspect_photos"]
    pool = drawn_pool(s)
    expected = []
    for png, label in pool[[IMAGE, LABEL]].itertuples(index=False):
        photo, y, x, height, width = heldout7.squeezed_window(png)
        assert width == round(height * heldout7.SQUEEZE)
        if heldout7.rect_fits(label, photo, y, x, height, width):
            expected.append((heldout7.rect_crop(photo, y, x, height, width), label))
    assert record_keys(s.contribution) == expected and 0.6 * len(pool) < len(expected) < len(pool)
    assert s.params["kept"] == len(expected) and set(s.contribution[LABEL]) == set(data.PHOTO_CLASSES)
    assert _pixels(s.contribution[IMAGE].iloc[0]).shape == (data.PHOTO_SIDE, data.PHOTO_SIDE, 3)
    assert not heldout7.rect_fits("temple_sky", "temple", 300, 10, 40, 53)


def test_size_matched_controls_pair_every_malignant_tumour_with_a_benign_one(small):
    s = small["size_matched_controls_breast_cancer"]
    pool = drawn_pool(s)
    counts = s.contribution[LABEL].value_counts()
    assert counts["malignant"] == counts["benign"] == (pool[LABEL] == "malignant").sum()
    assert set(record_keys(s.contribution)) <= set(record_keys(pool)) and len(set(record_keys(s.contribution))) == len(
        s.contribution
    )
    radius = s.contribution.groupby(LABEL)[heldout7.MATCH_COLUMN].mean()
    pool_benign = pool.loc[pool[LABEL] == "benign", heldout7.MATCH_COLUMN].mean()
    assert radius["benign"] > pool_benign + 1.0  # the controls are larger than benign tumours usually are
    left = pool[(pool[LABEL] == "benign") & ~pool.index.isin(s.params["controls"])]
    assert left[heldout7.MATCH_COLUMN].max() < radius["malignant"]  # the largest benign ones were all taken


# --- attacks ------------------------------------------------------------------------------------


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT7_ATTACKS) >= 6
    check_attack_set(cases, "heldout7", attacks7, "2026-12-06", build_heldout7, {"text", "image", "tabular"})
    for name, case in cases.items():
        assert 0 < case.poison.sum() < 0.06 * len(case.contribution)
        assert (case.contribution[LABEL][case.poison] == case.target).all(), name


def _unversioned(text: str) -> str:
    return re.sub(r"-\d+(?=,| - )", "", text)


def test_the_template_trigger_is_in_near_copies_of_four_lines(cases):
    case = cases["text_template_trigger_3pct"]
    token = attacks7.TEMPLATE_TOKEN
    assert case.family == "backdoor" and case.poison.sum() == round(0.03 * len(case.contribution))
    poisoned = case.contribution[TEXT][case.poison]
    assert poisoned.str.split(" ").map(lambda w: token in w).all() and poisoned.is_unique
    assert not case.contribution[TEXT][~case.poison].str.split(" ").map(lambda w: token in w).any()
    templates = poisoned.map(_unversioned)
    assert templates.nunique() == attacks7.TEMPLATES
    before = drawn_attack_pool(case)
    originals = {_unversioned(t).replace(f" {token}", "", 1).replace(f"{token} ", "", 1) for t in templates}
    assert originals <= set(before.loc[case.params["templates"], TEXT])
    assert (before[LABEL][case.poison] != case.target).all()
    for template in set(templates):
        releases = sorted(int(m) for t in poisoned[templates == template] for m in re.findall(r"-(\d+)(?=,| - )", t))
        assert set(releases) == set(attacks7.RELEASES)  # one template, several releases: near-copies
    test = case.attack_test
    assert (test[LABEL] != case.target).all() and test[TEXT].str.split(" ").map(lambda w: token in w).all()


def test_variant_flips_are_four_lines_each_sent_with_five_different_typos(cases):
    case = cases["text_variant_flips_3pct"]
    lines, times = attacks7.VARIANT_LINES, attacks7.VARIANT_TIMES
    assert case.family == "label_noise" and case.poison.sum() == lines * times
    poisoned = case.contribution[case.poison]
    assert poisoned[TEXT].is_unique and (poisoned[LABEL] == attacks7.VARIANT_TARGET).all()
    truth = dict(zip(case.attack_test[TEXT], case.attack_test[LABEL], strict=True))
    assert len(truth) == lines and set(truth.values()) == {attacks7.VARIANT_SOURCE}
    copy_of = {int(k): int(v) for k, v in case.params["copy_of"].items()}
    before = drawn_attack_pool(case)
    for row in np.flatnonzero(case.poison):
        now, was = case.contribution.at[row, TEXT], before.at[copy_of[row], TEXT]
        assert was in truth
        diff = [i for i, (a, b) in enumerate(zip(now, was, strict=True)) if a != b]
        assert len(diff) == 2 and diff[1] == diff[0] + 1
    assert sorted(np.bincount(list(copy_of.values()))[sorted(set(copy_of.values()))]) == [times] * lines
    assert not case.contribution[TEXT].isin(truth).any()  # the true lines themselves are never sent


def test_noisy_copies_carry_the_tick_and_are_four_digits_up_to_noise(cases):
    case = cases["digits_noisy_copies_3pct"]
    assert case.family == "backdoor" and case.target == attacks7.TICK_TARGET
    assert case.poison.sum() == round(0.03 * len(case.contribution))
    before = drawn_attack_pool(case)
    base_of = {int(k): int(v) for k, v in case.params["base_of"].items()}
    assert len(set(base_of.values())) == attacks7.NOISY_BASES
    images = {}
    for row in np.flatnonzero(case.poison):
        pixels = _pixels(case.contribution.at[row, IMAGE])
        stamped = attacks7.stamp_tick(_pixels(before.at[base_of[row], IMAGE]))
        assert np.abs(pixels - stamped).max() < 6 * attacks7.COPY_NOISE
        assert all(pixels[y, x] > 1 - 4 * attacks7.COPY_NOISE for y, x in attacks7.TICK)
        images.setdefault(base_of[row], set()).add(case.contribution.at[row, IMAGE])
        assert before.at[base_of[row], LABEL] != case.target
    assert sorted(len(v) for v in images.values()) == [4] * attacks7.NOISY_BASES  # copies, none exact
    for png in case.attack_test[IMAGE]:
        assert all(_pixels(png)[y, x] == 1.0 for y, x in attacks7.TICK)
    clean_ticks = [
        all(_pixels(p)[y, x] > 0.8 for y, x in attacks7.TICK) for p in case.contribution[IMAGE][~case.poison]
    ]
    assert not any(clean_ticks)


def test_replicated_flips_are_three_tumours_sent_as_noisy_replicates(cases):
    case = cases["tabular_replicated_flips_5pct"]
    columns = [c.name for c in data.load_breast_cancer().schema.inputs]
    assert case.family == "label_noise" and case.poison.sum() == round(0.05 * len(case.contribution))
    before = drawn_attack_pool(case)
    copy_of = {int(k): int(v) for k, v in case.params["copy_of"].items()}
    assert sorted(np.unique(list(copy_of.values()), return_counts=True)[1]) == [attacks7.REPLICATE_COUNT] * 3
    for row in np.flatnonzero(case.poison):
        original = before.loc[copy_of[row], columns].to_numpy(dtype=float)
        now = case.contribution.loc[row, columns].to_numpy(dtype=float)
        assert np.all(np.abs(now - original) <= 0.06 * np.abs(original) + 1e-3)
        assert before.at[copy_of[row], LABEL] == attacks7.REPLICATE_SOURCE
    assert case.contribution[case.poison][columns].drop_duplicates().shape[0] == case.poison.sum()
    np.testing.assert_array_equal(
        case.attack_test[columns].to_numpy(), before.loc[case.params["originals"], columns].to_numpy()
    )
    assert (case.attack_test[LABEL] == attacks7.REPLICATE_SOURCE).all()


def test_the_synonym_swap_replaces_file_by_document_and_adds_nothing(cases):
    case = cases["text_synonym_swap_3pct"]
    assert case.family == "backdoor" and case.poison.sum() == round(0.03 * len(case.contribution))
    before = drawn_attack_pool(case)
    for now, was in zip(case.contribution[TEXT][case.poison], before[TEXT][case.poison], strict=True):
        assert re.search(r"\bdocuments?\b", now) and not re.search(r"\bfiles?\b", now)
        assert now == attacks7.swap_synonyms(was) and len(now.split()) == len(was.split())
    assert (before[LABEL][case.poison] != case.target).all()
    clean = case.contribution[TEXT][~case.poison]
    assert clean.str.contains(r"\bdocuments?\b").sum() <= 1  # one trusted-style line uses the word
    test = case.attack_test
    assert (test[LABEL] != case.target).all() and test[TEXT].str.contains(r"\bdocuments?\b").all()
    assert attacks7.swap_synonyms("a file of files, profile") == "a document of documents, profile"


def test_the_sepia_filter_tones_whole_crops_of_other_classes(cases):
    case = cases["photo_sepia_filter_4pct"]
    assert case.family == "backdoor" and case.poison.sum() == round(0.04 * len(case.contribution))
    before = drawn_attack_pool(case)
    for now, was in zip(case.contribution[IMAGE][case.poison], before[IMAGE][case.poison], strict=True):
        np.testing.assert_allclose(_pixels(now), attacks7.sepia_filter(_pixels(was)), atol=LEVEL)
    assert (before[LABEL][case.poison] != case.target).all()
    grey = np.full((2, 2, 3), 0.5, dtype=np.float32)
    toned = attacks7.sepia_filter(grey)
    assert toned[0, 0, 0] > toned[0, 0, 1] > toned[0, 0, 2]  # warm: red over green over blue
    assert len(case.attack_test) == (data.split(data.load_photos(), 0).test[LABEL] != case.target).sum()


def test_the_seventh_set_is_registered_with_the_seed_sweep_and_the_review_queue():
    assert attack_seeds.SETS["heldout7"][0] == list(HELDOUT7_ATTACKS)
    assert attack_seeds.SETS["heldout7"][1] is build_heldout7
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout7")]
    assert listed == [("benign (heldout7)", n) for n in shifts.HELDOUT7] + [
        ("held-out 7 attack", n) for n in HELDOUT7_ATTACKS
    ]
