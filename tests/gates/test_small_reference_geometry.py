"""A clean first image import judged against half of a small validation set is not blocked; a patched one is.

A new user's ward: 300 clean crops of scikit-learn's two sample photos as the validation set, 600 more
drawn exactly like them as the first import. The first import is judged against one stratified half (150
crops). The gate reduced the 3,072 pixels to 128 PCA components fitted on those 150 crops alone: inside the
fit every trusted row keeps nearly all of its energy, every new row loses what the trusted crops' own noise
spans, so the clean batch read as shifted (76 of 128 features, KS 0.42), 337 records as "unlike the baseline
together", 83 were flagged by ``label_consistency``, and the batch was blocked. The attacker here is no one:
the gate must not block benign data (issue 8), and must still block a batch carrying a BadNets patch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_sample_images

from benchmarks.attacks.fixed_counts import fixed_count
from benchmarks.data import pixels_to_png
from dataward.domain.schema import Schema
from dataward.gates import scan
from dataward.gates.features.pipeline import PCA_DIMS, PCA_RECORDS_PER_DIM, FeaturePipeline
from dataward.service.first_import import trusted_for_first_import

SCHEMA = {"label": "label", "inputs": [{"name": "image", "kind": "image"}]}
SIDE = 32


def crops(per_class: int, rng: np.random.Generator) -> pd.DataFrame:
    """``per_class`` random 32x32 crops of each sample photo ('temple', 'flower'), drawn as the trial drew its
    40x40 ones."""
    rows = []
    for photo, label in zip(load_sample_images().images, ("temple", "flower"), strict=True):
        h, w, _ = photo.shape
        for _ in range(per_class):
            y, x = rng.integers(0, h - SIDE), rng.integers(0, w - SIDE)
            rows.append({"image": pixels_to_png(photo[y : y + SIDE, x : x + SIDE]), "label": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def first_import() -> tuple[pa.Table, pa.Table, pd.DataFrame]:
    """The ward's trusted half and held-out half of a 300-crop validation set, and a clean 400-crop batch."""
    rng = np.random.default_rng(11)
    validation = pa.Table.from_pandas(crops(150, rng), preserve_index=False)
    baseline, held_out, trusted = trusted_for_first_import(validation, "label", 0)
    assert trusted["records"] == 150 and trusted["held_out"] == 150
    return baseline, held_out, crops(200, rng)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_clean_first_image_import_against_half_a_small_validation_set_is_not_blocked(first_import, seed) -> None:
    baseline, held_out, batch = first_import
    report = scan(baseline, batch, SCHEMA, held_out, {"seed": seed}, workers=1)
    assert report.verdict == "pass", report.reasons
    assert not np.asarray(report.records.flagged).any()
    assert report.results["drift"].p_value > 1e-3
    assert not report.results["outliers"].contribution_findings  # no "unlike the baseline together"


def test_a_first_image_import_with_a_patch_backdoor_is_still_blocked() -> None:
    """The benchmark's BadNets case at a first import's size: 20 of 400 crops of the four photo classes
    carry the checkerboard patch, relabelled 'foliage', against 150 trusted crops. Blocked, and only the
    patched crops are queued (before the PCA was fitted on the batch too, 31 were, 11 of them clean)."""
    case = fixed_count("image_patch", 20, 400, baseline_size=150)
    report = scan(case.baseline, case.contribution, case.schema, None, {"seed": 0}, workers=1)
    assert report.verdict == "block", report.reasons
    flagged = np.asarray(report.records.flagged, dtype=bool)
    assert flagged[case.poison].all() and flagged.sum() == case.poison.sum()


def test_a_pca_fitted_on_few_trusted_records_per_component_asks_for_the_new_records() -> None:
    """The pipeline asks for the records being judged only when its PCA would rest on fewer than
    PCA_RECORDS_PER_DIM trusted records per component; it never asks for a narrow (un-reduced) table."""
    rng = np.random.default_rng(0)
    small, new = crops(20, rng), crops(30, rng)
    pipeline = FeaturePipeline(Schema.parse("label", ["image:image"]))
    asked: list[int] = []

    def batch() -> pa.Table:
        asked.append(1)
        return pa.Table.from_pandas(new[["image"]], preserve_index=False)

    rows = pipeline.fit_transform(pa.Table.from_pandas(small, preserve_index=False), new=batch)
    assert (
        asked == [1]
        and pipeline.new_rows_ == len(new)
        and rows.shape == (len(small) + len(new), len(small) + len(new) - 1)
    )
    # The trusted and new rows are what transform gives them: one space, fitted on both.
    again = pipeline.transform(pa.Table.from_pandas(pd.concat([small, new]), preserve_index=False))
    np.testing.assert_allclose(rows, again, atol=1e-4)
    assert len(small) < PCA_RECORDS_PER_DIM * PCA_DIMS

    tabular = FeaturePipeline(Schema.parse("label", ["x:numeric"]))
    frame = pa.table({"x": [float(i) for i in range(10)], "label": ["a", "b"] * 5})
    assert tabular.fit_transform(frame, new=lambda: pytest.fail("a narrow table needs no PCA")).shape == (10, 1)
    assert tabular.new_rows_ == 0


def test_a_reference_of_enough_records_keeps_a_pca_of_its_own() -> None:
    """At ``PCA_RECORDS_PER_DIM`` trusted records per component the reference alone is the better fit (the
    photo benchmarks' 960 trusted crops queued more clean records with the batch in the fit): the new
    records are not asked for."""
    rng = np.random.default_rng(1)
    enough = crops(PCA_RECORDS_PER_DIM * PCA_DIMS // 2, rng)
    pipeline = FeaturePipeline(Schema.parse("label", ["image:image"]))
    rows = pipeline.fit_transform(
        pa.Table.from_pandas(enough, preserve_index=False), new=lambda: pytest.fail("the reference is enough")
    )
    assert pipeline.new_rows_ == 0 and rows.shape == (len(enough), PCA_DIMS)
