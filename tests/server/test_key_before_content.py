"""A request's content is read only once its key is known: a made-up key gets its 401 before the server
parses a policy's YAML, checks and hashes a run's parameters, or looks up what the request names.

Attacks: a dataset policy of a few hundred bytes whose YAML aliases expand into millions of values,
sent with a made-up key (seconds of work and hundreds of megabytes before the 401); training
parameters nested hundreds deep, which exhausted the encoder's recursion (a 500 and two tracebacks of
thousands of lines in the log per request, with no key at all); a contribution or a training run
named with a made-up key, answered 404 or not as it exists.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dataward.access.policy import DatasetPolicy
from dataward.client import HTTPWard
from dataward.domain.errors import InputError
from dataward.domain.limits import MAX_JSON_DEPTH
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, wine_schema_specs
from tests.server.conftest import Served

API = "/api/v1"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_MADE_UP = itertools.count()


def made_up() -> str:
    """A well-formed key no ward issued, with a key id of its own (the rate limit counts per key id)."""
    n = next(_MADE_UP)
    key_id = "zz" + "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(6))
    return f"dw_{key_id}_" + "q" * 52


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def alias_bomb(levels: int, width: int = 9) -> str:
    """A policy whose gate section holds ``width ** levels`` strings once its aliases are expanded."""
    lines = ["gate:", "  detectors: [duplicates]", "  x0: &a0 [" + ",".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"  x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def wine(served: Served) -> str:
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.set_policy("wine", LIGHT_GATE_POLICY)
    admin.create_principal("nobody")  # a genuine key with no role anywhere
    return str(admin.issue_key("nobody")["key"])


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every policy text the server parses while the test runs (it serves from this process)."""
    texts: list[str] = []
    original = DatasetPolicy.from_yaml.__func__  # type: ignore[attr-defined]

    def spy(cls: type[DatasetPolicy], text: str) -> DatasetPolicy:
        texts.append(text)
        return original(cls, text)  # type: ignore[no-any-return]

    monkeypatch.setattr(DatasetPolicy, "from_yaml", classmethod(spy))
    return texts


def test_a_policy_is_not_parsed_for_a_key_that_may_not_set_it(
    http: httpx.Client, served: Served, wine: str, parsed: list[str]
) -> None:
    bomb = alias_bomb(5)  # 290 bytes, 59,049 strings once expanded (eight levels: 434 bytes, 43 million)
    for key, status in ((made_up(), 401), (wine, 404)):  # no role on wine: it does not exist for her
        answer = http.put(f"{API}/datasets/wine/policy", headers=bearer(key), json={"policy_yaml": bomb})
        assert answer.status_code == status, answer.text
    answer = http.put(f"{API}/datasets/nosuch/policy", headers=bearer(made_up()), json={"policy_yaml": bomb})
    assert answer.status_code == 401, answer.text
    assert bomb not in parsed


def test_a_policy_with_yaml_aliases_or_deep_nesting_is_refused_as_such(
    http: httpx.Client, served: Served, wine: str
) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    before = admin.policy("wine")["hash"]
    for text, problem in (
        (alias_bomb(4), "the policy holds a YAML anchor or alias (line 3, column 7): a policy may not use them"),
        ("gate:\n  detectors: &d [duplicates]\nrelease: {detectors: *d}\n", "YAML anchor or alias (line 2"),
        ("gate:\n  deep: " + "[" * 100 + "]" * 100 + "\n", f"nested more than {MAX_JSON_DEPTH} levels deep"),
    ):
        answer = http.put(f"{API}/datasets/wine/policy", headers=bearer(served.admin_key), json={"policy_yaml": text})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "bad_input" and problem in answer.json()["message"], answer.text
    # The same rule in a folder's ward; nothing was recorded.
    embedded = Ward.open(served.ward, key=served.admin_key)
    with pytest.raises(InputError, match="YAML anchor or alias"):
        embedded.set_policy("wine", "gate: &g {detectors: [duplicates]}\n")
    assert admin.policy("wine")["hash"] == before


def test_deep_training_parameters_are_a_bad_request_never_a_crash(
    http: httpx.Client, served: Served, wine: str, caplog: pytest.LogCaptureFixture
) -> None:
    deep = '{"model": "m", "params": {"p": ' + "[" * 800 + "]" * 800 + "}}"
    headers = {"Content-Type": "application/json"}
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            answer = http.post(f"{API}/training-runs", headers={**headers, **bearer(made_up())}, content=deep)
            assert answer.status_code == 401, answer.text
        answer = http.post(f"{API}/training-runs", headers={**headers, **bearer(served.admin_key)}, content=deep)
        assert answer.status_code == 422, answer.text
        assert f"params is nested more than {MAX_JSON_DEPTH} levels deep" in answer.json()["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # At the limit, the run is recorded and the ledger still reads and verifies.
    admin = HTTPWard(served.url, key=served.admin_key)
    run = admin.start_training_run("m", params={"p": nested(MAX_JSON_DEPTH - 1)})
    assert run["run"].startswith("run_")
    assert admin.ledger(limit=1)[0]["type"] == "training.started"
    assert admin.verify().ok


def test_what_a_request_names_is_not_looked_up_for_a_made_up_key(http: httpx.Client, served: Served, wine: str) -> None:
    for path, body in (
        ("/contributions/wine%2399/withdraw", {"reason": "x"}),
        ("/contributions/nosuch%231/override", {"reason": "x"}),
        ("/training-runs/run_0123456789abcdef/reads", {"dataset": "wine", "version": "1"}),
        ("/training-runs/run_0123456789abcdef/fail", {"reason": "x"}),
    ):
        answer = http.post(f"{API}{path}", headers=bearer(made_up()), json=body)
        assert answer.status_code == 401, (path, answer.text)
        # A genuine key still learns that it names nothing.
        assert http.post(f"{API}{path}", headers=bearer(served.admin_key), json=body).status_code == 404, path


def test_an_unexpected_failure_is_logged_once_and_briefly(
    http: httpx.Client, served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def runaway(self: Ward, depth: int = 0) -> dict[str, Any]:
        return runaway(self, depth + 1)

    monkeypatch.setattr(Ward, "whoami", runaway)
    # The server's own log of a failure it let go up: uvicorn's, which does not reach the root logger.
    server_log = logging.getLogger("uvicorn.error")
    server_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.ERROR):
            answer = http.get(f"{API}/whoami", headers=bearer(served.admin_key))
    finally:
        server_log.removeHandler(caplog.handler)
    assert answer.status_code == 500 and answer.json()["error"] == "internal"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage()[:80] for r in errors]
    assert "RecursionError" in errors[0].getMessage()
    assert errors[0].getMessage().count("\n") < 200
