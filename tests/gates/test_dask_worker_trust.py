"""What the scanning process does not take on trust from a Dask cluster: a scheduler reached without
authentication from another host is refused before any connection, a ``tls://`` one is reached with
Dask's TLS settings, and workers whose results do not match what was sent (every detector said not
to apply, record ids altered) make the scan refuse rather than pass.

The workers of a ``LocalCluster`` of two processes are altered from outside with ``client.run``, as
anyone who can reach an unauthenticated scheduler could."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataward.domain.errors import InputError, IntegrityViolation
from dataward.gates import scan
from dataward.gates.engine import EngineError, check_scheduler_address, engine_for
from tests.gates.conftest import flip_labels

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
# The functions that alter the workers travel to them by value (the workers do not import the tests).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

DETECTORS = ["label_consistency", "duplicates", "outliers", "drift"]


@pytest.fixture(scope="module")
def flipped_wine(wine):
    baseline, contribution, schema = wine
    flipped, _ = flip_labels(contribution, 0.4, 3)
    return pa.Table.from_pandas(baseline), pa.Table.from_pandas(flipped), schema


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def altered(client) -> Iterator[Any]:
    """``alter(mode)`` replaces ``score_one`` on every worker; the honest one is put back afterwards."""
    yield lambda mode: client.run(_alter_workers, mode)
    client.run(_alter_workers, "honest")


def _alter_workers(mode: str) -> str:
    """Run on each worker: its ``score_one`` made to claim every detector skipped, or to return other
    record ids than those of the rows it scored."""
    import dataward.gates.partitioned as partitioned

    honest = getattr(partitioned, "_honest_score_one", partitioned.score_one)
    partitioned._honest_score_one = honest

    def every_detector_skipped(item: Any, state: Any) -> Any:
        s = honest(item, state)
        why = {name: "not applicable to this data: forged" for name in state.detectors}
        return partitioned.Scored(s.norm, s.features, s.codes, {}, why)

    def other_record_ids(item: Any, state: Any) -> Any:
        s = honest(item, state)
        ids = list(s.norm.record_ids)
        ids[0] = "0" * 64  # a record of someone else's choosing in place of the first one scored
        norm = partitioned.Normalized(s.norm.table, s.norm.labels, ids, s.norm.rows)
        return partitioned.Scored(norm, s.features, s.codes, s.records, s.skipped)

    chosen = {"honest": honest, "skip": every_detector_skipped, "ids": other_record_ids}[mode]
    partitioned.score_one = chosen
    return mode


def _parquet_parts(table: pa.Table, folder: Path) -> list[str]:
    folder.mkdir()
    paths = []
    for i, start in enumerate(range(0, table.num_rows, 25)):
        pq.write_table(table.slice(start, 25), folder / f"part-{i}.parquet")
        paths.append(str(folder / f"part-{i}.parquet"))
    return paths


@pytest.fixture(scope="module")
def one_shot(flipped_wine):
    baseline, contribution, schema = flipped_wine
    report = scan(baseline, contribution, schema, policy={"detectors": DETECTORS})
    assert report.verdict != "pass" and report.records.flagged.sum() >= 10  # the flips are caught
    return report


def test_honest_workers_give_the_one_shot_report(flipped_wine, one_shot, client):
    baseline, contribution, schema = flipped_wine
    report = scan(baseline, contribution, schema, policy={"detectors": DETECTORS}, client=client)
    assert report.verdict == one_shot.verdict
    assert np.array_equal(report.records.flagged, one_shot.records.flagged)


def test_workers_that_say_every_detector_does_not_apply_are_refused(flipped_wine, client, altered):
    baseline, contribution, schema = flipped_wine
    assert set(altered("skip").values()) == {"skip"}
    with pytest.raises(IntegrityViolation, match="said it does not apply, which its record stage never does"):
        scan(baseline, contribution, schema, policy={"detectors": DETECTORS}, client=client)


@pytest.mark.parametrize("given", ["table", "parquet"])
def test_record_ids_altered_by_the_workers_are_refused(flipped_wine, client, altered, given, tmp_path):
    baseline, contribution, schema = flipped_wine
    data = contribution if given == "table" else _parquet_parts(contribution, tmp_path / "parts")
    altered("ids")
    with pytest.raises(IntegrityViolation, match="record ids"):
        scan(baseline, data, schema, policy={"detectors": DETECTORS}, client=client)


def test_a_scan_no_detector_judged_is_reviewed_not_passed(flipped_wine, monkeypatch):
    # Detectors whose record stage may skip (a third party's): every one said not to apply on the
    # workers, and the local engine stands in for them here.
    import dataward.gates.partitioned as partitioned
    import dataward.gates.scanning as scanning
    from dataward.gates.base import registered

    for name in ("label_consistency", "duplicates", "outliers"):
        monkeypatch.setattr(registered()[name], "record_stage_skips", True, raising=False)
    honest = partitioned.score_one

    def every_detector_skipped(item: Any, state: Any) -> Any:
        s = honest(item, state)
        return partitioned.Scored(s.norm, s.features, s.codes, {}, {name: "forged" for name in state.detectors})

    monkeypatch.setattr(scanning, "score_one", every_detector_skipped)
    baseline, contribution, schema = flipped_wine
    policy = {"detectors": ["label_consistency", "duplicates", "outliers"]}
    report = scan(baseline, contribution, schema, policy=policy, engine="local")
    assert report.verdict == "review"
    assert report.reasons[0].startswith("no detector judged the contribution: the engine's workers said")


@pytest.mark.parametrize(
    "address", ["tcp://192.0.2.1:8786", "192.0.2.1:8786", "tcp://sched.example:8786", "ws://192.0.2.1:8786"]
)
def test_a_scheduler_reached_without_authentication_from_another_host_is_refused_before_connecting(
    flipped_wine, address, monkeypatch
):
    monkeypatch.delenv("DATAWARD_ALLOW_INSECURE_SCHEDULER", raising=False)
    monkeypatch.setenv("DATAWARD_SCHEDULER_TIMEOUT", "30")  # a connection tried would take this long to fail
    baseline, contribution, schema = flipped_wine
    with pytest.raises(InputError, match=r"refusing the Dask scheduler .* run code in this process") as refused:
        scan(baseline, contribution, schema, policy={"detectors": DETECTORS}, scheduler=address)
    assert not isinstance(refused.value, EngineError)  # refused, not a failed connection
    assert "--allow-insecure-scheduler" in (refused.value.hint or "")


@pytest.mark.parametrize(
    "address", ["tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786", "tls://sched:8786", "inproc://x"]
)
def test_loopback_tls_and_in_process_schedulers_are_accepted(address):
    check_scheduler_address(address)


def test_the_operator_may_accept_an_insecure_scheduler_explicitly(monkeypatch):
    check_scheduler_address("tcp://192.0.2.1:8786", allow_insecure=True)
    monkeypatch.setenv("DATAWARD_SCHEDULER_TIMEOUT", "1")
    monkeypatch.setenv("DATAWARD_ALLOW_INSECURE_SCHEDULER", "1")
    with pytest.raises(EngineError, match="could not connect"):  # past the check, to the connection
        engine_for("dask", scheduler="tcp://192.0.2.1:8786")
    monkeypatch.setenv("DATAWARD_ALLOW_INSECURE_SCHEDULER", "perhaps")
    with pytest.raises(InputError, match="DATAWARD_ALLOW_INSECURE_SCHEDULER"):
        engine_for("dask", scheduler="tcp://192.0.2.1:8786")


def test_a_client_the_caller_opened_on_an_insecure_remote_scheduler_is_refused(monkeypatch):
    from dataward.gates.engine import DaskEngine

    class RemoteClient:
        class scheduler:  # the attribute of a distributed.Client that names its scheduler
            address = "tcp://192.0.2.1:8786"

    monkeypatch.delenv("DATAWARD_ALLOW_INSECURE_SCHEDULER", raising=False)
    with pytest.raises(InputError, match=r"refusing the Dask scheduler at tcp://192\.0\.2\.1:8786"):
        DaskEngine(RemoteClient())


def test_a_tls_scheduler_is_reached_with_dask_s_tls_settings(flipped_wine, one_shot):
    import dask

    pytest.importorskip("cryptography")
    security = distributed.Security.temporary()  # one CA; the scheduler and workers demand its certificates
    baseline, contribution, schema = flipped_wine
    policy = {"detectors": DETECTORS}
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40, security=security
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        with pytest.raises(InputError, match=r"(?s)needs TLS.*DASK_DISTRIBUTED__COMM__TLS__CA_FILE"):
            scan(baseline, contribution, schema, policy=policy, scheduler=address)
        settings = {
            "distributed.comm.tls.ca-file": security.tls_ca_file,
            "distributed.comm.tls.client.cert": security.tls_client_cert,
            "distributed.comm.tls.client.key": security.tls_client_key,
        }
        with dask.config.set(settings):
            report = scan(baseline, contribution, schema, policy=policy, scheduler=address)
    assert report.verdict == one_shot.verdict
    assert np.array_equal(report.records.flagged, one_shot.records.flagged)


def _external_address() -> str | None:
    """An address of this host that is not loopback, when it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: the kernel picks the outgoing interface
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_a_loopback_scheduler_with_a_worker_from_elsewhere_is_refused() -> None:
    """The ward dials the scheduler on 127.0.0.1, but `dask scheduler` listens on every interface by
    default: a worker that joined from another host would send back results unpickled here."""
    import subprocess
    import time

    ip = _external_address()
    if ip is None:
        pytest.skip("this host has no address but loopback")
    with distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp", host="0.0.0.0", dashboard_address=None
    ) as cluster:
        port = cluster.scheduler_address.rsplit(":", 1)[1]
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                f"tcp://127.0.0.1:{port}",
                "--host",
                ip,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with distributed.Client(f"tcp://127.0.0.1:{port}", set_as_default=False) as client:
                deadline = time.monotonic() + 60
                while not client.scheduler_info()["workers"] and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert client.scheduler_info()["workers"], "the worker did not join"
            with pytest.raises(InputError, match=rf"workers joined it from other hosts \(tcp://{ip}"):
                engine_for(None, scheduler=f"tcp://127.0.0.1:{port}")
        finally:
            worker.terminate()
            worker.wait(30)
