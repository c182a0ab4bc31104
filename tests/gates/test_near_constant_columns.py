"""A numeric column that is almost constant in the trusted data must not make a faint value an extreme outlier.

An outside trial gated scikit-learn's digits as 64 numeric pixel columns. Pixel 16 held a single non-zero
value among 700 trusted digits; a clean '1' with a faint 2 there was reported "far from the trusted records
labelled '1'; p=1.4e-77", with nearest-neighbour distances of 700 and 1400 on 0-16 pixels. The pipeline
scales each column to unit mean row norm (its mean absolute deviation from the median): 1/700 for that
column, so one step of its values counted 700 units. Five of the six clean records `outliers` flagged in
that batch were this case, and the review queue held 8 clean records of 20.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_wine

from dataward.domain.schema import Schema
from dataward.gates import scan
from dataward.gates.features import FeaturePipeline


def _pipeline(frame: pd.DataFrame) -> FeaturePipeline:
    schema = Schema.from_dict({"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in frame.columns]})
    return FeaturePipeline(schema).fit(pa.Table.from_pandas(frame, preserve_index=False))


def test_one_step_of_an_almost_constant_column_counts_at_most_two_units() -> None:
    rng = np.random.default_rng(0)
    trusted = pd.DataFrame({"faint": np.zeros(700), "ink": rng.integers(0, 17, 700).astype(float)})
    trusted.loc[3, "faint"] = 1.0  # the one trusted record that ever marks this pixel
    pipeline = _pipeline(trusted)
    new = pd.DataFrame({"faint": [0.0, 1.0, 2.0], "ink": [8.0, 8.0, 8.0]})
    vectors = pipeline.transform(pa.Table.from_pandas(new, preserve_index=False))
    # Two steps off the trusted value: at most 4 units (before: 1400, the trial's distance).
    assert abs(vectors[2, 0] - vectors[0, 0]) <= 4.0 + 1e-6
    assert abs(vectors[1, 0] - vectors[0, 0]) <= 2.0 + 1e-6


def test_columns_whose_values_spread_keep_their_scale_to_the_bit() -> None:
    data = load_wine()
    frame = pd.DataFrame(data.data, columns=[f"f{i}" for i in range(data.data.shape[1])])
    pipeline = _pipeline(frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for feat, scale in zip(pipeline.featurizers, pipeline.scales_, strict=True):
        block = feat.transform(table)
        assert scale == float(np.mean(np.linalg.norm(block, axis=1)))


@pytest.fixture(scope="module")
def faint_pixels(digits):
    """Clean held-out digits, five of them with a faint 1 or 2 in a pixel that at most two trusted digits
    mark, and three records of random ink (garbage: real outliers)."""
    baseline, rest, schema = digits
    pixels = [c for c in baseline.columns if c != "label"]
    marked = (baseline[pixels] != 0).sum()
    rare = [c for c in pixels if 0 < marked[c] <= 2]
    batch = rest.iloc[:120].copy().reset_index(drop=True)
    faint = []
    for i, column in enumerate(rare[:5]):
        row = int(np.flatnonzero(batch[column].to_numpy() == 0)[i])
        batch.loc[row, column] = 2.0 if i % 2 == 0 else 1.0
        faint.append(row)
    rng = np.random.default_rng(1)
    garbage = pd.DataFrame(rng.integers(0, 17, (3, len(pixels))).astype(float), columns=pixels)
    garbage["label"] = [0, 1, 2]
    batch = pd.concat([batch, garbage], ignore_index=True)
    return baseline, batch, schema, np.array(faint), np.arange(len(batch) - 3, len(batch))


def test_a_faint_value_in_an_almost_constant_column_is_not_an_outlier(faint_pixels) -> None:
    baseline, batch, schema, faint, garbage = faint_pixels
    report = scan(baseline, batch, schema, None, {"seed": 0, "detectors": ["outliers"]})
    flagged = np.asarray(report.records.detector_flags["outliers"], dtype=bool)
    assert not flagged[faint].any(), "a faint pixel where trusted digits are blank is no extreme outlier"
    # Real outliers are still flagged: random ink is unlike every trusted digit.
    assert flagged[garbage].all()
    p = report.results["outliers"].p_values
    assert p[faint].min() > 1e-3
