"""Every benign situation is what it says: clean, correctly labelled, and different in the stated way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import data, shifts
from benchmarks.shifts import heldout, tuning
from benchmarks.shifts.base import EXTRA_KINDS, HELDOUT3_KINDS, SMALL_CONTRIBUTION, shift_image
from dataward.domain.errors import InputError


@pytest.fixture(scope="module")
def small() -> dict[str, shifts.Situation]:
    return {s.name: s for s in shifts.benign_situations(seed=0, size="small")}


def _keys(frame: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, frame.itertuples(index=False)))


def _origin(situation: shifts.Situation) -> data.Dataset:
    return data.load(situation.dataset)


def test_both_sets_cover_every_kind_and_only_the_heldout_one_is_never_tuned_on(small):
    for group in ("tuning", "heldout"):
        kinds = {s.kind for s in small.values() if s.group == group}
        # A later set's kind reaches the tuning set with a situation moved there (``split_names_text``).
        later = HELDOUT3_KINDS if group == "tuning" else ()
        assert set(shifts.KINDS) <= kinds <= {*shifts.KINDS, *EXTRA_KINDS, *later}, group
    assert set(shifts.TUNING).isdisjoint(shifts.HELDOUT)
    assert "NEVER TUNED ON" in heldout.__doc__ and "NEVER TUNED ON" not in tuning.__doc__
    assert [s.name for s in shifts.benign_situations(0, "small", "heldout")] == list(shifts.HELDOUT)
    # Moved to the tuning set after the gate was changed for them; their builders stay in heldout.py.
    for moved in ("new_topic_text_crypto", "new_topic_text_systemd", "new_topic_text_debian"):
        assert small[moved].group == "tuning" and moved in shifts.TUNING and moved not in shifts.HELDOUT
    assert small["new_topic_text_util_linux"].group == "heldout" and "new_topic_text_util_linux" in shifts.HELDOUT
    # The same for the third held-out set's fax digits (outliers judged a moved batch against itself).
    assert small["bilevel_fax_digits"].group == "tuning" and "bilevel_fax_digits" not in shifts.HELDOUT3
    # And the sixth's split lines (triggers counted a line's near-copies as independent carriers).
    assert "split_names_text" in shifts.TUNING and "split_names_text" not in shifts.HELDOUT6


def test_every_situation_is_a_clean_correctly_shaped_contribution(small):
    for s in small.values():
        assert len(s.contribution) > 0 and len(s.baseline) > 0 and len(s.validation) > 0, s.name
        columns = [c.name for c in s.schema.inputs] + [s.schema.label]
        for frame in (s.baseline, s.validation, s.contribution):
            assert list(frame.columns) == columns, s.name
        assert set(s.contribution[data.LABEL]) <= set(_origin(s).classes), s.name
        case = s.as_case()
        assert case.family == "clean" and not case.poison.any() and len(case.poison) == len(s.contribution)
        assert s.summary()["kind"] == s.kind


def test_small_situations_stay_small_and_full_ones_are_larger(small):
    assert all(len(s.baseline) <= 600 for s in small.values())
    assert all(len(s.contribution) <= 4 * SMALL_CONTRIBUTION for s in small.values())
    full = shifts.build("register_text", 0, "full")
    assert len(full.contribution) > len(small["register_text"].contribution)


def test_one_class_sources_hold_one_class(small):
    assert set(small["one_class_text"].contribution[data.LABEL]) == {tuning.ONE_CLASS}
    assert set(small["one_class_digits"].contribution[data.LABEL]) == {heldout.ONE_CLASS}
    assert small["one_class_text"].baseline[data.LABEL].nunique() == 6


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("new_topic_text", tuning.TOPIC),
        ("new_topic_text_crypto", heldout.TOPIC),
        ("new_topic_text_systemd", heldout.SYSTEMD),
        ("new_topic_text_debian", heldout.DEBIAN),
        ("new_topic_text_util_linux", heldout.UTIL_LINUX),
    ],
)
def test_new_topics_never_reach_the_baseline(small, name, pattern):
    s = small[name]
    assert s.contribution[data.TEXT].str.contains(pattern).all()
    assert not s.baseline[data.TEXT].str.contains(pattern).any()
    assert not s.validation[data.TEXT].str.contains(pattern).any()
    assert s.contribution[data.LABEL].nunique() >= 3  # correctly labelled across several sections
    original = _keys(data.load_man_sections().frame)
    assert _keys(s.contribution) <= original  # labels as shipped, not made up


def test_new_subpopulation_is_held_out_of_the_baseline(small):
    s = small["new_subpopulation_breast_cancer"]
    cut = s.params["mean_area_above"]
    assert (s.baseline["mean_area"] <= cut).all() and (s.validation["mean_area"] <= cut).all()
    assert (s.contribution["mean_area"] > cut).sum() >= 50
    assert _keys(s.contribution) <= _keys(data.load_breast_cancer().frame)


def test_new_scanner_moves_every_digit_one_pixel_right(small):
    s = small["new_scanner_digits"]
    pool = data.split(data.load_digits(), 0).pool
    moved = data.images_of(s.contribution)
    originals = {png: label for png, label in zip(pool[data.IMAGE], pool[data.LABEL], strict=True)}
    shifted = {data.pixels_to_png(shift_image(data.png_to_pixels(p), 0, 1)): lbl for p, lbl in originals.items()}
    for png, label in zip(s.contribution[data.IMAGE], s.contribution[data.LABEL], strict=True):
        assert shifted[png] == label
    columns = np.arange(8)
    centre = (moved.sum(axis=1) * columns).sum(axis=1) / moved.sum(axis=(1, 2))
    base = data.images_of(s.baseline)
    base_centre = (base.sum(axis=1) * columns).sum(axis=1) / base.sum(axis=(1, 2))
    assert 0.6 < centre.mean() - base_centre.mean() < 1.4


def test_new_camera_and_faint_ink_change_intensities_only(small):
    s = small["new_camera_photos"]
    pixels = data.images_of(s.contribution)
    assert pixels.shape[1:] == (32, 32, 3)
    assert pixels.mean() < data.images_of(s.baseline).mean()
    faint = data.images_of(small["faint_ink_digits"].contribution)
    assert faint.max() <= heldout.FAINT_INK + 1 / 255


@pytest.mark.parametrize(("name", "factor"), [("recalibration_wine", 1.04), ("recalibration_breast_cancer", 0.97)])
def test_recalibration_scales_every_numeric_feature(small, name, factor):
    s = small[name]
    pool = data.split(_origin(s), 0).pool
    columns = [c.name for c in s.schema.inputs]
    np.testing.assert_allclose(s.contribution[columns].to_numpy(), pool[columns].to_numpy() * factor)
    assert (s.contribution[data.LABEL].to_numpy() == pool[data.LABEL].to_numpy()).all()


def test_class_prior_changes(small):
    cancer = small["class_prior_breast_cancer"].contribution
    assert abs((cancer[data.LABEL] == "malignant").mean() - tuning.MALIGNANT_SHARE) < 0.02
    baseline_share = (small["class_prior_breast_cancer"].baseline[data.LABEL] == "malignant").mean()
    assert baseline_share < 0.45
    text = small["class_prior_text"].contribution
    assert (text[data.LABEL] == "library").mean() > 0.4
    assert _keys(text) <= _keys(data.load_man_sections().frame)
    photos = small["class_prior_photos"]
    label = photos.params["label"]
    assert (photos.contribution[data.LABEL] == label).mean() > 2 * (photos.baseline[data.LABEL] == label).mean()


def test_registers_rewrite_every_line_deterministically(small):
    pool = data.split(data.load_man_sections(), 0).pool
    catalog = small["register_text"].contribution
    rewritten = {
        (tuning.catalog_register(t), label) for t, label in zip(pool[data.TEXT], pool[data.LABEL], strict=True)
    }
    assert _keys(catalog) <= rewritten
    assert catalog[data.TEXT].str.startswith("DOC: ").all()
    assert (
        tuning.catalog_register("ls - list directory contents and information") == "DOC: ls: List dir contents & info"
    )
    pkgdb = small["register_text_pkgdb"].contribution[data.TEXT]
    assert pkgdb.str.endswith(" [pkgdb]").all() and (pkgdb == pkgdb.str.lower()).all()
    assert heldout.pkgdb_register("Foo - The C Library functions.") == "foo -- the c lib fns [pkgdb]"
    again = shifts.build("register_text_pkgdb", 0, "small").contribution
    pd.testing.assert_frame_equal(again, small["register_text_pkgdb"].contribution)


@pytest.mark.parametrize(("name", "share"), [("duplicates_digits", 0.4), ("duplicates_text", 0.3)])
def test_duplicates_are_exact_copies_of_trusted_records(small, name, share):
    s = small[name]
    rows = np.array(s.params["duplicate_rows"])
    assert abs(len(rows) / len(s.contribution) - share) < 0.02
    baseline = _keys(s.baseline)
    assert _keys(s.contribution.iloc[rows]) <= baseline
    rest = np.setdiff1d(np.arange(len(s.contribution)), rows)
    assert not (_keys(s.contribution.iloc[rest]) & baseline)


def test_large_batches_are_several_times_the_baseline(small):
    for name in ("large_batch_photos", "large_batch_text"):
        s = small[name]
        assert len(s.contribution) >= 3 * len(s.baseline), name
        assert not (_keys(s.contribution) & _keys(s.baseline)), name


def test_unknown_names_and_sizes_are_refused():
    with pytest.raises(InputError, match="unknown benign situation"):
        shifts.build("nope")
    with pytest.raises(InputError, match="size"):
        shifts.benign_situations(0, size="huge")
    with pytest.raises(InputError, match="group"):
        shifts.benign_situations(0, group="other")


def test_new_heldout_sensors_change_the_images_as_described(small):
    gamma = small["gamma_scanner_photos"]
    assert data.images_of(gamma.contribution).mean() > data.images_of(gamma.baseline).mean()
    soft = data.images_of(small["blurred_lens_photos"].contribution).astype(np.float64)
    sharp = data.images_of(small["blurred_lens_photos"].baseline).astype(np.float64)
    # A softer lens lowers the difference between neighbouring pixels.
    assert np.abs(np.diff(soft, axis=1)).mean() < 0.8 * np.abs(np.diff(sharp, axis=1)).mean()


def test_one_class_photos_and_caliper_offset(small):
    photos = small["one_class_photos"]
    assert photos.contribution[data.LABEL].nunique() == 1
    assert photos.baseline[data.LABEL].nunique() == 4
    iris = small["caliper_offset_iris"]
    pool = data.split(_origin(iris), 0).pool
    columns = [c.name for c in iris.schema.inputs]
    np.testing.assert_allclose(
        iris.contribution[columns].to_numpy(), pool[columns].to_numpy() + heldout.CALIPER_OFFSET_CM
    )
