"""A served ward remembers hot catalog reads between requests, under the ledger head they were read
at (``dataward.service.remembered``). These tests try to get stale or unauthorized answers out of it:
a write by another process, a grant taken away and a key revoked after the result was remembered,
and a table edited behind the ledger's back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from dataward.domain.errors import AccessDenied, AuthenticationError, IntegrityViolation, NotFound
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, write_csv


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Served:
    """A ward as a server holds it (keys and reads remembered), a reader's key, and a count of the
    statements its catalog runs."""

    def __init__(self, root: Path) -> None:
        ward, self.admin_key = Ward.init(root / "ward")
        label, specs = wine_schema_specs()
        ward.create_dataset("wine", Schema.parse(label, specs))
        ward.set_policy("wine", NO_APPROVALS_POLICY)
        c = ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 20)), source="s")
        ward.merge(c["id"])
        ward.create_principal("rory")
        ward.grant("rory", "reader", "dataset:wine")
        self.key = str(ward.issue_key("rory")["key"])
        self.ticks = Ticks()
        ward.remember_callers()
        ward.remember_reads()
        assert ward.context.reads is not None
        ward.context.reads.clock = self.ticks
        self.ward = ward
        self.statements: list[str] = []
        event.listen(ward.db.engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement not in ("BEGIN", "BEGIN IMMEDIATE") and not statement.startswith("PRAGMA"):
            self.statements.append(statement)

    def read(self, key: str | None = None) -> list[dict[str, Any]]:
        return self.ward.as_key(key or self.key).versions("wine")

    def other_process(self) -> Ward:
        """The same ward opened again, as a CLI on the folder would: its own catalog connections, and
        nothing of what the served ward remembers."""
        return Ward.open(self.ward.folder, key=self.admin_key)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.ward.db.dispose()


def test_a_remembered_read_is_one_statement_and_never_outlives_a_write(served: Served) -> None:
    assert [v["stage"] for v in served.read()] == ["candidate"]
    served.statements.clear()
    assert [v["stage"] for v in served.read()] == ["candidate"]
    assert len(served.statements) == 1, served.statements  # the epoch and head, nothing else
    other = served.other_process()
    other.promote("wine@v1", reason="ok")
    assert [v["stage"] for v in served.read()] == ["training"]
    # A table edited behind the ledger's back moves no head: it is read again once the entry lapses, and
    # then refused (the listing checks its rows against the signed ledger), never served.
    with other.db.transaction() as conn:
        conn.execute(text("UPDATE versions SET stage = 'retired'"))
    assert [v["stage"] for v in served.read()] == ["training"]  # remembered, for at most the TTL
    reads = served.ward.context.reads
    assert reads is not None
    served.ticks.now += reads.ttl_s + 1
    with pytest.raises(IntegrityViolation, match="stage is 'retired' in the catalog, 'training' in the signed ledger"):
        served.read()


def test_a_remembered_read_is_authorized_on_every_request(served: Served) -> None:
    reads = served.ward.context.reads
    assert reads is not None
    with pytest.raises(NotFound):  # failures are not remembered
        served.ward.as_key(served.admin_key).versions("nothing")
    assert len(reads) == 0
    assert served.read()
    assert len(reads) == 1
    other = served.other_process()
    other.create_principal("nosy")
    nosy = str(other.issue_key("nosy")["key"])  # no grant on wine
    with pytest.raises((AccessDenied, NotFound)):
        served.read(nosy)
    other.revoke_grant("rory", "reader", "dataset:wine")
    with pytest.raises((AccessDenied, NotFound)):
        served.read()
    other.grant("rory", "reader", "dataset:wine")
    assert served.read()
    other.revoke_key(served.key.rsplit("_", 1)[0], reason="stolen")
    with pytest.raises(AuthenticationError):
        served.read()
    # At most max_entries are kept.
    reads.max_entries = 1
    label, specs = wine_schema_specs()
    other.create_dataset("rose", Schema.parse(label, specs))
    served.ward.as_key(served.admin_key).versions("rose")
    served.ward.as_key(served.admin_key).versions("wine")
    assert len(reads) == 1
