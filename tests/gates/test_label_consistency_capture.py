"""label_consistency reads a batch from a scanner of lower resolution against trusted images captured the same way.

The benign side: clean digits captured at 4x4 and stored upsampled to 8x8 (an old scanner). Read against the
trusted images as they are, blurred '1's read as '8's: at seed 7 of the outside trial 122 of 539 clean records
were flagged and the batch was blocked by ``label_consistency`` alone. Read against the trusted images taken
through the same capture, they read as what they are.

The attacker's side: relabelled digits sent through the same scanner read as new content against the trusted
images as they are (they resemble no trusted class), so none of them was flagged and the batch went to review
with nothing queued. Against the captured trusted images they read as the class they came from, and are
flagged. Records that never went through the capture (sharp ones among blurred) keep their first reading: read
against blurred trusted images they would resemble no class and pass for any label.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from benchmarks import outside_trial
from dataward.gates import scan
from dataward.gates.detectors import label_consistency
from dataward.gates.report import GateReport
from tests.gates.test_low_resolution import _scanned


def _without_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(label_consistency, "batch_capture", lambda *args, **kwargs: None)


def _clean_scan(seed: int, **policy: object) -> GateReport:
    base, validation, batch, schema = outside_trial.digits_low_res(seed)
    return scan(base, batch, schema, validation, {"seed": seed, **policy})


def relabelled_pool(seed: int, source: str, target: str, share: float):
    """The outside trial's digits split at ``seed``, the first ``share`` of the pool's ``source`` digits
    sent as ``target``: ``(baseline, validation, pool, schema, poisoned)``, the images as they are."""
    frame, schema = outside_trial.digits()
    base, validation, pool, _ = outside_trial.split(frame, seed)
    rows = np.flatnonzero(pool["label"].to_numpy() == source)
    rows = rows[: round(share * rows.size)]
    pool.loc[rows, "label"] = target
    return base, validation, pool, schema, np.isin(np.arange(len(pool)), rows)


@cache
def _relabelled(seed: int, source: str, target: str, share: float, sharp: bool = False):
    """``relabelled_pool`` with every image through the 4x4 scanner but the relabelled ones when ``sharp``.
    Returns the scan's arguments and the relabelled rows."""
    base, validation, pool, schema, poisoned = relabelled_pool(seed, source, target, share)
    batch = _scanned(pool, poisoned if sharp else None)
    return (base, batch, schema, validation, {"seed": seed}), poisoned


ALONE = {"detectors": ["label_consistency"]}
"""A scan of ``label_consistency`` alone (its alpha is then the policy's whole alpha, not a share of it)."""


def _alone(args: tuple) -> tuple:
    *rest, policy = args
    return (*rest, policy | ALONE)


AS_IN_THE_GATE = ALONE | {"alpha": 0.01 / 3}
"""``label_consistency`` alone at the share of the default alpha it gets in the whole gate (three detectors
flag records): its flags are then the whole gate's ``label_consistency`` flags, at a third of the cost."""


def _as_in_the_gate(args: tuple) -> tuple:
    *rest, policy = args
    return (*rest, policy | AS_IN_THE_GATE)


def test_clean_digits_blocked_by_their_blur_alone_are_reviewed() -> None:
    report = _clean_scan(7)
    result = report.results["label_consistency"]
    capture = result.summary["capture"]
    assert capture is not None and capture["scale"] == 0.5, capture
    assert capture["flagged_before"] > 100 and capture["flagged_after"] <= 5, capture
    assert not result.block and report.verdict == "review", report.reasons
    said = result.reason
    assert "read against the trusted images taken through the batch's capture" in said
    assert f"{capture['flagged_before']} flagged against the trusted images as they are" in said


def test_without_the_captured_reading_the_clean_blurred_digits_are_blocked(monkeypatch) -> None:
    """The case the reading guards: the same batch, read against the trusted images as they are."""
    _without_capture(monkeypatch)
    report = _clean_scan(7, detectors=["label_consistency"])
    assert report.verdict == "block"
    assert report.results["label_consistency"].flagged.sum() > 100


@pytest.mark.parametrize(("source", "target", "share"), [("3", "8", 0.3), ("9", "5", 0.2)])
def test_flips_hidden_behind_the_scanner_are_flagged(source: str, target: str, share: float, monkeypatch) -> None:
    args, poisoned = _relabelled(0, source, target, share)
    args = _as_in_the_gate(args)
    result = scan(*args).results["label_consistency"]
    flagged = np.asarray(result.flagged, bool)
    assert result.summary["capture"] is not None
    # Two in five of the relabelled digits or more are flagged, and no clean record with them.
    assert (flagged & poisoned).sum() >= 0.4 * poisoned.sum(), (int((flagged & poisoned).sum()), int(poisoned.sum()))
    assert not (flagged & ~poisoned).any()
    # Against the trusted images as they are, none of them was flagged.
    _without_capture(monkeypatch)
    assert not (np.asarray(scan(*args).results["label_consistency"].flagged, bool) & poisoned).any()


def test_sharp_flips_among_blurred_digits_keep_their_first_reading() -> None:
    """'8's sent sharp as '1' among digits through the scanner: they did not go through the capture, are not
    read against the blurred trusted images, and are flagged as they were; ``label_consistency`` alone blocks."""
    args, poisoned = _relabelled(7, "8", "1", 0.6, sharp=True)
    report = scan(*args)
    result = report.results["label_consistency"]
    capture = result.summary["capture"]
    assert capture is not None and capture["not_through"] >= poisoned.sum(), capture
    flagged = np.asarray(result.flagged, bool)
    assert (flagged & poisoned).sum() >= 0.6 * poisoned.sum()
    assert report.verdict == "block"


def test_every_record_taken_for_captured_would_let_sharp_flips_pass(monkeypatch) -> None:
    """The went-through test is what keeps sharp flips flagged: read against the blurred trusted images,
    fewer of them are flagged."""
    args, poisoned = _alone(_relabelled(7, "8", "1", 0.6, sharp=True)[0]), _relabelled(7, "8", "1", 0.6, sharp=True)[1]
    kept = int((np.asarray(scan(*args).results["label_consistency"].flagged, bool) & poisoned).sum())
    monkeypatch.setattr(
        label_consistency, "went_through", lambda capture, table, column, positions, mode: np.ones(len(positions), bool)
    )
    lost = int((np.asarray(scan(*args).results["label_consistency"].flagged, bool) & poisoned).sum())
    assert lost < kept, (lost, kept)
