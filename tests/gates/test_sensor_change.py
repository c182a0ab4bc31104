"""A batch-wide sensor change (one gain, one offset per feature): estimated from the classes' majority,
undone before ``backdoor`` reads a misread record of a moved class once more.

The attacker's side: a change set by one class alone (relabelled records moving their class) is not a
sensor change, and records whose content is another class's stay misread after the change is undone.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dataward.gates.base import GateContext, GateData
from dataward.gates.detectors import _sensor as sensor_module
from dataward.gates.detectors import backdoor as backdoor_module
from dataward.gates.detectors._sensor import MIN_CLASSES, estimate_sensor_change
from dataward.gates.detectors.backdoor import BackdoorDetector
from tests.gates.test_backdoor import ALPHA, GAUSS_SCHEMA, _around, _run_blobs, table

DIMS = 6
CENTRES = np.array([[0.0] * DIMS, [3.0] + [0.0] * (DIMS - 1), [0.0, 3.0] + [0.0] * (DIMS - 2)])
GAIN, OFFSET = 0.7, np.array([0.9, -0.4, 0.2, 0.0, 0.1, -0.3])


def _draw(
    centres: np.ndarray, n_per_class: int, rng: np.random.Generator, classes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` records around each of the first ``classes`` centres (spread 0.6), and their labels."""
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + rng.normal(0.0, 0.6, (y.size, centres.shape[1]))).astype(np.float32), y


def _blobs(n_per_class: int, rng: np.random.Generator, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return _draw(CENTRES, n_per_class, rng, classes)


def test_the_gain_and_offset_of_a_sensor_are_recovered_and_undone() -> None:
    rng = np.random.default_rng(0)
    xb, yb = _blobs(400, rng)
    xc, yc = _blobs(400, rng)
    change = estimate_sensor_change(xb, yb, GAIN * xc + OFFSET, yc)
    assert change is not None and change.classes == 3
    assert change.gain == pytest.approx(GAIN, rel=0.08)
    assert np.abs(change.offset - OFFSET).max() < 0.15
    undone = change.undo((GAIN * xc + OFFSET).astype(np.float32))
    assert undone.dtype == np.float32
    assert np.abs(undone.mean(axis=0) - xc.mean(axis=0)).max() < 0.2


def test_an_unchanged_batch_gives_no_change_to_speak_of() -> None:
    rng = np.random.default_rng(1)
    xb, yb = _blobs(400, rng)
    xc, yc = _blobs(400, rng)
    change = estimate_sensor_change(xb, yb, xc, yc)
    assert change is not None
    assert change.gain == pytest.approx(1.0, abs=0.08) and np.abs(change.offset).max() < 0.15


@pytest.mark.parametrize("classes", range(1, MIN_CLASSES))
def test_with_fewer_than_three_classes_nothing_is_estimated(classes) -> None:
    """A one- or two-class batch cannot tell a sensor from its classes' own moves."""
    rng = np.random.default_rng(2)
    xb, yb = _blobs(200, rng)
    xc, yc = _blobs(200, rng, classes)
    assert estimate_sensor_change(xb, yb, GAIN * xc + OFFSET, yc) is None


def test_classes_that_only_spread_out_give_no_change_to_undo() -> None:
    """The attacker's side: every class of the batch spread out about its own centre (a gain estimate
    of 3) while staying where it was. Undoing that would carry records towards some other place, not
    home, so nothing is undone."""
    rng = np.random.default_rng(6)
    xb, yb = _blobs(300, rng)
    xc, yc = _blobs(300, rng)
    xc = CENTRES[yc] + 3.0 * (xc - CENTRES[yc])
    assert estimate_sensor_change(xb, yb, xc.astype(np.float32), yc) is None


def test_classes_moved_each_their_own_way_are_not_carried_home() -> None:
    """Three classes moved in three directions: there is no change they share, so undoing whatever is
    estimated carries none of them back (each stays about as far from its trusted records)."""
    rng = np.random.default_rng(7)
    xb, yb = _blobs(300, rng)
    xc, yc = _blobs(300, rng)
    moves = np.array([[2.0, 0, 0, 0, 0, 0], [0, -2.0, 0, 0, 0, 0], [0, 0, 0, 2.0, 0, 0]], np.float32)
    moved = xc + moves[yc]
    change = estimate_sensor_change(xb, yb, moved, yc)
    undone = moved if change is None else change.undo(moved)
    for code in range(3):
        home = np.median(xb[yb == code], axis=0)
        before = np.linalg.norm(np.median(moved[yc == code], axis=0) - home)
        after = np.linalg.norm(np.median(undone[yc == code], axis=0) - home)
        assert after > 0.8 * before


def test_one_class_moved_on_its_own_does_not_set_the_change() -> None:
    """The attacker's side: a whole class of the batch moved (its records replaced by another class's
    content) is outvoted by the other classes, so undoing the 'change' does not carry it home."""
    rng = np.random.default_rng(3)
    xb, yb = _blobs(300, rng)
    xc, yc = _blobs(300, rng)
    xc[yc == 0] += np.array([3.0] + [0.0] * (DIMS - 1), np.float32)  # 'a' labels on 'b'-like content
    change = estimate_sensor_change(xb, yb, xc, yc)
    assert change is not None
    assert change.gain == pytest.approx(1.0, abs=0.1) and np.abs(change.offset).max() < 0.3


def _no_within_batch_excuse(monkeypatch) -> None:
    """Only the sensor change may excuse a record in these tests (the batch's own reading stays off)."""
    monkeypatch.setattr(
        backdoor_module,
        "reads_as_own_within_batch",
        lambda contribution, candidates, *args: np.zeros(len(contribution), bool),
    )


SCENE = np.array([[0.0, 0.0, 0.0, 0.0], [2.2, 0.0, 0.0, 0.0], [0.0, 10.0, 0.0, 0.0]])
"""'a' at the origin, 'b' beside it, 'c' far away: a darker sensor brings 'b' into 'a' and no other class
into another (as a darker camera brings bright skies to dark gardens), so the rest of the batch reads
like the baseline and a group of 'b's misread as 'a' could be singled out."""
DARKER = 0.7


def _scene(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _draw(SCENE, n_per_class, rng)


def test_a_darker_sensor_that_moves_a_class_into_another_is_not_blocked(monkeypatch) -> None:
    """Against the trusted records many darker 'b's read as 'a'; with the shared change undone, they
    read as 'b' again. Without the undoing (the control), the same batch is blocked."""
    rng = np.random.default_rng(4)
    xb, yb = _scene(300, rng)
    xc, yc = _scene(150, rng)
    _no_within_batch_excuse(monkeypatch)
    result = _run_blobs(xb, yb, DARKER * xc, yc)
    assert result.block is False and result.block_reason is None
    assert result.flagged.sum() == 0
    undone = result.summary["sensor_change"]  # what the reviewer reads: the change, and what it excused
    assert undone["gain"] == pytest.approx(DARKER, rel=0.1) and undone["classes"] == 3
    assert 0 < undone["excused"] <= undone["candidates"]
    monkeypatch.setattr(backdoor_module, "estimate_sensor_change", lambda *args, **kwargs: None)
    assert _run_blobs(xb, yb, DARKER * xc, yc).block is True


@pytest.mark.parametrize("through_sensor", [True, False], ids=["poison-through-sensor", "only-clean-through-sensor"])
def test_relabelled_records_behind_a_darker_sensor_are_still_blocked(monkeypatch, through_sensor) -> None:
    """The attacker's side: 'b' content labelled 'a', sent through the same sensor, or left as it was
    while every clean record goes through it (so that undoing the change moves the poison instead).
    Either way its content is 'b's, so it stays misread and is blocked."""
    _no_within_batch_excuse(monkeypatch)
    rng = np.random.default_rng(5)
    xb, yb = _scene(300, rng)
    xc, yc = _scene(150, rng)
    poison = rng.choice(np.flatnonzero(yc == 1), 40, replace=False)
    yc[poison] = 0
    sent = DARKER * xc
    if not through_sensor:
        sent[poison] = xc[poison]
    result = _run_blobs(xb, yb, sent, yc)
    assert result.block is True
    # Flags come from the trusted reading (undoing the change only ever excuses): 17 and 32 of the 40,
    # the same as with no change undone, and no clean record.
    assert result.flagged[poison].mean() >= 0.4
    assert result.flagged[np.setdiff1d(np.arange(yc.size), poison)].mean() <= ALPHA


def _relabelled_b_records(rng: np.random.Generator, count: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scene's batch with ``count`` 'b' records labelled 'a' (content untouched), and their mask."""
    xc, yc = _scene(150, rng)
    poison = np.zeros(yc.size, bool)
    poison[rng.choice(np.flatnonzero(yc == 1), count, replace=False)] = True
    yc[poison] = 0
    return xc, yc, poison


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_classes_of_three_moved_by_the_sender_do_not_carry_relabelled_records_home(monkeypatch, seed) -> None:
    """The attacker's side: the sender moves the clean 'a' and 'c' records by 0.8 (b - a) and leaves
    'b' and its 'b' records labelled 'a' as they were. Two classes of three set the median, so the
    'change' is that move; undone, it carries the relabelled 'b's over to 'a' while 'b' itself never
    moved. Blocked without the undoing (the control), so it must be blocked with it."""
    rng = np.random.default_rng(seed)
    xb, yb = _scene(300, rng)
    xc, yc, poison = _relabelled_b_records(rng)
    sent = xc.copy()
    sent[(yc == 0) & ~poison] += 0.8 * (SCENE[1] - SCENE[0])
    sent[yc == 2] += 0.8 * (SCENE[1] - SCENE[0])
    result = _run_blobs(xb, yb, sent, yc)
    assert result.block is True and result.flagged[poison].mean() >= 0.4
    monkeypatch.setattr(backdoor_module, "estimate_sensor_change", lambda *args, **kwargs: None)
    assert _run_blobs(xb, yb, sent, yc).block is True


FIVE = np.vstack([SCENE, [[0.0, 0.0, 10.0, 0.0], [0.0, 0.0, 0.0, 10.0]]])
"""The scene with two more far-away classes: a baseline of five classes."""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_classes_of_ten_records_do_not_set_the_change_for_the_batch(monkeypatch, seed) -> None:
    """The attacker's side: a batch of 'a' and 'b' (20 'b' records labelled 'a', the clean 'a's nudged
    0.3 towards 'b') plus ten records each of 'c', 'd', 'e', moved by (b - a). Thirty throwaway records
    are three classes of five, so they set the median; undoing their move carries the relabelled 'b's
    to 'a'. Blocked without the undoing (the control), so it must be blocked with it."""
    rng = np.random.default_rng(seed)
    xb = (FIVE[np.repeat(np.arange(5), 300)] + rng.normal(0.0, 0.6, (1500, 4))).astype(np.float32)
    yb = np.repeat(np.arange(5), 300)
    xc, yc = _scene(150, rng)
    keep = yc < 2
    xc, yc = xc[keep], yc[keep]
    poison = np.zeros(yc.size, bool)
    poison[rng.choice(np.flatnonzero(yc == 1), 20, replace=False)] = True
    yc[poison] = 0
    xc[(yc == 0) & ~poison, 0] += 0.3
    y_few = np.repeat([2, 3, 4], 10)
    x_few = FIVE[y_few] + (SCENE[1] - SCENE[0]) + rng.normal(0.0, 0.6, (30, 4))
    sent = np.vstack([xc, x_few]).astype(np.float32)
    labels, poison = np.concatenate([yc, y_few]), np.concatenate([poison, np.zeros(30, bool)])

    def run() -> object:
        ctx = GateContext(GAUSS_SCHEMA, ("a", "b", "c", "d", "e"), alpha=ALPHA)
        det = BackdoorDetector().fit(GateData(xb, yb, table(xb)), ctx)
        return det.score(GateData(sent, labels, table(sent)))

    result = run()
    assert result.block is True and result.flagged[poison].mean() >= 0.4
    monkeypatch.setattr(backdoor_module, "estimate_sensor_change", lambda *args, **kwargs: None)
    assert run().block is True


def test_an_empty_side_gives_no_change() -> None:
    rng = np.random.default_rng(8)
    xb, yb = _blobs(100, rng)
    assert estimate_sensor_change(xb, yb, xb[:0], yb[:0]) is None


# --- a column in another unit (a gain per column of a table) ---------------------------------------

UNIT = 4.0
"""Column 0 written in another unit: every value four times what the baseline's instrument gives."""

APART = np.array([[1.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 6.0, 0.0]])
"""'a' and 'b' apart on column 0 only, 'c' far away on another column: column 0 in the new unit
carries every 'a' onto the trusted 'b's (1 x 4 = 4) and 'b' far beyond (16), as millimetres carry
setosa's petals onto virginica's."""


def _apart(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _around(APART, 0.3, n_per_class, rng)


def _in_new_unit(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, 0] *= UNIT
    return out


def test_one_column_in_another_unit_keeps_its_own_gain_and_the_others_keep_theirs() -> None:
    rng = np.random.default_rng(20)
    xb, yb = _apart(300, rng)
    xc, yc = _apart(60, rng)
    change = estimate_sensor_change(xb, yb, _in_new_unit(xc), yc, per_feature_gain=True)
    assert change is not None and change.feature_gain is not None
    assert change.feature_gain[0] == pytest.approx(UNIT, rel=0.05)
    np.testing.assert_allclose(change.feature_gain[1:], 1.0)
    undone = change.undo(_in_new_unit(xc))
    for code in range(3):
        assert np.abs(np.median(undone[yc == code], axis=0) - APART[code]).max() < 0.15
    assert re.search(r": feature 0 x(3\.9\d|4\.0\d) scaled, every other feature by 1,", change.describe())
    assert re.search(r": f0 x(3\.9\d|4\.0\d) scaled", change.describe(["f0", "f1", "f2", "f3"]))
    # One gain for every feature (image and text features) cannot undo one column's unit.
    shared = estimate_sensor_change(xb, yb, _in_new_unit(xc), yc)
    assert shared is None or (shared.feature_gain is None and shared.gain < 2.0)


def test_columns_that_were_not_scaled_keep_gain_one_however_their_rounded_spreads_scatter() -> None:
    """Fifteen records a class, values rounded to 0.1 as iris measurements are: spread ratios scatter,
    and undoing that scatter would stretch columns nothing happened to."""
    rng = np.random.default_rng(21)
    xb, yb = _apart(40, rng)
    for seed in range(10):
        xc, yc = _apart(15, np.random.default_rng(seed))
        change = estimate_sensor_change(np.round(xb, 1), yb, np.round(xc, 1), yc, per_feature_gain=True)
        assert change is None or np.all(change.feature_gain == 1.0), seed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_class_carried_wholesale_onto_another_by_a_column_in_another_unit_is_not_blocked(monkeypatch, seed):
    """Every 'a' of a small batch reads as 'b' against the trusted records, and none is left to show
    among the batch that 'a' moved. Undone column by column, they read as 'a' again: review, not a
    backdoor. Without the change (the control), the same batch is blocked."""
    rng = np.random.default_rng(seed)
    xb, yb = _apart(300, rng)
    xc, yc = _apart(15, rng)
    sent = _in_new_unit(xc)
    result = _run_blobs(xb, yb, sent, yc)
    assert result.block is False and result.flagged.sum() == 0
    undone = result.summary["sensor_change"]
    assert undone["feature_gains"][0] == pytest.approx(UNIT, rel=0.1) and undone["excused"] >= 10
    monkeypatch.setattr(backdoor_module, "estimate_sensor_change", lambda *args, **kwargs: None)
    assert _run_blobs(xb, yb, sent, yc).block is True


@pytest.mark.parametrize("guard", ["both", "agreement only", "spread only"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relabelled_content_left_out_of_a_unit_change_every_other_class_went_through_is_blocked(
    monkeypatch, seed, guard
):
    """The attacker's side: every 'a' of the batch is 'b' content relabelled, left in the old unit,
    while the clean 'b's and 'c's go through the new one. Two guards stop the change (column 0 x4)
    from carrying the relabelled records onto the trusted 'a's, and each holds alone: column 0 keeps
    a gain of its own only when every class agrees it was scaled ('a', unscaled, does not); and undone,
    'a' would be four times too tight in column 0, with nothing of 'a' left to vouch for the change."""
    if guard == "spread only":  # every class "agrees" on any ratio: the median slope, 4, is taken
        monkeypatch.setattr(sensor_module, "OWN_GAIN_FACTOR", 0.99)
    if guard == "agreement only":
        monkeypatch.setattr(backdoor_module, "spreads_like", lambda *args, **kwargs: True)
    rng = np.random.default_rng(seed)
    xb, yb = _apart(300, rng)
    xc, yc = _apart(15, rng)
    sent = _in_new_unit(xc)
    relabelled = yc == 0
    sent[relabelled] = APART[1] + rng.normal(0.0, 0.3, (int(relabelled.sum()), 4)).astype(np.float32)
    result = _run_blobs(xb, yb, sent, yc)
    assert result.block is True
    assert result.summary["sensor_change"] is None or result.summary["sensor_change"]["excused"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relabelled_content_sent_through_the_same_unit_change_is_still_blocked(seed):
    """The attacker's side: 20 'b' records relabelled 'a' go through the new unit with everything else
    (column 0 near 16). Undone, they read as 'b' again, so they stay misread; and the 'a's, misread
    wholesale, are not explained by a change that leaves some of them reading as 'b'."""
    rng = np.random.default_rng(seed)
    xb, yb = _apart(300, rng)
    xc, yc = _apart(60, rng)
    poison = rng.choice(np.flatnonzero(yc == 1), 20, replace=False)
    yc[poison] = 0
    result = _run_blobs(xb, yb, _in_new_unit(xc), yc)
    assert result.block is True
    assert result.flagged[poison].mean() >= 0.5
