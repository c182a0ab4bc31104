"""The gate's trusted baseline leaves out what must never reach training: records of the training
version quarantined or rejected since it was promoted. The loader refused that version while the gate
still judged new batches against it, so poison like a quarantined batch looked normal."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from tests.helpers import merge_reviewed, wine_rows, wine_ward, write_csv


def test_quarantined_records_leave_the_trusted_baseline(tmp_path: Path) -> None:
    ward = wine_ward(tmp_path / "ward")
    a = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a")
    merge_reviewed(ward, a["ref"])
    b = ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(60, 120)), source="b")
    version = merge_reviewed(ward, b["ref"])
    ward.promote(f"wine@v{version['number']}", reason="ok")
    ward.quarantine_contribution(b["ref"], reason="leaked key")
    judged = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(120, 150)), source="c")
    trusted = ward.gate_report(judged["ref"])["trusted"]
    assert trusted["records"] == 60 and trusted["left_out"] == 60
    assert "without its 60 records quarantined" in trusted["note"]
    # Nothing trusted left: the gate refuses rather than judge against poison.
    ward.quarantine_contribution(a["ref"], reason="same vendor")
    with pytest.raises(PolicyViolation, match="nothing to judge against"):
        ward.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(150, 170)), source="d")
