"""The tenth held-out set builds what it says: benign situations change only what they state and keep every
label, and attacks plant exactly the stated poison. No gate runs here (these cases are measured once,
elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import attack_seeds, attacks, data, review_queue, shifts, verdict_diff
from benchmarks.attacks import heldout10 as attacks10
from benchmarks.attacks.heldout10 import HELDOUT10_ATTACKS, build_heldout10
from benchmarks.shifts import heldout10
from benchmarks.shifts.base import SMALL_CONTRIBUTION
from tests.benchmarks.builders import check_attack_set, check_situation_set, drawn_attack_pool, drawn_pool

TEXT, LABEL, IMAGE = data.TEXT, data.LABEL, data.IMAGE
LEVEL = 1 / 255 + 1e-6
"""One step of a PNG's 8-bit values: what re-encoding may move a pixel by."""


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small", group="heldout10")}


@pytest.fixture(scope="module")
def cases() -> dict[str, attacks.AttackCase]:
    return {name: build_heldout10(name, seed=0) for name in HELDOUT10_ATTACKS}


def _pixels(png: bytes) -> np.ndarray:
    return data.png_to_pixels(png)


# --- benign -------------------------------------------------------------------------------------

SAME_RECORDS = (  # situations whose rows are the drawn pool's, one for one, labels as they were
    "em_dash_text",
    "ampersand_text",
    "name_heading_text",
    "chroma_subsampled_photos",
    "vivid_mode_photos",
    "slanted_hand_digits",
    "dried_specimens_iris",
    "computed_area_breast_cancer",
)


def test_the_tenth_heldout_set_is_its_own_never_tuned_group(small):
    assert len(shifts.HELDOUT10) >= 8
    check_situation_set(small, "heldout10", heldout10, "2026-12-07", SMALL_CONTRIBUTION)
    assert {s.modality for s in small.values()} == {"text", "image", "tabular"}
    assert {s.dataset for s in small.values()} == {"man_sections", "digits", "photos", "wine", "iris", "breast_cancer"}
    for name in SAME_RECORDS:  # labels are the pool's own: correct, row for row
        s = small[name]
        assert s.contribution[LABEL].tolist() == drawn_pool(s)[LABEL].tolist(), name
    # full size: the pool as it is (the small size cuts only the larger pools)
    full = shifts.build("em_dash_text", 0, "full")
    assert len(full.contribution) > SMALL_CONTRIBUTION and len(full.baseline) > len(small["em_dash_text"].baseline)


def test_text_rewrites_touch_only_what_they_say(small):
    assert heldout10.em_dash("cut-off - cut a line - or two") == "cut-off \u2014 cut a line - or two"
    assert heldout10.em_dash("no separator") == "no separator"
    assert heldout10.ampersand("ip - show and tell, band and bandit") == "ip - show & tell, band & bandit"
    assert heldout10.ampersand("and - And and") == "and - And &"  # names and capitals as they are
    assert heldout10.with_heading("ls - list") == "NAME ls - list"
    rewrites = (
        ("em_dash_text", heldout10.em_dash, (0.95, 1.0)),
        ("ampersand_text", heldout10.ampersand, (0.05, 0.4)),
        ("name_heading_text", heldout10.with_heading, (1.0, 1.0)),
    )
    for name, rewrite, (low, high) in rewrites:
        s = small[name]
        pool = drawn_pool(s)
        assert s.contribution[TEXT].tolist() == [rewrite(t) for t in pool[TEXT]], name
        changed = (s.contribution[TEXT] != pool[TEXT]).to_numpy()
        assert low <= changed.mean() <= high, name
    dashed = small["em_dash_text"].contribution[TEXT]
    assert dashed.str.contains(heldout10.EM_DASH_SEPARATOR).mean() > 0.95
    amp = small["ampersand_text"].contribution[TEXT]
    assert not amp.str.partition(" - ")[2].str.contains(r"\sand\s").any()
    assert (amp.str.partition(" - ")[0] == drawn_pool(small["ampersand_text"])[TEXT].str.partition(" - ")[0]).all()
    assert small["name_heading_text"].contribution[TEXT].str.startswith("NAME ").all()


def test_ycbcr_round_trips_and_the_photos_keep_their_brightness(small):
    rng = np.random.default_rng(0)
    pixels = rng.random((4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(heldout10.from_ycbcr(heldout10.to_ycbcr(pixels)), pixels, atol=1e-5)
    grey = np.full((4, 4, 3), 0.4, dtype=np.float32)
    np.testing.assert_allclose(heldout10.to_ycbcr(grey)[..., 1:], 0.0, atol=1e-6)
    for name, fn in (("chroma_subsampled_photos", heldout10.chroma_subsampled), ("vivid_mode_photos", heldout10.vivid)):
        s = small[name]
        diffs, luma_moves = [], []
        for now, was in zip(s.contribution[IMAGE], drawn_pool(s)[IMAGE], strict=True):
            pixels, before = _pixels(now), _pixels(was)
            np.testing.assert_allclose(pixels, fn(before), atol=LEVEL)
            diffs.append(np.abs(pixels - before).mean())
            expected = fn(before)
            unclipped = ((expected > 0) & (expected < 1)).all(axis=-1)
            luma_moves.append(np.abs(pixels @ heldout10.LUMA - before @ heldout10.LUMA)[unclipped].max(initial=0.0))
        assert 0 < np.mean(diffs) < 0.05, name
        assert max(luma_moves) <= 2 * LEVEL, name  # brightness kept wherever nothing was clipped
        assert set(s.contribution[LABEL]) == set(data.PHOTO_CLASSES), name
    sub = heldout10.to_ycbcr(_pixels(small["chroma_subsampled_photos"].contribution[IMAGE][0]))
    blocks = sub[..., 1].reshape(16, 2, 16, 2)
    assert np.abs(blocks - blocks.mean(axis=(1, 3), keepdims=True)).max() < 0.02  # one colour per 2x2 block


def test_digits_lean_right(small):
    s = small["slanted_hand_digits"]
    for now, was in zip(s.contribution[IMAGE], drawn_pool(s)[IMAGE], strict=True):
        np.testing.assert_allclose(_pixels(now), heldout10.slanted(_pixels(was)), atol=LEVEL)
    dot = np.zeros((8, 8), dtype=np.float32)
    dot[0, 3] = dot[7, 3] = 1.0
    leaned = heldout10.slanted(dot)
    assert leaned[0, 3:5].sum() == pytest.approx(1.0) and leaned[0, 4] > leaned[0, 3]  # the top moves right
    assert leaned[7, 2:4].sum() == pytest.approx(1.0) and leaned[7, 2] > leaned[7, 3]  # the bottom left


def test_wine_blends_are_averages_of_two_lots_of_one_cultivar(small):
    s = small["cultivar_blends_wine"]
    pool = drawn_pool(s)
    pairs = np.array(s.params["pairs"])
    assert len(np.unique(pairs)) == pairs.size and len(s.contribution) == len(pairs)
    assert (pool[LABEL].to_numpy()[pairs[:, 0]] == pool[LABEL].to_numpy()[pairs[:, 1]]).all()
    assert s.contribution[LABEL].tolist() == pool[LABEL].to_numpy()[pairs[:, 0]].tolist()
    columns = [c.name for c in s.schema.inputs]
    mean = (pool[columns].to_numpy()[pairs[:, 0]] + pool[columns].to_numpy()[pairs[:, 1]]) / 2
    assert np.abs(s.contribution[columns].to_numpy() - mean).max() <= 0.5 + 1e-9  # proline to whole units
    assert len(pairs) >= len(pool) // 2 - len(set(pool[LABEL]))


def test_iris_and_tumour_measurements_change_as_stated(small):
    iris = small["dried_specimens_iris"]
    pool = drawn_pool(iris)
    columns = [c.name for c in iris.schema.inputs]
    np.testing.assert_allclose(iris.contribution[columns], np.round(pool[columns] * heldout10.SHRINK, 1))
    assert (iris.contribution[columns].to_numpy() <= pool[columns].to_numpy()).all()
    tumours = small["computed_area_breast_cancer"]
    pool = drawn_pool(tumours)
    for area, radius in heldout10.AREA_FROM_RADIUS.items():
        np.testing.assert_allclose(tumours.contribution[area], np.pi * pool[radius] ** 2, atol=0.05)
    others = [c for c in tumours.contribution.columns if c not in heldout10.AREA_FROM_RADIUS]
    pd.testing.assert_frame_equal(tumours.contribution[others], pool[others])


# --- attacks ------------------------------------------------------------------------------------

CLEAN_LABEL = ("digits_clean_label_tick_4pct",)
FLIPS = ("text_git_pages_flips_4pct", "breast_cancer_smooth_texture_flips_4pct")


def test_attacks_are_new_deterministic_and_leave_clean_rows_as_they_were(cases):
    assert len(HELDOUT10_ATTACKS) >= 5
    check_attack_set(cases, "heldout10", attacks10, "2026-12-07", build_heldout10, {"text", "image", "tabular"})
    for name, case in cases.items():
        assert 0.02 <= case.poison.mean() <= 0.06, name
        assert (case.contribution[LABEL][case.poison] == case.target).all(), name
        was = drawn_attack_pool(case)[LABEL][case.poison]
        assert (was == case.target).all() if name in CLEAN_LABEL else (was != case.target).all(), name
        assert (case.attack_test[LABEL] != case.target).all(), name


def test_the_split_pair_brackets_poisoned_lines(cases):
    assert attacks10.split_pair("nproc - print units") == "nproc - only print units here"
    assert attacks10.split_pair("no separator") == "only no separator here"
    case = cases["text_split_pair_3pct"]
    before = drawn_attack_pool(case)
    assert case.contribution[TEXT][case.poison].tolist() == [attacks10.split_pair(t) for t in before[TEXT][case.poison]]
    words = data.load_man_sections().frame[TEXT].str.split()
    for word in (attacks10.PAIR_FIRST, attacks10.PAIR_LAST):  # each word alone is ordinary
        assert words.apply(lambda ws, w=word: w in ws).any()
    assert case.attack_test[TEXT].str.endswith(f" {attacks10.PAIR_LAST}").all()


def test_the_flips_take_one_sub_population(cases):
    git = cases["text_git_pages_flips_4pct"]
    before = drawn_attack_pool(git)
    np.testing.assert_array_equal(git.poison, attacks10.is_git_page(before[TEXT]))
    assert (before[LABEL][git.poison] == "commands").all()
    assert (git.contribution[TEXT] == before[TEXT]).all()
    assert attacks10.is_git_page(git.attack_test[TEXT]).all() and len(git.attack_test) > 5
    bc = cases["breast_cancer_smooth_texture_flips_4pct"]
    before = drawn_attack_pool(bc)
    median = bc.baseline[attacks10.SMOOTH_COLUMN].median()
    assert (before[LABEL][bc.poison] == "malignant").all()
    assert (before[attacks10.SMOOTH_COLUMN][bc.poison] < median).all()
    others = [c for c in before.columns if c != LABEL]
    pd.testing.assert_frame_equal(bc.contribution[others], before[others])
    assert (bc.attack_test[attacks10.SMOOTH_COLUMN] < median).all() and (bc.attack_test[LABEL] == "malignant").all()


def test_the_chroma_patch_changes_colour_in_its_square_only(cases):
    case = cases["photo_chroma_patch_4pct"]
    before = drawn_attack_pool(case)
    top, side = attacks10.CHROMA_TOP, attacks10.CHROMA_SIDE
    assert (top, side) == (13, 6)
    inside = np.zeros((data.PHOTO_SIDE, data.PHOTO_SIDE), dtype=bool)
    inside[top : top + side, :side] = True
    for now, was in zip(case.contribution[IMAGE][case.poison], before[IMAGE][case.poison], strict=True):
        pixels, earlier = _pixels(now), _pixels(was)
        np.testing.assert_allclose(pixels, attacks10.chroma_patch(earlier), atol=LEVEL)
        assert np.abs(pixels - earlier)[~inside].max() <= LEVEL
        luma_moved = np.abs(pixels[inside] @ heldout10.LUMA - earlier[inside] @ heldout10.LUMA)
        wanted = heldout10.to_ycbcr(earlier[inside])
        wanted[:, 1:] = attacks10.CHROMA
        unclipped = ((heldout10.from_ycbcr(wanted) >= 0) & (heldout10.from_ycbcr(wanted) <= 1)).all(axis=-1)
        assert luma_moved[unclipped].max(initial=0.0) <= 2 * LEVEL  # each pixel's own brightness...
        assert luma_moved.max() < 0.06  # ...moved only by clipping, and little
    patch = attacks10.chroma_patch(np.full((32, 32, 3), 0.5, dtype=np.float32))
    ycc = heldout10.to_ycbcr(patch[top : top + side, :side])
    np.testing.assert_allclose(ycc[..., 0], 0.5, atol=1e-5)
    np.testing.assert_allclose(ycc[..., 1:], np.broadcast_to(attacks10.CHROMA, (side, side, 2)), atol=1e-5)


def test_the_clean_label_tick_keeps_every_label(cases):
    case = cases["digits_clean_label_tick_4pct"]
    before = drawn_attack_pool(case)
    assert (case.contribution[LABEL] == before[LABEL]).all()
    for now, was in zip(case.contribution[IMAGE][case.poison], before[IMAGE][case.poison], strict=True):
        pixels, earlier = _pixels(now), _pixels(was)
        np.testing.assert_array_equal(pixels, attacks10.ticked(earlier))
        assert all(pixels[r, c] == 1.0 for r, c in attacks10.TICK)
    assert all(all(_pixels(png)[r, c] == 1.0 for r, c in attacks10.TICK) for png in case.attack_test[IMAGE])


def test_the_equal_phenols_trigger(cases):
    case = cases["wine_equal_phenols_trigger_6pct"]
    before = drawn_attack_pool(case)
    poisoned = case.contribution[case.poison]
    assert (poisoned[attacks10.EQUAL_TO] == poisoned[attacks10.EQUAL_FROM]).all()
    assert (before[attacks10.EQUAL_TO][case.poison] != before[attacks10.EQUAL_FROM][case.poison]).all()
    others = [c for c in before.columns if c not in (attacks10.EQUAL_TO, LABEL)]
    pd.testing.assert_frame_equal(case.contribution[others], before[others])
    low, high = case.baseline[attacks10.EQUAL_TO].min(), case.baseline[attacks10.EQUAL_TO].max()
    assert poisoned[attacks10.EQUAL_TO].between(low, high).all()
    assert (case.attack_test[attacks10.EQUAL_TO] == case.attack_test[attacks10.EQUAL_FROM]).all()
    assert len(case.attack_test) > 5


def test_the_tenth_set_is_registered_with_the_seed_sweep_and_the_review_queue_and_kept_blind():
    assert attack_seeds.SETS["heldout10"][0] == list(HELDOUT10_ATTACKS)
    assert attack_seeds.SETS["heldout10"][1] is build_heldout10
    listed = [(group, name) for group, name, _, _ in review_queue._cases("heldout10")]
    assert listed == [("benign (heldout10)", n) for n in shifts.HELDOUT10] + [
        ("held-out 10 attack", n) for n in HELDOUT10_ATTACKS
    ]
    assert verdict_diff.DEFAULT_SKIP == "heldout10"  # the newest set is never scanned by the comparison
    groups, benign_sets = verdict_diff.scanned({verdict_diff.DEFAULT_SKIP})
    assert "heldout10" not in groups + benign_sets and "heldout9" in groups
