"""The console's contributions page is paged on the server, as the review queue is.

The attack (a ward with many contributions, over real HTTP): a dataset's contributions page drew every
contribution it ever had, and read the gate report of each gated one for its reasons, on every visit:
a contributor sending thousands of small batches made the page, and the worker drawing it, as slow as
they liked. It now draws ``PAGE_SIZE`` contributions, newest first, with links to the pages around.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from dataward.domain.schema import Schema
from dataward.server.console import routes
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import start_server
from tests.server.test_console import cookie, sign_in

PAGE_SIZE = 3
"""The console's page size, made small here so that a few contributions make several pages."""
COUNT = PAGE_SIZE + 2


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """A served ward whose ``wine`` holds ``COUNT`` contributions (a few gated), and the admin's session."""
    patch = pytest.MonkeyPatch()
    patch.setattr(routes, "PAGE_SIZE", PAGE_SIZE)
    root = tmp_path_factory.mktemp("console-paging")
    ward, key = Ward.init(root / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    for n in range(COUNT):
        rows = write_csv(root / f"batch{n}.csv", wine_rows(2 * n, 2 * n + 2))
        ward.contribute("wine", rows, source=f"s3://batches/{n}", gate=n % 2 == 0)
    ward.db.dispose()
    server, thread, _settings, url = start_server(root / "ward")
    try:
        with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as http:
            session, _csrf = sign_in(http, key)
            yield http, session
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        patch.undo()


def _refs(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    return re.findall(r'<td><a href="/console/contributions/[^"]+">([^<]+)</a></td>', page.text)


def test_the_first_page_shows_one_page_of_the_newest(console: tuple[httpx.Client, str]) -> None:
    http, session = console
    page = http.get("/console/datasets/wine/contributions", headers=cookie(session))
    assert _refs(page) == [f"wine#{n}" for n in range(COUNT, COUNT - PAGE_SIZE, -1)]
    assert f"{COUNT} contribution(s), newest first; showing 1 to {PAGE_SIZE}." in page.text
    assert f'href="?offset={PAGE_SIZE}">Next</a>' in page.text
    assert ">Previous</a>" not in page.text


def test_the_next_page_shows_the_rest(console: tuple[httpx.Client, str]) -> None:
    http, session = console
    page = http.get(f"/console/datasets/wine/contributions?offset={PAGE_SIZE}", headers=cookie(session))
    assert _refs(page) == [f"wine#{n}" for n in range(COUNT - PAGE_SIZE, 0, -1)]
    assert 'href="?offset=0">Previous</a>' in page.text
    assert ">Next</a>" not in page.text


@pytest.mark.parametrize("offset", ["x", "-5", ""])
def test_a_malformed_offset_shows_the_first_page(console: tuple[httpx.Client, str], offset: str) -> None:
    http, session = console
    page = http.get(f"/console/datasets/wine/contributions?offset={offset}", headers=cookie(session))
    assert _refs(page)[0] == f"wine#{COUNT}"
    assert len(_refs(page)) == PAGE_SIZE


def test_an_offset_past_the_end_shows_an_empty_page_with_a_way_back(console: tuple[httpx.Client, str]) -> None:
    http, session = console
    page = http.get("/console/datasets/wine/contributions?offset=100000", headers=cookie(session))
    assert _refs(page) == []
    assert "No contribution on this page." in page.text
    assert ">Previous</a>" in page.text


def test_every_gated_contribution_keeps_its_verdict(console: tuple[httpx.Client, str]) -> None:
    http, session = console
    pages = [
        http.get(f"/console/datasets/wine/contributions?offset={o}", headers=cookie(session)).text
        for o in (0, PAGE_SIZE)
    ]
    verdicts = sum(len(re.findall(r'class="verdict verdict-', text)) for text in pages)
    assert verdicts == len(range(0, COUNT, 2))  # every gated contribution, on whichever page holds it
