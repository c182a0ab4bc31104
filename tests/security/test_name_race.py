"""Names that read as the same name cannot both be created by racing each other.

The attack: the look-alike check (case and confusable folding) runs before the insert, so two sessions
creating ``wine`` and ``wіne`` (Cyrillic ``і``) at the same moment could both pass it. No database
index can express TR39 folding; the check holds because it runs inside the write transaction, and every
write holds the ward's one write lock (``BEGIN IMMEDIATE`` on SQLite, a transaction-level advisory lock
on PostgreSQL) from before the check until the commit.
"""

from __future__ import annotations

import threading
from pathlib import Path

from dataward.domain.errors import Conflict, InputError
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import wine_schema_specs

VARIANTS = ["wine", "Wine", "WINE", "w\u0456ne", "\uff37\uff29\uff2e\uff25", "wine", "W\u0456NE", "win\u0435"]
"""The same name to a reader: cases, a Cyrillic i, full-width letters, a Cyrillic e."""


def _race(folder: Path, create) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(len(VARIANTS))
    made: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def run(name: str) -> None:
        ward = Ward.open(folder)
        barrier.wait(30)
        try:
            create(ward, name)
            outcome = made
        except (Conflict, InputError) as exc:
            outcome = refused
            name = f"{name}: {exc.message}"
        finally:
            ward.db.dispose()
        with lock:
            outcome.append(name)

    threads = [threading.Thread(target=run, args=(n,)) for n in VARIANTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return made, refused


def test_racing_look_alike_dataset_and_principal_names_create_one(tmp_path: Path, catalog_url: str | None) -> None:
    ward, _ = Ward.init(tmp_path / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    made, refused = _race(ward.folder, lambda w, name: w.create_dataset(name, Schema.parse(label, specs)))
    assert len(made) == 1 and len(refused) == len(VARIANTS) - 1, (made, refused)
    assert [d["name"] for d in ward.datasets()] == made
    made, refused = _race(ward.folder, lambda w, name: w.create_principal(name))
    assert len(made) == 1 and len(refused) == len(VARIANTS) - 1, (made, refused)
    assert ward.verify().ok
