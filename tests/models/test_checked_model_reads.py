"""What a model's reads show and its release signs is the signed ledger's word, not the catalog's.

A catalog writer without the ward key edits a training run's parameters and code identity: the release
would sign them into the ward's in-toto attestation, and ``model show``, ``model list`` and
``trace model:`` would show them. Each is refused (``integrity_violation``, exit 7) naming the
``training_runs`` row; the untampered paths still answer."""

from __future__ import annotations

import sqlite3

import pytest

from dataward.domain.errors import IntegrityViolation
from tests.models.conftest import Models

FORGED_CODE = '{"commit":"deadbeef","dirty":false,"kind":"git","repository":"https://example.org/reviewed"}'


def _catalog(models: Models, sql: str, *args: object) -> None:
    db = sqlite3.connect(models.ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute(sql, args)
    db.close()


def _gated_and_approved(models: Models, ref: str = "man-clf@v1") -> None:
    models.as_("rita").model_gate(ref)
    models.as_("ann").approve_model(ref, reason="gate passed, metrics checked")


def test_an_untampered_run_is_shown_and_signed(models: Models) -> None:
    shown = models.ward.model("man-clf@v1")["run"]
    assert models.ward.trace("model:man-clf@v1")["subject"]["run"] == shown
    assert [m["ref"] for m in models.ward.models("man-clf")] == ["man-clf@v2", "man-clf@v1"]
    _gated_and_approved(models)
    assert models.as_("pat").release_model("man-clf@v1", reason="first release")["stage"] == "released"


def test_a_training_run_edited_in_the_catalog_is_never_signed_into_a_release(models: Models) -> None:
    _gated_and_approved(models)
    _catalog(models, "UPDATE training_runs SET params = '{\"C\": 1.0}', code = ?", FORGED_CODE)
    with pytest.raises(IntegrityViolation, match=r"training_runs .*params is") as refused:
        models.as_("pat").release_model("man-clf@v1", reason="first release")
    assert refused.value.code == "integrity_violation"
    assert models.ward.model_attestation("man-clf@v1")[1:] == []  # no release statement was signed
    assert not models.ward.ledger(types=["model.released"])


@pytest.mark.parametrize("column", ["params", "code"])
def test_a_training_run_edited_in_the_catalog_is_not_shown(models: Models, column: str) -> None:
    value = '{"C": 1.0}' if column == "params" else FORGED_CODE
    _catalog(models, f"UPDATE training_runs SET {column} = ?", value)
    for read in (
        lambda: models.ward.model("man-clf@v1"),
        lambda: models.ward.models("man-clf"),
        lambda: models.ward.trace("model:man-clf@v1"),
    ):
        with pytest.raises(IntegrityViolation, match=rf"training_runs .*{column} is"):
            read()


def test_model_show_exits_7_on_an_edited_run(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    _catalog(models, "UPDATE training_runs SET params = '{\"C\": 1.0}'")
    monkeypatch.setenv("DATAWARD_WARD", str(models.ward.folder))
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    shown = CliRunner().invoke(app, ["model", "show", "man-clf@v1", "--json"])
    assert shown.exit_code == 7, shown.output
    assert "integrity_violation" in shown.output and "training_runs" in shown.output


def test_a_later_release_gate_deleted_from_the_catalog_does_not_let_an_earlier_pass_count(models: Models) -> None:
    """man-clf@v1's gate passed, then a later run of its gate said review (signed, as any run is). A
    catalog writer deletes the review's row: the release took the newest gate row the catalog holds, the
    pass, and checked only that row against the ledger. The newest gate is the signed ledger's."""
    from dataward.access.roles import Action, Scope
    from dataward.catalog.projection import insert_row

    _gated_and_approved(models)
    ward = models.ward
    mv_id, digest = sql_one(models, "SELECT id, digest FROM model_versions WHERE model = 'man-clf' AND number = 1")
    (report, created_by) = sql_one(models, "SELECT report_object, created_by FROM model_gates")
    with ward.use_case(Action.MODEL_GATE, Scope.model("man-clf")) as uc:
        row = insert_row(
            "model_gates",
            id="mg_later",
            model_version_id=mv_id,
            verdict="review",
            report_object=report,
            baseline_id=None,
            digest=digest,
            created_by=created_by,
            created_at="2999-01-01T00:00:00.000000Z",
        )
        uc.emit("model.gated", {"model": "man-clf", "model_version": mv_id}, {"verdict": "review"}, [row])
    _catalog(models, "DELETE FROM model_gates WHERE id = 'mg_later'")
    with pytest.raises(IntegrityViolation, match=r"release gates of man-clf@v1: model_gates mg_later, recorded in"):
        models.as_("pat").release_model("man-clf@v1", reason="first release")
    assert not ward.ledger(types=["model.released"])
    with pytest.raises(IntegrityViolation, match="mg_later"):
        models.as_("pat").model_gate_report("man-clf@v1")


def sql_one(models: Models, query: str) -> tuple:
    db = sqlite3.connect(models.ward.folder / "catalog.sqlite")
    try:
        return db.execute(query).fetchone()
    finally:
        db.close()
