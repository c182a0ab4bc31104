"""The guarded loader: training code reads only data that passed the policy, embedded and through a server.

Each refusal is played for real: a version in the wrong stage, one holding a quarantined contribution,
a record edited behind the ward's back, a ledger event rewritten in the catalog, a caller who may not
read the data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import dataward
from dataward.client.http import HTTPWard
from dataward.domain.errors import AccessDenied, InputError, IntegrityViolation, PolicyViolation
from dataward.service.recordstore import parquet_to_table
from dataward.service.ward import Ward
from tests.security.test_guarded_reads import damage_in_place, flip_label, make_ward, sql, where
from tests.server.conftest import start_server


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ward = make_ward(tmp_path_factory.mktemp("template"))
    ward.db.dispose()
    return ward.folder


@pytest.fixture
def ward(template: Path, tmp_path: Path) -> Ward:
    """wine@v1 is training (40 records), wine@v2 a candidate (80 records): a copy of one ward per test."""
    shutil.copytree(template, tmp_path / "ward")
    return Ward.open(tmp_path / "ward")


@pytest.fixture
def served(ward: Ward) -> Iterator[HTTPWard]:
    server, thread, _, url = start_server(ward.folder)
    admin = (ward.folder / "credentials").read_text().strip()
    try:
        with HTTPWard(url, key=admin) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_training_version_in_every_format(ward: Ward) -> None:
    df = dataward.load("wine@training", ward=ward)
    assert isinstance(df, pd.DataFrame) and len(df) == 40 and df.columns[0] == "record_id"
    table = dataward.load("wine", format="arrow", ward=ward)  # a bare name means its training version
    assert isinstance(table, pa.Table) and table.num_rows == 40
    torch_ds = dataward.load("wine@training", format="torch", ward=ward, transform=lambda r: r["cultivar"])
    assert len(torch_ds) == 40 and torch_ds[0] == table.column("cultivar")[0].as_py()
    with pytest.raises(IndexError):
        torch_ds[40]
    hf = dataward.load("wine@training", format="hf", ward=ward)
    assert hf.num_rows == 40 and "cultivar" in hf.column_names


def test_streams_record_batches_and_an_iterable_torch_dataset(ward: Ward) -> None:
    import torch.utils.data

    batches = list(dataward.stream("wine@v2", stage=None, batch_rows=16, ward=ward))
    assert [b.num_rows for b in batches] == [16, 16, 16, 16, 16]
    # The version's records, each once, in the order they are stored (see the next test).
    version = ward.dataset("wine").version("v2").to_arrow()
    assert pa.Table.from_batches(batches).sort_by("record_id").equals(version)
    stream = dataward.stream("wine@training", format="torch", batch_rows=7, ward=ward)
    assert isinstance(stream, torch.utils.data.IterableDataset)
    first, second = list(stream), list(stream)  # a second pass opens a new, re-checked stream
    assert len(first) == len(second) == 40 and first == second
    with pytest.raises(InputError, match="batch_rows"):
        dataward.stream("wine@training", batch_rows=0, ward=ward)


def test_a_stream_reads_each_chunk_once_chunk_by_chunk(ward: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    """wine@v2 holds two contributions' chunks. Batches in the version's id order would each need a few
    records of both, and read both again for every batch (a million records in batches of 10,000 took
    13 times a whole read); the stream goes chunk by chunk, each in the order its records were stored,
    and reads each object once, batches spanning the two chunks included."""
    store = ward.services.loading.store
    reads: Counter[str] = Counter()
    get = store.get

    def counted(digest: str) -> bytes:
        reads[digest] += 1
        return get(digest)

    monkeypatch.setattr(store, "get", counted)
    streamed = pa.Table.from_batches(list(dataward.stream("wine@v2", stage=None, batch_rows=7, ward=ward)))
    assert reads and max(reads.values()) == 1, reads
    monkeypatch.undo()
    ids = streamed.column("record_id").to_pylist()
    chunks = []
    for first in (ids[0], ids[40]):
        digest, _ = where(ward, first)
        chunks.append(parquet_to_table(ward.store.get(digest)).column("record_id").to_pylist())
    assert ids == chunks[0] + chunks[1] and len(set(ids)) == 80
    assert streamed.sort_by("record_id").equals(dataward.load("wine@v2", stage=None, format="arrow", ward=ward))
    again = pa.Table.from_batches(list(dataward.stream("wine@v2", stage=None, batch_rows=30, ward=ward)))
    assert again.equals(streamed)  # the same order on every pass, whatever the batch


def test_a_version_not_in_the_required_stage_is_refused(ward: Ward) -> None:
    with pytest.raises(PolicyViolation, match=r"wine@v2 is candidate, and the loader requires a training version"):
        dataward.load("wine@v2", ward=ward)
    assert len(dataward.load("wine@v2", stage=None, ward=ward)) == 80
    assert len(dataward.load("wine@v2", stage="candidate", ward=ward)) == 80
    with pytest.raises(InputError, match="unknown stage"):
        dataward.load("wine@v2", stage="production", ward=ward)
    with pytest.raises(InputError, match="unknown format"):
        dataward.load("wine@training", format="numpy", ward=ward)
    with pytest.raises(InputError, match="cannot read dataset reference"):
        dataward.load("wine@", ward=ward)


def test_quarantined_records_are_refused_in_any_stage(ward: Ward) -> None:
    ward.quarantine_contribution("wine#2", reason="vendor key leaked")
    with pytest.raises(PolicyViolation, match="40 added by quarantined contribution wine#2"):
        dataward.load("wine@v2", stage=None, ward=ward)
    with pytest.raises(PolicyViolation, match="quarantined"):
        list(dataward.stream("wine@v2", stage=None, ward=ward))
    assert len(dataward.load("wine@v3", stage=None, ward=ward)) == 40  # the rollback version


def test_a_chunk_row_pointed_at_an_edited_copy_is_never_reached(ward: Ward) -> None:
    """A copy of the record's chunk with its label flipped, the catalog's chunk row pointed at it: the
    loader follows the version's signed manifest to the genuine chunk, whole or streamed."""
    genuine = dataward.load("wine@training", format="arrow", ward=ward)
    flip_label(ward, genuine.column("record_id")[7].as_py())
    assert dataward.load("wine@training", format="arrow", ward=ward).equals(genuine)
    streamed = pa.Table.from_batches(list(dataward.stream("wine@training", batch_rows=5, ward=ward)))
    assert streamed.sort_by("record_id").equals(genuine)


def test_a_record_edited_in_its_stored_chunk_is_refused(ward: Ward) -> None:
    """The genuine chunk overwritten in place fails the store's re-hash, whole or streamed."""
    victim = dataward.load("wine@training", format="arrow", ward=ward).column("record_id")[7].as_py()
    digest = damage_in_place(ward, victim)
    with pytest.raises(IntegrityViolation, match=f"object {digest} does not match its hash"):
        dataward.load("wine@training", ward=ward)
    with pytest.raises(IntegrityViolation, match=f"object {digest} does not match its hash"):
        list(dataward.stream("wine@training", batch_rows=5, ward=ward))


def test_a_ledger_event_that_fails_verification_is_refused(ward: Ward) -> None:
    """The promotion event is rewritten in the catalog (its stage change made to look like v2's): a
    process's first read checks the ledger's chain and refuses. A process that had already read the
    ledger keeps what the signed events said then, and serves exactly that."""
    assert len(dataward.load("wine@training", ward=ward)) == 40
    seq, payload = sql(ward, "SELECT seq, payload FROM ledger_events WHERE type = 'version.promoted'")[0]
    sql(ward, "UPDATE ledger_events SET payload = ? WHERE seq = ?", payload.replace('"training"', '"retired"'), seq)
    fresh = (
        "import sys, dataward; from dataward.domain.errors import IntegrityViolation\n"
        "from dataward.service.ward import Ward\n"
        "try:\n    dataward.load('wine@training', ward=Ward.open(sys.argv[1]))\n"
        "except IntegrityViolation as e:\n    print(e); sys.exit(7)\n"
    )
    done = subprocess.run([sys.executable, "-c", fresh, str(ward.folder)], capture_output=True, text=True)
    assert done.returncode == 7, done.stdout + done.stderr
    assert f"does not verify: event #{seq}:" in done.stdout
    assert len(dataward.load("wine@training", ward=ward)) == 40  # as this process read it before the edit


def test_a_caller_who_may_not_read_the_data_is_refused(ward: Ward) -> None:
    ward.create_principal("carl")
    ward.grant("carl", "contributor", "dataset:wine")
    carl = ward.as_key(ward.issue_key("carl")["key"])
    with pytest.raises(AccessDenied):
        dataward.load("wine@training", ward=carl)


def test_through_the_server(ward: Ward, served: HTTPWard) -> None:
    assert len(dataward.load("wine@training", ward=served)) == 40
    assert dataward.load("wine@training", format="hf", ward=served).num_rows == 40
    batches = list(dataward.stream("wine@v2", stage=None, batch_rows=32, ward=served))
    assert sum(b.num_rows for b in batches) == 80 and max(b.num_rows for b in batches) <= 32
    with pytest.raises(PolicyViolation, match="requires a training version"):
        dataward.load("wine@v2", ward=served)
    with pytest.raises(PolicyViolation, match="requires a training version"):
        dataward.stream("wine@v2", ward=served)
    ward.quarantine_contribution("wine#2", reason="leaked")
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#2"):
        dataward.load("wine@v2", stage=None, ward=served)
    # A training run through the server records what it read through the server's loader; one that
    # ends without an artifact is recorded as failed, and says why.
    ward.grant("admin", "contributor", "model:m")
    with (
        pytest.raises(InputError, match="ended without an artifact"),
        dataward.training_run("wine@training", model="m", ward=served) as run,
    ):
        assert len(run.load()) == 40
    assert run.read == ["wine@v1"]
    failed = ward.ledger(types=["training.failed"], limit=1)[0]
    assert failed["subject"]["run"] == run.run_id and "without an artifact" in failed["payload"]["reason"]
