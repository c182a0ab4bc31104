"""A throwaway PostgreSQL cluster on a local socket, for benchmarks that compare the two catalogs.

The same recipe as the tests' fixture: ``initdb`` into a temporary folder, ``pg_ctl start`` listening
only on a Unix socket, stopped and removed on exit. Run as the ``postgres`` user when we are root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster; yields a SQLAlchemy URL template with ``{db}`` for the database name.

    Durability settings are the server's defaults (``fsync`` on), as a deployment would run."""
    bin_dir = _bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="dataward-bench-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    env = {**os.environ, "LC_ALL": "C"}
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True, env=env)
    start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log")]
    subprocess.run(
        _as_postgres([*start, "-o", f"-k {sock} -c listen_addresses=''", "start"]),
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        yield f"postgresql+psycopg://postgres@/{{db}}?host={sock}"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), check=False)
        shutil.rmtree(root, ignore_errors=True)


def create_database(template: str) -> str:
    """A new empty database in the cluster; returns its URL."""
    import psycopg

    name = "dw_" + uuid.uuid4().hex[:12]
    host = template.split("host=", 1)[1]
    with psycopg.connect(f"host={host} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return template.format(db=name)
