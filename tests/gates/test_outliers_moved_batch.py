"""A batch that moved as a whole is judged against itself: its records are not flagged one by one.

A fax machine that prints every pixel full ink or blank sends digits each unlike the trusted scans, and
further apart from one another than the trusted scans are. Judged against the baseline's density alone,
a record whose nearest batch peers had moved a little less than it counted as a lone outlier: 39 to 86
of 539 clean faxed digits went to the review queue (docs/benchmarks.md, "A third held-out set").
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from dataward.gates import scan
from dataward.gates.detectors import outliers

POLICY = {"detectors": ["outliers"]}
LONE = np.array([3, 150, 300])


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _faxed(frame: pd.DataFrame) -> pd.DataFrame:
    """Every pixel printed full ink or blank."""
    out = frame.copy()
    out["image"] = [_png(np.where(_pixels(b) >= 128, 255, 0)) for b in frame["image"]]
    return out


def _with_lone_outliers(frame: pd.DataFrame) -> pd.DataFrame:
    """Three records of speckle, each its own: what a reviewer must still see."""
    out = frame.copy()
    rng = np.random.default_rng(7)
    for row in LONE:
        out.loc[row, "image"] = _png(np.where(rng.random((8, 8)) < 0.5, 255, 0))
    return out


def test_a_batch_that_moved_as_a_whole_is_one_finding_not_a_queue_of_records(digit_images):
    baseline, contribution, schema = digit_images
    faxed = _faxed(contribution)
    result = scan(baseline, faxed, schema, policy=POLICY).results["outliers"]
    n = len(faxed)
    # Most of the batch is unlike the baseline: one contribution-level finding names them all ...
    assert result.summary["in_unusual_groups"] >= outliers.MOVED_BATCH_SHARE * n
    (finding,) = result.contribution_findings
    assert finding.evidence["records"] == result.summary["in_unusual_groups"]
    # ... and records are flagged on their own at no more than the policy's rate (the old rule flagged
    # 129 of these 400): only where they are out of place among the faxed batch too.
    assert int(result.flagged.sum()) <= result.alpha * n


def test_a_lone_outlier_is_still_flagged_inside_a_moved_batch(digit_images):
    # The sender moves his whole batch so that his planted records hide among it: they are still far
    # from every batch peer, and flagged one by one.
    baseline, contribution, schema = digit_images
    result = scan(baseline, _with_lone_outliers(_faxed(contribution)), schema, policy=POLICY).results["outliers"]
    assert result.flagged[LONE].all()
    assert int(result.flagged.sum()) <= LONE.size + result.alpha * len(contribution)


def test_a_batch_that_did_not_move_keeps_the_baseline_s_rule(digit_images):
    # Without a batch-wide move, a peer keeps a record company only when it is unlike the baseline too:
    # the lone records of an ordinary batch are flagged, and clean records are not grouped.
    baseline, contribution, schema = digit_images
    result = scan(baseline, _with_lone_outliers(contribution), schema, policy=POLICY).results["outliers"]
    assert result.flagged[LONE].all()
    assert result.summary["in_unusual_groups"] == 0


def test_the_sampled_batch_peers_see_the_move_too_and_partitions_agree(digit_images, monkeypatch):
    from tests.gates.test_partitioned_scan import comparable

    baseline, contribution, schema = digit_images
    batch = _with_lone_outliers(_faxed(contribution))
    monkeypatch.setattr(outliers, "EXACT_PEERS_MAX", 300)
    monkeypatch.setattr(outliers, "PEER_SAMPLE", 350)
    sampled = scan(baseline, batch, schema, policy=POLICY)
    parted = scan(baseline, batch, schema, policy=POLICY, engine="local", partition_rows=150)
    assert comparable(parted) == comparable(sampled)
    result = sampled.results["outliers"]
    assert result.summary["batch_peers"] == {"estimated_from_sample": 350, "of": len(batch)}
    assert result.flagged[LONE].all()
    assert int(result.flagged.sum()) <= LONE.size + result.alpha * len(batch)


def test_a_minority_moved_is_a_group_only_where_its_peers_moved_too(digit_images):
    # A third of the batch faxed is not a batch that moved as a whole: the faxed records keep one
    # another company only as the baseline's density allows, as before.
    baseline, contribution, schema = digit_images
    batch = contribution.copy()
    rows = np.arange(int(0.3 * len(batch)))
    batch.iloc[rows] = _faxed(batch.iloc[rows]).to_numpy()
    result = scan(baseline, batch, schema, policy=POLICY).results["outliers"]
    unlike = result.summary["in_unusual_groups"] + int(result.flagged.sum())
    assert unlike < outliers.MOVED_BATCH_SHARE * len(batch)
