"""A refused input exits 2 every time: no native reader thread outlives the error (exit 134).

pyarrow's streaming CSV reader read the file on Arrow's threads, which could still hold it when the
error had been printed; one asking for the GIL while the interpreter exited aborted the process
("terminate called without an active exception") in about one run in twenty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io import bounded, read_table
from dataward.service.ward import Ward
from tests.cli.test_cli import run

RUNS = 16
"""Commands run per test (the abort showed in 2 of 40 such runs before the fix, on 2 shared cores)."""

# One process imports the CLI once, then forks a child per command: each child runs `contribute` and
# leaves through the interpreter's own exit, where the abort happened, at a fraction of the cost of
# starting Python 16 times.
_FORKER = """
import json, os, sys
from dataward.cli.app import app
ward, runs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
os.environ["DATAWARD_WARD"] = ward
sys.argv = ["dataward", "contribute", "reviews", "/nonexistent.csv", "--source", "t", "--no-gate"]
try:
    app()  # a missing file: every module the command needs is imported before the forks
except SystemExit:
    pass
codes = []
for i in range(runs):
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        sys.argv = ["dataward", "contribute", "reviews", files[i % len(files)], "--source", "t", "--no-gate"]
        app()
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(json.dumps(codes))
"""


@pytest.fixture(scope="module")
def reviews_ward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ward with an empty ``reviews`` dataset, made in this process: the commands under test run as processes."""
    ward = tmp_path_factory.mktemp("refused") / "ward"
    with Ward.init(ward)[0] as admin:
        admin.create_dataset("reviews", Schema.parse("label", ["text:text"]))
    return ward


def _bad_files(folder: Path) -> list[Path]:
    short = folder / "short.csv"
    short.write_text("text,label\nhello,pos\nbye\n")
    quote = folder / "quote.csv"
    quote.write_text('text,label\n"unterminated,pos\n')
    return [short, quote]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child per command")
def test_a_refused_csv_exits_2_every_time(reviews_ward: Path, tmp_path: Path) -> None:
    files = _bad_files(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _FORKER, str(reviews_ward), str(RUNS), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    assert codes == [2] * RUNS  # -6 is the abort (SIGABRT; exit 134 in a shell)
    listed = run(reviews_ward, "contributions", "reviews", "--json")
    assert json.loads(listed.stdout) == []  # nothing stored


def test_the_cli_names_the_problem_and_exits_2(reviews_ward: Path, tmp_path: Path) -> None:
    short, quote = _bad_files(tmp_path)
    refused = run(reviews_ward, "contribute", "reviews", str(short), "--source", "t", "--no-gate")
    assert refused.returncode == 2
    assert "line 3" in refused.stderr and "'label'" in refused.stderr
    assert "terminate called" not in refused.stderr
    refused = run(reviews_ward, "contribute", "reviews", str(quote), "--source", "t", "--no-gate")
    assert refused.returncode == 2
    assert "line 2" in refused.stderr


def test_a_utf16_csv_is_refused_with_exit_2_and_nothing_stored(reviews_ward: Path, tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("text,label\nhello,pos\n".encode("utf-16"))
    refused = run(reviews_ward, "contribute", "reviews", str(path), "--source", "t", "--no-gate")
    assert refused.returncode == 2
    assert "is not UTF-8: it is UTF-16" in refused.stderr and "iconv" in refused.stderr
    assert json.loads(run(reviews_ward, "contributions", "reviews", "--json").stdout) == []


def test_no_stream_is_left_with_arrow_when_the_reader_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanism: once ``read_table`` has raised (or returned), Arrow's threads hold none of the
    streams it opened, without any wait on the caller's side. Before the fix a pool thread released
    the stream a few milliseconds later, in a few runs out of a hundred."""
    opened: list[weakref.ref[bounded.CheckedStream]] = []
    original = bounded.CheckedStream.__init__

    def tracked(self: bounded.CheckedStream, *args: object) -> None:
        original(self, *args)  # type: ignore[arg-type]
        opened.append(weakref.ref(self))

    monkeypatch.setattr(bounded.CheckedStream, "__init__", tracked)
    schema = Schema(label="label", inputs=(Column("text", ColumnKind.TEXT),))
    good = tmp_path / "good.csv"
    good.write_text("text,label\n" + "hello,pos\n" * 1000)
    # The main thread keeps the GIL unless it blocks: a pool thread waiting for it is not let in by chance.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        for _ in range(30):
            for path in [*_bad_files(tmp_path), good]:
                opened.clear()
                try:
                    read_table(path, schema)
                except InputError as exc:
                    exc.__context__ = None  # the parse error's traceback holds the reader's frames
                    del exc
                assert [ref for ref in opened if ref() is not None] == []
    finally:
        sys.setswitchinterval(previous)


def test_settle_waits_for_a_thread_that_holds_a_lent_block() -> None:
    """``settle`` returns only once every object lent has been released, on whichever thread."""
    import io

    from dataward.io.arrow_loan import ArrowLoan

    loan = ArrowLoan(io.BytesIO(b"abc"))
    feed = loan.feed()
    held = [feed.read(2)]
    del feed

    def release() -> None:
        time.sleep(0.05)
        held.clear()

    thread = threading.Thread(target=release)
    thread.start()
    assert not loan.returned
    assert loan.settle() is True
    assert held == [] and loan.returned
    thread.join()
    # Stopped: a read-ahead that reads again sees the end of the stream at once.
    assert bytes(loan.read(10)) == b""
