"""Access a new user meets first, the same on the embedded ward and over HTTP: a grant on one dataset is
enough to list and trace that dataset, and a stopped principal is enabled again only by an admin, only
while a human answers for it, and never with its old keys. Nothing is given to a principal that cannot
use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dataward.api import WardAPI
from dataward.client import HTTPWard
from dataward.domain.errors import AccessDenied, Conflict, KeyRevoked, NotFound, PrincipalSuspended
from dataward.domain.schema import Schema
from dataward.provenance.handles import file_record_ids
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served

MODES = ("embedded", "http")

Connect = Callable[[str], WardAPI]


@pytest.fixture(scope="module")
def ward_with_data(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two datasets on the served ward, ``wine`` with its clean validation set; ``wine`` holds one
    (ungated) contribution, written to a file."""
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    for name in ("wine", "grapes"):
        admin.create_dataset(name, Schema.parse(label, specs))
        admin.set_policy(name, LIGHT_GATE_POLICY)
    admin.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    batch = write_csv(tmp_path_factory.mktemp("data") / "batch.csv", wine_rows(0, 20, shuffled=True))
    admin.contribute("wine", batch, source="https://example.org/wine.csv", gate=False)
    return batch


def connector(served: Served, mode: str) -> Connect:
    """A function giving the ward acting with a key, embedded (the folder) or over HTTP (the server)."""
    if mode == "embedded":
        return lambda key: Ward.open(served.ward, key=key)
    return lambda key: HTTPWard(served.url, key=key)


def admin_and_person(served: Served, mode: str, name: str, *grants: tuple[str, str]) -> tuple[WardAPI, WardAPI]:
    """The admin, and a new human ``name-MODE`` holding ``grants``, acting with its own key."""
    connect = connector(served, mode)
    admin = connect(served.admin_key)
    who = f"{name}-{mode}"
    admin.create_principal(who)
    for role, scope in grants:
        admin.grant(who, role, scope)
    return admin, connect(admin.issue_key(who)["key"])


# --- a grant on one dataset -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_dataset_grant_lists_and_reads_only_that_dataset(served: Served, ward_with_data: Path, mode: str) -> None:
    admin, rita = admin_and_person(served, mode, "rita", ("reviewer", "dataset:wine"))
    # A clean validation set is read with the dataset it guards.
    assert [d["name"] for d in rita.datasets()] == ["wine", "wine-val"]
    assert {d["name"] for d in admin.datasets()} >= {"wine", "wine-val", "grapes"}
    info = rita.dataset_info("wine")
    assert info == next(d for d in admin.datasets() if d["name"] == "wine")
    assert info["schema"]["label"] == "cultivar" and info["latest"] is None
    # A dataset she may not see answers exactly as one that does not exist (docs/server.md: 404).
    with pytest.raises(NotFound) as hidden:
        rita.dataset_info("grapes")
    with pytest.raises(NotFound) as missing:
        rita.dataset_info("nosuch")
    assert hidden.value.message.replace("grapes", "nosuch") == missing.value.message
    assert hidden.value.hint == missing.value.hint


@pytest.mark.parametrize("mode", MODES)
def test_a_dataset_grant_traces_the_records_of_a_file(served: Served, ward_with_data: Path, mode: str) -> None:
    """What `trace --file` does: hash the file with the dataset's schema, read with the dataset grant
    alone, and trace each record."""
    _, rita = admin_and_person(served, mode, "rover", ("reviewer", "dataset:wine"))
    schema = Schema.from_dict(rita.dataset_info("wine")["schema"])
    ids = file_record_ids(ward_with_data, schema)
    traced = rita.trace(ids[0])
    assert traced["subject"]["id"] == ids[0] and traced["contributions"][0]["ref"] == "wine#1"


@pytest.mark.parametrize("mode", MODES)
def test_a_key_narrowed_to_one_dataset_lists_only_it_even_for_a_ward_reader(
    served: Served, ward_with_data: Path, mode: str
) -> None:
    admin, whole = admin_and_person(served, mode, "wendy", ("reader", "ward"))
    assert {d["name"] for d in whole.datasets()} >= {"wine", "wine-val", "grapes"}
    narrow = connector(served, mode)(admin.issue_key(f"wendy-{mode}", scopes=["dataset:grapes"])["key"])
    assert [d["name"] for d in narrow.datasets()] == ["grapes"]
    with pytest.raises(NotFound):
        narrow.dataset_info("wine")


@pytest.mark.parametrize("mode", MODES)
def test_no_grant_lists_nothing_and_ward_wide_reads_still_need_the_ward(
    served: Served, ward_with_data: Path, mode: str
) -> None:
    _, nina = admin_and_person(served, mode, "nina")
    assert nina.datasets() == []
    _, rita = admin_and_person(served, mode, "rhea", ("reviewer", "dataset:wine"))
    with pytest.raises(AccessDenied) as refused:
        rita.ledger(limit=1)
    message = refused.value.message
    assert "may not ledger.read on the ward: it needs one of the roles" in message
    assert message.endswith("on the ward (it holds reviewer on dataset:wine only)")
    assert "on ward" not in message and "or on the ward" not in message
    assert refused.value.exit_code == 6


# --- stopped principals -----------------------------------------------------------------------------


def offboarded_owner(served: Served, mode: str, tag: str) -> tuple[WardAPI, Connect, dict[str, str]]:
    """A human ``hu`` with a bot holding a key and a role, offboarded without a transfer (so the bot is
    suspended and its key revoked), and a second human ``hu2``. Names carry ``tag`` and the mode."""
    connect = connector(served, mode)
    admin = connect(served.admin_key)
    names = {n: f"{n}-{tag}-{mode}" for n in ("hu", "bot", "hu2")}
    admin.create_principal(names["hu"])
    admin.create_principal(names["hu2"])
    admin.create_principal(names["bot"], kind="service", owner=names["hu"])
    admin.grant(names["hu"], "reader", "dataset:wine")
    admin.grant(names["bot"], "contributor", "dataset:wine")
    names["hu_key"] = admin.issue_key(names["hu"])["key"]
    names["bot_key"] = admin.issue_key(names["bot"])["key"]
    admin.disable_principal(names["hu"], reason="left")
    return admin, connect, names


@pytest.mark.parametrize("mode", MODES)
def test_nothing_is_given_to_a_stopped_principal(served: Served, ward_with_data: Path, mode: str) -> None:
    admin, _, n = offboarded_owner(served, mode, "give")
    with pytest.raises(Conflict, match=f"'{n['bot']}' is suspended: it cannot be given a key") as key_refused:
        admin.issue_key(n["bot"])
    assert key_refused.value.exit_code == 4
    assert f"dataward principal enable {n['bot']}" in (key_refused.value.hint or "")
    with pytest.raises(Conflict, match=f"'{n['hu']}' is disabled: it cannot be given a role"):
        admin.grant(n["hu"], "approver", "dataset:wine")
    with pytest.raises(Conflict, match="cannot be given a key"):
        admin.rotate_key(n["bot_key"].rsplit("_", 1)[0])
    # Taking away is never refused.
    admin.revoke_grant(n["bot"], "contributor", "dataset:wine")
    assert not [k for k in admin.keys(n["bot"]) if k["state"] == "active"]


@pytest.mark.parametrize("mode", MODES)
def test_a_suspended_bot_is_enabled_by_an_admin_once_a_human_answers_for_it(
    served: Served, ward_with_data: Path, mode: str
) -> None:
    admin, connect, n = offboarded_owner(served, mode, "bot")
    with pytest.raises(KeyRevoked):
        connect(n["bot_key"]).whoami()

    # Its owner is disabled: nobody answers for it, so not even an admin enables it.
    with pytest.raises(Conflict, match=f"owned by '{n['hu']}', who is disabled") as orphan:
        admin.enable_principal(n["bot"])
    assert f"principal transfer {n['bot']}" in (orphan.value.hint or "")

    # A transfer hands it over and says it is still suspended; it does not start it.
    moved = admin.transfer_principal(n["bot"], n["hu2"])
    assert moved["owner"] == n["hu2"] and moved["status"] == "suspended"

    # Only an admin enables it: not its new owner (who may manage its keys), not a dataset owner.
    admin.grant(n["hu2"], "owner", "dataset:wine")
    new_owner = connect(admin.issue_key(n["hu2"])["key"])
    with pytest.raises(AccessDenied, match="only an admin may"):
        new_owner.enable_principal(n["bot"])
    denied = admin.ledger(limit=1, types=["access.denied"])[0]
    assert denied["payload"]["action"] == "principal.enable"

    enabled = admin.enable_principal(n["bot"], reason="hu2 runs it now")
    assert enabled["status"] == "active" and enabled["was"] == "suspended" and enabled["owner"] == n["hu2"]
    assert enabled["grants"] == [{"role": "contributor", "scope": "dataset:wine"}]
    event = admin.ledger(limit=1, types=["principal.enabled"])[0]
    assert event["payload"]["reason"] == "hu2 runs it now" and event["payload"]["was"] == "suspended"

    # The key it held before is still refused: it was revoked when the bot was suspended.
    with pytest.raises(KeyRevoked):
        connect(n["bot_key"]).whoami()
    fresh = connect(new_owner.issue_key(n["bot"])["key"])
    assert fresh.whoami()["principal"] == n["bot"]
    with pytest.raises(Conflict, match="already active"):
        admin.enable_principal(n["bot"])

    rows = [r for r in admin.access_review() if r["kind"] == "principal_enabled" and r["principal"] == n["bot"]]
    assert len(rows) == 1 and "contributor on dataset:wine" in rows[0]["detail"]
    assert "hu2 runs it now" in rows[0]["detail"] and rows[0]["severity"] == "medium"


@pytest.mark.parametrize("mode", MODES)
def test_enabling_a_human_brings_back_their_grants_not_their_keys_nor_their_bots(
    served: Served, ward_with_data: Path, mode: str
) -> None:
    admin, connect, n = offboarded_owner(served, mode, "human")
    enabled = admin.enable_principal(n["hu"], reason="rehired")
    assert enabled["was"] == "disabled" and enabled["still_suspended"] == [n["bot"]]
    assert enabled["grants"] == [{"role": "reader", "scope": "dataset:wine"}]
    with pytest.raises(KeyRevoked):
        connect(n["hu_key"]).whoami()
    back = connect(admin.issue_key(n["hu"])["key"])
    assert [d["name"] for d in back.datasets()] == ["wine", "wine-val"]
    # The bot waits for its own enabling, which its (now active) owner may not do, and an admin may.
    with pytest.raises(AccessDenied):
        back.enable_principal(n["bot"])
    assert admin.enable_principal(n["bot"])["status"] == "active"


def test_a_key_issued_while_stopped_never_works_after_enabling(
    served: Served, ward_with_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ward used before keys were refused to stopped principals may hold a live key issued while the
    bot was suspended; enabling revokes it (and what was minted through it) rather than reviving it."""
    admin, connect, n = offboarded_owner(served, "embedded", "old")
    admin.transfer_principal(n["bot"], n["hu2"])
    with monkeypatch.context() as older:
        older.setattr("dataward.service.identity.check_can_receive", lambda *a, **k: None)
        stray = admin.issue_key(n["bot"])
    with pytest.raises(PrincipalSuspended) as refused:
        connect(stray["key"]).whoami()
    assert f"dataward principal enable {n['bot']}" in (refused.value.hint or "")
    enabled = admin.enable_principal(n["bot"])
    assert enabled["revoked_keys"] == [stray["prefix"]]
    with pytest.raises(KeyRevoked):
        connect(stray["key"]).whoami()
    assert admin.verify().ok


@pytest.mark.parametrize("mode", MODES)
def test_a_key_narrowed_to_issuing_keys_issues_no_wider_key_for_another_admin(
    served: Served, ward_with_data: Path, mode: str
) -> None:
    """The same refusal embedded and over HTTP: a provisioning key narrowed to ``key.issue`` cannot issue an
    unrestricted key for a second admin (which would buy every power of the ward); within its scopes it can."""
    admin, _ = admin_and_person(served, mode, "second-admin", ("admin", "ward"))
    provisioning = connector(served, mode)(admin.issue_key(scopes=["key.issue"], ttl_days=1)["key"])
    with pytest.raises(AccessDenied, match="cannot issue a wider key"):
        provisioning.issue_key(f"second-admin-{mode}")
    assert provisioning.issue_key(f"second-admin-{mode}", scopes=["key.issue"])["scopes"] == ["key.issue"]
