"""Fixtures shared by the security tests: a key team (``key_team.make_team``) on a clock, and a hostile
server on loopback (``hostile_http``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dataward.service.ward import Ward
from tests.security.hostile_http import Hostile, running
from tests.security.key_team import Clock, make_team


@pytest.fixture
def clock() -> Clock:
    """The clock the team's ward reads, moved by the tests."""
    return Clock()


@pytest.fixture
def team(tmp_path: Path, clock: Clock) -> dict[str, Ward]:
    """The key team's wards by member name. Modules with a team of their own define their own ``team``."""
    return make_team(tmp_path / "ward", clock)


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    """A hostile server on loopback for one test (``hostile_http.Hostile``)."""
    with running() as server:
        yield server
