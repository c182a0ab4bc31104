"""The served ward's boundary, attacked over real HTTP: where a key may be, what a refusal says,
what an oversize or interrupted upload leaves, and that the service's rules hold through the API."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from dataward.api import WardAPI
from dataward.client import HTTPWard
from dataward.domain.errors import AuthenticationError, PolicyViolation
from dataward.server.security import FailureLimiter
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served

API = "/api/v1"


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_clean_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """A JSON error document with a message and an exit code, and nothing of the server's insides."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert {"error", "message", "hint", "details", "exit_code"} <= set(body)
    if code is not None:
        assert body["error"] == code
    for leak in ("Traceback", 'File "', "site-packages", "sqlalchemy", "/src/dataward"):
        assert leak not in response.text
    return body


@pytest.fixture(scope="module")
def team(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A dataset with a contributor and an approver, each with their own key, on the served ward."""
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    from dataward.domain.schema import Schema

    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.set_policy("wine", LIGHT_GATE_POLICY)
    keys = {"admin": served.admin_key}
    # carol may both contribute and approve: only separation of duties stops her approving her own.
    for name, roles in (("carol", ("contributor", "approver")), ("anna", ("approver",))):
        admin.create_principal(name)
        for role in roles:
            admin.grant(name, role, "dataset:wine")
        keys[name] = admin.issue_key(name)["key"]
    root = tmp_path_factory.mktemp("team")
    keys["csv"] = str(write_csv(root / "batch.csv", wine_rows(0, 30, shuffled=True)))
    return keys


def test_both_implementations_satisfy_the_protocol(served: Served) -> None:
    assert isinstance(Ward.open(served.ward, key=served.admin_key), WardAPI)
    assert isinstance(HTTPWard(served.url, key=served.admin_key), WardAPI)
    import inspect

    def shape(fn: object) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]

    for name, member in inspect.getmembers(WardAPI, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert shape(getattr(HTTPWard, name)) == shape(member), name
        # The embedded ward may take more (in-process hooks, keyword-only with defaults), never less.
        embedded = shape(getattr(Ward, name))
        assert embedded[: len(shape(member))] == shape(member), name
        assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in embedded[len(shape(member)) :]), name


def test_no_key_is_401_with_a_json_body(http: httpx.Client) -> None:
    response = http.get(f"{API}/datasets")
    body = assert_clean_error(response, 401, "unauthenticated")
    assert body["exit_code"] == 5 and "Bearer" in response.headers["www-authenticate"]
    assert_clean_error(http.get(f"{API}/datasets", headers={"Authorization": "Basic YWRtaW46eA=="}), 401)


def test_key_in_query_string_or_cookie_is_refused_even_with_a_valid_header(http: httpx.Client, served: Served) -> None:
    key = served.admin_key
    for name in ("key", "api_key", "token"):
        refused = http.get(f"{API}/whoami", params={name: key}, headers=bearer(key))
        assert "URL" in assert_clean_error(refused, 401, "credential_misplaced")["message"]
    # A key under any parameter name is still a key in a URL.
    assert_clean_error(http.get(f"{API}/datasets", params={"q": key}, headers=bearer(key)), 401)
    assert_clean_error(http.get(f"{API}/datasets", params={"key": key}), 401)
    with httpx.Client(base_url=served.url, cookies={"session": key}) as jar:
        assert_clean_error(jar.get(f"{API}/whoami", headers=bearer(key)), 401)
    assert http.get(f"{API}/whoami", headers=bearer(key)).status_code == 200


def test_every_endpoint_refuses_a_request_without_a_key(http: httpx.Client, served: Served) -> None:
    spec = http.get(f"{API}/openapi.json").json()
    assert len(spec["paths"]) >= 35
    checked = 0
    for path, methods in spec["paths"].items():
        concrete = path
        for name in ("name", "ref", "key", "item", "job_id"):
            concrete = concrete.replace("{" + name + "}", "x")
        assert "{" not in concrete, path
        for method in methods:
            response = http.request(method.upper(), concrete, json={}, params={"a": "x", "b": "x", "filename": "f"})
            assert_clean_error(response, 401, "unauthenticated")
            checked += 1
    assert checked >= 45
    # Request and response documents are typed in the OpenAPI document.
    schemas = spec["components"]["schemas"]
    assert {"ErrorBody", "JobInfo", "UploadInfo", "WhoAmI", "ContributionCreate", "VerifyBody"} <= set(schemas)


def test_unknown_routes_and_malformed_bodies_are_json_errors(http: httpx.Client, served: Served) -> None:
    headers = bearer(served.admin_key)
    assert_clean_error(http.get(f"{API}/nothing-here", headers=headers), 404, "not_found")
    bad = http.post(f"{API}/principals", headers=headers, content=b"{not json", timeout=10)
    assert_clean_error(bad, 422, "bad_input")
    extra = http.post(f"{API}/principals", headers=headers, json={"name": "x", "is_admin": True})
    assert "is_admin" in assert_clean_error(extra, 422, "bad_input")["message"] + json.dumps(extra.json()["details"])


def test_a_lone_surrogate_in_a_json_body_is_a_bad_request_and_nothing_is_stored(
    http: httpx.Client, served: Served, team: dict[str, str]
) -> None:
    """Found by fuzzing the API on a populated ward: JSON's ``\\udce0`` (half of a UTF-16 pair, alone)
    decoded into a string no UTF-8 can hold; a principal's description answered 500, and a contribution's
    source failed its job at the ledger's seal and answered 500 when the job was read."""
    headers = {**bearer(served.admin_key), "Content-Type": "application/json"}
    sent = http.post(f"{API}/principals", headers=headers, content=b'{"name": "zed", "description": "\\udce0"}')
    body = assert_clean_error(sent, 422, "bad_input")
    assert body["message"].startswith("malformed request: body.description: a string holds a lone UTF-16 surrogate")
    assert "zed" not in {p["name"] for p in http.get(f"{API}/principals", headers=headers).json()}
    nested = http.post(
        f"{API}/training-runs", headers=headers, content=b'{"model": "m", "params": {"\\udce0": [1, "\\ud800"]}}'
    )
    assert "body.params.\\udce0" in assert_clean_error(nested, 422, "bad_input")["message"]
    job = http.post(
        f"{API}/datasets/wine/contributions", headers=headers, content=b'{"source": "a\\udce0", "removes": ["x"]}'
    )
    assert "body.source" in assert_clean_error(job, 422, "bad_input")["message"]
    # A pair of surrogates is one character (U+1F600) and is text like any other.
    pair = http.post(f"{API}/principals", headers=headers, content=b'{"name": "zed", "description": "\\ud83d\\ude00"}')
    assert pair.status_code == 201, pair.text


def test_verify_refuses_a_pinned_key_that_is_no_ed25519_key(http: httpx.Client, served: Served) -> None:
    """Found by fuzzing the API on a populated ward: a pinned key that was not base64 ASCII, or not 32
    bytes, failed the verify job as an internal error; it is refused before any job starts."""
    headers = bearer(served.admin_key)
    for pinned in ["\u008f", "!", base64.b64encode(b"short").decode()]:
        refused = http.post(f"{API}/verify", headers=headers, json={"public_key": pinned})
        body = assert_clean_error(refused, 422, "bad_input")
        assert body["message"].startswith("public_key is not an Ed25519 public key"), body
    own = http.get(f"{API}/public-key", headers=headers).json()["public_key"]
    accepted = http.post(f"{API}/verify", headers=headers, json={"public_key": own})
    assert accepted.status_code == 202, accepted.text


def test_a_policy_number_the_ledger_cannot_sign_is_a_bad_request(
    http: httpx.Client, served: Served, team: dict[str, str]
) -> None:
    """Found by fuzzing the API on a populated ward: a count beyond +/-(2**53 - 1) in a policy reached
    the ``policy.set`` event's seal and answered 500."""
    headers = bearer(served.admin_key)
    before = http.get(f"{API}/datasets/wine/policy", headers=headers).json()
    policy = {"policy_yaml": "approvals:\n  required: 99999999999999999999\n"}
    refused = http.put(f"{API}/datasets/wine/policy", headers=headers, json=policy)
    body = assert_clean_error(refused, 422, "bad_input")
    assert "'approvals.required' must be a whole number from 0 to 9007199254740991" in body["message"]
    assert http.get(f"{API}/datasets/wine/policy", headers=headers).json() == before


def test_a_number_beyond_the_catalog_names_nothing(http: httpx.Client, served: Served, team: dict[str, str]) -> None:
    """Found by fuzzing the API on a populated ward: a contribution or version number beyond the catalog's
    integers failed in the database driver and answered 500; no such one exists, so it is not found."""
    headers = bearer(served.admin_key)
    huge = "99999999999999999999999"
    for path, params in [
        (f"{API}/contributions/{quote(f'wine#{huge}')}", {}),
        (f"{API}/datasets/wine/records", {"version": f"v{huge}"}),
        (f"{API}/trace/wine@v{huge}", {}),
        (f"{API}/diff", {"a": f"wine@v{huge}", "b": f"wine@v{huge}"}),
    ]:
        body = assert_clean_error(http.get(path, headers=headers, params=params), 404, "not_found")
        assert huge in body["message"], body


def test_a_schema_dimension_beyond_arrow_is_a_bad_request(http: httpx.Client, served: Served) -> None:
    """Found by fuzzing the API on a populated ward: an embedding dimension of 2**60 reached the ledger's
    seal and answered 500 (and one under 2**53 would have been stored, with no Arrow type to hold it)."""
    headers = bearer(served.admin_key)
    for dim in (2**60, 2**40):
        schema = {"label": "y", "inputs": [{"name": "v", "kind": "embedding", "dim": dim}]}
        refused = http.post(f"{API}/datasets", headers=headers, json={"name": "vectors", "schema": schema})
        body = assert_clean_error(refused, 422, "bad_input")
        assert body["message"] == f"the dimension of column 'v' is over 2147483647: {dim}"
    not_a_number = {"label": "y", "inputs": [{"name": "v", "kind": "embedding", "dim": "wide"}]}
    refused = http.post(f"{API}/datasets", headers=headers, json={"name": "vectors", "schema": not_a_number})
    assert "dimension is not an integer" in assert_clean_error(refused, 422, "bad_input")["message"]
    assert "vectors" not in {d["name"] for d in http.get(f"{API}/datasets", headers=headers).json()}


def test_a_fetched_at_with_no_utc_time_is_a_bad_request(
    http: httpx.Client, served: Served, team: dict[str, str]
) -> None:
    """Found by fuzzing the API on a populated ward: 9999-12-31T23:59:59-14:00 is past the year 9999 in UTC;
    the contribution's job failed as an internal error when it recorded the time, its records stored."""
    headers = bearer(served.admin_key)
    before = http.get(f"{API}/datasets/wine/contributions", headers=headers).json()
    for moment in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        upload = http.post(
            f"{API}/uploads", params={"filename": "b.csv"}, headers=headers, content=Path(team["csv"]).read_bytes()
        ).json()["upload"]
        job = http.post(
            f"{API}/datasets/wine/contributions",
            headers=headers,
            json={"upload": upload, "source": "s", "fetched_at": moment},
        )
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 30
        while (state := http.get(job.headers["location"], headers=headers).json())["status"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert state["status"] == "failed" and state["error"]["error"] == "bad_input", state
        assert "is out of range once converted to UTC" in state["error"]["message"]
    assert http.get(f"{API}/datasets/wine/contributions", headers=headers).json() == before


def test_an_unexpected_failure_is_500_without_internals(
    http: httpx.Client, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Ward) -> dict:
        raise RuntimeError("secret internals at /srv/ward/catalog.sqlite")

    monkeypatch.setattr(Ward, "whoami", broken)
    response = http.get(f"{API}/whoami", headers=bearer(served.admin_key))
    body = assert_clean_error(response, 500, "internal")
    assert "secret" not in response.text and "catalog.sqlite" not in response.text
    assert body["exit_code"] == 1


def test_a_revoked_key_is_refused_on_the_next_request(served: Served, team: dict[str, str]) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    admin.create_principal("mallory")
    key = admin.issue_key("mallory")["key"]
    mallory = HTTPWard(served.url, key=key)
    assert mallory.whoami()["principal"] == "mallory"
    admin.revoke_key(key.rsplit("_", 1)[0], reason="stolen laptop")
    with pytest.raises(AuthenticationError) as refused:
        mallory.whoami()
    assert refused.value.exit_code == 5 and refused.value.code == "key_revoked"


def test_a_contributor_cannot_approve_its_own_contribution(served: Served, team: dict[str, str]) -> None:
    carol = HTTPWard(served.url, key=team["carol"])
    info = carol.contribute("wine", team["csv"], source="https://example.org/batch.csv")
    assert info["gate"]["verdict"] == "pass"
    with pytest.raises(PolicyViolation) as refused:
        carol.approve(info["ref"], reason="looks fine to me")
    assert refused.value.exit_code == 6
    # ...and the raw HTTP answer is a 403 JSON document.
    response = httpx.post(
        f"{served.url}{API}/contributions/{quote(info['ref'], safe='')}/approve",
        headers=bearer(team["carol"]),
        json={"reason": "again"},
    )
    assert_clean_error(response, 403, "policy_violation")
    anna = HTTPWard(served.url, key=team["anna"])
    assert anna.approve(info["ref"], reason="second pair of eyes")["decision"] == "approve"


def _ledger_head(served: Served) -> int:
    return int(HTTPWard(served.url, key=served.admin_key).ledger_head()["seq"])


def _uploads(served: Served) -> list[Path]:
    return list((served.ward / "server" / "uploads").iterdir())


def test_oversize_upload_is_refused_and_nothing_is_stored(
    http: httpx.Client, served: Served, team: dict[str, str]
) -> None:
    before = _ledger_head(served)
    limit = served.settings.max_upload_bytes
    headers = {**bearer(team["carol"]), "Content-Type": "application/octet-stream"}
    declared = http.post(f"{API}/uploads", params={"filename": "big.csv"}, headers=headers, content=b"x" * (limit + 1))
    assert_clean_error(declared, 413, "payload_too_large")

    def stream() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(limit // 4096 + 2):
            yield b"y" * 4096

    streamed = http.post(f"{API}/uploads", params={"filename": "big.csv"}, headers=headers, content=stream())
    assert_clean_error(streamed, 413, "payload_too_large")
    assert _uploads(served) == []
    assert _ledger_head(served) == before
    too_big_json = http.post(f"{API}/principals", headers=bearer(served.admin_key), json={"name": "x" * (70 << 10)})
    assert_clean_error(too_big_json, 413, "payload_too_large")


def test_an_interrupted_upload_leaves_nothing(served: Served, team: dict[str, str]) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            (
                f"POST {API}/uploads?filename=cut.csv HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {team['carol']}\r\nContent-Type: application/octet-stream\r\n"
                "Content-Length: 100000\r\n\r\n"
            ).encode()
            + b"z" * 5000
        )
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while _uploads(served) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _uploads(served) == []


def test_an_upload_and_a_job_belong_to_who_made_them(http: httpx.Client, served: Served, team: dict[str, str]) -> None:
    headers = {**bearer(team["carol"]), "Content-Type": "application/octet-stream"}
    upload = http.post(
        f"{API}/uploads", params={"filename": "b.csv"}, headers=headers, content=Path(team["csv"]).read_bytes()
    )
    assert upload.status_code == 201
    assert upload.json()["hash"].startswith("b3:")
    upload_id = upload.json()["upload"]
    # Another principal cannot use it, and learns nothing about whether it exists.
    stolen = http.post(
        f"{API}/datasets/wine/contributions",
        headers=bearer(team["anna"]),
        json={"upload": upload_id, "source": "s"},
    )
    assert_clean_error(stolen, 404, "not_found")
    job = http.post(
        f"{API}/datasets/wine/contributions",
        headers=bearer(team["carol"]),
        json={"upload": upload_id, "source": "s", "gate": False},
    )
    assert job.status_code == 202 and job.headers["location"].endswith(job.json()["id"])
    assert_clean_error(http.get(f"{API}/jobs/{job.json()['id']}", headers=bearer(team["anna"])), 404, "not_found")
    deadline = time.monotonic() + 30
    while (state := http.get(f"{API}/jobs/{job.json()['id']}", headers=bearer(team["carol"])).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["status"] == "succeeded", state
    assert state["result"]["submitted_by"] == "carol"
    assert _uploads(served) == []  # consumed


def test_verify_and_selftest_run_as_jobs(served: Served, team: dict[str, str]) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    report = admin.verify()
    assert report.ok, report.to_dict()
    response = httpx.post(f"{served.url}{API}/verify", headers=bearer(served.admin_key), json={})
    assert response.status_code == 202 and response.json()["kind"] == "verify"


def test_failed_authentications_are_rate_limited_per_key_id(http: httpx.Client, served: Served) -> None:
    claimed = "dw_zzzzzzzz_" + "a" * 52
    codes = [http.get(f"{API}/whoami", headers=bearer(claimed)).status_code for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    limited = http.get(f"{API}/whoami", headers=bearer(claimed))
    assert_clean_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0
    # Other keys from the same address still work.
    assert http.get(f"{API}/whoami", headers=bearer(served.admin_key)).status_code == 200


def test_failure_limiter_per_address_and_window() -> None:
    now = [0.0]
    limiter = FailureLimiter(per_key=100, per_address=3, window_s=60, clock=lambda: now[0])
    for i in range(3):
        limiter.check(f"dw_aaaaaaa{i}_" + "b" * 52, "10.0.0.1")
        limiter.failed(f"dw_aaaaaaa{i}_" + "b" * 52, "10.0.0.1")
    with pytest.raises(AuthenticationError):
        limiter.check("dw_cccccccc_" + "d" * 52, "10.0.0.1")
    limiter.check("dw_cccccccc_" + "d" * 52, "10.0.0.2")  # another address is not affected
    now[0] = 61.0
    limiter.check("dw_cccccccc_" + "d" * 52, "10.0.0.1")  # the window has passed


def test_a_key_id_under_attack_stays_usable_from_elsewhere() -> None:
    limiter = FailureLimiter(per_key=3, per_address=100, window_s=60, clock=lambda: 0.0)
    victim = "dw_vvvvvvvv_" + "w" * 52
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
        limiter.failed("dw_vvvvvvvv_" + "x" * 52, address)
    for attacker in ("10.0.0.1", "10.0.0.2"):
        with pytest.raises(AuthenticationError):
            limiter.check(victim, attacker)
    limiter.check(victim, "192.168.1.7")  # the key's holder, who never failed
