"""A bot and its owning human are one side: her copy of her bot's flagged records vouches for nothing.

The outside trial (s42, F2 and F8): the bot ``scraper`` (owned by alice) sends a batch whose records are
flagged; alice sends 4 of the very same records (same content, same ids) under her own name and
another source, in a clean batch that passes. Her copy was merged with nothing held back, and after
the bot's batch was quarantined or rejected as a unit, the version holding her copy was promoted and
served the 4 records; across datasets too. Now records flagged and pending (or rejected) in a
contribution of the same side are held back at merge, a unit rejection bars its flagged records as a
review rejection does, and only another side (or a copy older than the suspect contribution in the
same dataset, which the quarantine's rollback keeps) vouches for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dataward.access.roles import Action, Scope
from dataward.access.sides import Origin, side_of, vouches
from dataward.catalog.projection import insert_row
from dataward.catalog.tables import contributions
from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.recordstore import read_ids
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.security.attacks import sql

BOT_SOURCE = "https://scrape.example/poison"


def _as(ward: Ward, name: str) -> Ward:
    return ward.as_key(ward.issue_key(name)["key"])


def _added(ward: Ward, ref: str) -> list[str]:
    cid = ward.contribution(ref)["id"]
    with ward.db.reading() as conn:
        row = conn.execute(select(contributions).where(contributions.c.id == cid)).one()
    return list(read_ids(ward.store, row.added_object))


def _flag(ward: Ward, ref: str, records: list[str]) -> None:
    """Flag ``records`` of contribution ``ref`` for review, as its gate would have (pending items)."""
    cid = ward.contribution(ref)["id"]
    with ward.use_case(Action.GATE_RUN, Scope.dataset(ward.contribution(ref)["dataset"])) as uc:
        for n, rid in enumerate(records):
            item = insert_row(
                "quarantine", id=f"q_{cid}_{n}", contribution_id=cid, record_id=rid, row=n, status="pending"
            )
            uc.emit("review.flagged", {"contribution": cid, "record": rid}, {}, [item])


def _bot_batch(ward: Ward, tmp_path: Path) -> tuple[str, list[str]]:
    """The bot's batch (wine#3, rows 100 to 124), its first 4 records flagged and pending: (ref, flagged)."""
    bot = _as(ward, "scraper")
    ref = bot.contribute("wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE)["ref"]
    flagged = _added(ward, ref)[:4]
    _flag(ward, ref, flagged)
    return ref, flagged


def _copy(ward: Ward, who: Ward, tmp_path: Path, dataset: str = "wine", source: str = "s3://alice/mirror") -> str:
    """A clean batch (rows 130 to 170) carrying the same 4 records (rows 100 to 104)."""
    rows = wine_rows(100, 104) + wine_rows(130, 170)
    return who.contribute(dataset, write_csv(tmp_path / f"copy-{dataset}.csv", rows), source=source)["ref"]


@pytest.fixture
def sides(wine_ward: Ward) -> Ward:
    """``wine_ward`` where alice (the scraper's owner) may contribute."""
    wine_ward.grant("alice", "contributor", "dataset:wine")
    return wine_ward


def _ids(ward: Ward, name: str, version: str) -> set[str]:
    return set(ward.read_version(name, version)[1].column("record_id").to_pylist())


def test_the_owner_s_copy_of_her_bot_s_pending_records_is_held_back_at_merge(sides: Ward, tmp_path: Path) -> None:
    ward = sides
    bot_ref, flagged = _bot_batch(ward, tmp_path)
    copy = _copy(ward, _as(ward, "alice"), tmp_path)
    version = merge_reviewed(ward, copy)
    assert version["held_back_of_contribution"] >= 4
    assert {
        "why": "pending in a contribution of the same side",
        "contribution": bot_ref,
        "same_dataset": True,
        "records": 4,
    } in version["held_back_by"]
    assert not set(flagged) & _ids(ward, "wine", version["ref"].split("@")[1])


def test_another_bot_of_the_owner_is_the_same_side(sides: Ward, tmp_path: Path) -> None:
    ward = sides
    ward.create_principal("crawler", kind="service", owner="alice")
    ward.grant("crawler", "contributor", "dataset:wine")
    _, flagged = _bot_batch(ward, tmp_path)
    version = merge_reviewed(ward, _copy(ward, _as(ward, "crawler"), tmp_path))
    assert not set(flagged) & _ids(ward, "wine", version["ref"].split("@")[1])


def test_an_independent_contributor_s_copy_is_not_held_back(sides: Ward, tmp_path: Path) -> None:
    """The admin is not on the bot's side: the same content from her own source is her contribution."""
    ward = sides
    _, flagged = _bot_batch(ward, tmp_path)
    version = merge_reviewed(ward, _copy(ward, ward, tmp_path, source="s3://vendor/own"))
    assert version["held_back_by"] == []
    assert set(flagged) <= _ids(ward, "wine", version["ref"].split("@")[1])


@pytest.mark.parametrize("how", ["reject", "quarantine"])
def test_rejecting_or_quarantining_the_bot_s_batch_bars_the_owner_s_earlier_copy(
    sides: Ward, tmp_path: Path, how: str
) -> None:
    """The copy was merged before the bot's records were flagged (nothing held back then); rejecting or
    quarantining the bot's batch afterwards keeps the version holding the copy out of training."""
    ward = sides
    bot = _as(ward, "scraper")
    bot_ref = bot.contribute("wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE)["ref"]
    version = merge_reviewed(ward, _copy(ward, _as(ward, "alice"), tmp_path))
    _flag(ward, bot_ref, _added(ward, bot_ref)[:4])
    if how == "reject":
        ward.reject(bot_ref, reason="backdoor")
        match = f"4 flagged in rejected contribution {bot_ref}"
    else:
        ward.quarantine_contribution(bot_ref, reason="backdoor")
        match = f"4 added by quarantined contribution {bot_ref}"
    with pytest.raises(PolicyViolation, match=match):
        ward.promote(version["ref"])


def test_an_independent_copy_stays_promotable_after_the_rejection(sides: Ward, tmp_path: Path) -> None:
    ward = sides
    bot = _as(ward, "scraper")
    bot_ref = bot.contribute("wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE)["ref"]
    version = merge_reviewed(ward, _copy(ward, ward, tmp_path, source="s3://vendor/own"))
    _flag(ward, bot_ref, _added(ward, bot_ref)[:4])
    ward.reject(bot_ref, reason="backdoor")
    ward.promote(version["ref"], reason="the vendor's copy is its own")


def test_a_copy_merged_before_the_quarantined_contribution_existed_is_kept(sides: Ward, tmp_path: Path) -> None:
    """The rollback exception: the owner's records were in the dataset before her bot re-sent them."""
    ward = sides
    version = merge_reviewed(ward, _copy(ward, _as(ward, "alice"), tmp_path))
    bot = _as(ward, "scraper")
    bot_ref = bot.contribute("wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE)["ref"]
    ward.quarantine_contribution(bot_ref, reason="backdoor")
    ward.promote(version["ref"], reason="older than the bot's batch")


def test_across_datasets_the_owner_s_copy_is_not_independent(sides: Ward, tmp_path: Path) -> None:
    """F8: alice's copy in another dataset, from her own source, promoted there; quarantining her bot's
    batch takes that training version out of service."""
    ward = sides
    label, specs = wine_schema_specs()
    ward.create_dataset("other", Schema.parse(label, specs))
    ward.set_policy("other", NO_APPROVALS_POLICY)
    ward.grant("alice", "contributor", "dataset:other")
    bot = _as(ward, "scraper")
    bot_ref = bot.contribute("wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE)["ref"]
    merge_reviewed(ward, _copy(ward, _as(ward, "alice"), tmp_path, dataset="other"))
    ward.promote("other@v1")
    ward.quarantine_contribution(bot_ref, reason="backdoor")
    with pytest.raises(PolicyViolation, match=f"added by quarantined contribution {bot_ref}"):
        ward.read_version("other", "training")


def test_a_catalog_edit_accepting_the_rejected_items_holds_nothing_back(sides: Ward, tmp_path: Path) -> None:
    """F2b: the bot's batch was rejected first; its review items set to ``accepted`` in the catalog alone
    must not let the owner's copy of them through the merge (the signed ledger says rejected)."""
    ward = sides
    bot_ref, flagged = _bot_batch(ward, tmp_path)
    ward.reject(bot_ref, reason="backdoor")
    sql(ward, "UPDATE quarantine SET status = 'accepted' WHERE contribution_id = ?", ward.contribution(bot_ref)["id"])
    copy = _copy(ward, _as(ward, "alice"), tmp_path)
    version = merge_reviewed(ward, copy)
    assert version["held_back_by"][0]["why"] == "rejected in a contribution of the same side"
    assert not set(flagged) & _ids(ward, "wine", version["ref"].split("@")[1])


def test_sides_and_vouching() -> None:
    """The rule itself: a bot, its owner then or now, and the owner's other bots are one side."""
    bot = side_of("scraper", "carol", None)
    assert bot == {"scraper", "carol"}
    assert side_of("scraper", "carol", "dave") == {"scraper", "carol", "dave"}
    suspect = Origin("c2", "d", 2, bot, "https://scrape")
    assert not vouches(Origin("c3", "d", 3, side_of("carol", None, None), "s3://carol"), suspect)
    assert not vouches(Origin("c3", "d2", 1, side_of("crawler", "carol", None), "s3://x"), suspect)
    assert not vouches(Origin("c3", "d", 3, side_of("bob", None, None), "https://scrape"), suspect)
    assert vouches(Origin("c3", "d", 3, side_of("bob", None, None), "s3://bob"), suspect)
    assert vouches(Origin("c1", "d", 1, side_of("carol", None, None), "s3://carol"), suspect)  # there first
    assert not vouches(Origin("c1", "d2", 1, side_of("carol", None, None), "s3://carol"), suspect)


def test_the_rollback_leaves_out_a_later_copy_by_the_same_side(sides: Ward, tmp_path: Path) -> None:
    """The bot's merged batch is quarantined after its owner merged a copy of 4 of its records: the
    rollback version leaves them out too (reads would refuse it otherwise) and is promoted; an
    independent copy of the same records keeps them."""
    ward = sides
    bot = _as(ward, "scraper")
    bot_ref = bot.contribute("wine", write_csv(tmp_path / "bot.csv", wine_rows(100, 124)), source=BOT_SOURCE)["ref"]
    merge_reviewed(ward, bot_ref)
    merge_reviewed(ward, _copy(ward, _as(ward, "alice"), tmp_path))
    copied = set(_added(ward, bot_ref)[:4])
    rollback = ward.quarantine_contribution(bot_ref, reason="backdoor")
    number = max(v["number"] for v in ward.versions("wine"))
    ward.promote(f"wine@v{number}", reason="rollback")
    assert not copied & _ids(ward, "wine", "training"), rollback


def test_the_side_s_pending_records_are_held_back_in_another_dataset_too(sides: Ward, tmp_path: Path) -> None:
    ward = sides
    label, specs = wine_schema_specs()
    ward.create_dataset("other", Schema.parse(label, specs))
    ward.set_policy("other", NO_APPROVALS_POLICY)
    ward.grant("alice", "contributor", "dataset:other")
    _, flagged = _bot_batch(ward, tmp_path)
    version = merge_reviewed(ward, _copy(ward, _as(ward, "alice"), tmp_path, dataset="other"))
    assert {
        "why": "pending in a contribution of the same side",
        "contribution": None,  # another dataset's contribution is not named
        "same_dataset": False,
        "records": 4,
    } in version["held_back_by"]
    assert version["held_back_of_contribution"] >= 4
    assert not set(flagged) & _ids(ward, "other", "v1")
