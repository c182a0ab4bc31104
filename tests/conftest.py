"""Fixtures shared by every test: real wards on SQLite and, when a server can run, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from benchmarks.pg_cluster import PostgresUnavailable, create_database, postgres_cluster

# Property and fuzz tests draw the same examples on every run of the suite: `make test` passes or fails
# on the code, never on the draw (a fuzzer that finds a new bug on one CI run in ten blocks whatever
# landed beside it). `make fuzz` runs them with fresh draws (`--hypothesis-profile=explore`) to look
# for what the fixed draws miss; whatever it finds becomes a test of its own.
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a local socket (``benchmarks/pg_cluster.py``, with syncing
    off); yields a base URL without a database name. Skips when no cluster can run here."""
    try:
        with postgres_cluster(durable=False) as base:
            yield base
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


def _create_database(base: str) -> str:
    return create_database(base)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """``None`` (the embedded SQLite default) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    base = request.getfixturevalue("postgres_server")
    return _create_database(base)


@pytest.fixture
def ward(tmp_path: Path):
    """A fresh embedded ward acting as its first admin."""
    from dataward.service.ward import Ward

    w, _key = Ward.init(tmp_path / "ward")
    yield w
    w.db.dispose()
