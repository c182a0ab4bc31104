"""A witness set but never written logs its failed read once per reason, and is still tried again.

An admin sets the witness to a location the server cannot write (a share not mounted yet, where a file
stands in the way): the witness is recorded, its first checkpoint does not reach it. Every process then
fails to read it, and tries again every ``WITNESS_RETRY`` (30 s). A warning every 30 s in every server
worker for days buries the log the operator reads; one warning per reason is what helps, the retries
going on at debug level.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dataward.service.checkpoints import WITNESS_REMOVALS, witness_root
from dataward.service.removal_list import WITNESS_RETRY
from dataward.service.ward import Ward
from tests.provenance.test_witness_read_retried import Clock

NOT_READ = "were not read"


def _tries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dataward.removals" and NOT_READ in r.getMessage()]


def test_a_witness_never_written_warns_once_per_reason_and_is_still_tried(
    wine_ward: Ward, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "share"
    blocker.write_text("not a folder")  # where the witness's folder should be mounted
    wine_ward.set_witness(str(blocker / "witness"))  # recorded; its first checkpoint fails
    assert wine_ward.witness()["witness"] == str(blocker / "witness")
    folder = wine_ward.folder
    wine_ward.close()
    caplog.set_level(logging.DEBUG, logger="dataward.removals")
    clock = Clock()
    ward = Ward.open(folder, clock=clock).remember_callers()  # one long-lived process, as a worker
    for _ in range(5):  # five retry intervals, requests in each
        ward.contributions("wine")
        ward.contributions("wine")
        clock.advance(seconds=WITNESS_RETRY.total_seconds() + 1)
    tries = _tries(caplog)
    assert len(tries) == 5, [r.getMessage() for r in tries]  # still tried once per interval
    assert [r.levelno for r in tries] == [logging.WARNING] + [logging.DEBUG] * 4
    # Another reason is worth a warning: the share mounted, the ward's folder on it, one of its removal
    # copies unreadable (a folder where a file should be).
    blocker.unlink()
    _fs, root = witness_root(str(blocker / "witness"), ward.ward_id)
    broken = Path(root) / WITNESS_REMOVALS / "1.jsonl"
    broken.mkdir(parents=True)
    ward.contributions("wine")
    clock.advance(seconds=WITNESS_RETRY.total_seconds() + 1)
    ward.contributions("wine")
    later = _tries(caplog)[5:]
    assert [r.levelno for r in later] == [logging.WARNING, logging.DEBUG], [r.getMessage() for r in later]
    assert later[0].getMessage() != tries[0].getMessage()
    # Readable at last: read once, and neither tried nor logged again.
    broken.rmdir()
    clock.advance(seconds=WITNESS_RETRY.total_seconds() + 1)
    for _ in range(3):
        ward.contributions("wine")
        clock.advance(seconds=WITNESS_RETRY.total_seconds() + 1)
    assert len(_tries(caplog)) == 7
