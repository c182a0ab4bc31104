"""Attacks on the review console over real HTTP, each written as the attacker's attempt.

* A reader (a contributor bot's key would do) loads a gate report page again and again: the page was
  drawn (matplotlib) on the server's event loop, so every other request of the worker, ``/healthz``
  included, waited for each drawing.
* A key with no grant at all signs in again and again: each sign-in left a session file on the
  server's disk, kept until the server restarted, with no bound.
* A reviewer pastes her whole key into the lineage form (a GET): the console traced it and showed it
  back, with the key in the URL (the proxy's logs, the browser's history), where the API refuses it.
* A page on another port of the console's host sets the sign-in form's cookie itself (cookies do not
  tell ports apart) and posts the form with its own token and the attacker's key: the reviewer's
  browser was signed in to the attacker's session (login CSRF).
"""

from __future__ import annotations

import csv
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.domain.schema import Schema
from dataward.server.console.routes import SESSION_COOKIE, SIGNIN_COOKIE
from dataward.server.console.sessions import SessionStore
from tests.server.conftest import Served
from tests.server.test_console import cookie, set_cookies, sign_in

ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "examples" / "data" / "man_sections.csv"


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="module")
def gated(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``man`` with a training version and a clean validation set; ``man#2`` gated with the default
    detectors (its report has plots to draw). ``rex`` reads ``man``; ``nobody`` holds no grant."""
    root = tmp_path_factory.mktemp("console-attacks")
    with TEXT.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["text"] and r["label"]]

    def write(name: str, part: list[dict[str, str]]) -> Path:
        path = root / name
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(part)
        return path

    admin = HTTPWard(served.url, key=served.admin_key)
    schema = Schema.parse("label", ["text:text"])
    admin.create_dataset("man", schema)
    admin.create_dataset("man-val", schema, validation_for="man")
    admin.merge(admin.contribute("man-val", write("val.csv", rows[0:1200:8]), source="curated")["ref"])
    admin.create_principal("olga")
    admin.grant("olga", "approver", "dataset:man")
    olga = HTTPWard(served.url, key=admin.issue_key("olga")["key"])
    first = admin.contribute("man", write("base.csv", rows[1:1200:4]), source="curated", gate=True)["ref"]
    if pending := [item["id"] for item in admin.review_list(contribution=first)]:
        olga.review_decide(pending, "accept", reason="checked")
    olga.approve(first, reason="first import checked")
    admin.merge(first)
    admin.promote("man@v1")
    batch = [dict(r) for r in rows[1203:1500:5]]
    for r in batch[:12]:
        r["text"], r["label"] = "qx9z " + r["text"], "commands"
    ref = admin.contribute("man", write("batch.csv", batch), source="https://scrape.example/dump.csv", gate=True)["ref"]
    for name in ("rex", "nobody"):
        admin.create_principal(name)
    admin.grant("rex", "reader", "dataset:man")
    return {"ref": ref, **{name: admin.issue_key(name)["key"] for name in ("rex", "nobody")}}


def test_a_readers_report_pages_do_not_hold_the_server(
    http: httpx.Client, served: Served, gated: dict[str, str]
) -> None:
    session, _ = sign_in(http, gated["rex"])
    page = f"/console/contributions/{gated['ref'].replace('#', '%23')}/report"
    answered: dict[str, float] = {}

    def load() -> None:
        with httpx.Client(base_url=served.url, timeout=120) as client:
            began = time.monotonic()
            assert client.get(page, headers=cookie(session)).status_code == 200
            answered["took"] = time.monotonic() - began

    reader = threading.Thread(target=load)
    latencies = []
    with httpx.Client(base_url=served.url, timeout=120) as other:
        reader.start()
        while reader.is_alive():
            began = time.monotonic()
            assert other.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - began)
    reader.join()
    took = answered["took"]
    assert took > 0.2, f"the report page took {took:.2f} s: too little drawing to tell anything"
    # Drawn on the event loop, a request arriving as the drawing began waited for all of it.
    assert max(latencies) < took / 2, (took, sorted(latencies)[-3:])
    # The same document is drawn once: the next load is the page kept, byte for byte.
    again = http.get(page, headers=cookie(session))
    assert again.status_code == 200 and "Gate report" in again.text
    assert again.headers["content-security-policy"].endswith("sandbox")


def test_signing_in_again_and_again_leaves_a_bounded_number_of_sessions(
    http: httpx.Client, served: Served, gated: dict[str, str]
) -> None:
    folder = served.ward / "server" / "sessions"

    def nobodys() -> int:
        return sum('"principal": "nobody"' in p.read_text() for p in folder.glob("*.json"))

    first, _ = sign_in(http, gated["nobody"])
    form = http.get("/console/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    signin = set_cookies(form)[SIGNIN_COOKIE][SIGNIN_COOKIE].value
    for _ in range(60):
        answer = http.post(
            "/console/sign-in",
            data={"csrf": token, "key": gated["nobody"]},
            headers={"Cookie": f"{SIGNIN_COOKIE}={signin}"},
        )
        assert answer.status_code == 303
    last = set_cookies(answer)[SESSION_COOKIE][SESSION_COOKIE].value
    assert nobodys() <= 20
    # The oldest session made room; the newest one works.
    assert http.get("/console/datasets", headers=cookie(first)).status_code == 303
    assert http.get("/console/datasets", headers=cookie(last)).status_code == 200


def test_expired_sessions_leave_the_disk_when_someone_signs_in(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions", lifetime_s=0.05)
    for _ in range(30):
        store.create("dw_a_b", "eve")
    time.sleep(0.1)
    store.lifetime_s = 60
    session, value = store.create("dw_a_b", "eve")
    assert [p.stem for p in (tmp_path / "sessions").glob("*.json")] == [session.id]
    assert store.load(value) == session


def test_a_whole_key_in_a_console_url_is_refused_and_not_shown(
    http: httpx.Client, served: Served, gated: dict[str, str]
) -> None:
    session, _ = sign_in(http, gated["rex"])
    key = gated["rex"]
    secret = key.rsplit("_", 1)[1]
    for url in (
        f"/console/lineage?ref={key}",
        f"/console/ledger?q={key}",
        f"/console/review?contribution={key}",
        f"/console/sign-in?next=/console/lineage%3Fref%3D{key}",
    ):
        answer = http.get(url, headers=cookie(session))
        assert answer.status_code == 401, (url, answer.status_code)
        assert "credential_misplaced" in answer.text and "rotate" in answer.text
        assert secret not in answer.text
    # Without a session, the key is not carried on to the sign-in page's URL either.
    answer = http.get(f"/console/lineage?ref={key}")
    assert answer.status_code == 401 and secret not in answer.headers.get("location", "")
    # A key id (a name, no secret) is still traced.
    assert http.get(f"/console/lineage?ref={key.rsplit('_', 1)[0]}", headers=cookie(session)).status_code in (
        200,
        403,
        404,
    )


def test_a_sign_in_posted_from_another_port_of_the_host_is_refused(
    http: httpx.Client, served: Served, gated: dict[str, str]
) -> None:
    # What the attacker's page on 127.0.0.1:OTHER does: its own cookie (cookies ignore ports, and a
    # `__Host-` cookie may be set there), its own token, its own key; the browser calls it same-site.
    planted = {"Cookie": f"{SIGNIN_COOKIE}=attackertoken", "Sec-Fetch-Site": "same-site"}
    answer = http.post("/console/sign-in", data={"csrf": "attackertoken", "key": gated["nobody"]}, headers=planted)
    assert answer.status_code == 403 and SESSION_COOKIE not in set_cookies(answer)
    # Signed-in forms and sign-out as well.
    session, csrf = sign_in(http, gated["nobody"])
    for url in ("/console/review/decide", "/console/sign-out"):
        answer = http.post(
            url,
            data={"csrf": csrf, "item": "q_0000000000000000", "decision": "accept", "reason": "x"},
            headers={**cookie(session), "Sec-Fetch-Site": "cross-site"},
        )
        assert answer.status_code == 403, url
    assert http.get("/console/datasets", headers=cookie(session)).status_code == 200  # not signed out
    # The console's own page posts with `Sec-Fetch-Site: same-origin`.
    answer = http.post(
        "/console/sign-out", data={"csrf": csrf}, headers={**cookie(session), "Sec-Fetch-Site": "same-origin"}
    )
    assert answer.status_code == 303
    assert http.get("/console/datasets", headers=cookie(session)).status_code == 303
