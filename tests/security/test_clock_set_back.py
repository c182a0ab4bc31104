"""A clock set back does not bring an expired key back: the ward's time must not run behind its ledger.

The attack: a bot's one-day key has expired; whoever can set the host's clock (a container's fake time,
a VM snapshot restored, a hand-edited date) moves it back to before the expiry and submits with the
old key. The ledger's newest event is dated after the expiry, and every use case reads that date in its
first statement: a clock more than an hour behind it is refused before any key is judged.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dataward.domain.errors import ClockBehind, KeyExpired
from dataward.service.ward import Ward
from tests.security.key_team import Clock, contribute


def test_an_expired_key_does_not_work_again_with_the_clock_set_back(
    team: dict[str, Ward], clock: Clock, tmp_path: Path
) -> None:
    contribute(team["scraper"], tmp_path, "before")
    clock.advance(days=2)
    with pytest.raises(KeyExpired):
        contribute(team["scraper"], tmp_path, "expired")
    team["admin"].versions("wine")  # the ward goes on working: its ledger is now dated two days on
    team["admin"].create_principal("dave")

    clock.advance(days=-2)  # back to when the key was young
    with pytest.raises(ClockBehind) as refused:
        contribute(team["scraper"], tmp_path, "revived")
    assert "2.0 days before the ledger's newest event" in refused.value.message
    assert "set back" in refused.value.message
    with pytest.raises(ClockBehind):  # reads too, and for every key
        team["admin"].versions("wine")
    assert refused.value.exit_code == 4 and refused.value.code == "clock_behind"

    # verify still runs, and says why everything else is refused.
    report = team["admin"].verify()
    assert report.ok
    assert any("before the ledger's newest event" in w for w in report.warnings)

    clock.advance(days=2)
    with pytest.raises(KeyExpired):  # the clock set right: the key is as expired as before
        contribute(team["scraper"], tmp_path, "again")
    assert len(team["admin"].ledger(types=["contribution.submitted"])) == 1


def test_a_clock_a_little_behind_the_ledger_is_tolerated(team: dict[str, Ward], clock: Clock) -> None:
    """Several hosts serving one catalog, or a use case whose clock was read before another committed:
    seconds to minutes behind the newest event is not a clock set back."""
    team["admin"].create_principal("dave")
    clock.advance(minutes=-50)
    assert team["alice"].versions("wine") == []
    clock.advance(minutes=-20)  # now 70 minutes behind dave's creation, the newest event
    with pytest.raises(ClockBehind, match=r"1\.2 hours before"):
        team["alice"].versions("wine")


def test_the_command_line_refuses_a_clock_set_back_with_exit_4(tmp_path: Path) -> None:
    """A ward whose ledger is dated in the future of this host's clock (its clock was set back since)."""
    future = Clock()
    future.now = datetime.now(UTC) + timedelta(days=30)
    Ward.init(tmp_path / "ward", clock=future)[0].db.dispose()
    done = subprocess.run(
        [sys.executable, "-m", "dataward", "--ward", str(tmp_path / "ward"), "datasets"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stderr
    assert "before the ledger's newest event" in done.stderr
    assert "set the host's clock right" in done.stderr
    assert "Traceback" not in done.stderr


def test_verify_names_where_the_clock_was_set_back_in_a_ledger_written_before_it_was_refused(
    team: dict[str, Ward], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ward whose events were written while the clock ran back (before the refusal, or with it
    patched out): verify says which event went back and by how much, without failing the ledger."""
    import dataward.service.core as core

    monkeypatch.setattr(core, "refuse_clock_behind", lambda *_: None)
    clock.advance(days=-3)
    team["admin"].create_principal("dave")
    seq = team["admin"].ledger(limit=1)[0]["seq"]
    clock.advance(days=3, minutes=5)
    team["admin"].create_principal("erin")
    monkeypatch.undo()

    report = team["admin"].verify()
    assert report.ok
    jumps = [w for w in report.warnings if "the clock was set back when it was written" in w]
    assert len(jumps) == 1, report.warnings
    assert jumps[0].startswith(f"event #{seq} is dated ") and f"3.0 days before event #{seq - 1}" in jumps[0]


def test_the_jumps_named_are_those_over_an_hour_and_an_edited_time_is_left_to_the_chain_check() -> None:
    from dataward.service.clock_check import times_set_back

    def at(hour: int, minute: int = 0) -> str:
        return f"2026-12-01T{hour:02d}:{minute:02d}:00.000000Z"

    events = [(1, at(10)), (2, at(9, 30)), (3, at(12)), (4, at(10, 59)), (5, at(11)), (6, 42), (7, at(1)), (8, "x")]
    found = times_set_back(events)
    assert len(found) == 1 and found[0].startswith("event #4 is dated") and "1.0 hours before event #3" in found[0]


def _edit_newest_time(ward: Ward, value: object) -> int:
    """Set the newest ledger event's stored time to ``value`` in the catalog (a catalog writer's edit)."""
    from sqlalchemy import text

    with ward.db.engine.begin() as conn:
        seq = conn.execute(text("SELECT max(seq) FROM ledger_events")).scalar_one()
        conn.execute(text("UPDATE ledger_events SET time = :t WHERE seq = :s"), {"t": value, "s": seq})
    return int(seq)


EDITED_TIMES = {
    "far future": "2099-01-01T00:00:00.000000Z",
    "not a time": "not a time",
    "bytes": b"\x00",
}


@pytest.mark.parametrize("edited", EDITED_TIMES.values(), ids=EDITED_TIMES.keys())
def test_a_newest_event_whose_time_was_edited_is_refused_as_an_edit_not_a_clock_set_back(
    team: dict[str, Ward], edited: object
) -> None:
    """A catalog writer moves the newest event's time: nobody's clock was set back, and no command (verify
    included) fails on it with a traceback. Each is refused naming the edited event; verify reports it
    altered and does not tell anyone to set a clock right."""
    from dataward.domain.errors import IntegrityViolation

    seq = _edit_newest_time(team["admin"], edited)
    for ward in (team["admin"], team["alice"]):
        with pytest.raises(IntegrityViolation, match=rf"newest event #{seq}\b") as refused:
            ward.versions("wine")
        assert "verify" in (refused.value.hint or "")
    report = team["admin"].verify()
    assert not report.ok
    assert any(p.kind == "altered" and p.event == seq for p in report.problems), report.problems
    assert not any("set right" in w or "set back" in w for w in report.warnings), report.warnings


def test_the_command_line_names_an_edited_newest_event_time_with_exit_7(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    _edit_newest_time(ward, "not a time")
    ward.db.dispose()
    for command in ("datasets", "verify"):
        done = subprocess.run(
            [sys.executable, "-m", "dataward", "--ward", str(tmp_path / "ward"), command],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 7, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
