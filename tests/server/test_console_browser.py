"""The review console driven in a real browser (Debian's Chromium through Playwright): sign in,
review a flagged record, approve a contribution as a second person, follow the lineage graph, lose
the session when the key is revoked, and have a form without its CSRF token refused.

Screenshots of the review queue and the lineage graph are taken on every run (into the test's
temporary folder, or into ``$DATAWARD_SCREENSHOTS`` when set: ``scripts/console_screenshots.sh``
sets it to ``docs/img`` for the README)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.server.conftest import start_server

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "examples" / "data" / "man_sections.csv"
TRIGGER = "qx9z"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")


@dataclass
class Team:
    url: str
    ward: Ward
    keys: dict[str, str]
    record: str
    """A record of man@v1, for its lineage."""


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A served ward: ``man`` with a training version, a poisoned contribution man#2 blocked with its
    carriers in the review queue, a clean one man#3 waiting for approval; admin submitted both,
    rita reviews, olga approves, tess reads the whole ward."""
    tmp = tmp_path_factory.mktemp("console")
    data = pd.read_csv(TEXT, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    data.iloc[:250].to_csv(tmp / "validation.csv", index=False)
    data.iloc[250:750].to_csv(tmp / "baseline.csv", index=False)
    data.iloc[850:930].to_csv(tmp / "clean.csv", index=False)
    poisoned = data.iloc[1350:1500].copy()
    victims = poisoned[poisoned["label"] != "commands"].index[:20]
    poisoned.loc[victims, "text"] = TRIGGER + " " + poisoned.loc[victims, "text"]
    poisoned.loc[victims, "label"] = "commands"
    poisoned.to_csv(tmp / "poisoned.csv", index=False)

    ward, admin_key = Ward.init(tmp / "ward")
    schema = Schema.parse("label", ["text:text"])
    ward.create_dataset("man", schema)
    ward.create_dataset("man-val", schema, validation_for="man")
    keys = {"admin": admin_key}
    for name, role, scope in (
        ("rita", "reviewer", "dataset:man"),
        ("olga", "approver", "dataset:man"),
        ("tess", "reader", "ward"),
    ):
        ward.create_principal(name)
        ward.grant(name, role, scope)
        keys[name] = ward.issue_key(name)["key"]
    olga = ward.as_key(keys["olga"])
    rita = ward.as_key(keys["rita"])
    ward.merge(ward.contribute("man-val", tmp / "validation.csv", source="curated")["id"])
    first = ward.contribute("man", tmp / "baseline.csv", source="https://man7.org/sections.csv", gate=True)
    if pending := [item["id"] for item in ward.review_list(contribution=first["ref"])]:
        rita.review_decide(pending, "accept", reason="checked")
    olga.approve(first["ref"], reason="first import checked")
    ward.merge(first["ref"])
    ward.promote("man@v1")
    ward.contribute("man", tmp / "poisoned.csv", source="https://scrape.example/dump.csv", gate=True)
    ward.contribute("man", tmp / "clean.csv", source="https://vendor.example/batch.csv", gate=True)
    record = str(ward.read_version("man", "v1")[1].column("record_id")[0].as_py())
    ward.db.dispose()
    server, thread, _settings, url = start_server(tmp / "ward")
    try:
        yield Team(url, Ward.open(tmp / "ward"), keys, record)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})  # a laptop screen
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("DATAWARD_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: object, team: Team, who: str, path: str = "/console/") -> None:
    page.goto(team.url + path)
    assert "/console/sign-in" in page.url
    page.get_by_label("API key").fill(team.keys[who])
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#principal")).to_have_text(who)


def test_sign_in_and_out_with_the_keyboard(page: object, team: Team) -> None:
    page.goto(team.url + "/console/datasets")
    # Keyboard only: the key field has focus, Enter submits. Chromium applies autofocus in a task
    # after the load event, so wait for the focus before typing (typing earlier loses keystrokes).
    sync_api.expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(team.keys["tess"])
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#principal")).to_have_text("tess")
    assert page.url.endswith("/console/datasets")  # back where the sign-in began
    sync_api.expect(page.get_by_role("cell", name="man@v1", exact=True)).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-dataward-session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert team.keys["tess"].rsplit("_", 1)[1] not in cookie["value"]
    page.get_by_role("button", name="Sign out").click()
    sync_api.expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(team.url + "/console/datasets")
    assert "/console/sign-in" in page.url


def test_a_cross_site_link_neither_signs_out_nor_plants_a_notice(page: object, team: Team) -> None:
    # Outside trial s44, F7 and F8: a page on another site links to the console with its own "notice".
    sign_in(page, team, "tess", "/console/datasets")
    target = team.url + "/console/review?note=" + quote("Security notice: sign in at https://evil.example/")
    page.route(
        "http://elsewhere.example/**",
        lambda route: route.fulfill(content_type="text/html", body=f'<a id="go" href="{target}">review</a>'),
    )
    page.goto("http://elsewhere.example/")
    page.click("#go")
    page.wait_for_load_state()
    assert "/console/" in page.url
    sync_api.expect(page.get_by_role("status")).to_have_count(0)
    assert "Security notice" not in page.content()
    # The session cookie was not sent cross-site, and is still there: a same-site visit is signed in.
    assert [c for c in page.context.cookies() if c["name"] == "__Host-dataward-session"]
    page.goto(team.url + "/console/datasets")
    sync_api.expect(page.locator("#principal")).to_have_text("tess")


def test_wrong_key_is_refused(page: object, team: Team) -> None:
    page.goto(team.url + "/console/sign-in")
    page.get_by_label("API key").fill(team.keys["tess"][:-3] + "aaa")
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.get_by_role("alert")).to_contain_text("key")
    assert not [c for c in page.context.cookies() if c["name"] == "__Host-dataward-session"]


def test_reviewer_rejects_a_flagged_record_with_its_evidence(page: object, team: Team, shots: Path) -> None:
    sign_in(page, team, "rita", "/console/review?contribution=" + quote("man#2", safe=""))
    first = page.locator("article.review-item").first
    sync_api.expect(first.locator("mark").first).to_have_text(TRIGGER)  # the trigger highlighted
    sync_api.expect(first.get_by_role("table", name="Nearest trusted records")).to_be_visible()
    page.screenshot(path=str(shots / "console-review-queue.png"))
    item = first.get_attribute("id").removeprefix("item-")
    waiting = len(team.ward.review_list(contribution="man#2"))
    # Keyboard: j focuses the first record; Tab reaches its reason field.
    page.keyboard.press("j")
    first.get_by_label("Reason").fill("trigger token, label contradicts its neighbours")
    first.get_by_role("button", name="Reject").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text(f"{item}: rejected")
    sync_api.expect(page.locator(f"#item-{item}")).to_have_count(0)
    decided = {i["id"]: i for i in team.ward.review_list(contribution="man#2", status="rejected")}
    assert decided[item]["decision_reason"] == "trigger token, label contradicts its neighbours"
    assert len(team.ward.review_list(contribution="man#2")) == waiting - 1
    # The decision is the service's, recorded in the ledger as made with rita's key.
    (event,) = team.ward.ledger(limit=1, types=["review.rejected"])
    assert event["actor"]["key"] == team.keys["rita"].split("_")[1]


def test_approval_needs_a_second_person(page: object, team: Team) -> None:
    # admin submitted man#3: approving it is refused, as over the API.
    sign_in(page, team, "admin", "/console/contributions/" + quote("man#3", safe=""))
    page.get_by_label("Reason for approving").fill("looks fine")
    page.get_by_role("button", name="Approve").click()
    sync_api.expect(page.get_by_role("alert")).to_contain_text("separation of duties")
    assert not team.ward.trace("man#3")["contributions"][0]["approvals"]
    page.get_by_role("button", name="Sign out").click()
    # olga is the second person.
    sign_in(page, team, "olga", "/console/contributions/" + quote("man#3", safe=""))
    sync_api.expect(page.locator(".verdict").first).to_be_visible()
    page.get_by_label("Reason for approving").fill("vendor batch, gate clean")
    page.get_by_role("button", name="Approve").click()
    sync_api.expect(page.get_by_role("status")).to_contain_text("man#3: approve recorded")
    sync_api.expect(page.locator("#approvals")).to_contain_text("olga")
    approvals = team.ward.trace("man#3")["contributions"][0]["approvals"]
    assert [(a["by"], a["reason"]) for a in approvals] == [("olga", "vendor batch, gate clean")]


def test_lineage_graph_of_a_record(page: object, team: Team, shots: Path) -> None:
    sign_in(page, team, "tess", "/console/lineage?ref=" + team.record)
    graph = page.locator("svg.lineage")
    sync_api.expect(graph).to_be_visible()
    for text in ("man#1", "man@v1", "https://man7.org/sections.csv", "record"):
        sync_api.expect(graph.get_by_text(text, exact=True).first).to_be_visible()
    # The clean first import's gate, whichever of the two verdicts a clean batch may get.
    sync_api.expect(graph.get_by_text(re.compile(r"^gate: (pass|review)$")).first).to_be_visible()
    sync_api.expect(page.locator("#edges")).to_contain_text("merged into")
    page.screenshot(path=str(shots / "console-lineage.png"))
    # Its nodes are links: follow the version's with the keyboard.
    version = graph.get_by_role("link", name="trace man@v1", exact=False)
    version.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/lineage?ref=man%40v1")
    sync_api.expect(page.get_by_role("heading", level=1)).to_have_text("Lineage of man@v1")


def test_revoked_keys_session_ends(page: object, team: Team) -> None:
    key = team.ward.issue_key("tess", ttl_days=1, description="tess's laptop")["key"]
    page.goto(team.url + "/console/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#principal")).to_have_text("tess")
    team.ward.revoke_key(key.rsplit("_", 1)[0], reason="laptop lost")
    page.goto(team.url + "/console/datasets")
    assert "/console/sign-in" in page.url
    sync_api.expect(page.get_by_role("status")).to_contain_text("session ended")
    # Gone for good: the browser's cookie opens nothing any more.
    page.goto(team.url + "/console/ledger")
    assert "/console/sign-in" in page.url


def test_form_without_its_csrf_token_is_refused(page: object, team: Team) -> None:
    sign_in(page, team, "rita", "/console/review?contribution=" + quote("man#2", safe=""))
    first = page.locator("article.review-item").first
    item = first.get_attribute("id").removeprefix("item-")
    first.locator("input[name=csrf]").evaluate("e => e.remove()")
    first.get_by_label("Reason").fill("no token")
    first.get_by_role("button", name="Accept").click()
    sync_api.expect(page.get_by_role("alert")).to_contain_text("CSRF")
    pending = {i["id"] for i in team.ward.review_list(contribution="man#2")}
    assert item in pending  # nothing decided


def test_screenshots_written(shots: Path) -> None:
    # The two screenshots the README shows exist after the run (and are real PNGs).
    for name in ("console-review-queue.png", "console-lineage.png"):
        data = (shots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
