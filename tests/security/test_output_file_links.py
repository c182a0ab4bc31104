"""Files the client writes for its user (a served export, a checkpoint, a public key) in a
folder someone else can also write: a team's shared folder, ``/tmp`` without the kernel's link
protection.

The attack: the file went first to a temporary name anyone could predict, ``.NAME.PID.part`` (served
``export``) or ``.NAME.PID.tmp`` (``checkpoint -o``, ``ledger public-key -o``, ``attest -o``, ``card -o``),
opened for writing without looking at what was there. The attacker plants a symbolic link under that
name (one per likely process id) pointing at a file of the victim's; the export's bytes, records the
attacker may have contributed himself, were written into that file, and the rename then put the link in
the export's place. The temporary file is now made exclusively under a random name
(``dataward.io.staged``), and gets the mode ``open()`` would give it, the umask honoured.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.client import HTTPWard
from dataward.domain.schema import Schema
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served, serve_ward

PRECIOUS = "the victim's own file\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A served ward whose ``wine@v1`` holds 20 records."""
    root = tmp_path_factory.mktemp("links")
    for served in serve_ward(root):
        with HTTPWard(served.url, key=served.admin_key) as ward:
            label, specs = wine_schema_specs()
            ward.create_dataset("wine", Schema.parse(label, specs))
            ward.set_policy("wine", NO_APPROVALS_POLICY)
            ward.merge(ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 20)), source="s")["ref"])
        yield served


def _planted(shared: Path, victim: Path, *names: str) -> None:
    """The attacker's links, under the names the client used to write through."""
    victim.write_text(PRECIOUS)
    for name in names:
        os.symlink(victim, shared / name)


def test_a_served_export_is_not_written_through_a_planted_link(served: Served, tmp_path: Path) -> None:
    shared, victim = tmp_path / "shared", tmp_path / "victim.txt"
    shared.mkdir()
    _planted(shared, victim, f".out.csv.{os.getpid()}.part")
    with HTTPWard(served.url, key=served.admin_key) as ward:
        ward.export("wine@v1", shared / "out.csv", format="csv")
    assert victim.read_text() == PRECIOUS
    out = shared / "out.csv"
    assert not out.is_symlink() and out.read_text().startswith('"record_id"')
    assert [p.name for p in shared.iterdir() if p.name.startswith(".out.csv.") and not p.is_symlink()] == []


def test_an_exported_file_keeps_a_private_umask(served: Served, tmp_path: Path) -> None:
    """With umask 077 an export was made 0644 all the same (the embedded writer set it outright)."""
    old = os.umask(0o077)
    try:
        with HTTPWard(served.url, key=served.admin_key) as ward:
            ward.export("wine@v1", tmp_path / "served.parquet")
        embedded_out = tmp_path / "embedded.parquet"
        from dataward.service.ward import Ward

        with Ward.open(served.ward, key=served.admin_key) as embedded:
            embedded.export("wine@v1", embedded_out)
    finally:
        os.umask(old)
    for path in (tmp_path / "served.parquet", embedded_out):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_checkpoint_file_is_not_written_through_a_planted_link(ward, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shared, victim = tmp_path / "shared", tmp_path / "victim.txt"
    shared.mkdir()
    _planted(shared, victim, f".cp.json.{os.getpid()}.tmp", f".key.pem.{os.getpid()}.tmp")
    runner = CliRunner()
    commands = (["checkpoint", "-o", str(shared / "cp.json")], ["ledger", "public-key", "-o", str(shared / "key.pem")])
    for args in commands:
        done = runner.invoke(app, ["--ward", str(ward.folder), *args])
        assert done.exit_code == 0, done.output
    assert victim.read_text() == PRECIOUS
    assert '"head"' in (shared / "cp.json").read_text() and not (shared / "cp.json").is_symlink()
    assert "PUBLIC KEY" in (shared / "key.pem").read_text()
