"""Partitioned scans: the contribution read in partitions (Parquet files, row groups, Arrow datasets,
record-batch streams) and scored on an engine gives the report of the one-shot scan, exactly.

The Dask tests run a real ``distributed.LocalCluster`` of two worker processes; the failure paths use
partitions that really fail (a corrupt Parquet file, a partition whose reading kills its worker).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from dataward.domain.errors import InputError
from dataward.gates import scan
from dataward.gates.engine import EngineError, LocalEngine
from dataward.gates.partitioned import ParquetPartition, Partition, RecordIds, partitions_of
from dataward.gates.report import extras_json
from tests.gates.conftest import flip_labels

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
# The partitions defined here travel to the workers by value (the workers do not import the tests).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ALL = ["label_consistency", "duplicates", "outliers", "drift", "backdoor", "triggers"]


def comparable(report) -> str:
    """Everything a report says except how long each detector took."""
    extras = {k: v for k, v in extras_json(report).items() if k != "timings"}
    return json.dumps({"report": report.to_dict(), "extras": extras}, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def poisoned_digits(digits):
    baseline, contribution, schema = digits
    poisoned, _ = flip_labels(contribution, 0.05, 10)
    return pa.Table.from_pandas(baseline), pa.Table.from_pandas(poisoned), schema


@pytest.fixture(scope="module")
def one_shot(poisoned_digits):
    baseline, contribution, schema = poisoned_digits
    report = scan(baseline, contribution, schema, policy={"detectors": ALL})
    assert report.verdict == "block" and report.records.flagged.sum() >= 20  # the flips are caught
    return report


def write_parts(table: pa.Table, folder: Path, files: int, row_group_size: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // files)
    paths = []
    for i, start in enumerate(range(0, table.num_rows, step)):
        path = folder / f"part-{i:03d}.parquet"
        pq.write_table(table.slice(start, step), path, row_group_size=row_group_size)
        paths.append(str(path))
    return paths


def test_parquet_files_and_row_groups_give_the_one_shot_report(poisoned_digits, one_shot, tmp_path):
    baseline, contribution, schema = poisoned_digits
    paths = write_parts(contribution, tmp_path / "c", files=3, row_group_size=70)
    parts = partitions_of(str(tmp_path / "c"), partition_rows=100)
    assert len(parts) > 3 and all(p.row_groups for p in parts)  # several row groups per file -> partitions
    report = scan(baseline, str(tmp_path / "c"), schema, policy={"detectors": ALL}, partition_rows=100)
    assert comparable(report) == comparable(one_shot)
    assert report.extras["timings"]["record_stage"] >= 0
    # A list of files, and an Arrow dataset over them, are the same contribution; the baseline in
    # Parquet partitions too (never held whole) gives the same report.
    write_parts(baseline, tmp_path / "b", files=4, row_group_size=90)
    base = str(tmp_path / "b")
    assert comparable(scan(base, paths, schema, policy={"detectors": ALL})) == comparable(one_shot)
    dataset = pads.dataset(paths, format="parquet")
    assert comparable(scan(baseline, dataset, schema, policy={"detectors": ALL})) == comparable(one_shot)
    # A baseline in partitions with a contribution in memory: both are scanned in partitions.
    assert comparable(scan(base, contribution, schema, policy={"detectors": ALL})) == comparable(one_shot)


def test_a_stream_of_record_batches_is_spilled_and_gives_the_one_shot_report(poisoned_digits, one_shot):
    baseline, contribution, schema = poisoned_digits
    seen = []

    def stream():
        for batch in contribution.to_batches(max_chunksize=50):
            seen.append(batch.num_rows)
            yield batch

    report = scan(baseline, stream(), schema, policy={"detectors": ALL}, partition_rows=120)
    assert comparable(report) == comparable(one_shot)
    assert sum(seen) == contribution.num_rows


def test_a_table_in_partitions_on_the_local_engine_gives_the_one_shot_report(poisoned_digits, one_shot):
    baseline, contribution, schema = poisoned_digits
    report = scan(baseline, contribution, schema, policy={"detectors": ALL}, engine="local", partition_rows=97)
    assert comparable(report) == comparable(one_shot)
    # The report's record ids stay memory-mapped from the spill (readable after the scan), equal to the list.
    assert isinstance(report.records.record_ids, RecordIds) and report.records.record_ids == one_shot.records.record_ids


def test_text_featurizer_fitted_on_the_same_sample_gives_the_one_shot_report(text_sets, tmp_path):
    # The text featurizer learns its geometry on the reference plus a sample of the contribution: the
    # partitioned scan reads the same sampled rows from the partitions.
    baseline, contribution, schema = text_sets
    contribution = contribution.copy()
    # Ten labels flipped to another trusted class (with a class the baseline never had, label_consistency
    # would not judge them: a new class is drift's, for review).
    contribution.loc[:9, "label"] = contribution.loc[:9, "label"].map(lambda t: "sport" if t != "sport" else "finance")
    table = pa.Table.from_pandas(contribution, preserve_index=False)
    policy = {"detectors": ["label_consistency", "outliers", "duplicates"], "reference_size": 200}
    whole = scan(baseline, table, schema, policy=policy)
    write_parts(table, tmp_path / "t", files=2, row_group_size=40)
    parted = scan(baseline, str(tmp_path / "t"), schema, policy=policy, partition_rows=40)
    assert comparable(parted) == comparable(whole)
    # The report compared is not an empty one: the flips are the records label_consistency suspects most
    # (a 200-record reference resolves p-values to 1/201, above the detector's alpha: none is flagged).
    suspected = np.argsort(whole.results["label_consistency"].p_values, kind="stable")[:10]
    assert (suspected < 10).sum() >= 8


def test_self_reference_mode_reads_the_partitions_whole(poisoned_digits, tmp_path):
    _, contribution, schema = poisoned_digits
    policy = {"detectors": ["label_consistency", "outliers"]}
    write_parts(contribution, tmp_path / "s", files=2, row_group_size=100)
    assert comparable(scan(None, str(tmp_path / "s"), schema, policy=policy)) == comparable(
        scan(None, contribution, schema, policy=policy)
    )


def test_a_corrupt_partition_is_a_clear_error(poisoned_digits, tmp_path):
    baseline, contribution, schema = poisoned_digits
    write_parts(contribution, tmp_path / "bad", files=3, row_group_size=1000)
    (tmp_path / "bad" / "part-001.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(InputError, match=r"part-001\.parquet could not be read"):
        scan(baseline, str(tmp_path / "bad"), schema, policy={"detectors": ALL})
    with pytest.raises(InputError, match=r"nothing-here could not be read: .*No such file"):
        scan(baseline, str(tmp_path / "nothing-here"), schema)
    write_parts(baseline, tmp_path / "bad-base", files=2, row_group_size=1000)
    (tmp_path / "bad-base" / "part-001.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(InputError, match=r"bad-base/part-001\.parquet could not be read"):
        scan(str(tmp_path / "bad-base"), contribution, schema, policy={"detectors": ALL})
    # A baseline partition that breaks the schema is named as the baseline's.
    pq.write_table(baseline.drop_columns(["label"]), tmp_path / "bad-base" / "part-001.parquet")
    with pytest.raises(InputError, match="baseline"):
        scan(str(tmp_path / "bad-base"), contribution, schema, policy={"detectors": ALL})


def test_rows_limit_counts_the_whole_partitioned_contribution(poisoned_digits, tmp_path):
    baseline, contribution, schema = poisoned_digits
    write_parts(contribution, tmp_path / "big", files=3, row_group_size=1000)
    with pytest.raises(InputError, match="max_rows"):
        scan(baseline, str(tmp_path / "big"), schema, limits={"max_rows": contribution.num_rows - 1})


# --- on a Dask cluster ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KillsWorkerOnce(Partition):
    """Reading it the first time kills the worker process (as an out-of-memory kill would)."""

    inner: Partition
    marker: str

    def read(self) -> pa.Table:
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return self.inner.read()

    def describe(self) -> str:
        return f"killer {self.inner.describe()}"


@dataclass(frozen=True)
class KillsEveryWorker(Partition):
    inner: Partition

    def read(self) -> pa.Table:
        os._exit(1)

    def describe(self) -> str:
        return f"partition that kills {self.inner.describe()}"


@contextlib.contextmanager
def _local_cluster_client() -> Iterator[distributed.Client]:
    import dask

    # A task whose workers died twice fails the scan (the default is three deaths).
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def dask_client():
    with _local_cluster_client() as client:
        yield client


def test_dask_cluster_gives_the_one_shot_report(poisoned_digits, one_shot, dask_client, tmp_path):
    baseline, contribution, schema = poisoned_digits
    write_parts(contribution, tmp_path / "d", files=4, row_group_size=1000)
    report = scan(baseline, str(tmp_path / "d"), schema, policy={"detectors": ALL}, client=dask_client)
    assert comparable(report) == comparable(one_shot)
    assert len(dask_client.scheduler_info()["workers"]) == 2


def test_a_worker_dying_mid_scan_is_replaced_and_the_report_is_unchanged(
    poisoned_digits, one_shot, dask_client, tmp_path
):
    baseline, contribution, schema = poisoned_digits
    parts = partitions_of(write_parts(contribution, tmp_path / "k", files=4, row_group_size=1000))
    parts[2] = KillsWorkerOnce(parts[2], str(tmp_path / "killed-once"))
    report = scan(baseline, parts, schema, policy={"detectors": ALL}, client=dask_client)
    assert (tmp_path / "killed-once").exists()  # a worker really died
    assert comparable(report) == comparable(one_shot)
    dask_client.wait_for_workers(2, timeout=300)  # the nanny restarts the killed workers (slow on a loaded machine)


def test_a_partition_unreadable_on_the_worker_is_a_clear_error(poisoned_digits, dask_client, tmp_path):
    baseline, contribution, schema = poisoned_digits
    parts = partitions_of(write_parts(contribution, tmp_path / "u", files=3, row_group_size=1000))
    # Listed while readable, then broken before the workers read it.
    Path(parts[2].url).write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"part-002\.parquet could not be read"):
        scan(baseline, parts, schema, policy={"detectors": ALL}, client=dask_client)


def test_engines_refuse_contradictory_arguments(poisoned_digits, dask_client, monkeypatch):
    baseline, contribution, schema = poisoned_digits
    monkeypatch.setenv("DATAWARD_SCHEDULER_TIMEOUT", "2")  # a closed port is retried until the timeout
    with pytest.raises(InputError, match="not both"):
        scan(baseline, contribution, schema, engine=LocalEngine(), client=dask_client)
    with pytest.raises(InputError, match="unknown engine"):
        scan(baseline, contribution, schema, engine="spark")
    with pytest.raises(InputError, match="could not connect to the Dask scheduler"):
        scan(baseline, contribution, schema, scheduler="tcp://127.0.0.1:9", policy={"detectors": ["outliers"]})


def test_parquet_partition_names_its_row_groups():
    assert "row groups 2-3" in ParquetPartition("s3://b/x.parquet", (2, 3)).describe()


@pytest.fixture(scope="module")
def s3_contribution(poisoned_digits):
    """The contribution as three Parquet files in a bucket of an S3 server on loopback, and the
    storage options that reach it (passed along to the workers with each partition)."""
    from benchmarks.s3_server import CREDENTIALS, S3Unavailable, make_bucket, s3_server

    try:
        with s3_server() as endpoint:
            import s3fs

            make_bucket(endpoint, "scans")
            options = {
                "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "client_kwargs": {"endpoint_url": endpoint},
                "skip_instance_cache": True,
            }
            fs = s3fs.S3FileSystem(**options)
            contribution = poisoned_digits[1]
            step = -(-contribution.num_rows // 3)
            for i, start in enumerate(range(0, contribution.num_rows, step)):
                with fs.open(f"scans/contribution/part-{i}.parquet", "wb") as f:
                    pq.write_table(contribution.slice(start, step), f)
            yield "s3://scans/contribution", options
    except S3Unavailable as exc:
        pytest.skip(f"no S3-compatible server: {exc}")


def test_an_s3_url_is_scanned_locally_and_on_dask(poisoned_digits, one_shot, s3_contribution, dask_client):
    baseline, _, schema = poisoned_digits
    url, options = s3_contribution
    parts = partitions_of(url, storage_options=options)
    assert [p.url for p in parts] == [f"{url}/part-{i}.parquet" for i in range(3)]
    for engine in ({"engine": "local"}, {"client": dask_client}):
        report = scan(baseline, url, schema, policy={"detectors": ALL}, storage_options=options, **engine)
        assert comparable(report) == comparable(one_shot)


def test_a_partition_that_kills_every_worker_fails_the_scan_clearly(poisoned_digits, dask_client, tmp_path):
    # The module's cluster, in the last of its tests: its killed workers' restart (minutes on a loaded
    # machine) holds up no other test, and the two worker processes a cluster of its own started and
    # warmed (about 5 s of CPU) are not paid again. The workers it kills are as real as a fresh cluster's.
    baseline, contribution, schema = poisoned_digits
    parts = partitions_of(write_parts(contribution, tmp_path / "x", files=3, row_group_size=1000))
    parts[1] = KillsEveryWorker(parts[1])
    # Dask blames the tasks running on a worker when it dies: under load the survey of part-000 can be
    # running on both workers that part-001 kills, and is then the partition named. Either way the scan
    # fails with the partition and the cause named, and stores nothing.
    killed = r"partition .*part-00[01]\.parquet failed: the workers that ran it died .*the scan stored nothing"
    with pytest.raises(EngineError, match=killed):
        scan(baseline, parts, schema, policy={"detectors": ALL}, client=dask_client)


def test_above_the_exact_limit_outliers_estimate_batch_peers_from_a_sample_alike_in_partitions(monkeypatch):
    # Above EXACT_PEERS_MAX records outliers' batch-peer search runs in the record stage against a seeded
    # sample of the contribution: partitions scored apart still give the one-shot report, and a planted
    # new group is still told from lone outliers (the exact search finds the same 80 members here).
    from dataward.gates.detectors import outliers

    rng = np.random.default_rng(3)
    dim, classes = 8, 4
    centres = rng.standard_normal((classes, dim)) * 3

    def side(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, classes, n)
        return (centres[labels] + rng.standard_normal((n, dim))).astype(np.float32), labels

    def table(x: np.ndarray, labels: np.ndarray) -> pa.Table:
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), type=pa.float32()), dim)
        return pa.table({"emb": emb, "label": [f"c{c}" for c in labels]})

    baseline = table(*side(600))
    x, labels = side(500)
    group = np.arange(100, 180)  # a new sub-population: a tight cluster far from every class
    x[group] = 12.0 + 0.5 * rng.standard_normal((group.size, dim)).astype(np.float32)
    lone = np.array([7, 300, 450])  # lone records far out, each in its own direction
    x[lone] = rng.standard_normal((lone.size, dim)).astype(np.float32) * 25
    contribution = table(x, labels)
    schema = {"label": "label", "inputs": [{"name": "emb", "kind": "embedding", "dim": dim}]}
    policy = {"detectors": ["outliers"], "options": {"outliers": {"min_class_forest": 10_000}}}

    monkeypatch.setattr(outliers, "EXACT_PEERS_MAX", 400)
    monkeypatch.setattr(outliers, "PEER_SAMPLE", 200)
    sampled = scan(baseline, contribution, schema, policy=policy)
    parted = scan(baseline, contribution, schema, policy=policy, engine="local", partition_rows=170)
    assert comparable(parted) == comparable(sampled)

    result = sampled.results["outliers"]
    assert result.summary["batch_peers"] == {"estimated_from_sample": 200, "of": 500}
    (finding,) = result.contribution_findings
    assert finding.evidence["records"] == result.summary["in_unusual_groups"] == group.size
    assert finding.evidence["rows_sample"] == group[:20].tolist()  # positions of the first members
    assert not result.flagged[group].any()  # the group is reported as a group, not flagged record by record
    assert result.flagged[lone].all()  # lone outliers are still flagged one by one


def test_partition_results_are_handed_over_one_at_a_time_and_spilled(tmp_path):
    # The local engine computes a partition only when the previous result has been taken ...
    calls = []
    results = LocalEngine().each(lambda item, shared: calls.append(item) or item * shared, [1, 2, 3], 10, describe=str)
    assert next(results) == 10 and calls == [1]
    assert list(results) == [20, 30] and calls == [1, 2, 3]
    # ... and what the partitions gave is spilled: features and tables come back memory-mapped, equal.
    from dataward.domain.schema import Schema
    from dataward.gates.inputs import normalize
    from dataward.gates.partitioned import Gathered, Scored

    schema = Schema.from_dict({"label": "label", "inputs": [{"name": "x", "kind": "numeric"}]})
    tables = [pa.table({"x": [1.0, 2.0], "label": ["a", "b"]}), pa.table({"x": [3.0], "label": ["a"]})]
    gathered = Gathered(tmp_path, 3)
    for table in tables:
        norm = normalize(table, schema, "contribution")
        features = norm.table.column("x").to_numpy().astype(np.float32)[:, None]
        gathered.add(Scored(norm, features, np.zeros(len(norm)), {"d": {"v": features[:, 0] * 2}}, {}))
    norm, features = gathered.contribution()
    assert isinstance(features, np.memmap) and features[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert norm.table.column("x").to_pylist() == [1.0, 2.0, 3.0] and list(norm.labels) == ["a", "b", "a"]
    # Record ids, file rows and per-record outputs are read back from files too, not held as Python objects.
    ids = [i for t in tables for i in normalize(t, schema, "contribution").record_ids]
    assert isinstance(norm.record_ids, RecordIds) and norm.record_ids == ids and list(norm.record_ids) == ids
    assert norm.record_ids[2] == ids[2] and norm.record_ids[1:] == ids[1:] and len(set(ids)) == 3
    assert norm.record_ids[-1] == ids[-1] and norm.record_ids[-3] == ids[0]
    with pytest.raises(IndexError):
        norm.record_ids[3]
    assert isinstance(norm.rows, np.memmap) and norm.rows.tolist() == [1, 2, 1]
    outputs = gathered.detector_records(["d", "absent"])
    assert isinstance(outputs["d"]["v"], np.memmap) and outputs["d"]["v"].tolist() == [2.0, 4.0, 6.0]
    assert outputs["absent"] == {}
    # The features handed to the detectors cannot be written in place.
    with pytest.raises(ValueError, match="read-only"):
        features[0, 0] = 9.0
    # Keys first seen in a later partition get files of their own: detector "a" gives "w" only in the
    # second partition, where "b" gives "w" for the first time too; neither overwrites the other.
    (tmp_path / "keys").mkdir()
    keyed = Gathered(tmp_path / "keys", 3)
    for k, table in enumerate(tables):
        part = normalize(table, schema, "contribution")
        x = part.table.column("x").to_numpy().astype(np.float32)
        outputs_k = {"a": {"v": x, "w": x * 10}, "b": {"w": x * 100}} if k else {"a": {"v": x}}
        keyed.add(Scored(part, x[:, None], np.zeros(len(part)), outputs_k, {}))
    got = keyed.detector_records(["a", "b"])
    assert got["a"]["v"].tolist() == [1.0, 2.0, 3.0] and got["a"]["w"][2] == 30.0
    assert got["b"]["w"].tolist() == [300.0]
    short = Gathered(tmp_path / "short", 4)
    (tmp_path / "short").mkdir()
    short.add(Scored(norm, np.asarray(features), np.zeros(3), {}, {}))
    with pytest.raises(InputError, match="held 3 records, the survey counted 4"):
        short.contribution()
    # A partition that grew after the survey (a file rewritten in between) is refused as it arrives.
    (tmp_path / "long").mkdir()
    long = Gathered(tmp_path / "long", 2)
    with pytest.raises(InputError, match="more than the 2 records the survey counted"):
        long.add(Scored(norm, np.asarray(features), np.zeros(3), {}, {}))


def test_backdoor_clusters_from_two_passes_over_blocks_give_the_one_shot_report(monkeypatch):
    # backdoor needs every contribution record of a class for its clustering: it takes the class's principal
    # components in a first pass over blocks of the contribution and the projections in a second, never
    # every record's representation at once (``_class_projections``, checked against the whole-matrix
    # decomposition below). With blocks far smaller than the contribution, the one-shot and partitioned
    # scans agree to the bit, on the features and on the MLP probe's activations.
    from dataward.gates.detectors import backdoor

    rng = np.random.default_rng(4)
    dim, classes = 6, 3
    centres = rng.standard_normal((classes, dim)) * 4

    def table(n: int, relabelled: int) -> pa.Table:
        labels = rng.integers(0, classes, n)
        x = (centres[labels] + rng.standard_normal((n, dim))).astype(np.float32)
        labels[:relabelled] = 2  # records of other classes relabelled to one target
        x[:relabelled] = (centres[0] + 0.3 * rng.standard_normal((relabelled, dim))).astype(np.float32)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), type=pa.float32()), dim)
        return pa.table({"emb": emb, "label": [f"c{c}" for c in labels]})

    baseline, contribution = table(300, 0), table(400, 30)
    schema = {"label": "label", "inputs": [{"name": "emb", "kind": "embedding", "dim": dim}]}
    monkeypatch.setattr(backdoor, "BLOCK", 64)
    for probe in ("features", "mlp"):
        policy = {"detectors": ["backdoor"], "options": {"backdoor": {"probe": probe, "max_iter": 10}}}
        whole = scan(baseline, contribution, schema, policy=policy)
        parted = scan(baseline, contribution, schema, policy=policy, engine="local", partition_rows=97)
        assert comparable(parted) == comparable(whole)
        assert whole.results["backdoor"].block  # the relabelled records were found as a group
        # No member can be flagged against 100 trusted records a class: the group waits in the queue
        # with the block, the same records in both scans.
        queued = [r.records.queued_by["backdoor:block"] for r in (whole, parted)]
        assert queued[0].any() and np.array_equal(queued[0], queued[1])


def test_class_projections_in_two_passes_equal_the_whole_matrix_decomposition(monkeypatch):
    from dataward.gates.detectors import backdoor

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((700, 6)) * [5, 3, 2, 1, 0.5, 0.1] + 100.0).astype(np.float32)
    labels = rng.integers(0, 3, 700)
    labels[labels == 2] = 1  # class 2 has no records: it is not asked for
    reference = {0: x[:40].astype(np.float64) + 0.5, 1: x[40:90].astype(np.float64)}
    monkeypatch.setattr(backdoor, "BLOCK", 50)
    out = backdoor._class_projections(x, labels, reference, backdoor._as_float64, 4)
    assert sorted(out) == [0, 1]
    for code, (ref, new) in out.items():
        both = np.vstack([reference[code], x[labels == code].astype(np.float64)])
        centred = both - both.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        expected = centred @ vt[:4].T
        got = np.vstack([ref, new])
        signs = np.sign(np.sum(expected * got, axis=0))  # a component's sign is arbitrary
        assert got.shape == expected.shape
        np.testing.assert_allclose(got * signs, expected, atol=1e-6 * np.abs(expected).max())
