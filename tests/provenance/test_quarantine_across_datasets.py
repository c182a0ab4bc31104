"""A quarantine holds its records out of every version of the ward, not only its own dataset's.

The outside trial: the scraper's batch was quarantined in one dataset, then contributed again, by the
same bot from the same source, to a fresh dataset; nothing held it back there, it merged and reached
training. Record ids are content hashes, so the same records are held back wherever they come again,
and a version holding them (merged before the quarantine) is not promoted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv

POISONED = "https://scrape.example/wine-a"  # wine#1: the scraper's 60 records (rows 0 to 60)


def _second_dataset(ward: Ward, name: str = "wine3") -> None:
    label, specs = wine_schema_specs()
    ward.create_dataset(name, Schema.parse(label, specs))
    ward.set_policy(name, NO_APPROVALS_POLICY)
    ward.grant("scraper", "contributor", f"dataset:{name}")


def _bot(ward: Ward) -> Ward:
    return ward.as_key(ward.issue_key("scraper")["key"])


def _ids(ward: Ward, ref: str) -> set[str]:
    name, version = ref.split("@")
    _, table = ward.read_version(name, version)
    return set(table.column("record_id").to_pylist())


def test_the_quarantined_batch_contributed_to_another_dataset_is_held_back(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    _second_dataset(ward)
    # The same bot, the same source URI, the same records, and ten new ones.
    batch = write_csv(tmp_path / "again.csv", wine_rows(0, 60) + wine_rows(100, 110))
    again = _bot(ward).contribute("wine3", batch, source=POISONED)
    assert again["held_back"] == 60
    assert again["held_back_by"] == [
        {"why": "quarantined", "contribution": "wine#1", "same_dataset": False, "records": 60}
    ]
    version = merge_reviewed(ward, again["ref"])
    assert version["records"] == 10 and version["held_back_of_contribution"] == 60
    ward.promote("wine3@v1", reason="only the new records")
    # wine@v1 is the scraper's batch alone: none of it reached training in wine3.
    assert not _ids(ward, "wine@v1") & _ids(ward, "wine3@training")


def test_anyone_re_contributing_the_quarantined_records_elsewhere_is_held_back(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="poisoned")
    _second_dataset(ward)
    again = ward.contribute("wine3", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="s3://mirror/a.csv")
    assert again["held_back"] == 60
    version = merge_reviewed(ward, again["ref"])
    assert version["records"] == 0


def test_a_copy_merged_before_the_quarantine_is_not_promoted(wine_ward: Ward, tmp_path: Path) -> None:
    """The bot planted the same batch in another dataset first; quarantining wine#1 afterwards leaves
    that copy behind, so its version must not reach training (nor be loaded) while it holds them."""
    ward = wine_ward
    _second_dataset(ward)
    copy = _bot(ward).contribute(
        "wine3", write_csv(tmp_path / "copy.csv", wine_rows(0, 60) + wine_rows(100, 110)), source=POISONED
    )
    assert copy["held_back"] == 0  # nothing is quarantined yet
    merge_reviewed(ward, copy["ref"])
    ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    with pytest.raises(PolicyViolation, match=r"60 added by quarantined contribution wine#1"):
        ward.promote("wine3@v1")
    assert ward.versions("wine3")[0]["stage"] == "candidate"
    # Removing them (a contribution that removes records) makes a version that is promoted.
    removes = tmp_path / "removes.txt"
    removes.write_text("\n".join(sorted(_ids(ward, "wine@v1"))) + "\n")
    cleanup = ward.contribute("wine3", removes=str(removes), source="ops:cleanup")
    merge_reviewed(ward, cleanup["ref"])
    ward.promote("wine3@v2", reason="without the quarantined records")


def test_a_copy_already_in_training_elsewhere_is_no_longer_served(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    _second_dataset(ward)
    copy = _bot(ward).contribute(
        "wine3", write_csv(tmp_path / "copy.csv", wine_rows(0, 60)), source="https://b.example"
    )
    merge_reviewed(ward, copy["ref"])
    ward.promote("wine3@v1")
    ward.quarantine_contribution("wine#1", reason="poisoned")
    # The same bot, even from another source URI: not independent of the quarantined contribution.
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#1"):
        ward.read_version("wine3", "training")


def test_an_independent_copy_from_before_the_quarantine_vouches_for_itself(wine_ward: Ward, tmp_path: Path) -> None:
    """As within a dataset: another principal, from another source, brought the same content in before
    the quarantine; that contribution is not suspect, so its version stays promotable."""
    ward = wine_ward
    _second_dataset(ward)
    own = ward.contribute("wine3", write_csv(tmp_path / "own.csv", wine_rows(0, 60)), source="s3://vendor/own.csv")
    merge_reviewed(ward, own["ref"])
    ward.quarantine_contribution("wine#1", reason="poisoned")
    ward.promote("wine3@v1", reason="independent source")
    assert len(_ids(ward, "wine3@training")) == 60


def test_a_clean_contribution_to_another_dataset_is_not_held_back(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="poisoned")
    _second_dataset(ward)
    clean = _bot(ward).contribute("wine3", write_csv(tmp_path / "clean.csv", wine_rows(100, 130)), source=POISONED)
    assert clean["held_back"] == 0 and clean["held_back_by"] == []
    assert merge_reviewed(ward, clean["ref"])["records"] == 30
    ward.promote("wine3@v1")
    assert ward.read_version("wine3", "training")[1].num_rows == 30


def test_a_quarantined_principal_s_records_are_held_back_in_every_dataset(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    _second_dataset(ward)
    bot = _bot(ward)
    first = bot.contribute("wine3", write_csv(tmp_path / "d.csv", wine_rows(100, 120)), source="https://b.example")
    merge_reviewed(ward, first["ref"])
    result = ward.quarantine_by("principal:scraper", reason="bot compromised")
    assert {d["dataset"] for d in result["datasets"]} == {"wine", "wine3"}
    # Both batches, contributed again by someone else to a third dataset, stay out.
    label, specs = wine_schema_specs()
    ward.create_dataset("wine4", Schema.parse(label, specs))
    ward.set_policy("wine4", NO_APPROVALS_POLICY)
    again = ward.contribute(
        "wine4", write_csv(tmp_path / "e.csv", wine_rows(0, 60) + wine_rows(100, 120)), source="s3://mirror/e"
    )
    assert again["held_back"] == 80
    assert {r["contribution"] for r in again["held_back_by"]} == {"wine#1", "wine3#1"}
    assert merge_reviewed(ward, again["ref"])["records"] == 0


def test_a_quarantine_in_a_dataset_the_contributor_cannot_read_is_not_named(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="poisoned")
    _second_dataset(ward)
    ward.create_principal("dave")
    ward.grant("dave", "contributor", "dataset:wine3")
    dave = ward.as_key(ward.issue_key("dave")["key"])
    again = dave.contribute("wine3", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="s3://dave/a")
    assert again["held_back"] == 60
    assert again["held_back_by"] == [{"why": "quarantined", "contribution": None, "same_dataset": False, "records": 60}]


def test_the_cli_says_which_quarantine_holds_the_records_back(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="poisoned")
    _second_dataset(ward)
    monkeypatch.setenv("DATAWARD_WARD", str(ward.folder))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    runner = CliRunner()
    batch = write_csv(tmp_path / "again.csv", wine_rows(0, 60))
    shown = runner.invoke(app, ["contribute", "wine3", str(batch), "--source", POISONED])
    assert shown.exit_code == 0, shown.stdout
    text = " ".join(shown.stdout.split())
    assert "60 of its records are held back (60 in quarantined contribution wine#1)" in text, text
    as_json = runner.invoke(app, ["contribute", "wine3", str(batch), "--source", POISONED, "--json"])
    assert json.loads(as_json.stdout)["held_back"] == 60


def test_a_merge_counts_only_its_own_dataset_s_held_back_records(wine_ward: Ward, tmp_path: Path) -> None:
    """`held_back` on a merge counts this dataset's records held back, never another dataset's
    quarantined ones (a new 10-record dataset once said 60 were held back)."""
    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    _second_dataset(ward)
    clean = _bot(ward).contribute("wine3", write_csv(tmp_path / "clean.csv", wine_rows(100, 110)), source="s")
    version = merge_reviewed(ward, clean["ref"])
    assert version["records"] == 10
    assert version["held_back"] == version["held_back_of_contribution"] == 0
    assert ward.ledger(types=["contribution.merged"])[0]["payload"]["held_back"] == 0
    # Re-contributed to wine3, the quarantined records are held back there, and counted there.
    again = _bot(ward).contribute("wine3", write_csv(tmp_path / "again.csv", wine_rows(0, 20)), source=POISONED)
    version = merge_reviewed(ward, again["ref"])
    assert version["records"] == 10
    assert version["held_back"] == version["held_back_of_contribution"] == 20


def test_a_merge_line_says_when_none_of_the_held_back_records_are_its_own(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dataset's 60 quarantined records stay out of the new version; the line read as if the merged
    contribution had lost 60 of its records."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="poisoned")
    clean = ward.contribute("wine", write_csv(tmp_path / "clean.csv", wine_rows(100, 110)), source="s")
    monkeypatch.setenv("DATAWARD_WARD", str(ward.folder))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    shown = CliRunner().invoke(app, ["merge", clean["ref"]])
    assert shown.exit_code == 0, shown.stdout
    text = " ".join(shown.stdout.split())
    assert "besides, 60 records of other contributions to wine stay held back" in text, text
    assert "held back in the dataset" not in text  # it read as if wine had lost records in this merge
