"""A quarantine the catalog lost (restored from a backup older than the quarantined contribution) holds
its records back by the id list the ward's list of removals names. That object deleted from the store
(or an older store's backup put back) must never read as "nothing to hold back": the same records sent
again in another order (another id list, so the deleted one is not made again) would be merged,
promoted and served. Every step that would rely on it is refused, naming the object, until it is back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, TINY_ONNX, merge_reviewed, wine_rows, write_csv
from tests.provenance.restore_drill import SOURCE, quarantined_after_the_backup
from tests.security.test_restore_removals import LIST

POISON = wine_rows(100, 120)
"""The quarantined contribution's 20 records (wine#3 before the restore)."""


def _poison_again(ward: Ward, tmp_path: Path, name: str) -> dict:
    """The quarantined records sent again, in another order (another id list)."""
    return ward.contribute("wine", write_csv(tmp_path / name, POISON[::-1]), source=SOURCE)


def _restored(wine_ward: Ward, tmp_path: Path) -> tuple[Ward, str, str, dict]:
    """The drill around wine#3 (20 records) quarantined after the backup; then, on the restored catalog,
    wine@v3 merged from 10 clean records and the quarantined records sent again, held back (not merged).
    Returns the ward, the quarantined contribution's id and id list (as the list names them), and the
    re-sent contribution."""
    folder = quarantined_after_the_backup(wine_ward, tmp_path, POISON)
    line = json.loads((folder / LIST).read_text().splitlines()[-1])
    assert line["type"] == "contribution.quarantined" and len(line["held"]) == 1
    ward = Ward.open(folder)
    clean = ward.contribute("wine", write_csv(tmp_path / "clean.csv", wine_rows(140, 150)), source="s3://vendor/c")
    assert merge_reviewed(ward, clean["ref"])["ref"] == "wine@v3"
    again = _poison_again(ward, tmp_path, "again.csv")
    assert again["held_back"] == 20
    return ward, line["contributions"][0], line["held"][0], again


def test_a_lost_id_list_refuses_what_would_rely_on_it(wine_ward: Ward, tmp_path: Path) -> None:
    ward, quarantined, id_list, again = _restored(wine_ward, tmp_path)
    ward.store.path_of(id_list).unlink()
    named = rf"contribution {quarantined} quarantined .*lacks its id list {id_list}"
    with pytest.raises(IntegrityViolation, match=named) as refused:
        _poison_again(ward, tmp_path, "once-more.csv")
    assert f"put object {id_list} back" in (refused.value.hint or "")
    assert refused.value.details["digest"] == id_list and refused.value.details["contribution"] == quarantined
    with pytest.raises(IntegrityViolation, match=named):
        ward.merge(again["ref"])
    with pytest.raises(IntegrityViolation, match=named):
        ward.promote("wine@v3")
    with pytest.raises(IntegrityViolation, match=named):
        ward.load_version("wine", "training")
    with pytest.raises(IntegrityViolation, match=named):
        ward.dataset("wine").version("training").to_pandas()
    # verify names it as a problem, with what is refused and how to mend it.
    problems = ward.verify().problems
    assert [p.kind for p in problems] == ["unreadable_quarantine"], problems
    assert f"lacks its id list {id_list}" in problems[0].detail and "of dataset wine" in problems[0].detail
    assert "Put it back from a backup of the object store" in problems[0].detail


def test_the_id_list_put_back_holds_the_records_back_again(wine_ward: Ward, tmp_path: Path) -> None:
    ward, _, id_list, again = _restored(wine_ward, tmp_path)
    kept = shutil.copy2(ward.store.path_of(id_list), tmp_path / "id-list-backup")
    ward.store.path_of(id_list).unlink()
    with pytest.raises(IntegrityViolation):
        _poison_again(ward, tmp_path, "refused.csv")
    shutil.copy2(kept, ward.store.path_of(id_list))
    assert _poison_again(ward, tmp_path, "once-more.csv")["held_back"] == 20
    merged = ward.merge(again["ref"])
    assert (merged["ref"], merged["held_back"], merged["records"]) == ("wine@v4", 20, 90)
    ward.promote("wine@v4")
    served = set(ward.load_version("wine", "training")[1].column("record_id").to_pylist())
    v2 = ward.dataset("wine").version("v2").to_pandas()  # before the quarantined records, as restored
    assert len(served) == 90 and set(v2["record_id"]) <= served
    assert ward.verify().ok


def test_a_dataset_of_another_encoding_goes_on(wine_ward: Ward, tmp_path: Path) -> None:
    """The records of a wine contribution cannot be records of a dataset of another encoding: its
    contributions are not refused for the lost id list."""
    ward, _, id_list, _ = _restored(wine_ward, tmp_path)
    ward.store.path_of(id_list).unlink()
    ward.create_dataset("short", Schema.parse("cultivar", ["alcohol:numeric", "ash:numeric"]))
    ward.set_policy("short", NO_APPROVALS_POLICY)
    rows = [{"alcohol": r["alcohol"], "ash": r["ash"], "cultivar": r["cultivar"]} for r in POISON]
    sent = ward.contribute("short", write_csv(tmp_path / "short.csv", rows), source="s3://vendor/short")
    assert ward.merge(sent["ref"])["records"] == 20


def test_a_ward_that_records_steps_serves_no_dataset_without_it(wine_ward: Ward, tmp_path: Path) -> None:
    """A step may make records of any dataset from the quarantined ones: once the ward records steps, a
    lost id list leaves no dataset's version to judge, whatever its encoding."""
    ward, quarantined, id_list, _ = _restored(wine_ward, tmp_path)
    ward.create_dataset("short", Schema.parse("cultivar", ["alcohol:numeric", "ash:numeric"]))
    ward.set_policy("short", NO_APPROVALS_POLICY)
    with ward.transform("project", inputs="wine@v2", output="short") as t:
        rows = t.read().to_pylist()
        t.write([{"alcohol": r["alcohol"], "ash": r["ash"], "cultivar": r["cultivar"]} for r in rows[:10]])
    assert t.result is not None
    ward.promote(f"short@v{ward.merge(t.result['ref'])['number']}")
    assert ward.load_version("short", "training")[1].num_rows == 10
    ward.store.path_of(id_list).unlink()
    with pytest.raises(IntegrityViolation, match=rf"contribution {quarantined} quarantined .*{id_list}"):
        ward.load_version("short", "training")


def test_the_views_of_models_still_answer_and_say_what_they_cannot_tell(wine_ward: Ward, tmp_path: Path) -> None:
    """Listing models is for information: a lost id list must not make `model list` or `model show`
    fail (the incident tools one reaches for then), but say the data cannot be judged."""
    import dataward

    ward, _, id_list, _ = _restored(wine_ward, tmp_path)
    ward.promote("wine@v3")
    (tmp_path / "model.onnx").write_bytes(TINY_ONNX)
    with dataward.training_run("wine@training", model="wine-clf", ward=ward) as run:
        run.load()
        run.log_artifact(tmp_path / "model.onnx")
    ward.store.path_of(id_list).unlink()
    shown = ward.model("wine-clf@v1")
    assert any(
        "wine@v3: cannot tell which of its records are barred" in a and id_list in a for a in shown["affected"]
    ), shown["affected"]
    assert [m["ref"] for m in ward.models()] == ["wine-clf@v1"]
