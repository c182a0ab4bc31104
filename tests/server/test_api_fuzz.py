"""The OpenAPI document drives a fuzzer (schemathesis's case generation) against a real server:
whatever it sends, with a valid key no endpoint answers 500 or a body that is not an error document,
and without a key every endpoint answers 401."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import Served

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

# Drawn inside the tests rather than by ``@given`` on them: marked here so that ``-m hypothesis``
# (`make fuzz`) selects them with the other property tests.
pytestmark = pytest.mark.hypothesis

# The witness location is a path on the server's side: a fuzzed value would be written to.
SKIPPED = {("PUT", "/api/v1/witness")}


def operations(served: Served) -> list[Any]:
    spec = httpx.get(f"{served.url}/api/v1/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if (op.method.upper(), op.path) not in SKIPPED]


def fuzz(operation: Any, examples: int, check: Any) -> None:
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case: Any) -> None:
        check(case)

    run()


def new_client() -> httpx.Client:
    """One client for a test's few hundred requests: ``httpx.request`` builds a client, and with it a TLS
    context that reads the CA bundle (about 30 ms), per call. No connection is kept alive, so every
    request still arrives on a new connection of its own, as it did through ``httpx.request``."""
    return httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def send(client: httpx.Client, served: Served, case: Any, key: str | None) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=served.url)
    headers = {k: v for k, v in (kwargs.pop("headers", None) or {}).items() if k.lower() != "authorization"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    kwargs.pop("cookies", None)
    client.cookies.clear()  # as a new client per request would: nothing one response set is sent back
    allowed = {"method", "url", "params", "json", "data", "content", "files"}
    request = {k: v for k, v in kwargs.items() if k in allowed}
    if "data" in request and isinstance(request["data"], bytes | str):
        request["content"] = request.pop("data")
    return client.request(headers=headers, **request)


def test_no_server_errors_with_a_key(served: Served) -> None:
    problems: list[str] = []
    client = new_client()

    def check(case: Any) -> None:
        response = send(client, served, case, served.admin_key)
        if response.status_code >= 500:
            problems.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")
        elif response.status_code >= 400:
            body = response.json()
            if not ({"error", "message", "exit_code"} <= set(body)) or "Traceback" in response.text:
                problems.append(f"{case.method} {case.formatted_path}: bad error body {response.text[:300]}")

    ops = operations(served)
    assert len(ops) >= 40
    with client:
        for op in ops:
            fuzz(op, 3, check)
    assert not problems, "\n".join(problems)


def test_nothing_answers_without_a_key(served: Served) -> None:
    problems: list[str] = []
    client = new_client()

    def check(case: Any) -> None:
        response = send(client, served, case, None)
        if response.status_code != 401:
            problems.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    with client:
        for op in operations(served):
            fuzz(op, 1, check)
    assert not problems, "\n".join(problems)
