"""The console says what ``review list`` and ``gate report`` say, over real HTTP.

* A review item whose record a quarantine holds back (left pending from before the quarantine closed such
  items) is marked on the review page in the CLI's words, with no Accept button: accepting it could not let
  the record in, and the service refuses it (a forged accept post too, changing nothing).
* The flagged records a quarantine held back already, closed without review, are counted on the
  contribution page and in the gate's HTML report, as ``gate report`` counts them.
* A ``pass`` or ``review`` shows its ``limit:`` line (what the dataset's last self-test measured the gate
  to miss) on the contribution page and in the HTML report; a contributor sees only that a limit exists.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataward.domain.schema import Schema
from dataward.service import gating
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.server.conftest import start_server
from tests.server.test_console import cookie, sign_in

COLUMNS = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]
# The gate's seed pinned: the verdicts do not depend on the ward's random signing key.
POLICY = "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  seed: 7\n"


@dataclass
class Trial:
    url: str
    ward: Path
    keys: dict[str, str]
    limit: dict[str, Any]
    """The ``detection_limit`` of ``wine#5`` (a pass, read by the admin)."""
    mine: str
    """The pass ``bob`` sent (his contribution page shows only that a limit exists)."""


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trial]:
    """``wine`` with a self-test; ``wine#2`` (bob's block, 12 exact conflicts) quarantined; ``wine#3``, the
    same batch gated as a ward older than the closing did (its 12 items left pending, held back);
    ``wine#4``, the same batch once more (its 12 items closed without review); ``wine#5`` a pass of the
    admin's, ``wine#6`` one of bob's. ``rita`` reviews, ``rex`` reads."""
    root = tmp_path_factory.mktemp("console-held")
    rows = wine_rows(shuffled=True)
    ward, admin = Ward.init(root / "ward")
    ward.create_dataset("wine", Schema.parse("cultivar", [f"{c}:numeric" for c in COLUMNS]))
    ward.set_policy("wine", POLICY)
    ward.merge(ward.contribute("wine", write_csv(root / "base.csv", rows[:120]), source="s:base")["ref"])
    ward.promote("wine@v1")
    keys = {"admin": admin}
    for name, role in (("bob", "contributor"), ("rita", "reviewer"), ("rex", "reader")):
        ward.create_principal(name)
        ward.grant(name, role, "dataset:wine")
        keys[name] = ward.issue_key(name)["key"]
    ward.selftest("wine")
    bob = ward.as_key(keys["bob"])
    bad = write_csv(
        root / "bad.csv", rows[120:160] + [{**r, "cultivar": (int(r["cultivar"]) + 1) % 3} for r in rows[:12]]
    )
    assert bob.contribute("wine", bad, source="https://x/dump.csv")["gate"]["queued_for_review"] == 12
    ward.quarantine_contribution("wine#2", reason="label flips")
    patch = pytest.MonkeyPatch()
    patch.setattr(gating, "quarantined_holders", lambda *_a, **_k: {})
    assert bob.contribute("wine", bad, source="https://x/dump2.csv")["gate"]["queued_for_review"] == 12
    patch.undo()
    again = bob.contribute("wine", bad, source="https://x/dump3.csv")["gate"]
    assert again["queued_for_review"] == 0 and again["closed_held_back"] == 12
    passed = ward.contribute("wine", write_csv(root / "pass.csv", rows[160:170]), source="s:pass")
    assert passed["ref"] == "wine#5" and passed["gate"]["verdict"] == "pass"
    mine = bob.contribute("wine", write_csv(root / "mine.csv", rows[170:178]), source="s:mine")
    assert mine["gate"]["detection_limit"]["withheld"] is True
    ward.db.dispose()
    server, thread, _settings, url = start_server(root / "ward")
    try:
        yield Trial(url, root / "ward", keys, passed["gate"]["detection_limit"], mine["ref"])
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def http(trial: Trial) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=trial.url, timeout=60, follow_redirects=False) as client:
        yield client


def _text(page: httpx.Response) -> str:
    """The page's text, tags dropped and entities read, in single spaces."""
    assert page.status_code == 200, page.text[-2000:]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def _cards(page: httpx.Response) -> dict[str, str]:
    """Each review card's HTML by its item id."""
    return dict(
        re.findall(r'<article class="card review-item[^"]*" id="item-([^"]+)".*?>(.*?)</article>', page.text, re.S)
    )


def test_the_review_page_marks_held_back_items_and_offers_no_accept(http: httpx.Client, trial: Trial) -> None:
    session, csrf = sign_in(http, trial.keys["rita"])
    page = http.get("/console/review", params={"contribution": "wine#3"}, headers=cookie(session))
    cards = _cards(page)
    assert len(cards) == 12
    for card in cards.values():
        said = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", card)).split())
        assert "held back by quarantine of wine#2: deciding it changes nothing" in said
        assert 'value="accept"' not in card and 'value="reject"' in card
    assert "12 of these 12 items hold records a quarantine holds back" in _text(page)

    # A forged accept (the button is not there; the form is posted by hand) is refused, and nothing changes.
    item = next(iter(cards))
    refused = http.post(
        "/console/review/decide",
        data={"csrf": csrf, "item": item, "decision": "accept", "reason": "looks fine"},
        headers=cookie(session),
    )
    assert refused.status_code == 409, refused.text[-2000:]
    said = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", refused.text)).split())
    assert "held back by quarantine of wine#2" in said and "accepting them could not let the records in" in said
    pending = Ward.open(trial.ward).review_list("wine", contribution="wine#3")
    assert len(pending) == 12 and item in {i["id"] for i in pending}
    assert all(i["decided_by"] is None for i in pending)


def test_items_closed_without_review_are_counted_where_the_cli_counts_them(http: httpx.Client, trial: Trial) -> None:
    session, _ = sign_in(http, trial.keys["rita"])
    page = _text(http.get("/console/contributions/wine%234", headers=cookie(session)))
    assert "12 flagged records are held back by a quarantine already: closed without review" in page
    report = _text(http.get("/console/contributions/wine%234/report", headers=cookie(session)))
    assert "12 flagged records are held back by a quarantine already: closed without review" in report
    # The contribution whose items were left pending says how many of its waiting items are held back.
    left = _text(http.get("/console/contributions/wine%233", headers=cookie(session)))
    assert "12 record(s) (12 held back by a quarantine: reject them to clear them)" in left


def test_a_pass_shows_its_limit_line_and_a_contributor_only_that_one_exists(http: httpx.Client, trial: Trial) -> None:
    note = trial.limit["note"]
    assert trial.limit["selftest"] is not None and "caught label flips from" in note
    session, _ = sign_in(http, trial.keys["admin"])
    assert note in _text(http.get("/console/contributions/wine%235", headers=cookie(session)))
    assert note in _text(http.get("/console/contributions/wine%235/report", headers=cookie(session)))

    # Neither a reader nor a contributor may run the self-test: their pages say that a limit exists and
    # where it is shown, never where it lies (what a poisoner would plant under).
    withheld = "limit: a pass says only that no detector found evidence at its alpha"
    reader, _ = sign_in(http, trial.keys["rex"])
    theirs, _ = sign_in(http, trial.keys["bob"])
    ref = trial.mine.replace("#", "%23")
    for session, path in (
        (reader, "/console/contributions/wine%235"),
        (reader, "/console/contributions/wine%235/report"),
        (theirs, f"/console/contributions/{ref}/report"),
    ):
        page = _text(http.get(path, headers=cookie(session)))
        assert withheld in page and "shown to its reviewers and owners" in page, path
        assert note not in page and "label flips" not in page and "self-test of wine (" not in page, path


def test_the_limit_line_is_escaped(http: httpx.Client, trial: Trial, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line holds the dataset's name and the self-test's canary names: shown as text, never as markup."""
    real = gating.detection_limit
    planted = '<script>alert("x")</script><b id="bold">&amp;'

    def marked(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
        found = real(*args, **kwargs)
        return None if found is None else {**found, "note": found["note"] + planted}

    monkeypatch.setattr(gating, "detection_limit", marked)
    session, _ = sign_in(http, trial.keys["admin"])
    for path in ("/console/contributions/wine%235", "/console/contributions/wine%235/report"):
        page = http.get(path, headers=cookie(session))
        assert page.status_code == 200
        assert "<script>" not in page.text and 'id="bold"' not in page.text
        assert planted in _text(page)
