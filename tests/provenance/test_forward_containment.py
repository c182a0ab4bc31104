"""Containment follows records forward through transformations.

The attack: a leaked bot key's records are laundered through a step (a relabel makes new record ids, a
dedup copies them into a derived dataset) so that quarantining the key's contributions no longer
reaches them. Quarantine and trace must follow the record lineage into every derived version.
"""

from __future__ import annotations

from pathlib import Path

from dataward.domain.schema import RECORD_ID, Schema
from dataward.provenance.taint import Step, derived_from
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


def _ids(ward: Ward, ref: str) -> set[str]:
    name, version = ref.split("@")
    return set(ward.read_version(name, version)[1].column(RECORD_ID).to_pylist())


def _dedup_into(ward: Ward, source: str, output: str) -> dict:
    with ward.transform("dedup", inputs=source, output=output, params={"key": "alcohol"}) as t:
        groups: dict[float, list[dict]] = {}
        for r in t.read().to_pylist():
            groups.setdefault(round(r["alcohol"]), []).append(r)
        t.write([g[0] for g in groups.values()], parents=[[r[RECORD_ID] for r in g] for g in groups.values()])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])
    return t.result


def test_a_relabelled_and_a_copied_record_are_contained_with_the_leaked_key(wine_ward: Ward) -> None:
    ward = wine_ward
    label, specs = wine_schema_specs()
    ward.create_dataset("wine_clean", Schema.parse(label, specs), description="deduplicated wine")
    ward.set_policy("wine_clean", NO_APPROVALS_POLICY)
    scraped = _ids(ward, "wine@v1")
    key = ward.trace("principal:scraper")["contributions"][0]["key"]
    # Launder: relabel three of the bot's records (new ids), then dedup the result into another dataset.
    originals = [r for r in ward.read_version("wine", "v2")[1].to_pylist() if r[RECORD_ID] in scraped][:3]
    relabel = ward.relabel(
        "wine",
        {r[RECORD_ID]: ("3" if str(r["cultivar"]) != "3" else "1") for r in originals},
        reason="annotator disagreement",
    )
    merge_reviewed(ward, relabel["ref"])
    relabelled = {ward.trace(r[RECORD_ID])["derived"][0]["record"] for r in originals}
    assert relabelled <= _ids(ward, "wine@v3") and not relabelled & scraped
    _dedup_into(ward, "wine@v3", "wine_clean")
    assert _ids(ward, "wine_clean@v1") & (scraped | relabelled)

    # Forward trace of the key reaches the derived dataset through the dedup.
    derived = ward.trace(key)["derived_versions"]
    assert "wine_clean@v1" in [v["ref"] for v in derived]
    assert next(v for v in derived if v["ref"] == "wine_clean@v1")["via"][0]["name"] == "dedup"

    vendor = _ids(ward, "wine@v2") - scraped
    result = ward.quarantine_by(key, reason="bot key leaked")
    by_name = {d["dataset"]: d for d in result["datasets"]}
    assert set(by_name) == {"wine", "wine_clean"}
    wine_rollback = by_name["wine"]["rollback_version"]
    assert wine_rollback["derived_records_removed"] == len(relabelled)
    assert not _ids(ward, wine_rollback["ref"]) & (scraped | relabelled)
    clean = by_name["wine_clean"]
    assert clean["quarantined"] == [] and clean["rollback_version"] is not None
    assert "wine_clean@v1" in [v["ref"] for v in clean["affected_versions"]]
    kept = _ids(ward, clean["rollback_version"]["ref"])
    assert not kept & (scraped | relabelled)
    # The vendor's records are untouched in both.
    assert vendor <= _ids(ward, wine_rollback["ref"])
    assert kept == _ids(ward, "wine_clean@v1") - scraped - relabelled and kept <= vendor
    (event,) = [e for e in ward.ledger() if e["type"] == "records.contained"]
    assert event["payload"]["incident"] == key
    assert event["payload"]["rollback_version"] == clean["rollback_version"]["id"]
    assert ward.verify().ok


def test_quarantine_of_a_key_leaves_a_derived_dataset_alone_when_nothing_came_from_it(
    wine_ward: Ward, tmp_path: Path
) -> None:
    ward = wine_ward
    label, specs = wine_schema_specs()
    ward.create_dataset("vendor_only", Schema.parse(label, specs))
    ward.set_policy("vendor_only", NO_APPROVALS_POLICY)
    ward.contribute("vendor_only", write_csv(tmp_path / "v.csv", wine_rows(100, 130)), source="s3://vendor/v.csv")
    merge_reviewed(ward, "vendor_only#1")
    _dedup_into(ward, "vendor_only@v1", "vendor_only")
    key = ward.trace("principal:scraper")["contributions"][0]["key"]
    assert ward.trace(key)["derived_versions"] == []
    result = ward.quarantine_by(key, reason="bot key leaked")
    assert [d["dataset"] for d in result["datasets"]] == ["wine"]
    assert [v["ref"] for v in ward.versions("vendor_only")] == ["vendor_only@v1", "vendor_only@v2"]


def test_a_survivor_is_suspect_only_through_its_own_content() -> None:
    clean, poisoned, other = "c" * 64, "p" * 64, "o" * 64
    made = "m" * 64
    links = [{"record_id": clean, "parent_id": clean}, {"record_id": clean, "parent_id": poisoned}]
    dedup = Step("c_dedup", "d", links)
    # A clean survivor that a poisoned duplicate was folded into keeps its own content: not suspect.
    assert derived_from({poisoned}, [dedup]) == {}
    # A poisoned survivor is the poisoned record itself, not a derived one.
    assert derived_from({clean}, [dedup]) == {}
    # A record made from a poisoned one (and from a clean one) is, transitively.
    merge = Step("c_merge", "d", [{"record_id": made, "parent_id": poisoned}, {"record_id": made, "parent_id": other}])
    again = Step("c_again", "d2", [{"record_id": "n" * 64, "parent_id": made}])
    assert derived_from({poisoned}, [merge, again]) == {made: {"c_merge"}, "n" * 64: {"c_again"}}
    assert derived_from({other, poisoned}, [merge]) == {made: {"c_merge"}}


def test_quarantining_one_contribution_follows_its_records_into_a_derived_dataset(wine_ward: Ward) -> None:
    ward = wine_ward
    label, specs = wine_schema_specs()
    ward.create_dataset("wine_clean", Schema.parse(label, specs))
    ward.set_policy("wine_clean", NO_APPROVALS_POLICY)
    scraped = _ids(ward, "wine@v1")
    _dedup_into(ward, "wine@v2", "wine_clean")
    assert _ids(ward, "wine_clean@v1") & scraped
    result = ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    assert result["rollback_version"]["ref"] == "wine@v3"
    (clean,) = result["derived_datasets"]
    assert clean["dataset"] == "wine_clean" and clean["rollback_version"]["ref"] == "wine_clean@v2"
    assert not _ids(ward, "wine_clean@v2") & scraped
    assert [e["type"] for e in ward.ledger()][:2] == ["records.contained", "contribution.quarantined"]
    assert ward.verify().ok


def test_a_version_holding_records_made_from_quarantined_ones_never_reaches_training(wine_ward: Ward) -> None:
    """The quarantine made rollback versions, but the versions it left behind still hold the laundered
    records: copies a dedup made into another dataset, and records an augmentation made from them (new
    ids), both added by the steps, not by the quarantined contribution. Loading such a version for
    training, promoting it or training a model on it is refused, as for the contribution's own records."""
    import pytest

    import dataward
    from dataward.domain.errors import PolicyViolation

    ward = wine_ward
    label, specs = wine_schema_specs()
    for name in ("wine_clean", "wine_aug"):
        ward.create_dataset(name, Schema.parse(label, specs))
        ward.set_policy(name, NO_APPROVALS_POLICY)
    scraped = _ids(ward, "wine@v1")
    _dedup_into(ward, "wine@v2", "wine_clean")  # wine_clean@v1 holds copies of the scraper's records
    with ward.transform("augment", inputs="wine@v2", output="wine_aug", params={"alcohol": 0.01}) as t:
        rows = [r for r in t.read().to_pylist() if r[RECORD_ID] in scraped][:20]
        t.write([{**r, "alcohol": r["alcohol"] + 0.01} for r in rows], parents=[r[RECORD_ID] for r in rows])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])  # wine_aug@v1: only records made from the scraper's
    assert not _ids(ward, "wine_aug@v1") & scraped
    ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    for name in ("wine_clean", "wine_aug"):
        with pytest.raises(PolicyViolation, match="must never reach training"):
            ward.load_version(name, "v1", stage=None)
        with pytest.raises(PolicyViolation, match="must never reach training"):
            ward.promote(f"{name}@v1")
    ward.grant("admin", "contributor", "model:m")
    with (
        pytest.raises(PolicyViolation, match="must never reach training"),
        dataward.training_run("wine_aug@v1", model="m", ward=ward) as run,
    ):
        run.load(stage=None)
    # The rollback version the quarantine made of the copies is clean and loads.
    assert ward.load_version("wine_clean", "v2", stage=None)[1].num_rows
    assert ward.verify().ok
