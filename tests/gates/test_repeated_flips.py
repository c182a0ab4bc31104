"""A flipped line sent several times must not vouch for its own label.

The sixth held-out set's ``text_repeated_flips_3pct`` sends four 'commands' lines relabelled 'syscalls',
five times each. ``label_consistency``'s naive Bayes read each record leave-one-out over the trusted
records and the batch: the other four copies, with the same wrong label, stayed in and taught the model
that the line is a system call, so the copies agreed with one another and none was queued. Each record
is now read without its near-copies of the same label (``NaiveBayes.loo_log_joint(groups)``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from benchmarks import data
from dataward.gates import scan
from dataward.gates.detectors.label_consistency import NaiveBayes

SOURCE, TARGET = "commands", "syscalls"
FLIPPED = 4


@cache
def flipped_lines_p_values(copies: int, seed: int) -> np.ndarray:
    """``label_consistency``'s p-values of ``FLIPPED`` 'commands' lines relabelled 'syscalls', each sent
    ``copies`` times among 300 clean lines (the first copy of each line)."""
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    flipped = spare[spare[data.LABEL] == SOURCE].sample(n=FLIPPED, random_state=seed).assign(**{data.LABEL: TARGET})
    clean = spare.drop(index=flipped.index).sample(n=300, random_state=seed)
    frame = pd.concat([pd.concat([flipped] * copies), clean], ignore_index=True)
    report = scan(
        split.baseline, frame, dataset.schema, split.validation, {"seed": seed, "detectors": ["label_consistency"]}
    )
    return np.asarray(report.results["label_consistency"].p_values[:FLIPPED])


@pytest.mark.parametrize("seed", [0, 1])
def test_five_copies_of_a_flipped_line_read_as_one(seed: int) -> None:
    once, five = flipped_lines_p_values(1, seed), flipped_lines_p_values(5, seed)
    # Read without its copies, each line reads nearly as it does when sent once; what is left is the
    # copies' pull on the trusted records' calibration scores. (Read with them, the copies vouched for
    # one another: p 0.04 to 0.33 where one line had 0.002 to 0.12.)
    assert np.all(five <= 2.0 * once + 0.01), (five, once)


def test_leaving_a_group_out_is_refitting_without_it() -> None:
    """Exact: the closed form equals a naive Bayes fitted on the other rows (every feature is also carried
    by rows outside the group, so both keep the same vocabulary)."""
    rng = np.random.default_rng(3)
    dense = rng.integers(0, 3, size=(40, 12)).astype(np.float64)
    dense[:, 0] = 1.0  # every row carries feature 0 ...
    x = sparse.csr_matrix(dense)
    labels = rng.integers(0, 3, 40)
    labels[[1, 7, 9]] = labels[0]
    groups = np.arange(40)
    groups[[1, 7, 9]] = 0
    joint = NaiveBayes(x, labels, 3).loo_log_joint(groups)
    rest = np.setdiff1d(np.arange(40), [0, 1, 7, 9])
    refit = NaiveBayes(x[rest], labels[rest], 3)
    assert refit.v == 12  # ... and the others carry every feature: the same vocabulary
    for row in (0, 1, 7, 9):
        np.testing.assert_allclose(joint[row], refit.log_joint(x[row])[0], rtol=1e-10)
    # Singleton groups are leave-one-out.
    np.testing.assert_array_equal(
        NaiveBayes(x, labels, 3).loo_log_joint(np.arange(40)), NaiveBayes(x, labels, 3).loo_log_joint()
    )
