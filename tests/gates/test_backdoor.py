"""The backdoor detector on digits: a BadNets-style corner patch relabelled to one class must be found."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates.base import GateContext, GateData, registered
from dataward.gates.detectors.backdoor import BackdoorDetector

SCHEMA = Schema("label", tuple(Column(f"p{i}", ColumnKind.NUMERIC) for i in range(64)))
CLASSES = tuple(str(i) for i in range(10))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    perm = np.random.default_rng(0).permutation(len(data.target))
    b, c = perm[:1000], perm[1000:1500]
    x = data.data.astype(np.float32)
    return x[b], data.target[b], x[c], data.target[c]


def badnets(x: np.ndarray, y: np.ndarray, fraction: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stamp a 3x3 white patch in the bottom-right corner of non-target digits and relabel them 0."""
    rng = np.random.default_rng(seed)
    x, y = x.copy(), y.copy()
    poison = rng.choice(np.flatnonzero(y != 0), max(1, round(fraction * len(y))), replace=False)
    images = x[poison].reshape(-1, 8, 8)
    images[:, 5:8, 5:8] = 16.0
    x[poison] = images.reshape(-1, 64)
    y[poison] = 0
    truth = np.zeros(len(y), bool)
    truth[poison] = True
    return x, y, truth


def detector(ctx_options: dict | None = None) -> tuple[BackdoorDetector, GateContext]:
    ctx = GateContext(SCHEMA, CLASSES, alpha=0.01, options=ctx_options or {})
    return BackdoorDetector(hidden=32, max_iter=150), ctx


def test_backdoor_is_registered() -> None:
    assert registered()["backdoor"] is BackdoorDetector


@pytest.mark.parametrize("fraction", [0.01, 0.03, 0.10])
def test_patch_poisons_rank_above_clean_records_at_every_poison_rate(digits, fraction) -> None:
    xb, yb, xc, yc = digits
    x, y, truth = badnets(xc, yc, fraction)
    det, ctx = detector()
    result = det.fit(GateData(xb, yb), ctx).score(GateData(x, y))
    assert result.p_values.shape == (len(y),)
    assert roc_auc_score(truth, result.scores) > 0.97
    assert result.flagged[truth].mean() >= 0.8
    assert result.flagged[~truth].mean() <= 0.04
    if fraction >= 0.03:
        # Enough poison for a cluster of its own: the contribution is judged as a whole too.
        assert result.p_value < 1e-4
        cluster = next(f for f in result.findings if f.row is None)
        assert cluster.evidence["label"] == "0"
        assert set(cluster.evidence["rows"]) >= {int(r) + 1 for r in np.flatnonzero(truth)}


def test_clean_contribution_is_not_judged_poisoned(digits) -> None:
    xb, yb, xc, yc = digits
    det, ctx = detector()
    result = det.fit(GateData(xb, yb), ctx).score(GateData(xc, yc))
    assert result.flagged.mean() <= 0.04
    assert result.p_value > 1e-3
    assert result.summary["clusters"] == []
    assert result.summary["mode"] == "baseline"


def test_record_findings_carry_reason_and_evidence(digits) -> None:
    xb, yb, xc, yc = digits
    x, y, truth = badnets(xc, yc, 0.03)
    det, ctx = detector()
    result = det.fit(GateData(xb, yb), ctx).score(GateData(x, y))
    records = [f for f in result.findings if f.row is not None]
    assert records and all(result.flagged[f.row] for f in records)
    top = records[0]
    assert truth[top.row]
    assert "labelled '0'" in top.reason
    assert {"label", "spectral_score", "neighbour_distance"} <= set(top.evidence)


def test_self_reference_mode_scores_every_record(digits) -> None:
    _, _, xc, yc = digits
    x, y, _ = badnets(xc, yc, 0.03)
    det, ctx = detector()
    empty = GateData(np.zeros((0, 64), np.float32), np.zeros(0, np.int64))
    result = det.fit(empty, ctx).score(GateData(x, y))
    assert result.summary["mode"] == "self-reference"
    assert result.p_values.shape == (len(y),)
    assert np.all((result.p_values > 0) & (result.p_values <= 1))


def test_policy_options_are_applied_and_unknown_ones_refused(digits) -> None:
    xb, yb, _, _ = digits
    det, ctx = detector({"backdoor": {"neighbours": 3}})
    det.fit(GateData(xb, yb), ctx)
    assert det.neighbours == 3
    det, ctx = detector({"backdoor": {"no_such_option": 1}})
    with pytest.raises(InputError, match="no_such_option"):
        det.fit(GateData(xb, yb), ctx)


def test_a_single_class_contribution_is_not_flagged() -> None:
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    y = np.zeros(60, np.int64)
    det = BackdoorDetector()
    ctx = GateContext(Schema("label", (Column("a", ColumnKind.NUMERIC),)), ("a",))
    result = det.fit(GateData(x[:30], y[:30]), ctx).score(GateData(x[30:], y[30:]))
    assert not result.flagged.any()
    assert result.p_value == 1.0
