"""Free text that goes into the signed ledger has a length limit, in the folder and over HTTP.

Attack: any key holder mints itself keys with a huge ``description``, or gives a huge ``reason``, and
every one becomes a permanent ledger event that every reader and verifier pays for. Each such field
is refused past ``MAX_TEXT_CHARS`` with an error naming the field and the limit, before anything is
stored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataward.api import WardAPI
from dataward.client import HTTPWard
from dataward.domain.errors import InputError
from dataward.domain.limits import MAX_JSON_CHARS, MAX_TEXT_CHARS
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served

MODES = ("embedded", "http")
LONG = "a" * (MAX_TEXT_CHARS + 1)


@pytest.fixture(scope="module")
def admin_key(served: Served) -> str:
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.set_policy("wine", NO_APPROVALS_POLICY)
    return served.admin_key


def _ward(served: Served, mode: str, key: str) -> WardAPI:
    return Ward.open(served.ward, key=key) if mode == "embedded" else HTTPWard(served.url, key=key)


@pytest.mark.parametrize("mode", MODES)
def test_free_text_past_the_limit_is_refused_before_anything_is_stored(
    served: Served, admin_key: str, mode: str, tmp_path: Path
) -> None:
    admin = _ward(served, mode, admin_key)
    data = write_csv(tmp_path / "a.csv", wine_rows(0, 20, shuffled=True))
    attempts: dict[str, Callable[[], Any]] = {
        "description": lambda: admin.issue_key(description=LONG),
        "reason": lambda: admin.revoke_key("dw_zzzzzzzz", reason=LONG),
        "message": lambda: admin.contribute("wine", data, source="s", message=LONG),
        "source": lambda: admin.contribute("wine", data, source="https://example.org/" + LONG),
    }
    before = admin.ledger_head()
    for field, attempt in attempts.items():
        with pytest.raises(InputError, match=rf"^{field} is [0-9,]+ characters long; the limit is 4,000 characters"):
            attempt()
    assert admin.ledger_head() == before and admin.contributions("wine") == []
    # At the limit it is accepted.
    assert admin.issue_key(description="b" * MAX_TEXT_CHARS)["key"].startswith("dw_")


@pytest.mark.parametrize("mode", MODES)
def test_a_whole_key_in_free_text_is_refused_and_never_reaches_the_ledger(
    served: Served, admin_key: str, mode: str, tmp_path: Path
) -> None:
    """Attack (a mistake an attacker waits for): a live key pasted into a reason, a description or a
    message. The ledger keeps free text for good and serves it to every reader of the ward; a key must
    go only in the Authorization header, as it must not go in a URL."""
    admin = _ward(served, mode, admin_key)
    live = admin.issue_key(description="the pipeline's key")["key"]
    secret = live.rsplit("_", 1)[1]
    data = write_csv(tmp_path / "b.csv", wine_rows(20, 40, shuffled=True))
    attempts: dict[str, Callable[[], Any]] = {
        "description": lambda: admin.issue_key(description=f"same as {live}"),
        "reason": lambda: admin.revoke_key("dw_zzzzzzzz", reason=f"replaced by {live.upper()}"),
        "message": lambda: admin.contribute("wine", data, source="s", message=f"sent with {live}"),
        "source": lambda: admin.contribute("wine", data, source=f"https://example.org/?key={live}"),
    }
    before = admin.ledger_head()
    for field, attempt in attempts.items():
        with pytest.raises(InputError, match=rf"^{field} holds an API key"):
            attempt()
    assert admin.ledger_head() == before
    assert secret not in str(admin.ledger(limit=50)).lower()
    # A key named by its id alone is fine.
    assert admin.issue_key(description=f"same as {live.rsplit('_', 1)[0]}")["key"].startswith("dw_")


def test_a_name_that_merely_starts_like_a_key_is_not_taken_for_one(served: Served, admin_key: str) -> None:
    admin = HTTPWard(served.url, key=admin_key)
    source = "postgres://warehouse/dw_customer_ordershistoryarchive"
    assert admin.issue_key(description=f"reads {source}")["key"].startswith("dw_")


@pytest.mark.parametrize("mode", MODES)
def test_a_key_run_into_other_text_or_its_secret_alone_is_refused(
    served: Served, admin_key: str, mode: str, tmp_path: Path
) -> None:
    """The same mistake made less tidily: the key pasted twice, run into the next word, or its secret
    written apart from its id (in another field, after a space). A key's id is no secret (every
    ``key.issued`` event shows it), so its 52-character secret alone in the ledger is the whole key."""
    admin = _ward(served, mode, admin_key)
    live = admin.issue_key(description="the trainer's key")["key"]
    key_id, secret = live.rsplit("_", 1)
    data = write_csv(tmp_path / "c.csv", wine_rows(40, 60, shuffled=True))
    attempts: dict[str, Callable[[], Any]] = {
        "description": lambda: admin.issue_key(description=f"pasted twice: {live}{live}"),
        "reason": lambda: admin.revoke_key("dw_zzzzzzzz", reason=f"leaked as {live}and rotated"),
        "message": lambda: admin.contribute("wine", data, source=f"s3://b/{key_id}", message=f"secret {secret}"),
    }
    before = admin.ledger_head()
    for field, attempt in attempts.items():
        with pytest.raises(InputError, match=rf"^{field} holds an API key") as refused:
            attempt()
        assert secret not in refused.value.message and secret not in (refused.value.hint or "")
    assert admin.ledger_head() == before
    assert secret not in str(admin.ledger(limit=50)).lower()
    # Text that merely looks alike is not refused: a digest in hex, a long name with separators.
    digest = "b3:" + "5e" * 32
    assert admin.issue_key(description=f"reads {digest} from dw_customer_orders_history_archive_2024")["key"]


@pytest.mark.parametrize("mode", MODES)
def test_structured_values_for_the_ledger_are_held_to_the_same_rules(served: Served, admin_key: str, mode: str) -> None:
    """Attack: the fields that take structured values went round the free-text rule. A training run's
    parameters and metrics, a step's parameters and code identity, and a relabelling's per-record "why"
    are kept for good too (the ledger, the step's lineage): a key pasted anywhere inside them, or a
    dataset pasted into ``params``, is refused before anything is stored."""
    admin = _ward(served, mode, admin_key)
    live = admin.issue_key(description="the trainer's key")["key"]
    huge = {"weights": [0.5] * (MAX_JSON_CHARS // 4)}
    attempts: dict[str, tuple[str, Callable[[], Any]]] = {
        "params nested": ("params", lambda: admin.start_training_run("m1", params={"env": {"DW_KEY": live}})),
        "params as a key": ("params", lambda: admin.start_training_run("m1", params={live: 1})),
        "params too large": ("params", lambda: admin.start_training_run("m1", params=huge)),
        "code": ("code", lambda: admin.start_training_run("m1", code={"kind": "file", "path": live})),
        "why": ("why", lambda: admin.relabel("wine", {"r" * 64: ["1", f"told by {live}"]}, reason="fix")),
    }
    if isinstance(admin, Ward):  # transformation steps are recorded in the folder only
        attempts["step params"] = (
            "params",
            lambda: admin.record_transformation("dedup", inputs="wine@v1", params={"token": [live]}),
        )
    before = admin.ledger_head()
    for case, (field, attempt) in attempts.items():
        with pytest.raises(InputError, match=rf"^{field} (holds an API key|is [0-9,]+ characters of JSON)") as refused:
            attempt()
        assert live.rsplit("_", 1)[1] not in refused.value.message, case
    assert admin.ledger_head() == before
    # Ordinary parameters, and ones just under the limit, are recorded.
    run = admin.start_training_run("m1", params={"lr": 0.01, "layers": [64, 64], "note": "b" * 1000})
    assert run["params"]["lr"] == 0.01


@pytest.mark.parametrize("mode", MODES)
def test_a_key_split_by_white_space_is_refused_too(served: Served, admin_key: str, mode: str, tmp_path: Path) -> None:
    """The mistake as pastes make it: the key wrapped at a line's end, grouped in fours for reading, a
    space in its id, its secret alone on two lines. The ledger would keep it as readable as a key
    written out whole (white space is no protection), so it is refused the same way."""
    admin = _ward(served, mode, admin_key)
    live = admin.issue_key(description="the importer's key")["key"]
    key_id, secret = live.rsplit("_", 1)
    fours = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    data = write_csv(tmp_path / "d.csv", wine_rows(60, 80, shuffled=True))
    attempts: dict[str, Callable[[], Any]] = {
        "description": lambda: admin.issue_key(description=f"same as {key_id}_{secret[:30]}\n{secret[30:]}"),
        "reason": lambda: admin.revoke_key("dw_zzzzzzzz", reason=f"replaced by {key_id[:5]} {key_id[5:]}_{fours}"),
        "message": lambda: admin.contribute("wine", data, source="s", message=f"secret:\n{secret[:26]}\n{secret[26:]}"),
        "source": lambda: admin.contribute("wine", data, source=f"https://example.org/?key={key_id}_{fours}"),
    }
    before = admin.ledger_head()
    for field, attempt in attempts.items():
        with pytest.raises(InputError, match=rf"^{field} holds an API key") as refused:
            attempt()
        assert secret[:12] not in refused.value.message, field
    assert admin.ledger_head() == before
    written = str(admin.ledger(limit=50)).lower()
    assert secret[:26] not in written and secret[26:] not in written and secret[:4] + " " + secret[4:8] not in written
    # Prose around ids and digests is recorded as before.
    note = f"key {key_id} replaced; record {'5e' * 32} and\ndigest b3:{'a7' * 32} checked on day 3 via s3 and a"
    assert admin.issue_key(description=note)["key"].startswith("dw_")
