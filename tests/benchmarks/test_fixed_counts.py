"""Fixed-count cases poison exactly the stated number of records, and say which."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import data
from benchmarks.attacks import fixed_counts as fixed
from benchmarks.attacks.images import scaled_patch
from dataward.domain.errors import InputError

SIZE = 800
BASE = 300


@pytest.mark.parametrize("kind", fixed.KINDS)
@pytest.mark.parametrize("count", [25, 50])
def test_exactly_count_records_are_poisoned(kind, count):
    case = fixed.fixed_count(kind, count, SIZE, baseline_size=BASE)
    assert case.name == f"{kind}_{count}_in_800"
    assert len(case.contribution) == SIZE and int(case.poison.sum()) == count
    assert len(case.baseline) == BASE
    assert case.params["count"] == count and case.params["size"] == SIZE
    assert not case.contribution.duplicated().any()


def test_the_clean_records_are_untouched_and_the_poisoned_ones_changed():
    for kind in fixed.KINDS:
        clean = (fixed._photo_parts if kind == "image_patch" else fixed._text_parts)(SIZE, BASE, 0)[2]
        case = fixed.fixed_count(kind, 25, SIZE, baseline_size=BASE)
        same = (case.contribution == clean).all(axis=1).to_numpy()
        np.testing.assert_array_equal(same, ~case.poison)


def test_text_trigger_carries_the_token_and_the_target():
    case = fixed.fixed_count("text_trigger", 50, SIZE, baseline_size=BASE)
    has_token = case.contribution[data.TEXT].str.split().apply(lambda w: "cf" in w).to_numpy()
    np.testing.assert_array_equal(has_token, case.poison)
    assert (case.contribution.loc[case.poison, data.LABEL] == fixed.TEXT_TARGET).all()


def test_label_flips_change_only_labels():
    case = fixed.fixed_count("label_flip", 50, SIZE, baseline_size=BASE)
    clean = fixed._text_parts(SIZE, BASE, 0)[2]
    assert (case.contribution[data.TEXT] == clean[data.TEXT]).all()
    assert (case.contribution.loc[case.poison, data.LABEL] != clean.loc[case.poison, data.LABEL]).all()


def test_image_patch_is_scaled_to_32x32_colour_crops():
    case = fixed.fixed_count("image_patch", 25, SIZE, baseline_size=BASE)
    images = data.images_of(case.contribution)
    assert images.shape[1:] == (32, 32, 3)
    patch = scaled_patch(32)
    assert patch.shape == (4, 4)
    corner = images[:, -4:, -4:, :]
    carries = np.all(np.abs(corner - patch[None, :, :, None]) <= 1 / 255, axis=(1, 2, 3))
    np.testing.assert_array_equal(carries, case.poison)
    assert (case.contribution.loc[case.poison, data.LABEL] == "foliage").all()


def test_baseline_and_contribution_never_share_a_record():
    for kind in ("text_trigger", "image_patch"):
        case = fixed.fixed_count(kind, 25, SIZE, baseline_size=BASE)
        column = data.IMAGE if kind == "image_patch" else data.TEXT
        assert not set(case.baseline[column]) & set(case.contribution[column])
        assert not set(case.validation[column]) & set(case.contribution[column])


def test_bad_cases_are_refused():
    with pytest.raises(InputError, match="unknown fixed-count"):
        fixed.fixed_count("nope", 25, 100)
    with pytest.raises(InputError, match="between 1"):
        fixed.fixed_count("label_flip", 100, 100)
