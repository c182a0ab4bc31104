"""What the witness read of an embedded process does and does not hold (review of the removals change).

The insider of ``test_quarantine_witnessed_embedded`` again: the catalog put back from a backup taken
before a removal, the newer kept checkpoints moved aside and ``removals.jsonl`` deleted; the witness
(set before the backup) still holds the removal's line. Here the removal is a key's revocation, and
the key is used by an embedded process, whose first use case authenticates before anything reads the
witness. And as the demanding user plays it: an object-store witness that this machine cannot reach
must not stop the reads that never needed it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dataward
from dataward.domain.errors import KeyRevoked
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.security.test_restore_removals import LIST, back_up, move_checkpoints_aside, restore


def _revoked_in_the_witness_alone(ward: Ward, tmp_path: Path) -> tuple[Path, str]:
    """eve (reader, contributor on wine) has a key; the witness is set; backup; the key is revoked
    (its line goes to the list and the witness); the backup is restored, the newer checkpoints are
    moved aside and the list is deleted. Returns the folder (closed) and eve's key."""
    ward.create_principal("eve")
    ward.grant("eve", "reader")
    ward.grant("eve", "contributor", "dataset:wine")
    key = str(ward.issue_key("eve", ttl_days=5)["key"])
    folder = ward.folder
    ward.set_witness(str(tmp_path / "witness"))
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.revoke_key(key[:11], reason="eve's key leaked")
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    (folder / LIST).unlink()
    # What a server holds on start: the witness's line.
    assert Ward.open(folder).take_witnessed_removals() == 1
    return folder, key


def test_an_embedded_load_refuses_a_key_the_witness_alone_holds_revoked(wine_ward: Ward, tmp_path: Path) -> None:
    folder, key = _revoked_in_the_witness_alone(wine_ward, tmp_path)
    with pytest.raises(KeyRevoked):
        dataward.load("wine@training", ward=Ward.open(folder).as_key(key))


def test_an_embedded_contribution_of_a_key_the_witness_alone_holds_revoked_is_not_stored(
    wine_ward: Ward, tmp_path: Path
) -> None:
    folder, key = _revoked_in_the_witness_alone(wine_ward, tmp_path)
    batch = write_csv(tmp_path / "eve.csv", wine_rows(100, 130))
    with pytest.raises(KeyRevoked):
        Ward.open(folder).as_key(key).contribute("wine", batch, source="https://eve.example/batch")
    refs = [c["ref"] for c in Ward.open(folder).contributions("wine")]
    assert refs == ["wine#1", "wine#2"], refs


def test_an_object_store_witness_out_of_reach_does_not_stop_an_embedded_load(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.s3_server import S3Unavailable, make_bucket, s3_environment, s3_server

    try:
        with s3_server() as endpoint:
            make_bucket(endpoint, "witness")
            for name, value in s3_environment(endpoint).items():
                monkeypatch.setenv(name, value)
            wine_ward.set_witness("s3://witness/ward")
            folder = wine_ward.folder
            wine_ward.close()
            assert len(dataward.load("wine@training", ward=Ward.open(folder))) == 80
    except S3Unavailable as exc:
        pytest.skip(f"no S3-compatible server: {exc}")
    # A reader's machine without the witness's credentials (the admin's and the server's have them).
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    # Before the change this read never touched the witness; the witness is only read in addition.
    assert len(dataward.load("wine@training", ward=Ward.open(folder))) == 80
    assert [c["ref"] for c in Ward.open(folder).contributions("wine")] == ["wine#1", "wine#2"]
