"""A sender who moves his batch as a whole must not thereby hide records that are out of place in it.

A first cut of outliers' moved-batch rule (15e6902) took "near" as the baseline's slack (1.5 x its
95th-percentile neighbour distance) times how much more spread out the batch was. In a faxed batch (every
pixel full ink or blank) that radius lay beyond the third nearest peer of every clean faxed digit, so
digits shifted two pixels sideways and relabelled '7' counted as company of the batch and none was
flagged; a batch of 3 records "moved as a whole" against 3 trusted ones drawn by the seed. Now a moved
batch's records are judged by a conformal p-value of their isolation against the trusted records' own
(only the batch's median comes from the batch), and a batch needs ``MIN_MOVED_BATCH`` records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataward.gates import scan
from tests.gates.test_outliers_moved_batch import _faxed, _pixels, _png

PLANTED = np.array([17, 63, 101, 150, 222, 260, 311, 377])


def _shifted_and_relabelled(frame: pd.DataFrame, rows: np.ndarray, label: int = 7) -> pd.DataFrame:
    """Digits moved two pixels to the right (wrapping), sent as ``label``."""
    out = frame.copy()
    for row in rows:
        out.loc[row, "image"] = _png(np.roll(_pixels(out.loc[row, "image"]), 2, axis=1))
        out.loc[row, "label"] = label
    return out


@pytest.fixture(scope="module")
def faxed_with_shifted_sevens(digit_images):
    baseline, contribution, schema = digit_images
    return baseline, _shifted_and_relabelled(_faxed(contribution), PLANTED), schema


def test_shifted_relabelled_digits_in_a_faxed_batch_are_flagged_by_outliers(faxed_with_shifted_sevens):
    baseline, batch, schema = faxed_with_shifted_sevens
    result = scan(baseline, batch, schema, policy={"detectors": ["outliers"]}).results["outliers"]
    assert int(result.flagged[PLANTED].sum()) >= 6


@pytest.mark.xfail(
    strict=True,
    reason="known gap: label flips inside a batch that moved as a whole. label_consistency and backdoor "
    "read the shifted '7's as moved with the faxed batch; outliers ranks them and flags 3 of 8 at the gate's "
    "alpha (beyond every trusted record's isolation), too few for the queue's false-discovery check. Before "
    "15e6902 all 8 were queued, beside 104 clean faxed digits",
)
def test_the_whole_gate_queues_shifted_relabelled_digits_of_a_faxed_batch(faxed_with_shifted_sevens):
    baseline, batch, schema = faxed_with_shifted_sevens
    report = scan(baseline, batch, schema)
    assert int(np.asarray(report.records.flagged)[PLANTED].sum()) >= 6


def test_without_the_fax_the_same_shifted_digits_are_flagged_and_queued(digit_images):
    # The control: the same planted records in the batch as scanned are out of place and reach the queue.
    baseline, contribution, schema = digit_images
    batch = _shifted_and_relabelled(contribution, PLANTED)
    report = scan(baseline, batch, schema)
    assert int(report.results["outliers"].flagged[PLANTED].sum()) >= 6
    assert int(np.asarray(report.records.flagged)[PLANTED].sum()) >= 6


@pytest.mark.parametrize("seed", [1, 5, 7])
def test_a_tiny_batch_of_shifted_sevens_is_flagged_whatever_the_seed(digit_images, seed):
    baseline, contribution, schema = digit_images
    batch = contribution.iloc[:3].reset_index(drop=True)
    batch = _shifted_and_relabelled(batch, np.arange(3))
    result = scan(baseline, batch, schema, policy={"seed": seed, "detectors": ["outliers"]}).results["outliers"]
    assert result.flagged.all()
