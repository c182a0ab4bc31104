"""`dataward gate run --engine dask --scheduler tcp://...`: the gate run of an embedded ward on a Dask
cluster (a LocalCluster of two worker processes), and the options' errors (an unauthenticated scheduler
on another host refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from tests.cli.test_cli import run
from tests.helpers import wine_rows, wine_ward, write_csv

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler_address():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow
def test_gate_run_on_a_dask_scheduler_and_its_errors(tmp_path: Path, scheduler_address: str, monkeypatch) -> None:
    # The ward and its contribution are made in this process (each `dataward` process costs seconds);
    # the gate runs under test are the command's own.
    ward = tmp_path / "ward"
    policy = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates, outliers]\nfirst_import: self-reference\n"
    with wine_ward(ward, policy) as admin:
        path = write_csv(tmp_path / "a.csv", wine_rows(0, 60, shuffled=True))
        submitted = admin.contribute("wine", path, source="https://example.org/wine.csv")
    assert submitted["gate"]["verdict"] in ("pass", "review")  # exit 0 or 8, as `contribute` said it
    ref = submitted["ref"]

    # The local run is the reference the Dask run is compared with: the same command, invoked in this
    # process (whose gate libraries the setup above already imported; a process of its own paid about
    # 3 s of CPU for importing them again). The Dask run under test is a process of its own.
    env = {"DATAWARD_WARD": str(ward), "DATAWARD_KEY": None, "COLUMNS": "200"}
    local = CliRunner().invoke(app, ["gate", "run", ref, "--engine", "local", "--json"], env=env)
    on_dask = run(ward, "gate", "run", ref, "--engine", "dask", "--scheduler", scheduler_address, "--json")
    assert on_dask.returncode == local.exit_code, on_dask.stderr
    judged = ("verdict", "reasons", "detectors", "records")
    assert {k: json.loads(on_dask.stdout)[k] for k in judged} == {k: json.loads(local.stdout)[k] for k in judged}
    with distributed.Client(scheduler_address) as client:
        assert "survey_one" in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))

    no_scheduler = run(ward, "gate", "run", ref, "--engine", "dask")
    assert no_scheduler.returncode == 2 and "needs a scheduler" in no_scheduler.stderr
    assert run(ward, "gate", "run", ref, "--engine", "spark").returncode == 2
    both = run(ward, "gate", "run", ref, "--engine", "local", "--scheduler", scheduler_address)
    assert both.returncode == 2 and "--scheduler goes with --engine dask" in both.stderr
    monkeypatch.setenv("DATAWARD_SCHEDULER_TIMEOUT", "3")  # a closed port is retried until the timeout
    down = run(ward, "gate", "run", ref, "--scheduler", "tcp://127.0.0.1:9")
    assert down.returncode == 2 and "could not connect to the Dask scheduler" in down.stderr
    # A scheduler on another host reached without TLS is refused before any connection, unless accepted.
    remote = run(ward, "gate", "run", ref, "--scheduler", "tcp://192.0.2.1:8786")
    assert remote.returncode == 2 and "refusing the Dask scheduler at tcp://192.0.2.1:8786" in remote.stderr
    accepted = run(ward, "gate", "run", ref, "--scheduler", "tcp://192.0.2.1:8786", "--allow-insecure-scheduler")
    assert accepted.returncode == 2 and "could not connect to the Dask scheduler" in accepted.stderr
