"""A training run whose model is refused when the block ends (its data quarantined meanwhile) ends as
failed, with the reason, instead of staying "running" with nothing left to finish it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

import dataward
from dataward.domain.errors import PolicyViolation
from tests.helpers import NO_APPROVALS_POLICY, wine_training_ward


def test_a_run_refused_at_the_end_of_its_block_is_recorded_as_failed(tmp_path: Path) -> None:
    ward = wine_training_ward(tmp_path, NO_APPROVALS_POLICY, 60)
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    with (
        pytest.raises(PolicyViolation, match="must never reach training"),
        dataward.training_run("wine@training", model="wine-clf", ward=ward) as run,
    ):
        run.load()
        ward.quarantine_contribution("wine#1", reason="its source was compromised")
        run.log_artifact(artifact)
    with ward.db.reading() as conn:
        status = conn.execute(text("SELECT status FROM training_runs WHERE id = :i"), {"i": run.run_id}).scalar()
    assert status == "failed"
    failed = [e for e in ward.ledger(newest_first=True) if e["type"] == "training.failed"]
    assert failed and "refused at finish" in str(failed[0]["payload"])
