"""The restore drill around a quarantine made after the backup, shared by the tests of quarantines that
outlive a restored catalog."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from dataward.service.ward import Ward
from tests import helpers
from tests.helpers import merge_reviewed, write_csv
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

REASON = "the batch was poisoned"
SOURCE = "https://scrape.example/wine-c"


def quarantined_after_the_backup(
    ward: Ward,
    tmp_path: Path,
    rows: list[dict],
    *,
    quarantine: Callable[[Ward], None] | None = None,
    with_objects: bool = False,
) -> Path:
    """Back up ``ward``'s catalog (and its object store, ``with_objects``); send ``rows`` to ``wine`` as
    wine#3 from ``SOURCE``, merge it and quarantine it (``quarantine(admin)`` instead, if given, which may
    check the ward before the restore); put the backup back and move the newer kept checkpoints aside, as
    the drill says. Returns the ward's folder, closed."""
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    if with_objects:
        shutil.copytree(folder / "objects", tmp_path / "backup-objects")
    admin = Ward.open(folder)
    admin.contribute("wine", write_csv(tmp_path / "poison.csv", rows), source=SOURCE)
    merge_reviewed(admin, "wine#3")
    if quarantine is None:
        admin.quarantine_contribution("wine#3", reason=REASON)
    else:
        quarantine(admin)
    admin.close()
    restore(folder, tmp_path / "backup")
    if with_objects:
        shutil.rmtree(folder / "objects")
        shutil.copytree(tmp_path / "backup-objects", folder / "objects")
    move_checkpoints_aside(folder, tmp_path / "moved")
    helpers._REVIEWERS.pop(str(folder), None)  # the reviewer merge_reviewed made is gone with the backup
    return folder
