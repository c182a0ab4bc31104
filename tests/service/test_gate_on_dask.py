"""A ward's gate runs on a Dask cluster when ``$DATAWARD_SCHEDULER`` names one (``dataward gate run
--scheduler``, ``dataward serve --scheduler``): same report as in process, on SQLite and PostgreSQL; and a
scheduler that cannot be reached fails the run with nothing stored."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataward.catalog.tables import gate_runs, ledger_events
from dataward.domain.errors import InputError, IntegrityViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, wine_schema_specs, write_csv

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler_address():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as cluster:
        yield cluster.scheduler_address


POLICY = (
    "approvals:\n  required: 0\ngate:\n  detectors: [duplicates, label_consistency, outliers, drift]\n"
    "first_import: self-reference\n"
)


def _build_gated_ward(folder: Path, catalog_url: str | None) -> tuple[Ward, str]:
    ward, _ = Ward.init(folder / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs), description="UCI wine")
    ward.set_policy("wine", POLICY)
    first = ward.contribute("wine", write_csv(folder / "a.csv", wine_rows(0, 110, shuffled=True)), source="a")
    merge_reviewed(ward, first["id"])
    ward.promote("wine@v1")
    rows = wine_rows(110, 178, shuffled=True)
    for row in rows[:6]:  # a few flipped labels, so that the report has flags to compare
        row["cultivar"] = (int(row["cultivar"]) + 1) % 3
    second = ward.contribute("wine", write_csv(folder / "b.csv", rows), source="b", gate=False)
    return ward, second["id"]


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The gated ward on SQLite, built once for the module (its first import runs a gate: about 2 s of
    CPU a build); each test gets a copy of the folder of its own, as a fresh build would give it."""
    ward, ref = _build_gated_ward(tmp_path_factory.mktemp("gated-template"), None)
    ward.db.dispose()
    return ward.folder, ref


def _gated_ward(tmp_path: Path, catalog_url: str | None, template: tuple[Path, str]) -> tuple[Ward, str]:
    if catalog_url is not None:  # a PostgreSQL catalog is not in the folder: built anew
        return _build_gated_ward(tmp_path, catalog_url)
    folder = shutil.copytree(template[0], tmp_path / "ward")
    return Ward.open(folder, key=(folder / "credentials").read_text("utf-8").strip()), template[1]


def _counts(ward: Ward) -> tuple[int, int]:
    with ward.db.reading() as conn:
        return (
            conn.execute(select(func.count()).select_from(ledger_events)).scalar_one(),
            conn.execute(select(func.count()).select_from(gate_runs)).scalar_one(),
        )


def _judgement(report: dict) -> dict:
    return {k: report[k] for k in ("verdict", "reasons", "mode", "config_hash", "detectors", "records", "findings")}


def test_gate_run_on_dask_gives_the_in_process_report(
    tmp_path, catalog_url, sqlite_template, scheduler_address, monkeypatch
):
    ward, ref = _gated_ward(tmp_path, catalog_url, sqlite_template)
    monkeypatch.delenv("DATAWARD_SCHEDULER", raising=False)
    local = ward.run_gate(ref)
    monkeypatch.setenv("DATAWARD_SCHEDULER", scheduler_address)
    on_dask = ward.run_gate(ref)
    assert on_dask["gate_run"] != local["gate_run"]
    assert _judgement(on_dask) == _judgement(local)
    assert len(local["records"]) == 68
    # The second run really scored its partitions on the cluster's workers.
    with distributed.Client(scheduler_address) as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert "score_one" in prefixes and "survey_one" in prefixes
    ward.db.dispose()


def _forge_skips() -> str:
    """Run on each worker from outside, as anyone who reaches the scheduler could: ``score_one`` says
    every detector does not apply (the old ward then passed 30 flipped labels of 68)."""
    import dataward.gates.partitioned as partitioned

    honest = getattr(partitioned, "_honest_score_one", partitioned.score_one)
    partitioned._honest_score_one = honest

    def forged(item, state):
        s = honest(item, state)
        return partitioned.Scored(
            s.norm, s.features, s.codes, {}, {n: "not applicable: forged" for n in state.detectors}
        )

    partitioned.score_one = forged
    return "forged"


def _restore() -> str:
    import dataward.gates.partitioned as partitioned

    partitioned.score_one = getattr(partitioned, "_honest_score_one", partitioned.score_one)
    return "honest"


def test_workers_forging_their_results_fail_the_gate_run_and_store_nothing(
    tmp_path, sqlite_template, scheduler_address, monkeypatch
):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers do not import the tests
    ward, ref = _gated_ward(tmp_path, None, sqlite_template)
    before, status = _counts(ward), ward.contribution(ref)["status"]
    monkeypatch.setenv("DATAWARD_SCHEDULER", scheduler_address)
    with distributed.Client(scheduler_address) as attacker:
        attacker.run(_forge_skips)
        try:
            with pytest.raises(IntegrityViolation, match="the scan stored nothing"):
                ward.run_gate(ref)
        finally:
            attacker.run(_restore)
    assert _counts(ward) == before
    assert ward.contribution(ref)["status"] == status
    ward.db.dispose()


def test_unreachable_scheduler_fails_the_gate_run_and_stores_nothing(tmp_path, sqlite_template, monkeypatch):
    ward, ref = _gated_ward(tmp_path, None, sqlite_template)
    before = _counts(ward)
    status = ward.contribution(ref)["status"]
    monkeypatch.setenv("DATAWARD_SCHEDULER", "tcp://127.0.0.1:9")
    monkeypatch.setenv("DATAWARD_SCHEDULER_TIMEOUT", "3")  # a closed port is retried until the timeout
    with pytest.raises(InputError, match=r"could not connect to the Dask scheduler at tcp://127\.0\.0\.1:9"):
        ward.run_gate(ref)
    assert _counts(ward) == before
    assert ward.contribution(ref)["status"] == status
    ward.db.dispose()


def test_a_bad_scheduler_timeout_is_refused(monkeypatch):
    from dataward.gates.engine import engine_for

    monkeypatch.setenv("DATAWARD_SCHEDULER_TIMEOUT", "soon")
    with pytest.raises(InputError, match="DATAWARD_SCHEDULER_TIMEOUT"):
        engine_for("dask", scheduler="tcp://127.0.0.1:9")
