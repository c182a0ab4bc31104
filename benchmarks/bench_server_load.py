"""Load on a served ward: concurrent authenticated reads and contribution submissions over loopback.

A new ward (SQLite, or PostgreSQL with ``--catalog``) is served by ``dataward serve`` in a child
process; ``--clients`` principals each get their own key and act from their own thread and HTTP
connection (the read clients spread over ``--client-processes`` processes). Three phases, each bounded in
count and in time:

* the no-op peer: every client asks ``GET /healthz`` (no key, no catalog) as often as it will read: the
  same HTTP stack's ceiling on this machine at this moment, against which the reads are reported;
* reads: every client lists the dataset's versions (``GET /api/v1/datasets/load/versions``, authorized
  like any use case) until ``--reads`` requests are done or ``--seconds`` have passed;
* submissions: every client submits ``--submissions`` small contributions (upload, then the
  contribution job polled to its end, gate off: this measures the write path, not the gate).

The server's own CPU time (its process and workers, user + system) is read around the first two phases:
per request, and as a ratio of a read to a no-op request, it says what a read costs the server however
loaded the machine is.

Afterwards the ledger must hold exactly one ``contribution.submitted`` event per accepted submission
(no lost events) and ``verify`` must pass (a valid chain). Throughput and p50/p99 latencies are
printed and written to ``benchmarks/results/server_load-{sqlite,postgresql}.json``. The client threads run on the same
machine as the server, so on a small machine they compete with it for the cores.

Usage::

    python benchmarks/bench_server_load.py --clients 50 --reads 5000 --submissions 2 --workers 2
    python benchmarks/bench_server_load.py --catalog postgresql ...   # a throwaway local cluster
    python benchmarks/bench_server_load.py --catalog 'postgresql+psycopg://user@host/db' ...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from dataward.client import HTTPWard
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

RESULTS = Path(__file__).parent / "results"
POLICY = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server process and its workers: divided by the
    requests of a phase, what one request cost the server, whatever else the machine was doing."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            with_times = proc.cpu_times()
            total += with_times.user + with_times.system
        return total
    except psutil.Error:
        return float("nan")


def database_cpu_s(catalog: str | None) -> float | None:
    """CPU seconds used so far by the PostgreSQL cluster the benchmark started (``--catalog
    postgresql``): its postmaster and backends, ended ones included. None for SQLite (its work is in
    the server's own CPU time) and for a cluster this run did not start."""
    import psutil

    if not catalog or "host=" not in catalog:
        return None
    pid_file = Path(catalog.split("host=", 1)[1].split("&", 1)[0]).parent / "data" / "postmaster.pid"
    try:
        root = psutil.Process(int(pid_file.read_text().split()[0]))
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for proc in root.children(recursive=True):
            child = proc.cpu_times()
            total += child.user + child.system
        return total
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def clients_cpu_s() -> float:
    """CPU seconds used so far by this process and its ended children: the client processes of a phase
    once joined (the server, still running, is not among them)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


Work = Callable[[int, list[float], list[str]], None]


def _client_threads(work: Work, ids: list[int], start_at: float) -> tuple[list[float], list[str]]:
    """Run the clients ``ids`` each in its own thread of this process, from ``start_at`` (wall clock)."""
    latencies: list[list[float]] = [[] for _ in ids]
    errors: list[list[str]] = [[] for _ in ids]
    threads = [threading.Thread(target=work, args=(i, latencies[n], errors[n])) for n, i in enumerate(ids)]
    time.sleep(max(0.0, start_at - time.time()))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for xs in latencies for x in xs], [e for es in errors for e in es]


def run_clients(clients: int, work: Work, processes: int = 1) -> tuple[list[float], list[str], float]:
    """Run ``clients`` clients, spread over ``processes`` client processes (threads in each): one
    Python process cannot drive 50 connections faster than its one interpreter lock allows, and the
    benchmark is of the server, not of the client's lock."""
    groups = [list(range(p, clients, processes)) for p in range(max(1, min(processes, clients)))]
    start_at = time.time() + (0.5 if len(groups) > 1 else 0.0)
    if len(groups) == 1:
        start = time.perf_counter()
        lat, err = _client_threads(work, groups[0], start_at)
        return lat, err, time.perf_counter() - start
    # Forked: each child inherits the work function (a closure, not picklable); only the measured
    # latencies and errors travel back.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [
        context.Process(target=lambda ids=ids: queue.put(_client_threads(work, ids, start_at))) for ids in groups
    ]
    for child in children:
        child.start()
    answers = [queue.get() for _ in children]
    for child in children:
        child.join()
    elapsed = time.time() - start_at
    return [x for lat, _ in answers for x in lat], [e for _, err in answers for e in err], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--reads", type=int, default=5000, help="total read requests (bound)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound of each phase")
    parser.add_argument("--submissions", type=int, default=2, help="contributions per client")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tag", default="", help="results go to server_load-CATALOG-TAG.json")
    parser.add_argument(
        "--catalog",
        default=None,
        help="catalog URL, or `postgresql` for a throwaway local cluster (default: SQLite in the ward)",
    )
    parser.add_argument(
        "--client-processes", type=int, default=5, help="processes the read clients are spread over (threads in each)"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.catalog == "postgresql":
            # A throwaway local cluster (syncing off, as in the tests), started and removed here.
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from benchmarks.pg_cluster import create_database, postgres_cluster

            args.catalog = create_database(stack.enter_context(postgres_cluster(durable=False)))
        run(args)


def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="dataward-load-"))
    ward, admin_key = Ward.init(root / "ward", catalog_url=args.catalog)
    ward.create_dataset("load", Schema.parse("label", ["text:text"]))
    ward.set_policy("load", POLICY)
    keys = []
    for i in range(args.clients):
        name = f"client-{i:02d}"
        ward.create_principal(name)
        ward.grant(name, "contributor", "dataset:load")
        ward.grant(name, "reader", "dataset:load")
        keys.append(ward.issue_key(name)["key"])
    ward.db.dispose()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAWARD_")}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "dataward", "serve", "--ward", str(root / "ward")),
            *("--port", str(port), "--workers", str(args.workers)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(root / "server.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 300  # worker processes import the whole application first
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                log = (root / "server.log").read_text("utf-8", "replace")[-2000:]
                raise SystemExit(f"the server did not start:\n{log}")
            time.sleep(0.2)

        per_client = max(1, args.reads // args.clients)

        def requests_of(path: str, authenticated: bool) -> Work:
            def work(i: int, lat: list[float], errs: list[str]) -> None:
                stop_at = time.monotonic() + args.seconds
                headers = {"Authorization": f"Bearer {keys[i]}"} if authenticated else {}
                with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
                    for _ in range(per_client):
                        if time.monotonic() > stop_at:
                            return
                        t0 = time.perf_counter()
                        r = c.get(path)
                        lat.append(time.perf_counter() - t0)
                        if r.status_code != 200:
                            errs.append(f"{r.status_code} {r.text[:100]}")

            return work

        # --- the peer: the same server answering a request that reaches no ward -------------------
        # `GET /healthz` goes through the same HTTP stack, workers and client processes, but neither
        # authenticates nor touches the catalog: its throughput is this machine's ceiling right now,
        # so that a read's figure can be read as a share of it on a machine whose load varies.
        cpu0, db0, own0 = server_cpu_s(server.pid), database_cpu_s(args.catalog), clients_cpu_s()
        peer_lat, peer_err, peer_s = run_clients(args.clients, requests_of("/healthz", False), args.client_processes)
        cpu1, own1 = server_cpu_s(server.pid), clients_cpu_s()

        # --- reads ---------------------------------------------------------------------------------
        read_lat, read_err, read_s = run_clients(
            args.clients, requests_of("/api/v1/datasets/load/versions", True), args.client_processes
        )
        cpu2, db2, own2 = server_cpu_s(server.pid), database_cpu_s(args.catalog), clients_cpu_s()
        # The no-op requests never reach the database: its CPU over both phases is the reads'.
        db_cpu_ms = None if db0 is None or db2 is None else 1000 * (db2 - db0) / max(1, len(read_lat))
        peer_cpu_ms = 1000 * (cpu1 - cpu0) / max(1, len(peer_lat))
        read_cpu_ms = 1000 * (cpu2 - cpu1) / max(1, len(read_lat))

        # --- submissions -----------------------------------------------------------------------------
        files = root / "files"
        files.mkdir()
        stop_at = time.monotonic() + args.seconds
        accepted = [0] * args.clients

        def submit(i: int, lat: list[float], errs: list[str]) -> None:
            client = HTTPWard(url, key=keys[i], poll_interval=0.05)
            for n in range(args.submissions):
                if time.monotonic() > stop_at:
                    return
                path = files / f"c{i}-{n}.csv"
                path.write_text(
                    "text,label\n" + "".join(f"client {i} batch {n} line {k},l{k % 3}\n" for k in range(20))
                )
                t0 = time.perf_counter()
                try:
                    client.contribute("load", path, source=f"load:{i}", gate=False)
                    accepted[i] += 1
                except Exception as exc:  # a refusal is a measured failure, not a crash of the run
                    errs.append(f"{type(exc).__name__}: {exc}")
                lat.append(time.perf_counter() - t0)
            client.close()

        sub_lat, sub_err, sub_s = run_clients(args.clients, submit)

        admin = HTTPWard(url, key=admin_key)
        submitted_events = len(admin.ledger(types=["contribution.submitted"]))
        report = admin.verify()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    result: dict[str, Any] = {
        "catalog": "postgresql" if args.catalog else "sqlite",
        "clients": args.clients,
        "workers": args.workers,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
        "client_processes": args.client_processes,
        "no_op_peer": {
            "requests": len(peer_lat),
            "errors": len(peer_err),
            "seconds": round(peer_s, 2),
            "per_second": round(len(peer_lat) / peer_s, 1) if peer_s else None,
            "p50_ms": round(1000 * percentile(peer_lat, 0.5), 1),
            "p99_ms": round(1000 * percentile(peer_lat, 0.99), 1),
            "server_cpu_ms_per_request": round(peer_cpu_ms, 3),
            "clients_cpu_ms_per_request": round(1000 * (own1 - own0) / max(1, len(peer_lat)), 3),
        },
        "reads": {
            "requests": len(read_lat),
            "errors": len(read_err),
            "error_kinds": sorted(set(read_err))[:5],
            "seconds": round(read_s, 2),
            "per_second": round(len(read_lat) / read_s, 1) if read_s else None,
            "p50_ms": round(1000 * percentile(read_lat, 0.5), 1),
            "p99_ms": round(1000 * percentile(read_lat, 0.99), 1),
            "share_of_no_op": round((len(read_lat) / read_s) / (len(peer_lat) / peer_s), 3)
            if read_s and peer_s
            else None,
            "server_cpu_ms_per_request": round(read_cpu_ms, 3),
            "server_cpu_ratio_to_no_op": round(read_cpu_ms / peer_cpu_ms, 2) if peer_cpu_ms else None,
            "database_cpu_ms_per_request": None if db_cpu_ms is None else round(db_cpu_ms, 3),
            # The benchmark's own client processes, on the same cores: what a read costs the machine
            # is the server's, the database's and this.
            "clients_cpu_ms_per_request": round(1000 * (own2 - own1) / max(1, len(read_lat)), 3),
        },
        "submissions": {
            "attempted": len(sub_lat),
            "accepted": sum(accepted),
            "errors": sorted(set(sub_err))[:5],
            "seconds": round(sub_s, 2),
            "per_second": round(len(sub_lat) / sub_s, 2) if sub_s else None,
            "p50_ms": round(1000 * percentile(sub_lat, 0.5), 1),
            "p99_ms": round(1000 * percentile(sub_lat, 0.99), 1),
            "mean_ms": round(1000 * statistics.fmean(sub_lat), 1) if sub_lat else None,
        },
        "ledger": {
            "contribution_submitted_events": submitted_events,
            "lost_events": sum(accepted) - submitted_events,
            "verify_ok": report.ok,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"server_load-{result['catalog']}{'-' + args.tag if args.tag else ''}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if result["ledger"]["lost_events"] != 0 or not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
