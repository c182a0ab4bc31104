"""A long-lived process that could not read the witness reads it again later (review of the removals change).

The insider of ``test_witness_read_gaps`` again: eve's key revoked after the backup, the backup put back,
the newer checkpoints moved aside and ``removals.jsonl`` deleted; only the witness still holds the
revocation. Here the witness is out of reach when the process first reads it (a share not mounted yet,
played by moving its folder away), and back a little later. A server worker lives for days: it must learn
what the witness holds once it is back, without paying for a failed read on every request meanwhile.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dataward.domain.errors import KeyRevoked
from dataward.service.removal_list import WITNESS_RETRY
from dataward.service.ward import Ward
from tests.provenance.test_witness_read_gaps import _revoked_in_the_witness_alone

NOT_READ = "were not read"


class Clock:
    """The ward's clock, moved by the test (from the real time: the keys were issued on it)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _failed_reads(caplog: pytest.LogCaptureFixture) -> int:
    return sum(NOT_READ in r.getMessage() for r in caplog.records if r.name == "dataward.removals")


@pytest.mark.parametrize("first_read", ["authentication", "server start"])
def test_a_witness_out_of_reach_at_first_is_read_again_and_its_removal_enforced(
    wine_ward: Ward, tmp_path: Path, caplog: pytest.LogCaptureFixture, first_read: str
) -> None:
    folder, key = _revoked_in_the_witness_alone(wine_ward, tmp_path)
    witness, away = tmp_path / "witness", tmp_path / "witness-away"
    witness.rename(away)
    clock = Clock()
    caplog.set_level(logging.WARNING, logger="dataward.removals")
    ward = Ward.open(folder, clock=clock).remember_callers()  # one process, many requests, as a worker
    if first_read == "server start":
        assert ward.take_witnessed_removals() == 0  # what a worker does before its first request
    eve = ward.as_key(key)
    # While the witness is out of reach nothing knows the revocation: eve acts (the gap the witness closes).
    assert [c["ref"] for c in eve.contributions("wine")] == ["wine#1", "wine#2"]
    clock.advance(seconds=1)
    eve.contributions("wine")
    # One failed read, not one per request.
    assert _failed_reads(caplog) == 1
    away.rename(witness)  # back
    clock.advance(seconds=WITNESS_RETRY.total_seconds() - 2)
    eve.contributions("wine")  # within the interval: not tried again yet
    assert _failed_reads(caplog) == 1
    clock.advance(seconds=2)
    with pytest.raises(KeyRevoked, match="event #"):
        eve.contributions("wine")
    # Read once it worked: it stays refused, and the witness is not read on every request.
    witness.rename(away)
    clock.advance(seconds=WITNESS_RETRY.total_seconds() * 3)
    with pytest.raises(KeyRevoked):
        ward.as_key(key).contributions("wine")
    assert _failed_reads(caplog) == 1


def test_a_witness_that_stays_out_of_reach_is_tried_once_per_interval(
    wine_ward: Ward, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, key = _revoked_in_the_witness_alone(wine_ward, tmp_path)
    (tmp_path / "witness").rename(tmp_path / "witness-away")
    clock = Clock()
    # Every try is logged: the first at warning level, the same failure again at debug level.
    caplog.set_level(logging.DEBUG, logger="dataward.removals")
    ward = Ward.open(folder, clock=clock).remember_callers()
    eve = ward.as_key(key)
    for _ in range(3):  # three intervals, many requests each (reads and a write)
        for _ in range(3):
            eve.contributions("wine")
            clock.advance(seconds=WITNESS_RETRY.total_seconds() / 4)
        ward.create_principal(f"p{clock.now.timestamp():.0f}")
        clock.advance(seconds=WITNESS_RETRY.total_seconds() / 4)
    assert _failed_reads(caplog) == 3
    assert [r.levelno for r in caplog.records if NOT_READ in r.getMessage()] == [logging.WARNING] + [logging.DEBUG] * 2
    # verify says the witness is out of reach (its checkpoints' folder is gone), as before.
    report = ward.verify()
    assert not report.ok and "witness_behind" in {p.kind for p in report.problems}


def test_a_clock_set_back_does_not_put_the_next_try_off(
    wine_ward: Ward, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The host's clock ran an hour fast when the worker's first read failed, and was then set right
    (NTP steps it back). The next try is not put off for the hour the clock went back: meanwhile the
    witness's revocation would not be enforced."""
    folder, key = _revoked_in_the_witness_alone(wine_ward, tmp_path)
    witness, away = tmp_path / "witness", tmp_path / "witness-away"
    witness.rename(away)
    clock = Clock()
    clock.advance(hours=1)
    caplog.set_level(logging.WARNING, logger="dataward.removals")
    ward = Ward.open(folder, clock=clock).remember_callers()
    eve = ward.as_key(key)
    eve.contributions("wine")  # the failed read
    assert _failed_reads(caplog) == 1
    away.rename(witness)
    clock.advance(hours=-1, seconds=WITNESS_RETRY.total_seconds() + 1)
    with pytest.raises(KeyRevoked, match="event #"):
        eve.contributions("wine")
