"""The console's session boundary over real HTTP (no browser needed): sign-in exchanges a key for a
session cookie that is not the key, forms need their CSRF token, a revoked key's session ends, and a
page refuses what the key may not do, with the service's own refusal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.server.console.evidence import patches
from dataward.server.console.lineage import build_graph, edge_list, render_svg
from dataward.server.console.routes import NOTE_COOKIE, SESSION_COOKIE, SIGNIN_COOKIE
from tests.server.conftest import Served


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    # Cookies are handled by hand: the console's are Secure, which a cookie jar keeps off plain http.
    with httpx.Client(base_url=served.url, timeout=30, follow_redirects=False) as client:
        yield client


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    out = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            out[name] = cookie
    return out


def sign_in(http: httpx.Client, key: str) -> tuple[str, str]:
    """Sign in with ``key``; the session cookie's value and the CSRF token of the first page."""
    form = http.get("/console/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    signin_cookie = set_cookies(form)[SIGNIN_COOKIE][SIGNIN_COOKIE].value
    answer = http.post(
        "/console/sign-in",
        data={"csrf": token, "key": key},
        headers={"Cookie": f"{SIGNIN_COOKIE}={signin_cookie}"},
    )
    assert answer.status_code == 303, answer.text
    session = set_cookies(answer)[SESSION_COOKIE][SESSION_COOKIE].value
    # Every page, a refusal's included, carries the sign-out form with the session's token.
    page = http.get("/console/datasets", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return session, csrf


def cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={session}"}


def test_pages_need_a_session(http: httpx.Client) -> None:
    answer = http.get("/console/review")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/sign-in")


def test_session_cookie_is_secure_and_is_not_the_key(http: httpx.Client, served: Served) -> None:
    form = http.get("/console/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    signin_cookie = set_cookies(form)[SIGNIN_COOKIE][SIGNIN_COOKIE].value
    answer = http.post(
        "/console/sign-in",
        data={"csrf": token, "key": served.admin_key, "next": "//evil.example/x"},
        headers={"Cookie": f"{SIGNIN_COOKIE}={signin_cookie}"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"  # never an open redirect
    morsel = set_cookies(answer)[SESSION_COOKIE][SESSION_COOKIE]
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"].lower() == "strict"
    assert 0 < int(morsel["max-age"]) <= 3600
    secret = served.admin_key.rsplit("_", 1)[1]
    assert secret not in morsel.value
    # Nor does the server keep the key in the clear.
    for path in (served.ward / "server" / "sessions").glob("*.json"):
        assert secret not in path.read_text()
    assert "Content-Security-Policy" in answer.headers


def test_sign_in_without_its_csrf_token_or_with_a_wrong_key_is_refused(http: httpx.Client, served: Served) -> None:
    no_token = http.post("/console/sign-in", data={"key": served.admin_key})
    assert no_token.status_code == 403 and SESSION_COOKIE not in set_cookies(no_token)
    form = http.get("/console/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    # The token without the cookie it was issued with (a cross-site post) is refused too.
    no_cookie = http.post("/console/sign-in", data={"csrf": token, "key": served.admin_key})
    assert no_cookie.status_code == 403 and SESSION_COOKIE not in set_cookies(no_cookie)
    # Over plain HTTP a client that keeps Secure cookies only for HTTPS sends none: told so, not to reload.
    assert "signs in over HTTPS only" in " ".join(no_cookie.text.split())
    signin_cookie = set_cookies(form)[SIGNIN_COOKIE][SIGNIN_COOKIE].value
    wrong = http.post(
        "/console/sign-in",
        data={"csrf": token, "key": served.admin_key[:-4] + "aaaa"},
        headers={"Cookie": f"{SIGNIN_COOKIE}={signin_cookie}"},
    )
    assert wrong.status_code == 401 and SESSION_COOKIE not in set_cookies(wrong)
    assert "Traceback" not in wrong.text


def test_forms_need_the_sessions_csrf_token(http: httpx.Client, served: Served) -> None:
    session, csrf = sign_in(http, served.admin_key)
    for data in (
        {"item": "q_0000000000000000", "decision": "accept", "reason": "x"},
        {"csrf": "forged", "item": "q_1"},
    ):
        refused = http.post("/console/review/decide", data=data, headers=cookie(session))
        assert refused.status_code == 403 and "CSRF" in refused.text
    # Another session's token does not fit this one.
    _other, other_csrf = sign_in(http, served.admin_key)
    assert other_csrf != csrf
    refused = http.post("/console/sign-out", data={"csrf": other_csrf}, headers=cookie(session))
    assert refused.status_code == 403
    # With its token, the action reaches the service, which answers for itself (no dataset to review).
    missing = http.post(
        "/console/review/decide",
        data={"csrf": csrf, "item": "q_0000000000000000", "decision": "accept", "reason": "x"},
        headers=cookie(session),
    )
    assert missing.status_code == 403 and "access_denied" in missing.text and "CSRF" not in missing.text
    out = http.post("/console/sign-out", data={"csrf": csrf}, headers=cookie(session))
    assert out.status_code == 303
    assert http.get("/console/datasets", headers=cookie(session)).status_code == 303


def test_a_note_in_the_url_is_never_shown_as_a_notice(http: httpx.Client, served: Served) -> None:
    # Outside trial s44, F7: any link to the console showed its own "official" notice (phishing for keys).
    notice = "Security notice: this ward moved. Sign in at https://dataward-sso.example/ with your API key"
    page = http.get("/console/sign-in", params={"note": notice})
    assert page.status_code == 200 and "Security notice" not in page.text and 'role="status"' not in page.text
    session, _ = sign_in(http, served.admin_key)
    page = http.get("/console/datasets", params={"note": notice}, headers=cookie(session))
    assert page.status_code == 200 and "Security notice" not in page.text and 'role="status"' not in page.text


def test_the_sign_out_notice_comes_from_the_server_once(http: httpx.Client, served: Served) -> None:
    session, csrf = sign_in(http, served.admin_key)
    out = http.post("/console/sign-out", data={"csrf": csrf}, headers=cookie(session))
    assert out.status_code == 303 and "note" not in out.headers["location"]
    note = set_cookies(out)[NOTE_COOKIE][NOTE_COOKIE]
    assert note["secure"] and note["httponly"] and note["samesite"].lower() == "strict"
    shown = http.get(out.headers["location"], headers={"Cookie": f"{NOTE_COOKIE}={note.value}"})
    assert 'role="status">You are signed out.</p>' in shown.text
    assert set_cookies(shown)[NOTE_COOKIE][NOTE_COOKIE]["max-age"] == "0"  # shown once


def test_a_request_without_the_session_cookie_signs_nobody_out(http: httpx.Client, served: Served) -> None:
    # Outside trial s44, F8: a cross-site link, frame or form sends no SameSite=Strict cookie, and the
    # answer deleted the cookie anyway, signing the reviewer out from any other site.
    session, csrf = sign_in(http, served.admin_key)
    for answer in (
        http.get("/console/review"),
        http.post("/console/sign-out", data={}),
        http.post("/console/sign-out", data={"csrf": csrf}),
    ):
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")
        assert SESSION_COOKIE not in set_cookies(answer) and NOTE_COOKIE not in set_cookies(answer)
    assert http.get("/console/datasets", headers=cookie(session)).status_code == 200
    # A cookie that was sent and opens no session is deleted.
    stale = http.get("/console/review", headers=cookie(f"{'0' * 32}.{'0' * 64}"))
    assert set_cookies(stale)[SESSION_COOKIE][SESSION_COOKIE]["max-age"] == "0"


def test_a_forged_session_cookie_opens_nothing(http: httpx.Client, served: Served) -> None:
    session, _ = sign_in(http, served.admin_key)
    sid, secret = session.split(".")
    forged = f"{sid}.{'0' * len(secret)}"
    assert http.get("/console/datasets", headers=cookie(forged)).status_code == 303
    # The session cookie is not an API credential either.
    assert http.get("/api/v1/whoami", headers=cookie(session)).status_code == 401


def test_revoked_key_ends_the_session_on_the_next_request(http: httpx.Client, served: Served) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    admin.create_principal("vera")
    admin.grant("vera", "reader")
    key = admin.issue_key("vera")["key"]
    session, _ = sign_in(http, key)
    assert http.get("/console/ledger", headers=cookie(session)).status_code == 200
    admin.revoke_key(key.rsplit("_", 1)[0], reason="left the team")
    ended = http.get("/console/ledger", headers=cookie(session))
    assert ended.status_code == 303
    # The notice is the server's, carried to the sign-in page in a cookie it sets, not in the URL.
    assert "note" not in ended.headers["location"]
    note = set_cookies(ended)[NOTE_COOKIE][NOTE_COOKIE].value
    shown = http.get(ended.headers["location"], headers={"Cookie": f"{NOTE_COOKIE}={note}"})
    assert re.search(r'role="status">Your session ended: [^<]*revoked', shown.text), shown.text
    assert http.get("/console/ledger", headers=cookie(session)).status_code == 303


def test_a_page_refuses_what_the_key_may_not_do(http: httpx.Client, served: Served) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    cody = admin.create_principal("cody")
    session, _ = sign_in(http, admin.issue_key("cody")["key"])
    refused = http.get("/console/access", headers=cookie(session))
    assert refused.status_code == 403 and "access_denied" in refused.text
    # Refused by the service as the API call would be, and recorded as such.
    events = admin.ledger(limit=5, types=["access.denied"])
    assert any(e["actor"]["principal"] == cody["id"] for e in events)


def test_the_menu_shows_only_the_ward_wide_pages_the_key_may_open(http: httpx.Client, served: Served) -> None:
    """A dataset's reviewer sees no Access review or Ledger link (each page would refuse it); a reader
    of the ward sees the ledger's."""
    admin = HTTPWard(served.url, key=served.admin_key)
    admin.create_principal("rita")
    session, _ = sign_in(http, admin.issue_key("rita")["key"])
    page = http.get("/console/datasets", headers=cookie(session)).text
    assert "/console/access" not in page and "/console/ledger" not in page and "/console/review" in page
    admin.create_principal("lena")
    admin.grant("lena", "reader")
    session, _ = sign_in(http, admin.issue_key("lena")["key"])
    page = http.get("/console/datasets", headers=cookie(session)).text
    assert "/console/ledger" in page
    admin_session, _ = sign_in(http, served.admin_key)
    page = http.get("/console/datasets", headers=cookie(admin_session)).text
    assert "/console/access" in page and "/console/ledger" in page


def test_patch_outline_and_lineage_graph_are_drawn_from_the_documents() -> None:
    (patch,) = patches(["9 bright pixels in rows 5-7, columns 4-6 of 8x8", "qx9z"])
    assert (patch.top, patch.left, patch.height, patch.width) == (5 / 8, 4 / 8, 3 / 8, 3 / 8)
    trace = {
        "subject": {"kind": "record", "id": "ab" * 32},
        "contributions": [
            {"ref": "man#2", "status": "merged", "source": {"uri": "<script>"}, "submitted_by": "eve", "key": "dw_x"}
        ],
        "versions": [{"ref": "man@v2", "stage": "latest", "records": 3}],
    }
    svg = str(render_svg(build_graph(trace), title="t"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('marker-end="url(#arrow)"') == 4  # source, principal, record, version


def test_a_versions_lineage_links_only_its_own_contributions_to_it() -> None:
    """A version's trace lists every version holding any of its contributions: the graph linked each
    contribution to each of them, drawing merges into versions that do not hold it (a quarantined
    contribution merged into its own rollback version). A version's graph is what it holds."""
    contribution = {"status": "merged", "source": {"uri": "s"}, "submitted_by": "eve", "key": "dw_x"}
    trace = {
        "subject": {"kind": "version", "ref": "man@v3", "stage": "training", "records": 5},
        "contributions": [{**contribution, "ref": "man#1"}],
        "versions": [
            {"ref": "man@v1", "stage": "retired", "records": 5},
            {"ref": "man@v2", "stage": "retired", "records": 8},
            {"ref": "man@v3", "stage": "training", "records": 5},
        ],
    }
    merges = [(a, b) for a, label, b in edge_list(build_graph(trace)) if label == "merged into"]
    assert merges == [("man#1 (merged)", "man@v3 (training · 5 records)")]


def test_a_models_lineage_draws_the_versions_it_was_trained_on() -> None:
    """`model:NAME@vN` (traced by the CLI and the API) was drawn as 'Nothing is linked to it': the graph
    holds each dataset version the model was trained on, with its contributions, linked to the model."""
    version = {"kind": "version", "ref": "man@v1", "stage": "training", "records": 5}
    trace = {
        "subject": {"kind": "model", "ref": "clf@v1", "stage": "released", "trained_by": "tom", "affected": True},
        "why_affected": ["man@v1: 5 added by quarantined contribution man#1"],
        "datasets": [
            {
                "subject": version,
                "contributions": [
                    {"ref": "man#1", "status": "quarantined", "source": {"uri": "s"}, "submitted_by": "eve"}
                ],
                "versions": [version],
            }
        ],
    }
    graph = build_graph(trace)
    edges = edge_list(graph)
    assert ("man@v1 (training · 5 records)", "trained", "clf@v1 (released · trained by tom · affected)") in edges
    assert ("man#1 (quarantined)", "merged into", "man@v1 (training · 5 records)") in edges
    svg = str(render_svg(graph, title="t"))
    assert "/console/lineage?ref=model%3Aclf%40v1" in svg and ">model<" in svg


def test_review_card_outlines_the_patch_on_the_image() -> None:
    # The review queue's card as rendered for an image record whose trigger the gate located.
    import base64
    import io

    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from PIL import Image

    from dataward.server.console import evidence
    from dataward.server.console.routes import HERE, PREFIX

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, format="PNG")
    record = {"record_id": "ab" * 32, "image": {"image_base64": base64.b64encode(buffer.getvalue()).decode()}}
    triggers = ["4 bright pixels in rows 6-7, columns 6-7 of 8x8"]
    item = {
        "id": "q_1",
        "contribution": "pics#2",
        "row": 3,
        "score": 1.0,
        "detectors": ["triggers"],
        "reason": "flagged by triggers",
        "record_id": record["record_id"],
        "triggers": triggers,
        "fields": evidence.record_fields(record),
        "patches": evidence.patches(triggers),
        "neighbours": [],
    }
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    env.globals.update(prefix=PREFIX, quote=lambda s: s)
    env.filters["when"] = str
    html = env.get_template("review.html").render(
        items=[item], total=1, offset=0, page_size=20, csrf="t", me=None, note=None, contribution=None, dataset=None
    )
    assert '<image href="data:image/png;base64,' in html
    assert '<rect class="patch" x="75.0" y="75.0" width="25.0" height="25.0">' in html
    assert "trigger patch outlined" in html


def test_a_tables_review_card_shows_its_neighbours_values() -> None:
    """A flagged row of a table is compared with its nearest trusted rows column by column (team trial: the
    card showed label, distance and an empty text column)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from dataward.server.console import evidence
    from dataward.server.console.routes import HERE, PREFIX

    record = {"record_id": "cd" * 32, "magnesium": 162.0, "hue": 0.31}
    item = {
        "id": "q_2",
        "contribution": "wine#2",
        "row": 17,
        "score": 1.0,
        "detectors": ["triggers"],
        "reason": "flagged by triggers",
        "record_id": record["record_id"],
        "triggers": [],
        "fields": evidence.record_fields(record),
        "patches": [],
        "neighbours": [
            {"label": "class_1", "distance": 0.41, "text": None, "values": {"magnesium": 101.0, "hue": 1.05}},
            {"label": "class_1", "distance": 0.52, "text": None, "values": {"magnesium": 98.0, "hue": 0.97}},
        ],
    }
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
    env.globals.update(prefix=PREFIX, quote=lambda s: s)
    html = env.get_template("review.html").render(
        items=[item], total=1, offset=0, page_size=20, csrf="t", me=None, note=None, contribution=None, dataset=None
    )
    assert '<th scope="col">magnesium</th><th scope="col">hue</th>' in html
    assert '<td class="num">101.0</td><td class="num">1.05</td>' in html
    assert '<th scope="col">text</th>' not in html
    # A text record's neighbours (no values) keep the text column: a dict's missing key must not read as
    # its ``values`` method.
    item["neighbours"] = [{"label": "commands", "distance": 0.3, "text": "ls - list directory contents"}]
    html = env.get_template("review.html").render(
        items=[item], total=1, offset=0, page_size=20, csrf="t", me=None, note=None, contribution=None, dataset=None
    )
    assert '<th scope="col">text</th>' in html and "list directory contents" in html
