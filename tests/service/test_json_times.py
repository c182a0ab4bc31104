"""Every time in a JSON document is written one way: ``2026-12-07T14:28:32.924404Z`` (``format_time``).

`key rotate --json` gave `old_key_works_until` ending in `Z` but `expires_at` and `created_at` ending in
`+00:00`; `key list`, `principal list` and `access review` wrote `+00:00` too, while contributions,
versions, grants and the ledger write `Z`. A script comparing two of them as text, or parsing them with
one format, got them wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataward.service.ward import Ward

ONE_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
A_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^\s,;)]*")
"""A date and time, alone or in a sentence (an access review row's ``detail``)."""


def _times(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every date and time a JSON value holds (a value, or a time in a sentence), with where it is."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _times(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _times(v, f"{where}[{i}]")
    elif isinstance(value, str):
        yield from ((where, time) for time in A_TIME.findall(value))


def test_every_time_of_the_key_and_principal_documents_is_written_alike(tmp_path: Path) -> None:
    admin, _ = Ward.init(tmp_path / "ward")
    admin.create_principal("bob")
    admin.create_principal("bot", kind="service", owner="bob")
    issued = admin.issue_key("bob", ttl_days=30)
    bob = admin.as_key(issued["key"])
    rotated = bob.rotate_key(issued["id"], overlap_hours=2)
    documents = {
        "key issue": issued,
        "key rotate": rotated,
        "key list": admin.keys(),
        "principal list": admin.principals(),
        "grant list": admin.grants(),
        "access review": admin.access_review(),
        "principal disable": admin.disable_principal("bot", reason="retired"),
        "trace key": admin.trace(f"dw_{issued['id']}"),
    }
    found = [(name, where, value) for name, doc in documents.items() for where, value in _times(doc)]
    assert any(where == ".old_key_works_until" for _, where, _ in found)
    assert any(where == ".expires_at" for _, where, _ in found)
    other = [f"{name}{where} = {value}" for name, where, value in found if not ONE_FORMAT.match(value)]
    assert not other, other
    # The one format reads back to the same moment whatever the parser (it sorts as text too).
    until = datetime.strptime(rotated["old_key_works_until"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert datetime.fromisoformat(rotated["old_key_works_until"]) == until
