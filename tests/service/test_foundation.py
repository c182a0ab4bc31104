"""The main job end to end on a real ward: datasets, contributions, versions, export, verify."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

import dataward
from dataward.catalog import record_index
from dataward.catalog.tables import ledger_events
from dataward.domain.errors import Conflict, InputError, NotFound, PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


def _wine_ward(tmp_path: Path, catalog_url: str | None = None) -> Ward:
    ward, _ = Ward.init(tmp_path / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs), description="UCI wine")
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    return ward


def _ledger_size(ward: Ward) -> int:
    with ward.db.reading() as conn:
        return conn.execute(select(func.count()).select_from(ledger_events)).scalar_one()


def test_contribute_merge_export_round_trip(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _wine_ward(tmp_path, catalog_url)
    first = write_csv(tmp_path / "a.csv", wine_rows(0, 100))
    second = write_csv(tmp_path / "b.csv", wine_rows(100, 178))
    c1 = ward.contribute("wine", first, source="https://archive.example/wine-a.csv", licence="CC-BY-4.0")
    assert c1["added"] == 100 and c1["status"] == "gated" and c1["ref"] == "wine#1"
    assert c1["gate"]["verdict"] == "pass" and len(c1["gate"]["records"]) == 100
    v1 = merge_reviewed(ward, c1["id"])
    c2 = ward.contribute("wine", second, source="s3://vendor/wine-b.csv")
    v2 = merge_reviewed(ward, "wine#2")
    assert (v1["number"], v1["records"]) == (1, 100)
    assert (v2["number"], v2["records"], v2["parent"]) == (2, 178, v1["id"])
    assert c2["base_version"] == v1["id"]

    d = ward.diff("wine@v1", "v2")
    assert len(d["added"]) == 78 and d["removed"] == [] and d["contributions"] == ["wine#2"]

    out = tmp_path / "wine.parquet"
    ward.export("wine@v2", out, format="parquet")
    exported = pd.read_parquet(out)
    assert len(exported) == 178
    original = pd.DataFrame(wine_rows())
    assert sorted(exported["alcohol"].round(6)) == sorted(original["alcohol"].round(6))
    assert ward.verify().ok


def test_identical_records_are_stored_once(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _wine_ward(tmp_path, catalog_url)
    path = write_csv(tmp_path / "a.csv", wine_rows(0, 50))
    merge_reviewed(ward, ward.contribute("wine", path, source="one")["id"])
    again = ward.contribute("wine", path, source="two")
    assert again["added"] == 50 and again["new_records"] == 0
    with ward.db.reading() as conn:
        assert record_index.count(conn) == 50
    v2 = merge_reviewed(ward, again["id"])
    assert v2["records"] == 50


def test_removal_contribution(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _wine_ward(tmp_path, catalog_url)
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 20)), source="s")["id"])
    ids = ward.dataset("wine").version("v1").to_arrow().column("record_id").to_pylist()
    removal = ward.contribute("wine", removes=ids[:5], source="cleanup")
    v2 = merge_reviewed(ward, removal["id"])
    assert v2["records"] == 15
    remaining = set(ward.dataset("wine").version("latest").to_pandas()["record_id"])
    assert remaining == set(ids[5:])
    with pytest.raises(InputError, match="not in the latest version"):
        ward.contribute("wine", removes=["0" * 64], source="cleanup")


def test_python_api_opens_the_same_service(tmp_path: Path) -> None:
    ward = _wine_ward(tmp_path)
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 30)), source="s")["id"])
    again = dataward.open(tmp_path / "ward")
    df = again.dataset("wine").version("v1").to_pandas()
    assert list(df.columns) == [
        "record_id",
        "alcohol",
        "malic_acid",
        "ash",
        "magnesium",
        "proline",
        "cultivar",
    ]
    assert len(df) == 30 and df["cultivar"].isin(["0", "1", "2"]).all()


def test_bad_file_stores_nothing(tmp_path: Path, catalog_url: str | None) -> None:
    ward = _wine_ward(tmp_path, catalog_url)
    before = _ledger_size(ward)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "alcohol,malic_acid,ash,magnesium,proline,cultivar\n13.2,1.7,2.1,100,1000,0\n12.1,abc,2.0,90,900,1\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        ward.contribute("wine", bad, source="s")
    assert "bad.csv" in str(info.value) and "malic_acid" in str(info.value) and "3" in str(info.value)
    assert _ledger_size(ward) == before
    with ward.db.reading() as conn:
        assert record_index.count(conn) == 0


def test_errors_name_the_problem(tmp_path: Path) -> None:
    ward = _wine_ward(tmp_path)
    with pytest.raises(Conflict):
        ward.create_dataset("wine", Schema.parse("cultivar", ["alcohol:numeric"]))
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        ward.versions("nope")
    with pytest.raises(InputError, match="source"):
        ward.contribute("wine", tmp_path / "x.csv", source="")
    # A source of blanks, or with blanks or a line break around it, was stored as given and named so in
    # traces and quarantines ('source    '): it is refused, before the file is read.
    for blank in ("   ", " https://example.org/a", "https://example.org/a\n"):
        with pytest.raises(InputError, match="source"):
            ward.contribute("wine", tmp_path / "x.csv", source=blank)
    with pytest.raises(NotFound):
        Ward.open(tmp_path / "elsewhere")
    with pytest.raises(Conflict):
        Ward.init(tmp_path / "ward")


def test_init_refuses_a_first_admin_name_no_principal_may_have_and_a_file_as_its_folder(tmp_path: Path) -> None:
    """`init --admin "ops team"` made a principal whose name `principal create` refuses, and `init FILE`
    failed with a NotADirectoryError traceback: both are bad input, and nothing is created."""
    with pytest.raises(InputError, match="whitespace"):
        Ward.init(tmp_path / "ward", admin="ops team")
    assert not (tmp_path / "ward").exists()
    existing = tmp_path / "data.csv"
    existing.write_text("a,b\n")
    with pytest.raises(InputError, match="is a file, not a folder"):
        Ward.init(existing)
    assert existing.read_text() == "a,b\n"


def test_init_on_a_catalog_it_cannot_reach_says_so_without_a_traceback_or_the_password(tmp_path: Path) -> None:
    """`init --catalog` with a database that cannot be opened raised the driver's OperationalError (a
    traceback of the connection pool): it is bad input naming the URL (password hidden) and the reason."""
    with pytest.raises(InputError, match="cannot create the catalog at sqlite:") as unopenable:
        Ward.init(tmp_path / "ward", catalog_url=f"sqlite:///{tmp_path}/no/such/folder/catalog.sqlite")
    assert "unable to open database file" in unopenable.value.message
    assert not (tmp_path / "ward").exists()
    pytest.importorskip("psycopg")
    with pytest.raises(InputError, match="cannot create the catalog") as refused:
        Ward.init(tmp_path / "ward", catalog_url="postgresql+psycopg://ward:s3cret@127.0.0.1:1/ward")
    assert "s3cret" not in refused.value.message and "ward:***@127.0.0.1:1" in refused.value.message
    assert "PGPASSWORD" in (refused.value.hint or "") and not (tmp_path / "ward").exists()


def test_merged_contribution_cannot_merge_twice(tmp_path: Path) -> None:
    ward = _wine_ward(tmp_path)
    c = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 10)), source="s")
    merge_reviewed(ward, c["id"])
    with pytest.raises(Conflict, match="merged"):
        ward.merge(c["id"])


def test_promotion_retires_the_previous_training_version(tmp_path: Path) -> None:
    ward = _wine_ward(tmp_path)
    ward.create_principal("rita")
    ward.grant("rita", "reviewer", "dataset:wine")
    reviewer = ward.as_key(ward.issue_key("rita")["key"])
    for name, rows in (("a", wine_rows(0, 90, shuffled=True)), ("b", wine_rows(90, 178, shuffled=True))):
        c = ward.contribute("wine", write_csv(tmp_path / f"{name}.csv", rows), source=name)
        assert ward.run_gate(c["id"])["verdict"] in ("pass", "review")
        for item in ward.review_list("wine"):
            reviewer.review_decide([item["id"]], "accept", reason="checked against the source")
        merge_reviewed(ward, c["id"])
        if name == "a":
            ward.promote("wine@v1")
    info = ward.promote("wine@v2")
    assert info["retired"] == "wine@v1"
    stages = {v["number"]: v["stage"] for v in ward.versions("wine")}
    assert stages == {1: "retired", 2: "training"}
    assert len(ward.dataset("wine").version("training").to_arrow()) == 178


def test_merge_needs_a_gate_verdict(tmp_path: Path) -> None:
    ward = _wine_ward(tmp_path)
    c = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 10)), source="s", gate=False)
    with pytest.raises(PolicyViolation, match="no gate has run"):
        ward.merge(c["id"])
    assert ward.versions("wine") == []
    denied = ward.ledger(types=["access.denied"])
    assert denied and denied[0]["payload"]["action"] == "contribution.merge"
    ward.run_gate(c["id"])
    assert merge_reviewed(ward, c["id"])["records"] == 10


def test_every_event_names_its_actor(tmp_path: Path) -> None:
    ward = _wine_ward(tmp_path)
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 10)), source="s")
    events = ward.ledger(newest_first=False)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["actor"]["principal"].startswith("p_") for e in events)
    submitted = next(e for e in events if e["type"] == "contribution.submitted")
    assert submitted["actor"]["key"] is not None
    assert submitted["payload"]["source"]["uri"] == "s"
    json.dumps(events)  # JSON-ready
