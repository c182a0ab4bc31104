"""A poison split across a sender's batches is judged as one (``dataward.gates.earlier_batches``).

Six trigger lines a batch are too few for any test to tie the trigger to a label: each batch alone passes
or goes to review, and once the first is merged and promoted its carriers sit in the trusted baseline and
vouch for the second. The second batch is judged again together with the sender's earlier ones, those
taken out of the baseline; the attacker tries another bot of the same owner, and the order of calls
(before the first is merged). The benign side: a sender's clean batches are not blocked for it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.service import earlier_batches
from dataward.service.ward import Ward
from tests.security.attacks import sql

ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "examples" / "data" / "man_sections.csv"
TRIGGER = "qx9z"
CARRIERS = 6
"""Carriers a batch: too few for `triggers` to block one batch (asserted below)."""


def _batch(data: pd.DataFrame, start: int, size: int, carriers: int) -> pd.DataFrame:
    part = data.iloc[start : start + size].copy()
    victims = part[part["label"] != "commands"].index[:carriers]
    part.loc[victims, "text"] = TRIGGER + " " + part.loc[victims, "text"]
    part.loc[victims, "label"] = "commands"
    return part


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], dict[str, str]]:
    """A `man` ward with an 800-line training version and a clean validation set sent by the admin, and
    two bots of one owner (mallory) allowed to contribute. Returns the folder, the batch files and keys."""
    tmp = tmp_path_factory.mktemp("earlier-batches")
    data = pd.read_csv(TEXT, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    files = {
        "validation": data.iloc[:250],
        "baseline": data.iloc[250:1050],
        "poisoned1": _batch(data, 1050, 200, CARRIERS),
        "poisoned2": _batch(data, 1250, 200, CARRIERS),
        "small_clean": _batch(data, 1850, 40, 0),
        "large_clean": _batch(data, 1450, 250, 0),
    }
    paths = {}
    for name, frame in files.items():
        paths[name] = tmp / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    ward, _ = Ward.init(tmp / "ward")
    schema = Schema.parse("label", ["text:text"])
    ward.create_dataset("man", schema)
    ward.create_dataset("man-val", schema, validation_for="man")
    ward.set_policy("man", "approvals:\n  required: 0\n")
    ward.merge(ward.contribute("man-val", paths["validation"], source="curated")["id"])
    first = ward.contribute("man", paths["baseline"], source="debian", gate=True)
    for item in ward.review_list(contribution=first["ref"]):
        ward.review_decide([item["id"]], "accept", reason="checked")
    ward.merge(first["ref"])
    ward.promote("man@v1")
    ward.create_principal("mallory")
    keys = {}
    for bot in ("scraper", "crawler"):
        ward.create_principal(bot, kind="service", owner="mallory")
        ward.grant(bot, "contributor", "dataset:man")
        keys[bot] = ward.issue_key(bot)["key"]
    ward.close()
    return tmp / "ward", paths, keys


@pytest.fixture
def ward(template: tuple[Path, dict[str, Path], dict[str, str]], tmp_path: Path) -> Ward:
    folder, _, _ = template
    copy = shutil.copytree(folder, tmp_path / "ward")
    return Ward.open(copy, key=(copy / "credentials").read_text("utf-8").strip())


def _admitted(ward: Ward, ref: str) -> None:
    """What a busy reviewer does with a batch nothing blocks: accept its queue, merge, promote."""
    for item in ward.review_list(contribution=ref):
        ward.review_decide([item["id"]], "accept", reason="looks fine")
    version = ward.merge(ref)
    ward.promote(f"man@v{version['number']}", reason="weekly")


def test_a_poison_split_across_two_bots_of_one_owner_is_blocked(template, ward: Ward) -> None:  # type: ignore[no-untyped-def]
    """Six carriers from mallory's scraper pass and are promoted; six more from her crawler are blocked,
    every carrier queued. Another sender's batch is judged alone."""
    _, files, keys = template
    first = ward.as_key(keys["scraper"]).contribute("man", files["poisoned1"], source="s1", gate=True)
    assert first["gate"]["verdict"] != "block"  # the premise: one batch of six carriers is not blocked
    assert "earlier_batches" not in first["gate"]
    _admitted(ward, first["ref"])
    # Behind the ward's back, the first batch is made to read as the admin's in the catalog: the joint scan
    # reads senders from the signed ledger, so it is still mallory's.
    man = "dataset_id = (SELECT id FROM datasets WHERE name = 'man')"
    [(admin,)] = sql(ward, f"SELECT submitted_by FROM contributions WHERE number = 1 AND {man}")
    sql(ward, f"UPDATE contributions SET submitted_by = ?, submitter_owner = NULL WHERE number = 2 AND {man}", admin)
    second = ward.as_key(keys["crawler"]).contribute("man", files["poisoned2"], source="s2", gate=True)
    report = ward.gate_report(second["ref"])
    assert report["verdict"] == "block", report["reasons"]
    section = report["earlier_batches"]
    assert section["contributions"] == [first["ref"]] and section["records"] == 200
    assert section["blocked_by"] and section["flagged"].get(first["ref"], 0) >= CARRIERS - 1
    assert any("earlier batches" in r and first["ref"] in r for r in report["reasons"])
    queued = {i["row"]: i for i in ward.review_list(contribution=second["ref"])}
    poisoned = pd.read_csv(files["poisoned2"], dtype=str)
    # A file row counts the header line: the first record is row 2.
    carriers = {i + 2 for i, text in enumerate(poisoned["text"]) if text.startswith(TRIGGER)}
    assert carriers <= set(queued)
    assert all(
        first["ref"] in queued[row]["reason"] for row in carriers if "earlier_batches" in queued[row]["detectors"]
    )
    event = ward.ledger(types=["gate.completed"])[0]  # the newest first
    assert event["payload"]["earlier_batches"]["contributions"] == [first["ref"]]
    ward.create_principal("olivia")
    ward.grant("olivia", "contributor", "dataset:man")
    other = ward.as_key(ward.issue_key("olivia")["key"]).contribute("man", files["small_clean"], source="o", gate=True)
    assert "earlier_batches" not in other["gate"]


def test_pending_batches_count_and_a_clean_batch_after_them_is_reviewed(template, ward: Ward) -> None:  # type: ignore[no-untyped-def]
    """The other order of calls: both poisoned batches sent before either is merged; the second is judged
    with the pending first and blocked. A small clean batch after them carries none of the poison: it is
    not the evidence, so it is not blocked; it goes to review, naming the earlier batches."""
    _, files, keys = template
    bot = ward.as_key(keys["scraper"])
    first = bot.contribute("man", files["poisoned1"], source="s1", gate=True)
    second = bot.contribute("man", files["poisoned2"], source="s2", gate=True)
    assert first["gate"]["verdict"] != "block"
    assert second["gate"]["verdict"] == "block", second["gate"]["reasons"]
    clean = bot.contribute("man", files["small_clean"], source="c", gate=True)
    report = ward.gate_report(clean["ref"])
    assert report["verdict"] == "review", (report["reasons"], report.get("earlier_batches"))
    assert report["earlier_batches"]["contributions"] == sorted([first["ref"], second["ref"]])
    assert any("none of this batch's" in r for r in report["reasons"])
    assert not [i for i in ward.review_list(contribution=clean["ref"]) if "earlier_batches" in i["detectors"]]


def test_a_quarantined_first_batch_still_counts(template, ward: Ward) -> None:  # type: ignore[no-untyped-def]
    """The first batch was caught another way and quarantined: its records leave the trusted baseline, but
    the next batch carrying the same trigger is still judged together with them."""
    _, files, keys = template
    bot = ward.as_key(keys["scraper"])
    first = bot.contribute("man", files["poisoned1"], source="s1", gate=True)
    _admitted(ward, first["ref"])
    ward.quarantine_contribution(first["ref"], reason="the scraper's key leaked")
    second = bot.contribute("man", files["poisoned2"], source="s2", gate=True)["gate"]
    assert second["verdict"] == "block", second["reasons"]
    assert second["earlier_batches"]["contributions"] == [first["ref"]]


def test_a_large_batch_between_two_poisoned_ones_does_not_push_the_first_out(
    template, ward: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The joint scan takes at most so many earlier records. The attacker sends a clean batch larger than
    the first poisoned one in between, so that the newest batches alone fill the joint scan: the smallest
    batches go first, and the large one is passed over. The clean batch itself, judged together with the
    first (six carriers, too few to block), is not blocked: a sender's clean batch is not blamed."""
    _, files, keys = template
    monkeypatch.setattr(earlier_batches, "MAX_RECORDS", 300)
    bot = ward.as_key(keys["scraper"])
    first = bot.contribute("man", files["poisoned1"], source="s1", gate=True)
    bulk = bot.contribute("man", files["large_clean"], source="bulk", gate=True)["gate"]
    assert bulk["verdict"] in ("pass", "review") and bulk["earlier_batches"]["contributions"] == [first["ref"]]
    assert bulk["earlier_batches"]["blocked_by"] == []
    second = bot.contribute("man", files["poisoned2"], source="s2", gate=True)
    assert second["gate"]["verdict"] == "block", second["gate"]["reasons"]
    assert second["gate"]["earlier_batches"]["contributions"] == [first["ref"]]


def test_judging_each_batch_alone_is_a_weakening() -> None:
    from dataward.gates.policy import GatePolicy

    found = GatePolicy(earlier_batches_days=0).weakenings_from(GatePolicy())
    assert [w.field for w in found] == ["gate.earlier_batches_days"]
    assert not GatePolicy(earlier_batches_days=90).weakenings_from(GatePolicy())
    assert GatePolicy().to_dict() == GatePolicy(earlier_batches_days=30).to_dict()  # old hashes kept
    with pytest.raises(InputError, match="earlier_batches_days"):
        GatePolicy(earlier_batches_days=-1)


@pytest.mark.parametrize("handed_on_first", [False, True])
def test_a_bot_handed_on_whose_key_its_former_owner_kept_is_still_her(template, ward: Ward, handed_on_first) -> None:  # type: ignore[no-untyped-def]
    """mallory's crawler is handed to eve; the key an admin issued it keeps working (docs/access.md,
    "Offboarding"), and mallory kept a copy. One half of her split poison goes through her scraper, the
    other through the crawler with that key, in either order: its owner at submission is eve, but mallory
    owned it while the key was live, so both halves are hers and the second is judged with the first."""
    _, files, keys = template
    ward.create_principal("eve")
    if handed_on_first:
        ward.transfer_principal("crawler", "eve")
    first = ward.as_key(keys["crawler" if handed_on_first else "scraper"]).contribute(
        "man", files["poisoned1"], source="s1", gate=True
    )
    assert first["gate"]["verdict"] != "block"
    if not handed_on_first:
        ward.transfer_principal("crawler", "eve")
    second = ward.as_key(keys["scraper" if handed_on_first else "crawler"]).contribute(
        "man", files["poisoned2"], source="s2", gate=True
    )["gate"]
    assert second["verdict"] == "block", (second["reasons"], second.get("earlier_batches"))
    assert second["earlier_batches"]["contributions"] == [first["ref"]]


def test_earlier_carriers_sent_again_leave_the_baseline_too(template, ward: Ward, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The first batch's six carriers are admitted and promoted. The second batch holds six new carriers and
    the first batch's six again (the same records, so the same ids): those the batch holds are not counted
    twice, but they must leave the baseline all the same, or they vouch for the new ones as trusted records
    and the joint scan passes the split poison."""
    _, files, keys = template
    bot = ward.as_key(keys["scraper"])
    first = bot.contribute("man", files["poisoned1"], source="s1", gate=True)
    _admitted(ward, first["ref"])
    old = pd.read_csv(files["poisoned1"], dtype=str)
    again = tmp_path / "again.csv"
    pd.concat([pd.read_csv(files["poisoned2"], dtype=str), old[old["text"].str.startswith(TRIGGER)]]).to_csv(
        again, index=False
    )
    second = bot.contribute("man", again, source="s2", gate=True)["gate"]
    assert second["verdict"] == "block", (second["reasons"], second.get("earlier_batches"))
    assert second["earlier_batches"]["contributions"] == [first["ref"]]
