"""Attacks on the import and the catalog's checkpoint thread: crashes at random moments, a long reader and
two writers beside checkpoints, a slow chunk upload against the write lock, records stored meanwhile, and the
lazily built hex ids and content hash against what the canonical encoding gives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from dataward.catalog import wal
from dataward.domain.errors import Busy
from dataward.domain.hashing import content_hash
from dataward.domain.records import record_id
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io import read_table
from dataward.service import recordstore
from dataward.service.ward import Ward
from dataward.store.tables import binary_id_array
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, wine_ward, write_csv

REPO = Path(__file__).resolve().parents[2]


# --- lazy ImportedTable.table ------------------------------------------------------------------


def _png(seed: int) -> bytes:
    from tests.io.samples import png_bytes

    return png_bytes(seed)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "images"])
def test_lazy_table_ids_are_blake3_of_the_canonical_encoding(tmp_path: Path, fmt: str) -> None:
    if fmt == "images":
        schema = Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE),))
        root = tmp_path / "imgs"
        for i, rel in enumerate(["cat/a.png", "cat/b.png", "dog/c.png", "dog/d.png"]):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(_png(i % 3))  # a duplicate image under two names
        path = root
    else:
        label, specs = wine_schema_specs()
        schema = Schema.parse(label, specs)
        rows = wine_rows(0, 50) + wine_rows(0, 3)  # duplicates
        if fmt == "csv":
            path = write_csv(tmp_path / "a.csv", rows)
        elif fmt == "jsonl":
            import json

            path = tmp_path / "a.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            path = tmp_path / "a.parquet"
            pq.write_table(pa.Table.from_pylist(rows), path)
    imported = read_table(path, schema)
    table = imported.table
    assert table is imported.table  # cached
    assert table.schema == schema.arrow_schema()
    assert table.drop_columns([table.column_names[0]]).equals(imported.content)
    expected = [record_id(schema, r) for r in imported.content.to_pylist()]
    assert table.column(0).to_pylist() == expected == imported.record_ids
    assert binary_id_array(imported.digests).to_pylist() == [bytes.fromhex(h) for h in expected]


# --- content hash over digests -----------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 1000, (1 << 16) + 3])
def test_joined_ids_hash_of_digests_is_the_hash_of_the_joined_hex(n: int) -> None:
    rng = np.random.default_rng(n)
    digests = rng.integers(0, 256, size=(n + 7, 32), dtype=np.uint8)
    full = binary_id_array(digests)
    hexes = [d.hex() for d in full.to_pylist()]
    sliced = full.slice(5, n)  # a non-zero offset into the buffer
    want = content_hash("\n".join(hexes[5 : 5 + n]).encode())
    assert recordstore.joined_ids_hash(sliced) == want
    assert recordstore.joined_ids_hash(pa.array(hexes[5 : 5 + n], pa.string())) == want
    if n >= 2:
        chunked = pa.chunked_array([full.slice(5, 1), full.slice(6, n - 1)])
        assert recordstore.joined_ids_hash(chunked) == want


def test_recorded_content_hash_commits_to_the_hex_ids(tmp_path: Path) -> None:
    from dataward.domain.hashing import json_hash

    ward = wine_ward(tmp_path / "ward")
    path = write_csv(tmp_path / "a.csv", wine_rows(0, 40) + wine_rows(0, 2))
    c = ward.contribute("wine", path, source="s", gate=False)
    label, specs = wine_schema_specs()
    ids = read_table(path, Schema.parse(label, specs)).record_ids
    with ward.db.reading() as conn:
        ds_id, chash = conn.execute(
            text("SELECT dataset_id, content_hash FROM contributions WHERE number = :n"), {"n": c["number"]}
        ).one()
    assert chash == json_hash(
        {"dataset": ds_id, "added": content_hash("\n".join(ids).encode()), "removed": content_hash(b"")}
    )


# --- chunk waited for inside the write transaction ---------------------------------------------


def _slow_chunk(monkeypatch: pytest.MonkeyPatch, seconds: float, started: threading.Event) -> None:
    # Every way a chunk is stored (written ahead from the file's records, or from the rows kept) goes
    # through ``_store_chunk``, encoded already: an upload that takes this long.
    real = recordstore._store_chunk

    def slow(*args: object, **kwargs: object) -> str:
        started.set()
        time.sleep(seconds)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(recordstore, "_store_chunk", slow)


def test_a_slow_chunk_does_not_hold_the_write_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer must not wait for (or be refused because of) one import's chunk being encoded
    or uploaded (slow on a remote store): the chunk is waited for before the write lock is taken."""
    monkeypatch.setenv("DATAWARD_LOCK_TIMEOUT", "1")
    folder = tmp_path / "ward"
    wine_ward(folder).db.dispose()
    ward = Ward.open(folder)
    other = Ward.open(folder)
    started = threading.Event()
    _slow_chunk(monkeypatch, 3.0, started)
    errors: list[BaseException] = []

    def importer() -> None:
        try:
            ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=importer)
    t.start()
    assert started.wait(10)
    time.sleep(0.5)  # the importer has done everything else by now
    began = time.monotonic()
    try:
        other.set_policy("wine", NO_APPROVALS_POLICY)
        outcome = f"ok after {time.monotonic() - began:.2f}s"
    except Busy:
        outcome = f"Busy after {time.monotonic() - began:.2f}s"
    t.join(30)
    assert not errors
    assert outcome.startswith("ok"), outcome


def test_records_stored_meanwhile_by_another_submission_no_deadlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ward = wine_ward(tmp_path / "ward")
    started = threading.Event()
    _slow_chunk(monkeypatch, 1.5, started)
    a = write_csv(tmp_path / "a.csv", wine_rows(0, 60))
    b = write_csv(tmp_path / "b.csv", wine_rows(30, 90))
    results: dict[str, object] = {}

    def run(name: str, path: Path) -> None:
        try:
            results[name] = ward.contribute("wine", path, source=name, gate=False)
        except BaseException as exc:
            results[name] = exc

    ta = threading.Thread(target=run, args=("a", a))
    ta.start()
    assert started.wait(10)
    tb = threading.Thread(target=run, args=("b", b))
    tb.start()
    ta.join(60)
    tb.join(60)
    assert not ta.is_alive() and not tb.is_alive(), "deadlock"
    assert all(isinstance(r, dict) for r in results.values()), results
    assert sum(r["new_records"] for r in results.values()) == 90  # type: ignore[index]
    assert ward.verify().ok


# --- WalCheckpointer ---------------------------------------------------------------------------


def test_long_reader_during_large_writes_and_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    ward = wine_ward(tmp_path / "ward")
    ward.contribute("wine", write_csv(tmp_path / "0.csv", wine_rows(0, 30)), source="0", gate=False)
    cp = ward.db.checkpointer
    assert cp is not None
    with ward.db.reading() as conn:
        seen = conn.execute(text("SELECT count(*) FROM contributions")).scalar_one()
        for i in range(1, 5):
            ward.contribute(
                "wine", write_csv(tmp_path / f"{i}.csv", wine_rows(30 * i, 30 * i + 30)), source=str(i), gate=False
            )
            assert cp.wait_idle(30)
            assert conn.execute(text("SELECT count(*) FROM contributions")).scalar_one() == seen  # snapshot held
    assert len(ward.contributions("wine")) == 5
    ward.set_policy("wine", NO_APPROVALS_POLICY)  # a write after the reader left: the log can be copied whole
    assert cp.wait_idle(30)
    ward.db.dispose()
    assert Ward.open(tmp_path / "ward").verify().ok


def test_two_writer_threads_with_checkpoints_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    folder = tmp_path / "ward"
    wine_ward(folder).db.dispose()
    wards = [Ward.open(folder), Ward.open(folder)]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            for i in range(4):
                lo = 1000 * k + 40 * i
                path = write_csv(tmp_path / f"{k}-{i}.csv", wine_rows(lo % 170, lo % 170 + 5))
                wards[k].contribute("wine", path, source=f"{k}-{i}", gate=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for w in wards:
        w.db.dispose()
    ward = Ward.open(folder)
    assert len(ward.contributions("wine")) == 8
    assert ward.verify().ok


def test_sigkill_at_random_moments_loses_no_reported_commit(tmp_path: Path) -> None:
    folder = tmp_path / "ward"
    wine_ward(folder).db.dispose()
    csvs = [write_csv(tmp_path / f"{i}.csv", wine_rows(i % 170, i % 170 + 8)) for i in range(40)]
    script = textwrap.dedent(
        f"""
        import sys
        from dataward.catalog import wal
        wal.CHECKPOINT_PAGES = 1
        from dataward.service.ward import Ward
        ward = Ward.open({str(folder)!r})
        for p in {[str(c) for c in csvs]!r}:
            c = ward.contribute("wine", p, source=p, gate=False)
            print(c["ref"], flush=True)
        """
    )
    rng = random.Random(7)
    reported: list[str] = []
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        first = proc.stdout.readline().decode().split()  # the child is importing by now
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        reported += first + out.decode().split()
        ward = Ward.open(folder)
        assert ward.verify().ok
        refs = {c["ref"] for c in ward.contributions("wine")}
        assert set(reported) <= refs
        ward.db.dispose()
    assert reported, "the child never committed: raise the delays"


def test_postgresql_has_no_checkpointer(tmp_path: Path, catalog_url: str | None) -> None:
    ward = wine_ward(tmp_path / "ward", catalog_url=catalog_url)
    if catalog_url is None:
        assert ward.db.checkpointer is not None
    else:
        assert ward.db.checkpointer is None
    c = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    assert c["new_records"] == 60
    assert ward.verify().ok
    ward.db.dispose()
