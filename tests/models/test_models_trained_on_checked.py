"""A model version row edited out of the datasets it was trained on (its dataset list emptied) or
deleted in the catalog alone would hide the model from every trace of that data and from a quarantine's
blast radius. A trace refuses it (``integrity_violation``); a quarantine, which must not be undone by an
edited row, answers from the signed ledger and names the model. The untampered paths still answer."""

from __future__ import annotations

import sqlite3

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.service import rows
from dataward.service.idsets import id_set
from tests.models.conftest import Models


def _catalog(models: Models, sql: str) -> None:
    db = sqlite3.connect(models.ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute(sql)
    db.close()


def _record_of_v1(models: Models) -> str:
    first = models.ward.trace("man#1")["contributions"][0]
    with models.ward.db.reading() as conn:
        added = rows.contribution_row(conn, first["id"]).added_object
    return id_set(models.ward.store, added).ids()[0]


def test_the_models_trained_on_data_are_traced_untampered(models: Models) -> None:
    record = _record_of_v1(models)
    for ref in ("man@v1", "man#1", record):
        assert {m["model"] for m in models.ward.trace(ref)["models"]} == {"man-clf@v1", "man-clf@v2"}, ref


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE model_versions SET datasets = '[]' WHERE number = 1",
        "DELETE FROM model_versions WHERE number = 1",
    ],
)
def test_a_model_edited_out_of_its_training_data_is_refused_by_trace(models: Models, edit: str) -> None:
    record = _record_of_v1(models)
    _catalog(models, edit)
    for ref in ("man@v1", "man#1", record):
        with pytest.raises(IntegrityViolation, match="model_versions") as refused:
            models.ward.trace(ref)
        assert refused.value.code == "integrity_violation", ref


def test_a_quarantine_names_a_model_edited_out_of_its_training_data(models: Models) -> None:
    """The quarantine goes through (an edited row must not stop an incident's response) and its blast
    radius is the signed ledger's: the model hidden in the catalog is named."""
    _catalog(models, "UPDATE model_versions SET datasets = '[]' WHERE number = 1")
    held = models.ward.quarantine_contribution("man#1", reason="the mirror was compromised")
    assert {m["model"] for m in held["models"]} == {"man-clf@v1", "man-clf@v2"}
