"""Fixtures shared by the security tests that act as a key team (``key_team.make_team``) on a clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.service.ward import Ward
from tests.security.key_team import Clock, make_team


@pytest.fixture
def clock() -> Clock:
    """The clock the team's ward reads, moved by the tests."""
    return Clock()


@pytest.fixture
def team(tmp_path: Path, clock: Clock) -> dict[str, Ward]:
    """The key team's wards by member name. Modules with a team of their own define their own ``team``."""
    return make_team(tmp_path / "ward", clock)
