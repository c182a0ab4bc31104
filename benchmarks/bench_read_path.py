"""What one served read costs, serially, in one process: the ASGI application called directly (no
sockets, no client), so that the figure is the server's own work per request.

Three requests are timed in rounds, alternating, in the same process:

* ``GET /healthz``: the do-nothing endpoint (no key, no catalog): the HTTP stack's own cost;
* ``GET /api/v1/whoami``: authentication alone (plus one small read);
* ``GET /api/v1/datasets/load/versions``: the load benchmark's read (authenticate, authorize, query).

Reported per request: wall and CPU microseconds (median of the rounds; CPU time is this process's,
its thread pool included, so on SQLite it is the whole cost and it does not count time other programs
took from a shared machine), their ratios to ``/healthz``, and how many SQL statements reached the
catalog. ``--profile`` prints the top of a cProfile of the read.

Usage::

    python benchmarks/bench_read_path.py [--catalog sqlite|postgresql] [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from dataward.domain.schema import Schema
from dataward.server import ServerSettings, create_app
from dataward.service.ward import Ward

READ = "/api/v1/datasets/load/versions"


@contextmanager
def catalog_url(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    from benchmarks.pg_cluster import create_database, postgres_cluster

    with postgres_cluster(durable=False) as template:
        yield create_database(template)


def asgi_get(app: Any, path: str, key: str | None) -> Any:
    """One GET through the whole ASGI application (middleware, routing, dependencies, handlers)."""
    headers = [(b"host", b"127.0.0.1")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return scope, receive, send, sent


async def run_many(app: Any, path: str, key: str | None, n: int) -> tuple[float, float]:
    """Wall and CPU seconds (of this whole process, its thread pool included) per request."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        scope, receive, send, sent = asgi_get(app, path, key)
        await app(scope, receive, send)
        status = sent[0]["status"]
        if status != 200:
            raise SystemExit(f"{path}: {status} {sent[1].get('body', b'')[:200]!r}")
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    with catalog_url(args.catalog) as url:
        root = Path(tempfile.mkdtemp(prefix="dataward-readpath-"))
        ward, _admin = Ward.init(root / "ward", catalog_url=url)
        ward.create_dataset("load", Schema.parse("label", ["text:text"]))
        ward.create_principal("reader")
        ward.grant("reader", "reader", "dataset:load")
        key = ward.issue_key("reader")["key"]
        app = create_app(ServerSettings(ward=root / "ward"), ward=ward)

        statements = [0]

        @event.listens_for(ward.db.engine, "before_cursor_execute")
        def _count(*_a: Any) -> None:
            statements[0] += 1

        loop = asyncio.new_event_loop()
        endpoints = {"healthz": ("/healthz", None), "whoami": ("/api/v1/whoami", key), "read": (READ, key)}
        per: dict[str, list[float]] = {name: [] for name in endpoints}
        per_cpu: dict[str, list[float]] = {name: [] for name in endpoints}
        counts: dict[str, float] = {}
        for name, (path, k) in endpoints.items():  # warm up, and count statements per request
            loop.run_until_complete(run_many(app, path, k, 20))
            statements[0] = 0
            loop.run_until_complete(run_many(app, path, k, 50))
            counts[name] = statements[0] / 50
        for _ in range(args.rounds):
            for name, (path, k) in endpoints.items():
                wall, cpu = loop.run_until_complete(run_many(app, path, k, args.requests))
                per[name].append(wall)
                per_cpu[name].append(cpu)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            loop.run_until_complete(run_many(app, READ, key, args.requests))
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        loop.close()
        ward.db.dispose()

    base = statistics.median(per["healthz"])
    base_cpu = statistics.median(per_cpu["healthz"])
    result = {
        "catalog": args.catalog,
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "endpoints": {
            name: {
                "us_per_request": round(1e6 * statistics.median(times), 1),
                "ratio_to_healthz": round(statistics.median(times) / base, 2),
                "cpu_us_per_request": round(1e6 * statistics.median(per_cpu[name]), 1),
                "cpu_ratio_to_healthz": round(statistics.median(per_cpu[name]) / base_cpu, 2),
                "statements_per_request": counts[name],
            }
            for name, times in per.items()
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
