"""A small ward with people and a bot for the key and information-leak attacks, on a clock the tests move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, write_csv


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_team(folder: Path, clock: Clock) -> dict[str, Ward]:
    """admin; alice (human, approver on wine, owner of the scraper bot); scraper (service, contributor on
    wine, a 1-day key); bob (reader on wine only); carol (reviewer on other only); mallory (no role)."""
    admin, _ = Ward.init(folder, clock=clock)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.create_dataset("other", Schema.parse(label, specs))
    admin.set_policy("wine", LIGHT_GATE_POLICY)
    for name in ("alice", "bob", "carol", "mallory"):
        admin.create_principal(name)
    admin.create_principal("scraper", kind="service", owner="alice")
    admin.grant("alice", "approver", "dataset:wine")
    admin.grant("scraper", "contributor", "dataset:wine")
    admin.grant("bob", "reader", "dataset:wine")
    admin.grant("carol", "reviewer", "dataset:other")
    keys = {name: admin.issue_key(name)["key"] for name in ("alice", "bob", "carol", "mallory")}
    keys["scraper"] = admin.issue_key("scraper", ttl_days=1)["key"]
    return {"admin": admin, **{name: admin.as_key(key) for name, key in keys.items()}}


def key_id(ward: Ward) -> str:
    """The id of the key a ward handle acts with."""
    assert ward.credential is not None
    return ward.credential.split("_")[1]


def contribute(ward: Ward, folder: Path, name: str = "a") -> dict:
    path = write_csv(folder / f"{name}.csv", wine_rows(0, 60, shuffled=True))
    return ward.contribute("wine", path, source=f"https://scrape.example/{name}")


def denials(admin: Ward) -> list[dict]:
    """``access.denied`` events, newest first (summaries left out)."""
    return [e for e in admin.ledger(types=["access.denied"]) if e["type"] == "access.denied"]
