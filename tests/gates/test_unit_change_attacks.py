"""The attacker's side of the wholesale reading (``backdoor``): a class misread wholesale is read once
more with the batch's change undone, so a sender who controls every class tries to set a change that
carries relabelled content home.

The sender replaces every 'a' of the batch with 'b' content and moves each other class by ``b - a``:
the offset every class then votes for is ``b - a`` (the relabelled 'a's vote for it too), and undoing
it lands the 'b' content on the trusted 'a's, spreading like them. Only a column in another unit may
explain a class misread wholesale, so an offset alone explains nothing there.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates.base import GateContext, GateData
from dataward.gates.detectors import backdoor as backdoor_module
from dataward.gates.detectors.backdoor import BackdoorDetector

ALPHA = 0.01
CLASSES = ("a", "b", "c")
APART = np.array([[1.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 6.0, 0.0]])
"""'a' and 'b' apart on column 0 only, 'c' far away on another column."""
TABLE = Schema("label", tuple(Column(f"f{i}", ColumnKind.NUMERIC) for i in range(4)))
IMAGES = Schema("label", (Column("image", ColumnKind.IMAGE),))


def _apart(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat(np.arange(3), n_per_class)
    return (APART[y] + rng.normal(0.0, 0.3, (y.size, 4))).astype(np.float32), y


def _run(schema: Schema, xb: np.ndarray, yb: np.ndarray, xc: np.ndarray, yc: np.ndarray):
    ctx = GateContext(schema, CLASSES, alpha=ALPHA)
    det = BackdoorDetector().fit(GateData(xb, yb, _table(xb)), ctx)
    return det.score(GateData(xc, yc, _table(xc)))


def _table(x: np.ndarray) -> pa.Table:
    return pa.table({f"p{i}": x[:, i] for i in range(x.shape[1])})


def _relabelled_wholesale(seed: int, n_per_class: int, gain: float = 1.0) -> tuple[np.ndarray, ...]:
    """Trusted records, and a batch whose 'a's are all 'b' content while 'b' and 'c' go through
    ``x -> gain x + (b - gain a)`` on column 0; the 'b' content's column 0 is widened by ``gain``
    so that, undone, it spreads like the trusted 'a's."""
    rng = np.random.default_rng(seed)
    xb, yb = _apart(300, rng)
    xc, yc = _apart(n_per_class, rng)
    sent = xc.copy()
    others = yc != 0
    sent[others, 0] = gain * xc[others, 0] + (APART[1, 0] - gain * APART[0, 0])
    relabelled = APART[1] + rng.normal(0.0, 0.3, (n_per_class, 4))
    relabelled[:, 0] = APART[1, 0] + gain * rng.normal(0.0, 0.3, n_per_class)
    sent[~others] = relabelled
    return xb, yb, sent.astype(np.float32), yc


@pytest.mark.parametrize("schema", [TABLE, IMAGES], ids=["table", "image features"])
@pytest.mark.parametrize("n_per_class", [15, 60])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relabelled_content_carried_home_by_an_offset_the_other_classes_share_is_blocked(
    monkeypatch, seed, n_per_class, schema
):
    """Every 'a' is 'b' content; 'b' and 'c' moved by b - a. The change (gain 1, offset b - a) set by
    all three classes would carry every relabelled record onto the trusted 'a's: it explains nothing
    of a class misread wholesale, so the batch is blocked and nothing is excused. It was passed at
    every one of these seeds when an offset could explain a class misread wholesale."""
    xb, yb, sent, yc = _relabelled_wholesale(seed, n_per_class)
    result = _run(schema, xb, yb, sent, yc)
    assert result.block is True
    undone = result.summary["sensor_change"]
    assert undone is None or undone["excused"] == 0
    # The control: with the change not estimated at all, the batch is blocked too.
    monkeypatch.setattr(backdoor_module, "estimate_sensor_change", lambda *args, **kwargs: None)
    assert _run(schema, xb, yb, sent, yc).block is True


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_offset_beside_a_decoy_column_in_another_unit_does_not_carry_relabelled_content_home(seed):
    """The same batch, with column 3 (where no class differs) tripled in every record, the relabelled
    'a's too: a genuine column of its own gain (2.6 to 3.7 here), beside the offset b - a on column 0.
    Only the scaled column may explain the 'a's misread wholesale, and undone through it alone they
    still read as 'b'. Every relabelled record was excused, and the batch passed, while the decoy made
    the change one in another unit."""
    xb, yb, sent, yc = _relabelled_wholesale(seed, 15)
    sent[:, 3] *= 3.0
    result = _run(TABLE, xb, yb, sent, yc)
    assert result.block is True
    undone = result.summary["sensor_change"]
    assert undone is not None and undone["feature_gains"][3] > 2.0 and undone["excused"] == 0


def _widened(seed: int, slope: float, widen: float) -> tuple[np.ndarray, ...]:
    """As ``_relabelled_wholesale``, but every class's column 0 is widened by ``widen`` about its own
    centre (so that every class agrees the column was scaled) while the classes' centres move by
    ``slope`` and the offset that puts a moved 'a' on 'b'."""
    rng = np.random.default_rng(seed)
    xb, yb = _apart(300, rng)
    xc, yc = _apart(15, rng)
    sent = xc.copy()
    others = yc != 0
    centre = APART[yc[others], 0]
    offset = APART[1, 0] - slope * APART[0, 0]
    sent[others, 0] = slope * centre + offset + widen * (xc[others, 0] - centre)
    relabelled = APART[1] + rng.normal(0.0, 0.3, (15, 4))
    relabelled[:, 0] = APART[1, 0] + widen * rng.normal(0.0, 0.3, 15)
    sent[~others] = relabelled
    return xb, yb, sent.astype(np.float32), yc


@pytest.mark.parametrize(("slope", "widen"), [(1.0, 1.8), (1.2, 2.0)])
@pytest.mark.parametrize("seed", [0, 2, 3])
def test_relabelled_content_behind_a_column_every_class_widened_is_blocked(seed, slope, widen):
    """Every class's column 0 widened by about two, so that each class agrees it was scaled and the
    column keeps a gain of its own, while the classes' medians moved by b - a give it a slope near 1
    (0.98 to 1.41 at these seeds): a gain so near 1 is no unit, and its offset explains nothing of a
    class misread wholesale. Seeds 2 and 3 passed while any gain of a column's own could."""
    xb, yb, sent, yc = _widened(seed, slope, widen)
    result = _run(TABLE, xb, yb, sent, yc)
    assert result.block is True
    assert result.summary["sensor_change"] is None or result.summary["sensor_change"]["excused"] == 0


@pytest.mark.xfail(
    strict=True,
    reason="known gap: 'b' content widened by 1.6 and every other class scaled by 1.6 about a point of "
    "the sender's choosing is, up to the spreads, a batch in another unit",
)
def test_relabelled_content_behind_a_gain_every_class_agrees_on_is_blocked():
    """The sender scales column 0 of 'b' and 'c' by 1.6 with an offset that puts a scaled 'a' on 'b',
    and widens the relabelled 'b' content by 1.6: every class agrees the column was scaled, and the
    'a's, undone, read and spread like trusted 'a's. Blocked at four seeds of six; not at seed 2."""
    xb, yb, sent, yc = _relabelled_wholesale(2, 15, gain=1.6)
    assert _run(TABLE, xb, yb, sent, yc).block is True
