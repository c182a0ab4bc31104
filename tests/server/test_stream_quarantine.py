"""A training stream that is running when its version's records are quarantined, over real HTTP.

A quarantine is the answer to an incident: the records it names must reach no training from then on.
A stream already checked its version when it started; a revoked key already gets no further batch,
and records quarantined meanwhile must not either."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from dataward.client import HTTPWard
from dataward.domain.errors import PolicyViolation
from tests.helpers import merge_reviewed, wine_ward, write_csv
from tests.server.conftest import start_server

RECORDS = 12000


@pytest.fixture(scope="module")
def served_training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A served ward whose ``wine@v1`` (``RECORDS`` records, from one contribution) is in training;
    the admin's key and a trainer's key (reader on wine)."""
    root = tmp_path_factory.mktemp("stream-quarantine")
    ward = wine_ward(root / "ward")
    rng = np.random.default_rng(0)
    rows = [
        {"alcohol": a, "malic_acid": m, "ash": s, "magnesium": g, "proline": p, "cultivar": int(c)}
        for a, m, s, g, p, c in zip(*rng.normal(size=(5, RECORDS)).round(6), rng.integers(0, 3, RECORDS), strict=True)
    ]
    merge_reviewed(ward, ward.contribute("wine", write_csv(root / "a.csv", rows), source="a")["id"])
    ward.promote("wine@v1")
    ward.create_principal("tina")
    ward.grant("tina", "reader", "dataset:wine")
    trainer = ward.issue_key("tina")["key"]
    admin = str(ward.credential)
    ward.db.dispose()
    server, thread, _settings, url = start_server(root / "ward")
    try:
        yield url, admin, trainer
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_stream_stops_at_the_next_batch_once_its_records_are_quarantined(
    served_training: tuple[str, str, str],
) -> None:
    url, admin_key, trainer_key = served_training
    # A small receive window: the server cannot run far ahead of what the trainer has read.
    transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    trainer = HTTPWard(url, key=trainer_key, transport=transport)
    admin = HTTPWard(url, key=admin_key)

    _info, batches = trainer.stream_version("wine", "training", batch_rows=20)
    received = next(batches).num_rows
    admin.quarantine_contribution("wine#1", reason="poisoned vendor batch")
    with pytest.raises(PolicyViolation) as refused:
        for batch in batches:
            received += batch.num_rows
    assert "quarantined" in refused.value.message
    # What was already on its way is gone; nothing loaded after the quarantine is sent.
    assert received < RECORDS
    # A stream started now is refused before it begins, as before.
    with pytest.raises(PolicyViolation):
        trainer.stream_version("wine", "training")
