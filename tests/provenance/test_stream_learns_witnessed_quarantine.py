"""A running stream stops once its process learns a quarantine from the witness, not only when the ledger moves.

The insider of ``test_quarantine_witnessed_embedded``: wine#1 quarantined, the catalog put back from a
backup taken before it, the newer checkpoints moved aside and ``removals.jsonl`` deleted; only the witness
holds the quarantine. The witness is out of reach when a long-lived process (a server worker) starts a
training stream of wine@training, so the stream starts. The witness comes back and the process reads it
(``WITNESS_RETRY`` later, on the stream's own next batch): from then on it knows wine#1 is quarantined,
though the ledger did not move. The stream must send none of wine#1's records after that.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.removal_list import WITNESS_RETRY
from dataward.service.ward import Ward
from tests.provenance.test_quarantine_witnessed_embedded import _list_and_catalog_rolled_back
from tests.provenance.test_witness_read_retried import Clock


def test_a_running_stream_stops_once_the_witness_read_again_holds_its_records_quarantined(
    wine_ward: Ward, tmp_path: Path
) -> None:
    folder = _list_and_catalog_rolled_back(wine_ward, tmp_path)
    witness, away = tmp_path / "witness", tmp_path / "witness-away"
    witness.rename(away)  # a share not mounted when the worker starts
    clock = Clock()
    ward = Ward.open(folder, clock=clock).remember_callers()
    _info, batches = ward.stream_version("wine", "training", batch_rows=10)
    received = next(batches).num_rows  # nothing known of the quarantine yet: the gap the witness closes
    away.rename(witness)
    clock.advance(seconds=WITNESS_RETRY.total_seconds() + 1)
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#1"):
        for batch in batches:
            received += batch.num_rows
    assert received == 10, received  # wine@v2 holds 80 records, 60 of them wine#1's
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#1"):
        ward.stream_version("wine", "training")
