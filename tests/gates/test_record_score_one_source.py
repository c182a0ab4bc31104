"""The record score ranks records in a ward's contribution, whose every record has one declared source.

An outside trial gated 300 digits (64 numeric pixel columns), 15 of them relabelled, in a ward:
`gate report digits#4 --json` gave every record a score of about 1.000, so "most suspicious first" ranked
nothing. `clean_validation` gave every record of the only source that source's harm p-value (8e-8), and
Fisher's combination of the records' p-values put every record at 1 - 1e-4 or above.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from dataward.gates import scan


@pytest.fixture(scope="module")
def relabelled_digits():
    """The trial's split (its script, seed 7): 700 trusted digits, 300 validation digits, and a batch of
    300 digits other than '7' with 15 relabelled."""
    data = load_digits()
    frame = pd.DataFrame(data.data.astype(int), columns=[f"px{i}" for i in range(64)])
    frame["label"] = data.target.astype(str)
    rng = np.random.default_rng(7)
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    validation, baseline, rest = frame.iloc[:300], frame.iloc[300:1000], frame.iloc[1300:]
    batch = rest[rest["label"] != "7"].iloc[:300].copy()
    flipped = rng.choice(len(batch), size=15, replace=False)
    labels = batch["label"].to_numpy().copy()
    for i in flipped:
        labels[i] = str((int(labels[i]) + rng.integers(1, 10)) % 10)
    batch["label"] = labels
    schema = {"label": "label", "inputs": [{"name": f"px{i}", "kind": "numeric"} for i in range(64)]}
    truth = np.zeros(len(batch), dtype=bool)
    truth[flipped] = True
    return baseline, batch.reset_index(drop=True), validation, schema, truth


def test_one_declared_source_leaves_the_record_score_ranking(relabelled_digits) -> None:
    baseline, batch, validation, schema, truth = relabelled_digits
    report = scan(
        baseline,
        batch,
        schema,
        validation,
        {"seed": 0},
        groups={"source": ["https://vendor.example/batch.csv"] * len(batch)},
    )
    cv = report.results["clean_validation"]
    assert cv.p_value < 0.01, "the batch's harm is measured (and said at the contribution level)"
    assert np.all(cv.p_values == 1.0), "it names no record above another"
    scores = np.array([r["score"] for r in report.to_dict()["records"]])
    assert np.median(scores) < 0.9, "clean records are not all at about 1"
    assert roc_auc_score(truth, scores) > 0.95
    assert truth[np.argsort(-scores, kind="stable")[:15]].sum() >= 10
