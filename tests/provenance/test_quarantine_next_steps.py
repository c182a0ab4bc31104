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
