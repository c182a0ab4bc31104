"""Authorize first, then answer: ids do not tell a caller without the right what exists.

``trace dw_<key>`` shows a key's principal, expiry and lineage only to its principal, the owner of
its service principal, or a reader of the whole ward. Review commands, ``gate report`` and
``gate selftest`` authorize before they say ``not_found``: a principal with no role gets the same
refusal for an id that exists and one that does not, and a principal with a role elsewhere gets
``not_found`` for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dataward.domain.errors import AccessDenied, DatawardError, NotFound
from dataward.service.ward import Ward
from tests.security.key_team import Clock, contribute, denials, key_id, make_team

FLAGGING_POLICY = (
    "gate:\n  detectors: [duplicates, outliers]\n  alpha: 0.5\n  flag_fdr: null\nfirst_import: self-reference\n"
)


@pytest.fixture(scope="module")
def flagged(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Ward], dict[str, Any]]:
    """A team and one contribution of the bot whose gate flagged records for review."""
    folder = tmp_path_factory.mktemp("leak")
    team = make_team(folder / "ward", Clock())
    team["admin"].set_policy("wine", FLAGGING_POLICY)
    c = contribute(team["scraper"], folder)
    queue = team["admin"].review_list(contribution=c["ref"])
    assert queue, "a permissive alpha must flag something to review"
    return team, {"contribution": c["ref"], "item": queue[0]["id"], "record": queue[0]["record_id"]}


def _refusal(call: Callable[..., Any], *args: Any) -> tuple[type, str, str | None]:
    with pytest.raises(DatawardError) as info:
        call(*args)
    return type(info.value), info.value.message, info.value.hint


def test_trace_of_a_key_by_an_unauthorized_principal_is_refused(
    flagged: tuple[dict[str, Ward], dict[str, Any]],
) -> None:
    team, _ = flagged
    alice_key = key_id(team["alice"])
    for outsider in ("mallory", "bob"):  # no role; reader of one dataset only
        existing = _refusal(lambda w=team[outsider]: w.trace(f"dw_{alice_key}"))
        missing = _refusal(lambda w=team[outsider]: w.trace("dw_zzzzzzzz"))
        assert existing == missing and existing[0] is AccessDenied
        assert "alice" not in existing[1] and "expire" not in existing[1]
    # Its principal, the owner of a bot, and a ward-wide reader may.
    assert team["alice"].trace(f"dw_{alice_key}")["subject"]["principal"] == "alice"
    assert team["alice"].trace(f"dw_{key_id(team['scraper'])}")["subject"]["principal"] == "scraper"
    team["admin"].grant("bob", "reader", "ward")
    try:
        assert team["bob"].trace(f"dw_{alice_key}")["subject"]["expires_at"]
        with pytest.raises(NotFound):
            team["bob"].trace("dw_zzzzzzzz")
    finally:
        team["admin"].revoke_grant("bob", "reader", "ward")


def test_not_found_and_refused_are_indistinguishable_for_a_principal_with_no_role(
    flagged: tuple[dict[str, Ward], dict[str, Any]],
) -> None:
    team, ids = flagged
    mallory = team["mallory"]
    pairs = {
        "review show": (lambda: mallory.review_show(ids["item"]), lambda: mallory.review_show("q_0000000000000000")),
        "review show by record": (
            lambda: mallory.review_show(ids["record"]),
            lambda: mallory.review_show("0" * 64),
        ),
        "review decide": (
            lambda: mallory.review_decide([ids["item"]], "accept", reason="x"),
            lambda: mallory.review_decide(["q_0000000000000000"], "accept", reason="x"),
        ),
        "review list": (
            lambda: mallory.review_list(contribution=ids["contribution"]),
            lambda: mallory.review_list(contribution="wine#99"),
        ),
        "gate report": (
            lambda: mallory.gate_report(ids["contribution"]),
            lambda: mallory.gate_report("nope#1"),
        ),
        "gate selftest": (
            lambda: mallory.selftest("wine", ids["contribution"]),
            lambda: mallory.selftest("wine", "wine#99"),
        ),
    }
    for name, (existing, missing) in pairs.items():
        seen, unseen = _refusal(existing), _refusal(missing)
        assert seen == unseen, name
        # A command that names a dataset the caller may not see answers as for a dataset that does not
        # exist (service/concealment.py); the others refuse alike.
        assert seen[0] is (NotFound if name == "gate selftest" else AccessDenied), name
    # A dataset that does not exist and one that does read alike too (only the echoed name differs).
    real = _refusal(lambda: mallory.selftest("wine"))
    ghost = _refusal(lambda: mallory.selftest("ghost"))
    assert real[0] is ghost[0] is NotFound and real[1].replace("wine", "ghost") == ghost[1] and real[2] == ghost[2]


def test_a_principal_with_a_role_elsewhere_gets_not_found_for_both(
    flagged: tuple[dict[str, Ward], dict[str, Any]],
) -> None:
    team, ids = flagged
    carol, admin = team["carol"], team["admin"]  # reviewer of "other" only
    before = len(denials(admin))
    missing_item, missing_c = "q_0000000000000000", "wine#99"
    cases = [
        (lambda r: carol.review_show(r), ids["item"], missing_item),
        (lambda r: carol.review_decide([r], "reject", reason="x"), ids["item"], missing_item),
        (lambda r: carol.review_list(contribution=r), ids["contribution"], missing_c),
        (lambda r: carol.gate_report(r), ids["contribution"], missing_c),
        (lambda r: carol.selftest("other", r), ids["contribution"], missing_c),
    ]
    for call, existing, missing in cases:
        seen, unseen = _refusal(call, existing), _refusal(call, missing)
        assert seen[0] is unseen[0] is NotFound
        assert seen[1].replace(existing, missing) == unseen[1] and seen[2] == unseen[2]
    # ... while the ledger still records each attempt on what exists but is not theirs.
    attempts = denials(admin)[: len(denials(admin)) - before]
    assert len(attempts) >= 4
    assert {d["payload"]["ref"] for d in attempts} >= {ids["item"], ids["contribution"]}
