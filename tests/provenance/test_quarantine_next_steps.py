"""After ``quarantine principal:NAME`` (or a key), the result says what still lets the cause act and the
commands that stop it, and the access review lists an active principal with quarantined contributions
and usable keys or grants (issue: a leaked bot quarantined by principal kept its key and grants, its next
submission was accepted, and the access review had nothing to say). Nothing is revoked automatically."""

from __future__ import annotations

from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.service.ward import Ward


def _rows(ward: Ward) -> list[dict]:
    return [r for r in ward.access_review() if r["kind"] == "quarantined_but_active"]


def test_quarantining_a_principal_names_its_live_keys_and_grants_and_the_commands(wine_ward: Ward) -> None:
    ward = wine_ward
    result = ward.quarantine_by("principal:scraper", reason="bot credentials leaked")
    steps = result["next_steps"]
    assert steps and "scraper can still act" in steps[0]
    assert "dataward principal disable scraper" in steps[0]
    assert any("dataward grant revoke scraper contributor --scope dataset:wine" in s for s in steps)
    assert any(s.startswith("or revoke a key: dataward key revoke dw_") for s in steps)
    # Nothing was revoked: the quarantine only says what to do.
    (row,) = _rows(ward)
    assert row["severity"] == "medium" and row["principal"] == "scraper"
    assert "wine#1" in row["detail"] and "contributor on dataset:wine" in row["detail"]
    assert "dataward principal disable scraper" in row["action"]

    ward.disable_principal("scraper", reason="leaked")
    assert _rows(ward) == []
    again = ward.quarantine_by("principal:scraper", reason="again")
    assert again["next_steps"] == []


def test_quarantining_a_live_key_says_to_revoke_it(wine_ward: Ward) -> None:
    ward = wine_ward
    key = ward.contribution("wine#1")["key"]
    result = ward.quarantine_by(key, reason="key leaked")
    assert result["next_steps"] == [
        f"key {key} is still usable: revoke it, and every key minted through it: dataward key revoke {key} "
        "--reason '...'"
    ]


def test_the_cli_prints_the_next_steps(wine_ward: Ward, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATAWARD_WARD", str(wine_ward.folder))
    out = CliRunner().invoke(app, ["quarantine", "principal:scraper", "--reason", "leaked"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "next: scraper can still act" in out.output and "dataward principal disable scraper" in out.output


def test_the_grants_a_leaked_key_made_are_named_by_trace_and_quarantine(wine_ward: Ward, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A leaked owner's key hands its accomplice a role: revoking the key leaves the grant standing, and
    neither ``trace dw_KEY`` nor ``quarantine dw_KEY`` said the key had made it."""
    from tests.helpers import wine_rows, write_csv

    ward = wine_ward
    ward.grant("alice", "owner", "dataset:wine")
    ward.create_principal("mallory")
    leaked = ward.as_key(ward.issue_key("alice")["key"])
    key = f"dw_{leaked.credential.split('_')[1]}"
    minted = ward.as_key(leaked.issue_key()["key"])  # a key minted through it counts as it
    leaked.grant("mallory", "approver", "dataset:wine")
    minted.grant("mallory", "reviewer", "dataset:wine")
    leaked.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 90)), source="https://x.example/c")
    ward.revoke_key(key, reason="leaked")

    traced = ward.trace(key)["granted"]
    assert [(g["principal"], g["role"], g["scope"], g["stands"]) for g in traced] == [
        ("mallory", "approver", "dataset:wine", True),
        ("mallory", "reviewer", "dataset:wine", True),
    ]
    steps = ward.quarantine_by(key, reason="key leaked")["next_steps"]
    for role in ("approver", "reviewer"):
        assert any(f"dataward grant revoke mallory {role} --scope dataset:wine" in s for s in steps), steps

    ward.revoke_grant("mallory", "approver", "dataset:wine")
    assert [g["stands"] for g in ward.trace(key)["granted"]] == [False, True]
