"""A throwaway PostgreSQL cluster on a local socket: the one recipe used by the tests' fixtures
(``tests/conftest.py``) and by the benchmarks that compare the two catalogs.

``initdb`` into a temporary folder, ``pg_ctl start`` listening only on a Unix socket, stopped and
removed on exit. Run as the ``postgres`` user when we are root (initdb refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN_GLOBS = ("/usr/lib/postgresql/*/bin",)


class PostgresUnavailable(RuntimeError):
    """No cluster can be started here: the binaries, ``runuser`` or the driver is missing, or the
    server did not start (the message says which)."""


def _bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for pattern in PG_BIN_GLOBS:
        for candidate in sorted(glob.glob(pattern), reverse=True):
            if (Path(candidate) / "initdb").exists():
                return Path(candidate)
    return None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_cluster(*, durable: bool = True, root: Path | None = None) -> Iterator[str]:
    """Start a cluster; yields a SQLAlchemy URL template with ``{db}`` for the database name.

    ``durable=True`` keeps the server's default durability (``fsync`` on), as a deployment runs and as
    benchmarks measure; ``durable=False`` turns syncing off, which is what tests want. With ``root``, the
    cluster lives in that folder and is kept when stopped: the next call with the same folder starts it
    again with its databases (a benchmark ward built over several runs). Raises ``PostgresUnavailable``
    when no cluster can be started here.
    """
    bin_dir = _bin()
    if bin_dir is None:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed on this machine")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg is not installed (pip install 'dataward[postgres]')") from None
    keep = root is not None
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="dataward-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    data, sock = root / "data", root / "sock"
    made = not data.exists()
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    env = {**os.environ, "LC_ALL": "C"}
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"]
    options = f"-k {sock} -c listen_addresses=''"
    if not durable:
        initdb.append("--no-sync")
        options += " -c fsync=off"
    start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o", options, "start"]
    try:
        if made:
            subprocess.run(_as_postgres(initdb), check=True, capture_output=True, env=env)
        subprocess.run(_as_postgres(start), check=True, capture_output=True, env=env)
    except (subprocess.CalledProcessError, OSError) as exc:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")[:300]
        raise PostgresUnavailable(f"could not start a PostgreSQL cluster: {exc} {detail}") from None
    try:
        yield f"postgresql+psycopg://postgres@/{{db}}?host={sock}"
    finally:
        # A durable cluster is stopped cleanly; a test cluster's data is thrown away anyway.
        mode = "fast" if durable else "immediate"
        stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", mode, "stop"]
        subprocess.run(_as_postgres(stop), check=False, capture_output=True)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def create_database(template: str, *, attempts: int = 20) -> str:
    """A new empty database in the cluster of URL ``template``; returns its URL. Retries a refused
    connection a few times (a server just started, or busy creating another database)."""
    import psycopg

    name = "dw_" + uuid.uuid4().hex[:12]
    host = template.split("host=", 1)[1]
    for attempt in range(attempts):
        try:
            with psycopg.connect(f"host={host} user=postgres dbname=postgres", autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            break
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    return template.format(db=name)
